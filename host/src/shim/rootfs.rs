//! The container's root filesystem: the mounts containerd hands over at
//! `Create` (overlay from the snapshotter, or a bind), mounted on
//! `<bundle>/rootfs` and undone at `Delete`.
//!
//! The app is read from there by a root process in the node's mount
//! namespace, so the image must not point outside itself: an image with a
//! symbolic link is refused, and the mount is `nodev,nosuid`.

#![forbid(unsafe_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use containerd_shim_protos::types::mount::Mount;

use super::sys;

/// Entries walked at most when checking an image for links.
const MAX_ENTRIES: usize = 100_000;

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).context("a path holds a NUL byte")
}

/// `mount -o` options split into flags and filesystem data.
fn options(options: &[String]) -> (libc::c_ulong, String) {
    let mut flags = libc::MS_NODEV | libc::MS_NOSUID;
    let mut data = Vec::new();
    for option in options {
        match option.as_str() {
            "ro" => flags |= libc::MS_RDONLY,
            "rw" | "defaults" | "dev" | "suid" => {}
            "bind" => flags |= libc::MS_BIND,
            "rbind" => flags |= libc::MS_BIND | libc::MS_REC,
            "noexec" => flags |= libc::MS_NOEXEC,
            "nodev" | "nosuid" => {}
            "noatime" => flags |= libc::MS_NOATIME,
            "relatime" => flags |= libc::MS_RELATIME,
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// Mounts `mounts` on `target` in order; none means containerd mounted
/// the root itself.
pub fn mount(mounts: &[Mount], target: &Path) -> Result<()> {
    std::fs::create_dir_all(target)
        .with_context(|| format!("cannot create `{}`", target.display()))?;
    let target_c = c_path(target)?;
    for (i, m) in mounts.iter().enumerate() {
        let (flags, data) = options(&m.options);
        let source = CString::new(m.source.as_str()).context("a mount source holds a NUL byte")?;
        let fstype = CString::new(m.type_.as_str()).context("a mount type holds a NUL byte")?;
        let data = CString::new(data).context("mount options hold a NUL byte")?;
        let bind = flags & libc::MS_BIND != 0;
        let result = sys::mount(
            &source,
            &target_c,
            (!bind).then_some(fstype.as_c_str()),
            flags,
            (!data.is_empty()).then_some(data.as_c_str()),
        );
        if let Err(e) = result {
            for _ in 0..i {
                let _ = sys::unmount(&target_c);
            }
            bail!(
                "cannot mount the root filesystem ({} from `{}`): {e}",
                m.type_,
                m.source
            );
        }
        // A bind mount takes read-only (and nodev, nosuid) only when
        // remounted.
        if bind {
            let remount = libc::MS_REMOUNT | libc::MS_BIND | (flags & !libc::MS_REC);
            let empty = CString::default();
            let _ = sys::mount(&empty, &target_c, None, remount, None);
        }
    }
    Ok(())
}

/// Undoes [`mount`] (every layer mounted on `target`); a target with
/// nothing mounted is fine.
pub fn unmount(target: &Path) {
    let Ok(target_c) = c_path(target) else { return };
    for _ in 0..8 {
        if sys::unmount(&target_c).is_err() {
            break;
        }
    }
}

/// Refuses a root filesystem with a symbolic link anywhere in it.
pub fn refuse_links(root: &Path) -> Result<()> {
    let mut pending: Vec<PathBuf> = vec![root.to_owned()];
    let mut seen = 0usize;
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read `{}`", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            seen += 1;
            if seen > MAX_ENTRIES {
                bail!("the image holds more than {MAX_ENTRIES} files");
            }
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                bail!(
                    "the image holds a symbolic link, `/{}`: wasmhost reads apps from \
                     images without links",
                    entry
                        .path()
                        .strip_prefix(root)
                        .unwrap_or(&entry.path())
                        .display()
                );
            }
            if kind.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_data_are_split() {
        let (flags, data) = options(&[
            "index=off".into(),
            "workdir=/w".into(),
            "upperdir=/u".into(),
            "lowerdir=/l".into(),
        ]);
        assert_eq!(data, "index=off,workdir=/w,upperdir=/u,lowerdir=/l");
        assert_eq!(flags, libc::MS_NODEV | libc::MS_NOSUID);
        let (flags, data) = options(&["ro".into(), "rbind".into()]);
        assert!(data.is_empty());
        assert_ne!(flags & libc::MS_BIND, 0);
        assert_ne!(flags & libc::MS_RDONLY, 0);
    }

    #[test]
    fn links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/app.wasm"), b"").unwrap();
        refuse_links(dir.path()).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", dir.path().join("a/files")).unwrap();
        let err = refuse_links(dir.path()).unwrap_err().to_string();
        assert!(err.contains("/a/files"), "{err}");
    }
}
