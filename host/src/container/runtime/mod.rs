//! Running a bundle with an OCI runtime: the embedded one (youki's
//! `libcontainer` in a helper process, the default) or an installed
//! `runc`, `crun` or `youki` — the same `config.json` and root filesystem
//! and the same command line, so users can compare runtimes and the
//! benchmarks have an anchor.
//!
//! Every container wasmhost starts is named `wasmhost-…` and lives under a
//! state directory of wasmhost's own (`--root`), so a sweep at start can
//! remove what a killed wasmhost left behind without touching anybody
//! else's containers.
//!
//! The embedded runtime is one idea across two processes, all of it here:
//!
//! - this file: the driver, wasmhost's side (`run`, `create_ahead`,
//!   `kill`, `delete`, `list`); [`exec`]: a command run inside (health
//!   checks);
//! - [`protocol`]: what the two sides say to each other, typed;
//! - [`standby`]: a helper started ahead, waiting for its order, and a
//!   container created ahead, waiting for the word to start;
//! - [`sealed`]: the helper's read-only bind mount (CVE-2019-5736);
//! - [`helper`]: the helper process itself (`wasmhost-runtime …`);
//!   [`enter`]: its `exec`, entering a running container (user namespace
//!   first) as runc's `nsexec` does; a standby helper takes the kernel's
//!   wait before a cgroup move while its order is on the way
//!   ([`crate::cgroup_wait`]).

#![forbid(unsafe_code)]

pub mod enter;
pub mod exec;
pub mod helper;
pub mod protocol;
pub mod sealed;
pub mod standby;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context as _, Result};
use tokio::process::{Child, Command};

use self::protocol::{ListEntry, Order, RuntimeError, Signal};
use self::standby::Created;
use super::settings::RUNTIMES;

/// Prefix of every container id wasmhost creates.
pub const ID_PREFIX: &str = "wasmhost-";

/// The embedded runtime's helper binary, looked for beside wasmhost's
/// own: much cheaper to execute than wasmhost itself, which stands in
/// (`wasmhost runtime`) when the helper is not installed.
pub const HELPER: &str = "wasmhost-runtime";

/// An OCI runtime with a runc-like command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRuntime {
    /// `embedded`, `runc`, `crun` or `youki`.
    pub name: String,
    /// The program: the helper (or this very binary) for `embedded`, else
    /// looked up in `PATH`.
    pub binary: PathBuf,
    /// Arguments before runc's own (`runtime` for wasmhost itself).
    prefix: Vec<String>,
    /// The runtime's state directory for wasmhost's containers.
    pub root: PathBuf,
}

