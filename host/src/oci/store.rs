//! The content store: every blob wasmhost fetched (component sources by
//! URL, manifests, configs and layers from registries) kept under its
//! SHA-256, shared by every app, plus a record of which digest each
//! reference last resolved to.
//!
//! A blob becomes visible only once complete and verified: it streams into
//! a temporary file beside its final place, is hashed on the way, synced,
//! and renamed only when the digest (and the size, when known) match. A
//! crash, a truncated download or a wrong digest leaves nothing behind.
//!
//! Layout under the root:
//! - `blobs/sha256/<hex>`: the blobs;
//! - `refs/<sha256 of the reference>.json`: a [`RefRecord`] per reference.

use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Largest blob accepted, from a registry or a layout alike. Bounds what a
/// hostile source can make us write.
pub const MAX_BLOB_BYTES: u64 = 8 << 30;

/// Why a blob was refused.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Not `sha256:` and 64 lowercase hex digits.
    #[error("`{0}` is not a digest: expected `sha256:` and 64 lowercase hex digits")]
    BadDigest(String),
    /// The content does not hash to its digest.
    #[error("digest mismatch: expected {expected}, got sha256:{actual}")]
    Mismatch {
        /// What the reference or descriptor promised.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// Fewer or more bytes than the descriptor said.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    Size {
        /// The blob.
        digest: String,
        /// The descriptor's size.
        expected: u64,
        /// What arrived (at least; counting stops past the limit).
        actual: u64,
    },
}

/// The 64 hex digits of a `sha256:<hex>` digest, checked for form.
pub fn sha256_hex(digest: &str) -> Result<&str, BlobError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(hex)
        }
        _ => Err(BlobError::BadDigest(digest.to_owned())),
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What a reference last resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefRecord {
    /// The reference as the user wrote it, normalised (`registry/repo:tag`
    /// or `registry/repo@digest`), or `url:<url>` for a download.
    pub reference: String,
    /// The digest of the manifest (or of the blob, for a download).
    pub digest: String,
    /// The manifest's media type (`application/octet-stream` for a
    /// download).
    pub media_type: String,
    /// When it was resolved, seconds since the Unix epoch.
    pub resolved_at: u64,
}

