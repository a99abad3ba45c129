//! Running a bundle with an OCI runtime: the embedded one (youki's
//! `libcontainer` in a helper process, `wasmhost runtime …`, the default)
//! or an installed `runc`, `crun` or `youki` — the same `config.json` and
//! root filesystem and the same command line, so users can compare
//! runtimes and the benchmarks have an anchor.
//!
//! Every container wasmhost starts is named `wasmhost-…` and lives under a
//! state directory of wasmhost's own (`--root`), so a sweep at start can
//! remove what a killed wasmhost left behind without touching anybody
//! else's containers.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context as _, Result};
use tokio::process::{Child, Command};

use crate::commands::runtime::{StandbyOrder, START};

/// Prefix of every container id wasmhost creates.
pub const ID_PREFIX: &str = "wasmhost-";

/// The runtimes `--oci-runtime` accepts; the first is the default.
pub const RUNTIMES: &[&str] = &["embedded", "runc", "crun", "youki"];

/// An OCI runtime with a runc-like command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRuntime {
    /// `embedded`, `runc`, `crun` or `youki`.
    pub name: String,
    /// The program: this very binary for `embedded`, else looked up in
    /// `PATH`.
    pub binary: PathBuf,
    /// Arguments before runc's own (`runtime` for the embedded one).
    prefix: Vec<String>,
    /// The runtime's state directory for wasmhost's containers.
    pub root: PathBuf,
}

/// The embedded runtime's helper binary, looked for beside wasmhost's
/// own: much cheaper to execute than wasmhost itself, which stands in
/// (`wasmhost runtime`) when the helper is not installed.
pub const HELPER: &str = "wasmhost-runtime";

