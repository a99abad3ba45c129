//! From an image's layers to a container's root filesystem.
//!
//! Each layer is unpacked once into `<cache>/layers/<chain id>/fs` (its
//! diff_id checked against the image config) and shared by every
//! container and image that has it below the same parents. A container's
//! root is an overlay of those directories with a private upper directory,
//! so nothing a container writes reaches the shared layers; where overlayfs
//! is unavailable the layers are applied into a private copy instead.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use sha2::{Digest as _, Sha256};

use super::layers::{self, Whiteouts};
use super::sys::Syscall;
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
    /// The cache beside the content store that holds the layer blobs
    /// (`<cache>/layers`).
    pub fn of(store: &ContentStore) -> Self {
        Self {
            dir: store.root().join("layers"),
        }
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
        let (mut skipped, mut first_skipped) = (0, None);
        for ((layer, diff_id), chain_id) in layers.iter().zip(diff_ids).zip(chain_ids(diff_ids)) {
            let hex = crate::oci::store::sha256_hex(&chain_id)
                .with_context(|| format!("diff_id `{diff_id}`"))?;
            let done = self.dir.join(hex);
            if !done.join("fs").is_dir() {
                let applied = self
                    .unpack_one(store, layer, diff_id, &done)
                    .with_context(|| format!("layer {}", layer.digest))?;
                skipped += applied.skipped_nodes;
                first_skipped = first_skipped.or(applied.first_skipped);
            }
            dirs.push(done.join("fs"));
        }
        if let Some(first) = first_skipped {
            // One line per image: a rootfs image has a dozen in /dev.
            tracing::warn!(
                "{skipped} device nodes or FIFOs of the image's layers skipped \
                 (`{first}`, ...): they cannot be made here (no CAP_MKNOD); \
                 the runtime's own /dev is there"
            );
        }
        Ok(dirs)
    }

    fn unpack_one(
        &self,
        store: &ContentStore,
        layer: &Descriptor,
        diff_id: &str,
        done: &Path,
    ) -> Result<layers::Applied> {
        let staging = tempfile::Builder::new()
            .prefix(".partial-")
            .tempdir_in(&self.dir)?;
        let fs = staging.path().join("fs");
        std::fs::create_dir(&fs)?;
        let compression = layers::compression_of(&layer.media_type)?;
        let blob = store.blob_path(&layer.digest)?;
        let applied = layers::apply_layer(&fs, &blob, compression, Whiteouts::Overlay)?;
        let actual = &applied.diff_id;
        if actual != diff_id {
            bail!("the layer unpacks to {actual}, but the image config says {diff_id}");
        }
        let staged = staging.keep();
        if let Err(e) = std::fs::rename(&staged, done) {
            // Another unpack of the same layer may have won the race.
            if let Err(e) = std::fs::remove_dir_all(&staged) {
                tracing::warn!("cannot remove `{}`: {e}", staged.display());
            }
            if !done.join("fs").is_dir() {
                return Err(e).context("cannot move the unpacked layer into place");
            }
        }
        Ok(applied)
    }
}

/// A container's root: an overlay (or a private copy) at `dir/rootfs`.
/// Dropped, it is unmounted and removed, and a failure to is logged.
pub struct ContainerRoot {
    dir: PathBuf,
    mounted: bool,
    sys: Arc<dyn Syscall>,
}

impl ContainerRoot {
    /// Builds the root in `dir` (created) over `lower` (lowest first).
    pub fn create(
        dir: &Path,
        lower: &[PathBuf],
        store: &ContentStore,
        layers: &[Descriptor],
        sys: Arc<dyn Syscall>,
    ) -> Result<Self> {
        let rootfs = dir.join("rootfs");
        for sub in ["rootfs", "upper", "work"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("cannot create `{}`", dir.join(sub).display()))?;
        }
        let mut root = Self {
            dir: dir.to_owned(),
            mounted: false,
            sys,
        };
        let options = overlay_options(lower, &dir.join("upper"), &dir.join("work"))?;
        match root.sys.mount_overlay(&rootfs, &options) {
            Ok(()) => root.mounted = true,
            Err(e) => {
                tracing::warn!("overlayfs unavailable ({e}); copying the layers instead");
                for layer in layers {
                    let blob = store.blob_path(&layer.digest)?;
                    layers::apply_layer(
                        &rootfs,
                        &blob,
                        layers::compression_of(&layer.media_type)?,
                        Whiteouts::Delete,
                    )?;
                }
            }
        }
        Ok(root)
    }

    /// The root directory.
    pub fn path(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The text of file `path` inside the root (at most 1 MiB), every
    /// component resolved inside the root as pathrs resolves the layers'
    /// entries: an image's `/etc/passwd` may be a symlink, and must never
    /// lead to the host's. `None` if it cannot be read.
    pub fn read(&self, path: &str) -> Option<String> {
        use std::io::Read as _;
        let root = pathrs::Root::open(std::fs::canonicalize(self.path()).ok()?).ok()?;
        let file = root
            .open_subpath(path, pathrs::flags::OpenFlags::O_RDONLY)
            .ok()?;
        let mut text = String::new();
        file.take(1 << 20).read_to_string(&mut text).ok()?;
        Some(text)
    }
}

