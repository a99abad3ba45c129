//! What a killed wasmhost left behind, removed when the next one starts a
//! container backend: containers the runtime still knows and bundle
//! directories (their roots still mounted) whose creating wasmhost is
//! gone. Container ids carry the creator's pid ([`bundle::creator`]), so
//! another wasmhost's containers, running beside this one, are left alone.

#![forbid(unsafe_code)]

use std::path::Path;

use super::bundle;
use super::runtime::OciRuntime;
use super::sys::Syscall;

/// Sweeps `runtime`'s containers and the bundles under `state_dir`.
pub async fn sweep(runtime: &OciRuntime, state_dir: &Path, sys: &dyn Syscall) {
    let orphaned = |id: &str| bundle::creator(id).is_some_and(|pid| !sys.process_exists(pid));
    if names_any(&runtime.root, orphaned) {
        remove_containers(runtime, orphaned).await;
    }
    sweep_bundles(state_dir, sys, orphaned);
}

/// Whether an entry of `dir` is named by an `orphaned` container. runc,
/// crun, youki and the embedded runtime keep one directory per container
/// in their root, so this says whether the runtime needs asking at all:
/// its `list` is a process start (~8 ms) that every start of wasmhost paid.
fn names_any(dir: &Path, orphaned: impl Fn(&str) -> bool) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| orphaned(&entry.file_name().to_string_lossy()))
    })
}

/// Deletes the `orphaned` containers `runtime` lists.
async fn remove_containers(runtime: &OciRuntime, orphaned: impl Fn(&str) -> bool) {
    match runtime.list().await {
        Ok(ids) => {
            for id in ids.iter().filter(|id| orphaned(id)) {
                tracing::info!("removing container `{id}` left by an earlier wasmhost");
                if let Err(e) = runtime.delete(id).await {
                    if !e.is_not_found() {
                        tracing::warn!("cannot remove container `{id}`: {e}");
                    }
                }
            }
        }
        Err(e) => tracing::warn!("cannot list the containers of `{}`: {e}", runtime.name),
    }
}

/// The bundle directories under `state_dir` whose containers are
/// `orphaned`: their roots unmounted, the directories removed.
fn sweep_bundles(state_dir: &Path, sys: &dyn Syscall, orphaned: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !orphaned(&name) {
            continue;
        }
        let rootfs = entry.path().join("rootfs");
        if let Err(e) = sys.unmount(&rootfs) {
            // EINVAL: not mounted (a copied root, or unmounted already).
            if e.raw_os_error() != Some(libc::EINVAL) {
                tracing::warn!("cannot unmount `{}`: {e}", rootfs.display());
            }
        }
        if let Err(e) = std::fs::remove_dir_all(entry.path()) {
            tracing::warn!("cannot remove `{}`: {e}", entry.path().display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sys::fake::{Call, Recording};
    use super::*;

    #[test]
    fn only_the_bundles_of_a_wasmhost_that_is_gone_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["wasmhost-10-web-0", "wasmhost-11-web-0", "someone-else"] {
            std::fs::create_dir_all(dir.path().join(name).join("rootfs")).unwrap();
        }
        let sys = Recording::default();
        sys.alive(10);
        let orphaned = |id: &str| bundle::creator(id).is_some_and(|pid| !sys.process_exists(pid));
        sweep_bundles(dir.path(), &sys, orphaned);
        let gone = dir.path().join("wasmhost-11-web-0");
        assert_eq!(sys.calls(), [Call::Unmount(gone.join("rootfs"))]);
        assert!(!gone.exists());
        assert!(dir.path().join("wasmhost-10-web-0").exists());
        assert!(dir.path().join("someone-else").exists());
    }

    #[test]
    fn the_runtime_is_asked_only_when_its_root_names_a_container_of_a_wasmhost_that_is_gone() {
        let root = tempfile::tempdir().unwrap();
        let sys = Recording::default();
        sys.alive(10);
        let orphaned = |id: &str| bundle::creator(id).is_some_and(|pid| !sys.process_exists(pid));
        assert!(!names_any(&root.path().join("absent"), orphaned));
        std::fs::create_dir(root.path().join("wasmhost-10-web-0")).unwrap();
        std::fs::create_dir(root.path().join("someone-else")).unwrap();
        assert!(!names_any(root.path(), orphaned));
        std::fs::create_dir(root.path().join("wasmhost-11-web-0")).unwrap();
        assert!(names_any(root.path(), orphaned));
    }
}