/// The store at one root directory.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// A store under `root` (created when first written).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn ref_dir(&self) -> PathBuf {
        self.root.join("refs")
    }

    /// Where the blob `digest` lives (whether or not it is there).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, BlobError> {
        Ok(self.blob_dir().join(sha256_hex(digest)?))
    }

    /// Whether the blob is present. Blobs are verified before they are
    /// renamed into place, so presence means verified.
    pub fn has(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|path| path.is_file())
    }

    /// The blob's bytes.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        std::fs::read(&path).with_context(|| format!("blob {digest} is not in the store"))
    }

    /// Stores `bytes`, returning their digest.
    pub fn put(&self, bytes: &[u8]) -> Result<String> {
        let digest = digest_of(bytes);
        if !self.has(&digest) {
            let mut writer = self.writer(&digest, Some(bytes.len() as u64))?;
            writer.write(bytes)?;
            writer.commit()?;
        }
        Ok(digest)
    }

    /// Stores `bytes`, which must hash to `digest`.
    pub fn put_verified(&self, digest: &str, bytes: &[u8]) -> Result<PathBuf> {
        let mut writer = self.writer(digest, Some(bytes.len() as u64))?;
        writer.write(bytes)?;
        writer.commit()
    }

    /// Streams a blob into the store, verifying it as it arrives; at most
    /// `limit` bytes are accepted. `progress` is called with each chunk's
    /// length.
    pub async fn put_stream<S, E>(
        &self,
        digest: &str,
        size: Option<u64>,
        limit: u64,
        mut stream: S,
        mut progress: impl FnMut(u64),
    ) -> Result<PathBuf>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut writer = self.writer(digest, size)?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("the download broke off")?;
            writer.write(&chunk)?;
            if writer.written > limit {
                bail!("{digest} is larger than the {limit}-byte limit");
            }
            progress(chunk.len() as u64);
        }
        writer.commit()
    }

    /// A writer that becomes the blob `digest` on [`BlobWriter::commit`],
    /// and leaves nothing if dropped before.
    pub fn writer(&self, digest: &str, size: Option<u64>) -> Result<BlobWriter> {
        let path = self.blob_path(digest)?;
        let dir = self.blob_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        let file = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot write in `{}`", dir.display()))?;
        Ok(BlobWriter {
            file,
            hasher: Sha256::new(),
            written: 0,
            expected: digest.to_owned(),
            size,
            path,
        })
    }

    /// Records that `record.reference` resolved to `record.digest`.
    pub fn record_ref(&self, record: &RefRecord) -> Result<()> {
        let dir = self.ref_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
        let json = serde_json::to_vec_pretty(record)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        tmp.write_all(&json)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.ref_path(&record.reference))
            .context("cannot record the reference")?;
        Ok(())
    }

    /// What `reference` resolved to last, if it ever did here.
    pub fn lookup_ref(&self, reference: &str) -> Option<RefRecord> {
        let bytes = std::fs::read(self.ref_path(reference)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Forgets `reference`; its blobs go at the next [`Self::gc`].
    pub fn remove_ref(&self, reference: &str) -> Result<bool> {
        match std::fs::remove_file(self.ref_path(reference)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).context("cannot remove the reference record"),
        }
    }

    fn ref_path(&self, reference: &str) -> PathBuf {
        self.ref_dir().join(format!(
            "{}.json",
            hex::encode(Sha256::digest(reference.as_bytes()))
        ))
    }

    /// Every reference record, sorted by reference.
    pub fn refs(&self) -> Result<Vec<RefRecord>> {
        let mut records = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.ref_dir()) else {
            return Ok(records);
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "json") {
                match std::fs::read(&path).map(|b| serde_json::from_slice::<RefRecord>(&b)) {
                    Ok(Ok(record)) => records.push(record),
                    _ => tracing::warn!("ignoring unreadable record `{}`", path.display()),
                }
            }
        }
        records.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(records)
    }

    /// Every blob: digest and size.
    pub fn blobs(&self) -> Result<Vec<(String, u64)>> {
        let mut blobs = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.blob_dir()) else {
            return Ok(blobs);
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = format!("sha256:{name}");
            if sha256_hex(&digest).is_ok() {
                blobs.push((digest, entry.metadata()?.len()));
            }
        }
        blobs.sort();
        Ok(blobs)
    }

    /// The blobs reachable from `digest`: itself and, when it is a manifest
    /// or an index in the store, its config, layers and children.
    pub fn reachable(&self, digest: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([digest.to_owned()]);
        while let Some(next) = queue.pop_front() {
            if !seen.insert(next.clone()) {
                continue;
            }
            for child in self.children(&next) {
                queue.push_back(child);
            }
        }
        seen
    }

    /// The digests a manifest or index names; none for other blobs. Spin
    /// app configs name their layers too, but those are layers of the same
    /// manifest already.
    fn children(&self, digest: &str) -> Vec<String> {
        let Ok(path) = self.blob_path(digest) else {
            return Vec::new();
        };
        // Manifests are small; anything large is a layer, not worth parsing.
        if std::fs::metadata(&path).map_or(true, |m| m.len() > 4 << 20) {
            return Vec::new();
        }
        let Ok(bytes) = std::fs::read(&path) else {
            return Vec::new();
        };
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Vec::new();
        };
        let mut children = Vec::new();
        let descriptors = ["config"].iter().filter_map(|key| value.get(*key)).chain(
            ["layers", "manifests", "blobs"]
                .iter()
                .filter_map(|key| value.get(*key).and_then(|v| v.as_array()))
                .flatten(),
        );
        for descriptor in descriptors {
            if let Some(child) = descriptor.get("digest").and_then(|d| d.as_str()) {
                children.push(child.to_owned());
            }
        }
        children
    }

    /// Removes every blob no reference reaches, pulled apps whose manifest
    /// went with them, and leftovers of interrupted writes. Returns how
    /// many blobs and bytes went.
    pub fn gc(&self) -> Result<(usize, u64)> {
        let mut live = BTreeSet::new();
        for record in self.refs()? {
            live.extend(self.reachable(&record.digest));
        }
        let mut removed = (0, 0);
        for (digest, size) in self.blobs()? {
            if !live.contains(&digest) {
                std::fs::remove_file(self.blob_path(&digest)?)?;
                removed.0 += 1;
                removed.1 += size;
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.blob_dir()) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".partial-") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.root.join("apps")) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !live.contains(&format!("sha256:{name}")) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(removed)
    }
}