impl OciRuntime {
    /// `name` with its state under `/run/wasmhost/<name>`.
    pub fn named(name: &str) -> Result<Self> {
        let (binary, prefix) = match name {
            "embedded" => {
                let exe = std::env::current_exe().context("cannot find the wasmhost binary")?;
                let helper = exe.with_file_name(HELPER);
                if helper.is_file() {
                    (sealed_helper(&helper).unwrap_or(helper), Vec::new())
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

    /// Starts container `id` from `bundle` in the foreground: the returned
    /// child exits when the container does, and its stdout/stderr are the
    /// container's.
    ///
    /// The embedded runtime's helper, when it runs from its read-only
    /// mount, is started one container ahead (`standby`): this start hands
    /// its order to the helper waiting since the last one, and starts the
    /// next. The start then does not wait for the helper's exec (the
    /// kernel mapping it, the loader relocating it: ~1.3 ms of the ~8 ms
    /// a start takes on the bench machine).
    pub async fn run(&self, id: &str, bundle: &Path) -> Result<Child> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create `{}`", self.root.display()))?;
        if self.runs_standby() {
            let waiting = STANDBY
                .lock()
                .ok()
                .and_then(|mut standby| standby.take_if(|(root, _)| *root == self.root))
                .map(|(_, helper)| helper);
            let started = match waiting {
                Some(helper) => hand_over(helper, id, bundle).await,
                None => None,
            };
            // The next one, once this start has the CPU it needs.
            let runtime = self.clone();
            tokio::spawn(async move { runtime.keep_standby() });
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
        if !self.runs_standby() {
            return Ok(None);
        }
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create `{}`", self.root.display()))?;
        // No kill on drop: dropped, it must live to delete the container
        // (it does at end of input).
        let mut helper = self
            .spawn_standby()
            .context("cannot start the runtime helper")?;
        let mut stdin = helper.stdin.take().context("no stdin")?;
        let order = StandbyOrder {
            bundle: bundle.to_owned(),
            id: id.to_owned(),
            wait_for_start: true,
        };
        write_line(&mut stdin, &order).await?;
        Ok(Some(Created { helper, stdin }))
    }

    /// Whether this runtime keeps a helper started ahead: only the
    /// embedded one from its read-only mount (a helper that still has to
    /// seal itself re-executes, and would lose its order).
    fn runs_standby(&self) -> bool {
        self.prefix.is_empty() && self.binary.starts_with(SEALED_DIR)
    }

    /// Makes sure one helper waits for the next start (a no-op for the
    /// other runtimes). A failure only costs the next start its exec.
    /// Call it from within the tokio runtime.
    pub fn keep_standby(&self) {
        if !self.runs_standby() {
            return;
        }
        let Ok(mut standby) = STANDBY.lock() else {
            return;
        };
        if standby.is_some() {
            return;
        }
        match self.spawn_standby() {
            Ok(helper) => *standby = Some((self.root.clone(), helper)),
            Err(e) => tracing::warn!("cannot start the runtime helper ahead: {e:#}"),
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

    /// Sends `signal` (`TERM`, `KILL`) to the container's processes.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let status = self
            .command()
            .args(["kill", "--all", id, signal])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await?;
        if !status.success() {
            bail!("`{} kill {id} {signal}` failed ({status})", self.name);
        }
        Ok(())
    }

    /// Removes the container (killing it if still running).
    pub async fn delete(&self, id: &str) -> Result<()> {
        let out = self
            .command()
            .args(["delete", "--force", id])
            .output()
            .await?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !stderr.contains("does not exist") && !stderr.contains("not found") {
                bail!("`{} delete {id}` failed: {}", self.name, stderr.trim());
            }
        }
        Ok(())
    }

    /// The host pid of container `id`'s init process, once it has one.
    pub async fn init_pid(&self, id: &str) -> Result<Option<u32>> {
        Ok(self.listed().await?.iter().find_map(|c| {
            (c.get("id").and_then(|v| v.as_str()) == Some(id))
                .then(|| c.get("pid").and_then(|p| p.as_u64()))
                .flatten()
                .filter(|&pid| pid > 0)
                .and_then(|pid| u32::try_from(pid).ok())
        }))
    }

    /// Every container of wasmhost's this runtime knows.
    pub async fn list(&self) -> Result<Vec<String>> {
        Ok(self
            .listed()
            .await?
            .iter()
            .filter_map(|c| c.get("id").and_then(|id| id.as_str()))
            .filter(|id| id.starts_with(ID_PREFIX))
            .map(str::to_owned)
            .collect())
    }

    /// `list --format json`, as it came.
    async fn listed(&self) -> Result<Vec<serde_json::Value>> {
        if !self.root.exists() {
            return Ok(Vec::new());
        }
        let out = self
            .command()
            .args(["list", "--format", "json"])
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "`{} list` failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let list: Option<Vec<serde_json::Value>> =
            serde_json::from_slice(&out.stdout).unwrap_or_default();
        Ok(list.unwrap_or_default())
    }
}

/// A container created ahead, its helper waiting for the word to start it.
pub struct Created {
    helper: Child,
    stdin: tokio::process::ChildStdin,
}

impl Created {
    /// Starts it; the helper is then the container's, as from
    /// [`OciRuntime::run`]. `None` if the helper is gone (the creation
    /// failed, or it was killed).
    pub async fn start(mut self) -> Option<Child> {
        use tokio::io::AsyncWriteExt as _;
        if !matches!(self.helper.try_wait(), Ok(None)) {
            return None;
        }
        let line = format!("{START}\n");
        self.stdin.write_all(line.as_bytes()).await.ok()?;
        Some(self.helper)
    }

    /// Deletes it: end of input tells the helper to, then it exits.
    pub async fn discard(self) {
        let Created { mut helper, stdin } = self;
        drop(stdin);
        if tokio::time::timeout(std::time::Duration::from_secs(5), helper.wait())
            .await
            .is_err()
        {
            let _ = helper.kill().await;
        }
    }
}

/// The embedded runtime's helper started ahead, waiting for its order,
/// with the state directory it was started for. It exits at end of input,
/// so it goes when wasmhost does, however wasmhost ends (a static is never
/// dropped: that, not `kill_on_drop`, is what ends it).
static STANDBY: std::sync::Mutex<Option<(PathBuf, Child)>> = std::sync::Mutex::new(None);

/// Gives the waiting `helper` its order; `None` if it is gone.
async fn hand_over(mut helper: Child, id: &str, bundle: &Path) -> Option<Child> {
    if !matches!(helper.try_wait(), Ok(None)) {
        return None;
    }
    let order = StandbyOrder {
        bundle: bundle.to_owned(),
        id: id.to_owned(),
        wait_for_start: false,
    };
    let mut stdin = helper.stdin.take()?;
    match write_line(&mut stdin, &order).await {
        Ok(()) => Some(helper),
        Err(e) => {
            tracing::debug!("the runtime helper started ahead is gone: {e:#}");
            None
        }
    }
}

async fn write_line(
    stdin: &mut tokio::process::ChildStdin,
    order: &impl serde::Serialize,
) -> Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let mut line = serde_json::to_vec(order)?;
    line.push(b'\n');
    stdin.write_all(&line).await?;
    Ok(())
}

/// Where the helper is bind-mounted read-only, once per wasmhost process
/// (`<pid>-wasmhost-runtime`).
pub const SEALED_DIR: &str = "/run/wasmhost/exe";

static SEALED: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

/// The helper on a read-only bind mount of its own, made on first use: a
/// container can reach its creator's executable through `/proc/<pid>/exe`
/// and must never be able to write to it (CVE-2019-5736). A helper that
/// starts from a read-only mount needs no read-only re-execution of its
/// own, which saves an `exec` per container start. `None` (the helper then
/// seals itself) when the mount cannot be made.
fn sealed_helper(helper: &Path) -> Option<PathBuf> {
    SEALED
        .get_or_init(|| match seal(helper) {
            Ok(path) => Some(path),
            Err(e) => {
                tracing::warn!("cannot mount the runtime helper read-only once: {e:#}; it will do so per start");
                None
            }
        })
        .clone()
}

fn seal(helper: &Path) -> Result<PathBuf> {
    sweep_sealed();
    let dir = Path::new(SEALED_DIR);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let target = dir.join(format!("{}-{HELPER}", std::process::id()));
    std::fs::File::create(&target)
        .with_context(|| format!("cannot create `{}`", target.display()))?;
    if let Err(e) = bind_read_only(helper, &target) {
        unmount(&target);
        return Err(e);
    }
    Ok(target)
}

/// Bind-mounts `source` on `target` (an existing file) and makes that
/// mount read-only: writes through it fail with EROFS whatever the file's
/// own permissions. Used for the helper (once per wasmhost) and by the
/// helper for itself when it was started from a writable file system.
pub fn bind_read_only(source: &Path, target: &Path) -> Result<()> {
    let source = std::ffi::CString::new(source.as_os_str().as_encoded_bytes())?;
    let target = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())?;
    let mount = |source: *const libc::c_char, flags: libc::c_ulong, what: &str| -> Result<()> {
        // SAFETY: mount(2) with valid NUL-terminated paths (or null).
        let done = unsafe {
            libc::mount(
                source,
                target.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            )
        };
        if done != 0 {
            return Err(std::io::Error::last_os_error()).context(what.to_owned());
        }
        Ok(())
    };
    mount(source.as_ptr(), libc::MS_BIND, "bind-mount the binary")?;
    mount(
        std::ptr::null(),
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
        "remount the binary read-only",
    )
}

/// Removes this process's read-only helper mount; called when wasmhost
/// exits (a killed wasmhost's is swept by the next one).
pub fn release_sealed_helper() {
    if let Some(Some(path)) = SEALED.get() {
        unmount(path);
    }
}

/// Mounts of helpers whose wasmhost is gone.
fn sweep_sealed() {
    let Ok(entries) = std::fs::read_dir(SEALED_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            unmount(&entry.path());
        }
    }
}

fn unmount(path: &Path) {
    if let Ok(at) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        // SAFETY: umount2 with a valid path; detaching only drops the mount.
        unsafe {
            libc::umount2(at.as_ptr(), libc::MNT_DETACH);
        }
    }
    let _ = std::fs::remove_file(path);
}