impl OciRuntime {
    /// `name` with its state under `/run/wasmhost/<name>`.
    pub fn named(name: &str) -> Result<Self> {
        let (binary, prefix) = match name {
            "embedded" => {
                let exe = std::env::current_exe().context("cannot find the wasmhost binary")?;
                let helper = exe.with_file_name(HELPER);
                if helper.is_file() {
                    (sealed::helper(&helper).unwrap_or(helper), Vec::new())
                } else {
                    (exe, vec!["runtime".to_owned()])
                }
            }
            "runc" | "crun" | "youki" => (PathBuf::from(name), Vec::new()),
            _ => bail!("unknown OCI runtime `{name}`: use {}", RUNTIMES.join(", ")),
        };
        Ok(Self {
            name: name.to_owned(),
            binary,
            prefix,
            root: PathBuf::from("/run/wasmhost").join(name),
        })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.prefix).arg("--root").arg(&self.root);
        cmd
    }

    fn create_root(&self) -> Result<()> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create `{}`", self.root.display()))
    }

    /// Starts container `id` from `bundle` in the foreground: the returned
    /// child exits when the container does, and its stdout/stderr are the
    /// container's.
    ///
    /// The embedded runtime's helper, when it runs from its read-only
    /// mount, is started one container ahead ([`standby`]): this start
    /// hands its order to the helper waiting since the last one, and
    /// starts the next. The start then does not wait for the helper's exec
    /// (the kernel mapping it, the loader relocating it: ~1.3 ms of the
    /// ~8 ms a start takes on the bench machine).
    pub async fn run(&self, id: &str, bundle: &Path) -> Result<Child> {
        self.create_root()?;
        if self.creates_ahead() {
            let order = Order {
                bundle: bundle.to_owned(),
                id: id.to_owned(),
                wait_for_start: false,
            };
            let started = match standby::take(&self.root).await {
                Some(helper) => standby::hand_over(helper, &order).await,
                None => None,
            };
            // The next helper is started once this container is ready
            // (`keep_standby`, called by the lifecycle): started now, its
            // exec would take CPU from this start on a small machine.
            if let Some(child) = started {
                return Ok(child);
            }
        }
        self.command()
            .arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run `{}` (is it installed?)", self.binary.display()))
    }

    /// Creates container `id` from `bundle` now, to be started later by
    /// [`Created::start`] (a cold start then costs the workload's own start
    /// only); `None` for runtimes that cannot (all but the embedded one
    /// from its read-only mount). Dropping the [`Created`] deletes it: the
    /// helper sees its input end.
    pub async fn create_ahead(&self, id: &str, bundle: &Path) -> Result<Option<Created>> {
        if !self.creates_ahead() {
            return Ok(None);
        }
        self.create_root()?;
        // No kill on drop: dropped, it must live to delete the container
        // (it does at end of input).
        let helper = self
            .spawn_standby()
            .context("cannot start the runtime helper")?;
        let order = Order {
            bundle: bundle.to_owned(),
            id: id.to_owned(),
            wait_for_start: true,
        };
        Created::order(helper, &order).await.map(Some)
    }

    /// Whether this runtime keeps a helper started ahead, and so can
    /// create a container ahead: only the embedded one from its read-only
    /// mount (a helper that still has to seal itself re-executes, and
    /// would lose its order).
    pub fn creates_ahead(&self) -> bool {
        self.prefix.is_empty() && self.binary.starts_with(sealed::SEALED_DIR)
    }

    /// Makes sure one helper waits for the next start (a no-op for the
    /// other runtimes). A failure only costs the next start its exec.
    /// Call it from within the tokio runtime, when no start is under way
    /// (the helper's exec would take CPU from it).
    pub fn keep_standby(&self) {
        if self.creates_ahead() {
            let runtime = self.clone();
            standby::keep(&self.root, move || runtime.spawn_standby());
        }
    }

    /// A helper waiting for its order on stdin; its stdout and stderr
    /// become the container's.
    fn spawn_standby(&self) -> std::io::Result<Child> {
        self.command()
            .arg("standby")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }

    /// Runs the runtime with `args` to its end.
    async fn output(&self, args: &[&str]) -> Result<std::process::Output, RuntimeError> {
        self.command()
            .args(args)
            .output()
            .await
            .map_err(|source| RuntimeError::Spawn {
                program: self.binary.clone(),
                source,
            })
    }

    /// Runs `args` about container `id`: done, or the typed error.
    async fn about(&self, verb: &str, id: &str, args: &[&str]) -> Result<(), RuntimeError> {
        let out = self.output(args).await?;
        if out.status.success() {
            return Ok(());
        }
        Err(RuntimeError::from_stderr(&self.name, verb, id, &out.stderr))
    }

    /// Sends `signal` to container `id`: SIGKILL to every process in it,
    /// any other signal to its pid 1 only (as Docker's stop does), which
    /// is wasmhost's init, forwarding it to the image's command, unless
    /// the init is off.
    pub async fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        match signal {
            Signal::Kill => {
                self.about("kill", id, &["kill", "--all", id, signal.as_arg()])
                    .await
            }
            _ => self.about("kill", id, &["kill", id, signal.as_arg()]).await,
        }
    }

    /// Removes container `id`, killing it if it still runs.
    /// [`RuntimeError::NotFound`] when it is gone already.
    pub async fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        self.about("delete", id, &["delete", "--force", id]).await
    }

    /// The host pid of container `id`'s init process, once it has one.
    pub async fn init_pid(&self, id: &str) -> Result<Option<u32>, RuntimeError> {
        Ok(self
            .list_all()
            .await?
            .iter()
            .find(|c| c.id == id)
            .and_then(ListEntry::init_pid))
    }

    /// Every container of wasmhost's this runtime knows.
    pub async fn list(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(self
            .list_all()
            .await?
            .into_iter()
            .map(|c| c.id)
            .filter(|id| id.starts_with(ID_PREFIX))
            .collect())
    }

    /// `list --format json`.
    async fn list_all(&self) -> Result<Vec<ListEntry>, RuntimeError> {
        if !self.root.exists() {
            return Ok(Vec::new());
        }
        let out = self.output(&["list", "--format", "json"]).await?;
        if !out.status.success() {
            return Err(RuntimeError::Failed {
                runtime: self.name.clone(),
                verb: "list".to_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        ListEntry::parse_list(&out.stdout).map_err(|source| RuntimeError::BadList {
            runtime: self.name.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime whose program is a shell script speaking runc's command
    /// line: it knows one container, `wasmhost-1-a-0` (pid 4242), and
    /// records its arguments in `calls`.
    fn fake_runtime(dir: &Path) -> OciRuntime {
        let script = dir.join("fake-runc");
        std::fs::write(
            &script,
            format!(
                r#"#!/bin/sh
echo "$@" >> {calls}
shift 2  # --root R
case "$1" in
  list) echo '[{{"id":"wasmhost-1-a-0","pid":4242,"status":"running"}},{{"id":"other","pid":7,"status":"running"}}]' ;;
  kill|delete)
    for id; do :; done
    case "$*" in *wasmhost-1-a-0*) exit 0 ;; esac
    echo "container $id does not exist" >&2; exit 1 ;;
  *) echo "unknown command $1" >&2; exit 2 ;;
esac
"#,
                calls = dir.join("calls").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        OciRuntime {
            name: "fake".into(),
            binary: script,
            prefix: Vec::new(),
            root: dir.to_owned(),
        }
    }

    #[tokio::test]
    async fn the_driver_speaks_runcs_command_line_and_reads_its_list() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = fake_runtime(dir.path());
        assert_eq!(runtime.list().await.unwrap(), ["wasmhost-1-a-0"]);
        assert_eq!(
            runtime.init_pid("wasmhost-1-a-0").await.unwrap(),
            Some(4242)
        );
        assert_eq!(runtime.init_pid("wasmhost-1-a-9").await.unwrap(), None);
        runtime.kill("wasmhost-1-a-0", Signal::Term).await.unwrap();
        runtime.delete("wasmhost-1-a-0").await.unwrap();
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        let root = dir.path().display();
        assert_eq!(
            calls.lines().collect::<Vec<_>>(),
            [
                format!("--root {root} list --format json"),
                format!("--root {root} list --format json"),
                format!("--root {root} list --format json"),
                format!("--root {root} kill wasmhost-1-a-0 TERM"),
                format!("--root {root} delete --force wasmhost-1-a-0"),
            ]
        );
    }

    #[tokio::test]
    async fn a_container_the_runtime_does_not_know_is_a_typed_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = fake_runtime(dir.path());
        let err = runtime.delete("wasmhost-1-gone-0").await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let err = runtime
            .kill("wasmhost-1-gone-0", Signal::Kill)
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[tokio::test]
    async fn a_runtime_that_is_not_installed_says_so() {
        let runtime = OciRuntime {
            name: "runc".into(),
            binary: "/nonexistent/runc".into(),
            prefix: Vec::new(),
            root: std::env::temp_dir(),
        };
        let err = runtime.delete("x").await.unwrap_err();
        assert!(matches!(err, RuntimeError::Spawn { .. }), "{err}");
        assert!(err.to_string().contains("is it installed?"), "{err}");
    }

    #[test]
    fn only_the_four_runtimes_are_known() {
        assert!(OciRuntime::named("runc").is_ok());
        let err = OciRuntime::named("docker").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown OCI runtime `docker`: use embedded, runc, crun, youki"
        );
    }
}