impl Drop for ContainerRoot {
    fn drop(&mut self) {
        if self.mounted {
            let rootfs = self.dir.join("rootfs");
            if let Err(e) = self.sys.unmount(&rootfs) {
                tracing::warn!("cannot unmount `{}`: {e}", rootfs.display());
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove `{}`: {e}", self.dir.display());
            }
        }
    }
}

/// The overlay's mount options: the lower directories topmost first, as
/// overlayfs lists them.
fn overlay_options(lower: &[PathBuf], upper: &Path, work: &Path) -> Result<String> {
    if lower.is_empty() {
        bail!("an image without layers");
    }
    let lowerdir = lower
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    Ok(format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::super::sys::fake::{Call, Recording};
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

    #[test]
    fn overlay_options_list_the_topmost_layer_first() {
        let options = overlay_options(
            &["/l/1".into(), "/l/2".into()],
            Path::new("/c/upper"),
            Path::new("/c/work"),
        )
        .unwrap();
        assert_eq!(
            options,
            "lowerdir=/l/2:/l/1,upperdir=/c/upper,workdir=/c/work"
        );
        assert!(overlay_options(&[], Path::new("/u"), Path::new("/w")).is_err());
    }

    /// A root at `<work>/c` over one (empty) layer, made with the fake
    /// kernel; `overlay`: whether its overlay mount succeeds.
    fn root(work: &Path, overlay: bool) -> (ContainerRoot, Arc<Recording>) {
        let sys = Arc::new(Recording::default());
        if !overlay {
            sys.fail("mount_overlay");
        }
        let store = ContentStore::at(work.join("store"));
        // No layers to copy: the copy fallback's own work is the layer
        // tests'.
        let root =
            ContainerRoot::create(&work.join("c"), &[work.join("l")], &store, &[], sys.clone())
                .unwrap();
        (root, sys)
    }

    #[test]
    fn a_root_is_an_overlay_unmounted_and_removed_when_dropped() {
        let work = tempfile::tempdir().unwrap();
        let (root, sys) = root(work.path(), true);
        let rootfs = work.path().join("c/rootfs");
        assert_eq!(root.path(), rootfs);
        drop(root);
        assert_eq!(
            sys.calls(),
            [Call::MountOverlay(rootfs.clone()), Call::Unmount(rootfs)]
        );
        assert!(!work.path().join("c").exists());
    }

    #[test]
    fn without_overlayfs_the_layers_are_copied_and_nothing_is_unmounted() {
        let work = tempfile::tempdir().unwrap();
        let (root, sys) = root(work.path(), false);
        drop(root);
        assert_eq!(
            sys.calls(),
            [Call::MountOverlay(work.path().join("c/rootfs"))]
        );
        assert!(!work.path().join("c").exists());
    }

    #[test]
    fn files_are_read_inside_the_root_even_through_a_symlink_that_points_out() {
        let work = tempfile::tempdir().unwrap();
        let (root, _) = root(work.path(), false);
        let etc = root.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("group"), "www:x:33:\n").unwrap();
        std::fs::write(work.path().join("host-passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        // `etc/passwd -> ../../../host-passwd`: the host's file, were it
        // followed on the host; inside the root, `..` stops at `/`.
        assert!(etc.join("../../../host-passwd").exists());
        std::os::unix::fs::symlink("../../../host-passwd", etc.join("passwd")).unwrap();
        assert_eq!(root.read("etc/group").as_deref(), Some("www:x:33:\n"));
        assert_eq!(root.read("etc/passwd"), None);
        assert_eq!(root.read("etc/shadow"), None);
    }
}
