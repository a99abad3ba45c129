//! Component sources that are not local files: `source = { url, digest }`
//! is downloaded once, checked against its digest before anyone can use
//! it, and kept under its digest, so later starts (and other apps) need no
//! network.
//!
//! A download streams into a temporary file next to its final place and is
//! renamed only once its SHA-256 matches: a truncated download, a wrong
//! digest or a crash leaves nothing half-written behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::manifest::{LoadedManifest, Source};

/// Largest component accepted from a URL. Components are rarely above a
/// few tens of MiB; this bounds what a wrong URL can make us store.
pub const MAX_DOWNLOAD_BYTES: u64 = 512 << 20;

/// Blobs by SHA-256: `<dir>/<hex>`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// A store in `dir` (created when first written).
    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The path of the blob with `digest` (`sha256:<hex>`), downloading it
    /// from `url` unless a verified copy is already here.
    pub async fn fetch(&self, url: &str, digest: &str) -> Result<PathBuf> {
        let Some(hex) = digest.strip_prefix("sha256:") else {
            bail!("digest `{digest}` of `{url}` is not `sha256:<hex>`");
        };
        let path = self.dir.join(hex);
        if path.exists() {
            if sha256_of(&path)? == hex {
                return Ok(path);
            }
            tracing::warn!("stored copy of `{url}` is corrupt; downloading it again");
            std::fs::remove_file(&path)?;
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create `{}`", self.dir.display()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        let actual = download(url, tmp.as_file_mut()).await?;
        if actual != hex {
            bail!("`{url}` does not match its digest: the manifest says sha256:{hex}, the download is sha256:{actual}");
        }
        tmp.as_file().sync_all()?;
        tmp.persist(&path)?;
        Ok(path)
    }
}

/// Streams `url` into `file`, returning the SHA-256 of what arrived.
async fn download(url: &str, file: &mut std::fs::File) -> Result<String> {
    let response = reqwest::get(url)
        .await
        .with_context(|| format!("cannot download `{url}`"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("cannot download `{url}`: the server answered {status}");
    }
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| format!("download of `{url}` broke off"))?;
        received += chunk.len() as u64;
        if received > MAX_DOWNLOAD_BYTES {
            bail!("`{url}` is larger than {MAX_DOWNLOAD_BYTES} bytes");
        }
        hasher.update(&chunk);
        file.write_all(&chunk)?;
    }
    Ok(hex::encode(hasher.finalize()))
}

fn sha256_of(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Replaces every `{ url, digest }` source in the manifest with the path of
/// its verified local copy.
pub async fn resolve(loaded: &mut LoadedManifest, store: &BlobStore) -> Result<()> {
    for (id, component) in loaded.manifest.components.iter_mut() {
        if let Source::Url { url, digest } = &component.source {
            let path = store
                .fetch(url, digest)
                .await
                .with_context(|| format!("component `{id}`"))?;
            component.source = Source::Local(path);
        }
    }
    Ok(())
}
