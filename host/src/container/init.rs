//! wasmhost's own init for containers (`host/init/main.rs`, built static
//! by `host/build.rs` and embedded here): pid 1 in front of the image's
//! command, forwarding signals to it and reaping orphans.
//!
//! It is written once per version to [`INIT_DIR`], named by its digest
//! (so versions side by side never overwrite each other's, and a file a
//! running container has mounted is never rewritten), and bind-mounted
//! read-only into each container ([`super::spec::INIT_IN_CONTAINER`]).

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context as _, Result};
use sha2::{Digest as _, Sha256};

/// The init, a static x86-64 executable.
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wasmhost-init"));

/// Where the init is installed: under `/run` (a tmpfs), like the rest of
/// wasmhost's runtime state.
pub const INIT_DIR: &str = "/run/wasmhost/init";

static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The installed init, written on first use.
pub fn installed() -> Result<PathBuf> {
    INSTALLED
        .get_or_init(|| install(Path::new(INIT_DIR)).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!("cannot install wasmhost's container init: {e}"))
}

/// Writes [`BINARY`] into `dir` as `wasmhost-init-<digest>` (read-only,
/// executable) unless it is there already; returns its path.
fn install(dir: &Path) -> Result<PathBuf> {
    let digest = hex::encode(Sha256::digest(BINARY));
    let path = dir.join(format!("wasmhost-init-{}", &digest[..16]));
    if std::fs::read(&path).is_ok_and(|bytes| bytes == BINARY) {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write into `{}`", dir.display()))?;
    file.write_all(BINARY)?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o555))?;
    file.as_file().sync_all()?;
    // Another wasmhost may have put the same bytes there meanwhile: the
    // rename replaces them with the same bytes.
    file.persist(&path)
        .with_context(|| format!("cannot install `{}`", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_is_installed_once_read_only_and_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = install(dir.path()).unwrap();
        assert_eq!(install(dir.path()).unwrap(), path);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o555);
        // It runs the command and exits as it did.
        let status = std::process::Command::new(&path)
            .args(["sh", "-c", "exit 7"])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(7));
        let status = std::process::Command::new(&path)
            .arg("/nonexistent/program")
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(127));
    }

    /// The init blocks every signal for itself; the command must not
    /// inherit that (python, unlike a shell, never clears its mask, and
    /// would never see SIGTERM or SIGINT). Regression test.
    #[test]
    fn the_command_starts_with_no_signal_blocked() {
        let dir = tempfile::tempdir().unwrap();
        let path = install(dir.path()).unwrap();
        let out = std::process::Command::new(&path)
            .args(["grep", "^SigBlk:", "/proc/self/status"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "SigBlk:\t0000000000000000"
        );
    }

    #[test]
    fn a_signal_to_the_init_reaches_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let path = install(dir.path()).unwrap();
        let ready = dir.path().join("ready");
        let script = format!(
            "trap 'exit 42' TERM; touch {}; while :; do sleep 0.05; done",
            ready.display()
        );
        let mut child = std::process::Command::new(&path)
            .args(["sh", "-c", &script])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !ready.exists() {
            assert!(std::time::Instant::now() < deadline, "the command never started");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(42));
    }
}