/// A blob being written; see [`ContentStore::writer`].
pub struct BlobWriter {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    written: u64,
    expected: String,
    size: Option<u64>,
    path: PathBuf,
}

impl BlobWriter {
    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        if let Some(size) = self.size {
            if self.written > size {
                return Err(BlobError::Size {
                    digest: self.expected.clone(),
                    expected: size,
                    actual: self.written,
                }
                .into());
            }
        }
        self.file
            .write_all(bytes)
            .context("cannot write to the store")
    }

    /// Verifies size and digest, then makes the blob visible.
    pub fn commit(self) -> Result<PathBuf> {
        if let Some(size) = self.size {
            if self.written != size {
                return Err(BlobError::Size {
                    digest: self.expected,
                    expected: size,
                    actual: self.written,
                }
                .into());
            }
        }
        let actual = hex::encode(self.hasher.finalize());
        if sha256_hex(&self.expected)? != actual {
            return Err(BlobError::Mismatch {
                expected: self.expected,
                actual,
            }
            .into());
        }
        self.file
            .as_file()
            .sync_all()
            .context("cannot sync the store")?;
        self.file
            .persist(&self.path)
            .context("cannot move the blob into place")?;
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::at(dir.path());
        (dir, store)
    }

    fn leftovers(store: &ContentStore) -> usize {
        std::fs::read_dir(store.blob_dir()).map_or(0, |d| d.count())
    }

    #[test]
    fn a_verified_blob_becomes_visible() {
        let (_dir, store) = store();
        let digest = store.put(b"hello").unwrap();
        assert!(store.has(&digest));
        assert_eq!(store.read(&digest).unwrap(), b"hello");
    }

    #[test]
    fn a_wrong_digest_leaves_nothing() {
        let (_dir, store) = store();
        let wrong = digest_of(b"other");
        let err = store.put_verified(&wrong, b"hello").unwrap_err();
        assert!(format!("{err:#}").contains("digest mismatch"), "{err:#}");
        assert!(!store.has(&wrong));
        assert_eq!(leftovers(&store), 0);
    }

    #[test]
    fn a_truncated_blob_leaves_nothing() {
        let (_dir, store) = store();
        let digest = digest_of(b"hello world");
        let mut writer = store.writer(&digest, Some(11)).unwrap();
        writer.write(b"hello").unwrap();
        let err = writer.commit().unwrap_err();
        assert!(
            format!("{err:#}").contains("expected 11 bytes, got 5"),
            "{err:#}"
        );
        assert_eq!(leftovers(&store), 0);
    }

    #[test]
    fn a_writer_dropped_midway_leaves_nothing() {
        let (_dir, store) = store();
        let digest = digest_of(b"hello");
        let mut writer = store.writer(&digest, None).unwrap();
        writer.write(b"he").unwrap();
        drop(writer);
        assert_eq!(leftovers(&store), 0);
    }

    #[test]
    fn digests_are_checked_for_form() {
        for bad in [
            "sha256:abc",
            "md5:00",
            "sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF01234567",
        ] {
            assert!(sha256_hex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gc_keeps_what_references_reach() {
        let (_dir, store) = store();
        let layer = store.put(b"layer").unwrap();
        let config = store.put(b"{}").unwrap();
        let orphan = store.put(b"orphan").unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "config": { "mediaType": "x", "digest": config, "size": 2 },
            "layers": [{ "mediaType": "y", "digest": layer, "size": 5 }],
        });
        let manifest = store.put(manifest.to_string().as_bytes()).unwrap();
        store
            .record_ref(&RefRecord {
                reference: "example.com/a:1".into(),
                digest: manifest.clone(),
                media_type: "x".into(),
                resolved_at: 0,
            })
            .unwrap();
        assert_eq!(store.gc().unwrap(), (1, 6));
        assert!(store.has(&layer) && store.has(&config) && store.has(&manifest));
        assert!(!store.has(&orphan));
        assert!(store.remove_ref("example.com/a:1").unwrap());
        assert_eq!(store.gc().unwrap().0, 3);
    }
}
