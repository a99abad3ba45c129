//! The helper on a read-only bind mount of its own, made once per
//! wasmhost process: a container can reach its creator's executable
//! through `/proc/<pid>/exe` and must never be able to write to it
//! (CVE-2019-5736). A helper that starts from a read-only mount needs no
//! read-only re-execution of its own ([`super::helper`] does that when
//! started from anywhere writable), which saves an `exec` per start.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context as _, Result};

use super::HELPER;
use crate::container::sys::{Linux, Syscall};

/// Where the helper is bind-mounted read-only, once per wasmhost process
/// (`<pid>-wasmhost-runtime`).
pub const SEALED_DIR: &str = "/run/wasmhost/exe";

static SEALED: OnceLock<Option<PathBuf>> = OnceLock::new();

/// The read-only mount of `helper`, made on first use; `None` (the helper
/// then seals itself) when the mount cannot be made.
pub fn helper(helper: &Path) -> Option<PathBuf> {
    SEALED
        .get_or_init(|| {
            sweep(&Linux, Path::new(SEALED_DIR));
            match seal(&Linux, helper, Path::new(SEALED_DIR), std::process::id()) {
                Ok(path) => Some(path),
                Err(e) => {
                    tracing::warn!("cannot mount the runtime helper read-only once: {e:#}; it will do so per start");
                    None
                }
            }
        })
        .clone()
}

/// Removes this process's read-only helper mount; called when wasmhost
/// exits (a killed wasmhost's is swept by the next one).
pub fn release() {
    if let Some(Some(path)) = SEALED.get() {
        unmount(&Linux, path);
    }
}

/// Bind-mounts `helper` read-only at `<dir>/<pid>-wasmhost-runtime`.
fn seal(sys: &dyn Syscall, helper: &Path, dir: &Path, pid: u32) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let target = dir.join(format!("{pid}-{HELPER}"));
    std::fs::File::create(&target)
        .with_context(|| format!("cannot create `{}`", target.display()))?;
    if let Err(e) = sys.bind_read_only(helper, &target) {
        unmount(sys, &target);
        return Err(e).context("cannot bind-mount the helper read-only");
    }
    Ok(target)
}

/// The mounts of helpers whose wasmhost is gone, removed.
fn sweep(sys: &dyn Syscall, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !sys.process_exists(pid) {
            unmount(sys, &entry.path());
        }
    }
}

/// Unmounts `path` if it is a mount, and removes the file; failures other
/// than "there was nothing to undo" are logged.
fn unmount(sys: &dyn Syscall, path: &Path) {
    if let Err(e) = sys.unmount(path) {
        // EINVAL: not a mount point (a bind that failed, or went already).
        if e.raw_os_error() != Some(libc::EINVAL) {
            tracing::warn!("cannot unmount `{}`: {e}", path.display());
        }
    }
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot remove `{}`: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::sys::fake::{Call, Recording};

    #[test]
    fn the_helper_is_bound_read_only_at_a_name_with_our_pid() {
        let dir = tempfile::tempdir().unwrap();
        let sys = Recording::default();
        let helper = Path::new("/usr/bin/wasmhost-runtime");
        let sealed = seal(&sys, helper, dir.path(), 77).unwrap();
        assert_eq!(sealed, dir.path().join("77-wasmhost-runtime"));
        assert_eq!(
            sys.calls(),
            [Call::BindReadOnly(helper.into(), sealed.clone())]
        );
        assert!(sealed.is_file(), "the mount point stays");
    }

    #[test]
    fn a_failed_bind_leaves_no_mount_point_behind() {
        let dir = tempfile::tempdir().unwrap();
        let sys = Recording::default();
        sys.fail("bind_read_only");
        let err = seal(&sys, Path::new("/h"), dir.path(), 77).unwrap_err();
        assert!(format!("{err:#}").contains("read-only"), "{err:#}");
        let target = dir.path().join("77-wasmhost-runtime");
        assert_eq!(sys.calls().last(), Some(&Call::Unmount(target.clone())));
        assert!(!target.exists());
    }

    #[test]
    fn only_the_mounts_of_wasmhosts_that_are_gone_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["10-wasmhost-runtime", "11-wasmhost-runtime", "notes"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let sys = Recording::default();
        sys.alive(10);
        sweep(&sys, dir.path());
        let gone = dir.path().join("11-wasmhost-runtime");
        assert_eq!(sys.calls(), [Call::Unmount(gone.clone())]);
        assert!(!gone.exists());
        assert!(dir.path().join("10-wasmhost-runtime").exists());
        assert!(dir.path().join("notes").exists());
    }
}
