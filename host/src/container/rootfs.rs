//! From an image's layers to a container's root filesystem.
//!
//! Each layer is unpacked once into `<cache>/layers/<chain id>/fs` (its
//! diff_id checked against the image config) and shared by every
//! container and image that has it below the same parents. A container's
//! root is an overlay of those directories with a private upper directory,
//! so nothing a container writes reaches the shared layers; where overlayfs
//! is unavailable the layers are applied into a private copy instead.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use sha2::{Digest as _, Sha256};

use super::layers::{self, Whiteouts};
use crate::oci::media::Descriptor;
use crate::oci::store::ContentStore;

/// Chain ids as the image spec defines them: the first layer's diff_id,
/// then `sha256(parent chain id + " " + diff_id)`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{parent} {diff_id}").as_bytes()))
            ),
        };
        chain.push(next);
    }
    chain
}

/// Unpacked layers, shared, by chain id.
#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    /// The cache under `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The unpacked directories of `layers` (lowest first), unpacking the
    /// ones not cached yet and checking each diff_id.
    pub fn unpack(
        &self,
        store: &ContentStore,
        layers: &[Descriptor],
        diff_ids: &[String],
    ) -> Result<Vec<PathBuf>> {
        if layers.len() != diff_ids.len() {
            bail!(
                "the image has {} layers but its config lists {} diff_ids",
                layers.len(),
                diff_ids.len()
            );
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create `{}`", self.dir.display()))?;
        let mut dirs = Vec::new();
        for ((layer, diff_id), chain_id) in layers.iter().zip(diff_ids).zip(chain_ids(diff_ids)) {
            let hex = crate::oci::store::sha256_hex(&chain_id)
                .with_context(|| format!("diff_id `{diff_id}`"))?;
            let done = self.dir.join(hex);
            if !done.join("fs").is_dir() {
                self.unpack_one(store, layer, diff_id, &done)
                    .with_context(|| format!("layer {}", layer.digest))?;
            }
            dirs.push(done.join("fs"));
        }
        Ok(dirs)
    }

    fn unpack_one(
        &self,
        store: &ContentStore,
        layer: &Descriptor,
        diff_id: &str,
        done: &Path,
    ) -> Result<()> {
        let staging = tempfile::Builder::new()
            .prefix(".partial-")
            .tempdir_in(&self.dir)?;
        let fs = staging.path().join("fs");
        std::fs::create_dir(&fs)?;
        let compression = layers::compression_of(&layer.media_type)?;
        let blob = store.blob_path(&layer.digest)?;
        let actual = layers::apply_layer(&fs, &blob, compression, Whiteouts::Overlay)?;
        if actual != diff_id {
            bail!("the layer unpacks to {actual}, but the image config says {diff_id}");
        }
        let staged = staging.keep();
        if let Err(e) = std::fs::rename(&staged, done) {
            let _ = std::fs::remove_dir_all(&staged);
            if !done.join("fs").is_dir() {
                return Err(e).context("cannot move the unpacked layer into place");
            }
        }
        Ok(())
    }
}

/// A container's root: an overlay (or a private copy) at `dir/rootfs`.
pub struct ContainerRoot {
    dir: PathBuf,
    mounted: bool,
}

impl ContainerRoot {
    /// Builds the root in `dir` (created) over `lower` (lowest first).
    pub fn create(
        dir: &Path,
        lower: &[PathBuf],
        store: &ContentStore,
        layers: &[Descriptor],
    ) -> Result<Self> {
        let rootfs = dir.join("rootfs");
        for sub in ["rootfs", "upper", "work"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create `{}`", dir.join(sub).display()))?;
        }
        match mount_overlay(&rootfs, lower, &dir.join("upper"), &dir.join("work")) {
            Ok(()) => Ok(Self {
                dir: dir.to_owned(),
                mounted: true,
            }),
            Err(e) => {
                tracing::warn!("overlayfs unavailable ({e:#}); copying the layers instead");
                for layer in layers {
                    let blob = store.blob_path(&layer.digest)?;
                    layers::apply_layer(
                        &rootfs,
                        &blob,
                        layers::compression_of(&layer.media_type)?,
                        Whiteouts::Delete,
                    )?;
                }
                Ok(Self {
                    dir: dir.to_owned(),
                    mounted: false,
                })
            }
        }
    }

    /// The root directory.
    pub fn path(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Unmounts and removes everything of this container.
    pub fn remove(mut self) {
        self.cleanup();
    }

    fn cleanup(&mut self) {
        if self.mounted {
            let _ = unmount(&self.dir.join("rootfs"));
            self.mounted = false;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for ContainerRoot {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn mount_overlay(target: &Path, lower: &[PathBuf], upper: &Path, work: &Path) -> Result<()> {
    if lower.is_empty() {
        bail!("an image without layers");
    }
    // overlayfs lists the topmost lower directory first.
    let lowerdir = lower
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let data = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    let target_c = CString::new(target.as_os_str().as_bytes())?;
    let data_c = CString::new(data)?;
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            target_c.as_ptr(),
            c"overlay".as_ptr(),
            0,
            data_c.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("mount overlay");
    }
    Ok(())
}

/// Detaches a mount.
pub fn unmount(target: &Path) -> Result<()> {
    let target_c = CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(target_c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(std::io::Error::last_os_error()).context("umount");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        let expected = hex::encode(Sha256::digest(format!("{a} {b}").as_bytes()));
        assert_eq!(chain[1], format!("sha256:{expected}"));
    }
}
