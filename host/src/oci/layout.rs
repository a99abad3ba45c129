//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/…`): the
//! on-disk format umoci, skopeo (`oci:DIR:TAG`) and buildkit exchange
//! images in. wasmhost writes one when it builds an image and reads one
//! wherever an image reference is accepted, as `oci:DIR[:TAG]`, so an image
//! can go from a build to a container without a registry.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use super::media::{self, Descriptor, Manifest};
use super::store::{digest_of, sha256_hex, ContentStore, MAX_BLOB_BYTES};

/// The annotation that names an `index.json` entry (its tag).
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `oci:DIR[:TAG]` split into the directory and the tag, or `None` for
/// anything else (a registry reference).
pub fn parse(text: &str) -> Option<(PathBuf, Option<String>)> {
    let rest = text.strip_prefix("oci:")?;
    // A tag never contains `/`, so `oci:./build/img:v1` splits at the last
    // `:` only when what follows it looks like a tag.
    match rest.rsplit_once(':') {
        Some((dir, tag)) if !tag.is_empty() && !tag.contains('/') && !dir.is_empty() => {
            Some((PathBuf::from(dir), Some(tag.to_owned())))
        }
        _ => Some((PathBuf::from(rest), None)),
    }
}

/// Writes `blobs` into the layout at `dir` (created if needed) and makes
/// `manifest` its entry tagged `tag`, replacing an entry of that tag.
/// Returns the manifest's descriptor.
pub fn write(dir: &Path, tag: &str, manifest: &[u8], blobs: &[&[u8]]) -> Result<Descriptor> {
    let blob_dir = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blob_dir)
        .with_context(|| format!("cannot create `{}`", blob_dir.display()))?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .with_context(|| format!("cannot write into `{}`", dir.display()))?;
    for blob in blobs.iter().chain(std::iter::once(&manifest)) {
        let digest = digest_of(blob);
        let path = blob_dir.join(sha256_hex(&digest)?);
        if !path.exists() {
            write_atomically(&path, blob)?;
        }
    }
    let descriptor = Descriptor {
        media_type: media::OCI_MANIFEST.to_owned(),
        digest: digest_of(manifest),
        size: manifest.len() as u64,
        platform: None,
        annotations: Some([(REF_NAME.to_owned(), tag.to_owned())].into()),
    };
    // A layout that is not there yet starts empty; one that is there but
    // unreadable is an error, not something to overwrite with one entry.
    let existing = if dir.join("index.json").exists() {
        read_index(dir)?
    } else {
        Vec::new()
    };
    let mut entries: Vec<Descriptor> = existing
        .into_iter()
        .filter(|entry| tag_of(entry) != Some(tag))
        .collect();
    entries.push(descriptor.clone());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": entries,
    });
    write_atomically(&dir.join("index.json"), &serde_json::to_vec_pretty(&index)?)?;
    Ok(descriptor)
}

/// The `index.json` entry of the image `tag` of the layout at `dir`;
/// without a tag the layout must hold exactly one entry.
pub fn entry(dir: &Path, tag: Option<&str>) -> Result<Descriptor> {
    let entries = read_index(dir)?;
    let entry = match tag {
        Some(tag) => entries
            .iter()
            .find(|e| tag_of(e) == Some(tag))
            .with_context(|| format!("no image tagged `{tag}` (tags: {})", tags(&entries)))?,
        None => match entries.as_slice() {
            [only] => only,
            [] => bail!("the layout holds no image"),
            _ => bail!(
                "the layout holds several images; name one (tags: {})",
                tags(&entries)
            ),
        },
    };
    Ok(entry.clone())
}

/// Reads the blob `descriptor` names from the layout into the store,
/// checked as a pull checks it: a regular file (not a link to a device),
/// of the size the descriptor says and at most [`MAX_BLOB_BYTES`], hashing
/// to its digest. Returns its bytes.
pub fn copy_blob(dir: &Path, descriptor: &Descriptor, store: &ContentStore) -> Result<Vec<u8>> {
    let digest = &descriptor.digest;
    let path = dir.join("blobs").join("sha256").join(sha256_hex(digest)?);
    let meta = std::fs::symlink_metadata(&path)
        .with_context(|| format!("blob {digest} is missing from the layout"))?;
    if !meta.is_file() {
        bail!("blob {digest} of the layout is not a regular file");
    }
    if descriptor.size > MAX_BLOB_BYTES || meta.len() != descriptor.size {
        bail!(
            "blob {digest} of the layout is {} bytes; its descriptor says {} (limit {MAX_BLOB_BYTES})",
            meta.len(),
            descriptor.size
        );
    }
    let bytes =
        std::fs::read(&path).with_context(|| format!("cannot read blob {digest} of the layout"))?;
    if store.has(digest) {
        if digest_of(&bytes) != *digest {
            bail!("blob {digest} of the layout does not match its digest");
        }
    } else {
        store
            .put_verified(digest, &bytes)
            .with_context(|| format!("blob {digest} of the layout"))?;
    }
    Ok(bytes)
}

fn read_index(dir: &Path) -> Result<Vec<Descriptor>> {
    let path = dir.join("index.json");
    let bytes = std::fs::read(&path)
        .with_context(|| format!("`{}` is not an OCI image layout", dir.display()))?;
    match Manifest::parse(&bytes, Some(media::OCI_INDEX))
        .with_context(|| format!("`{}`", path.display()))?
    {
        Manifest::Index { manifests, .. } => Ok(manifests),
        Manifest::Image { .. } => bail!("`{}` is a manifest, not an index", path.display()),
    }
}

fn tag_of(entry: &Descriptor) -> Option<&str> {
    entry
        .annotations
        .as_ref()?
        .get(REF_NAME)
        .map(String::as_str)
}

fn tags(entries: &[Descriptor]) -> String {
    let names: Vec<&str> = entries.iter().filter_map(tag_of).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a layout path has a parent")?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in `{}`", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_references_split_at_a_tag() {
        assert_eq!(parse("docker.io/x:1"), None);
        assert_eq!(parse("oci:build/img"), Some(("build/img".into(), None)));
        assert_eq!(
            parse("oci:./build/img:v1"),
            Some(("./build/img".into(), Some("v1".into())))
        );
        assert_eq!(parse("oci:/abs/dir"), Some(("/abs/dir".into(), None)));
    }
}
