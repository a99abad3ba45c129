//! `wasmhost runtime …` (hidden): the embedded OCI runtime. youki's
//! `libcontainer`, driven from a process of its own that was just exec'd
//! and so has one thread: creating a container clones the calling process,
//! which must never be the multi-threaded server.
//!
//! It speaks the subset of runc's command line that
//! [`crate::container::runtime`] uses (`run` in the foreground, `kill`,
//! `delete`, `list`), so the same driver runs the same bundle with the
//! embedded runtime, runc, crun or youki.
//!
//! The helper must run from a read-only executable: a container process
//! can reach its creator's executable through `/proc/<pid>/exe` while it
//! is being set up (and keep it open), and must never be able to write to
//! it (CVE-2019-5736). wasmhost starts it from a read-only bind mount it
//! makes once (`container::runtime::SEALED_DIR`); started any other way,
//! from a writable file system, the helper re-executes itself from a
//! read-only bind mount of itself in a private mount namespace, which dies
//! with it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::{self, SigSet};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The embedded OCI runtime (internal).
#[derive(Debug, Parser)]
pub struct RuntimeCommand {
    /// State directory.
    #[arg(long)]
    pub root: PathBuf,

    #[command(subcommand)]
    pub action: RuntimeAction,
}

/// runc-compatible actions.
#[derive(Debug, Subcommand)]
pub enum RuntimeAction {
    /// Create and start a container, wait for it, delete it; exit with its
    /// status.
    Run {
        /// The bundle (config.json and root).
        #[arg(long)]
        bundle: PathBuf,
        /// The container id.
        id: String,
    },
    /// Wait, already executed, for one `run` order on stdin (a JSON line
    /// `{"bundle": …, "id": …}`), then run it as `run` would; exit quietly
    /// at end of input. wasmhost keeps one such helper started ahead, so a
    /// container start does not wait for the helper's own exec. With
    /// `"wait_for_start": true` the container is created at once and
    /// started at the next line (`start`); end of input instead deletes it.
    #[command(hide = true)]
    Standby,
    /// Signal a container.
    Kill {
        /// Every process in it, not only init.
        #[arg(long)]
        all: bool,
        /// The container id.
        id: String,
        /// `TERM`, `KILL`, `SIGTERM`, `15`, …
        signal: String,
    },
    /// Remove a container.
    Delete {
        /// Kill it first if it still runs.
        #[arg(long)]
        force: bool,
        /// The container id.
        id: String,
    },
    /// List containers as JSON.
    List {
        /// Only `json`.
        #[arg(long, default_value = "json")]
        format: String,
    },
}

impl RuntimeCommand {
    /// Runs the action; returns the process exit code.
    pub fn execute(self) -> Result<i32> {
        match self.action {
            RuntimeAction::Run { bundle, id } => run(&self.root, &bundle, &id),
            RuntimeAction::Standby => standby(&self.root),
            RuntimeAction::Kill { all, id, signal } => {
                let signal = Signal::try_from(signal.as_str())
                    .map_err(|e| anyhow::anyhow!("bad signal `{signal}`: {e}"))?;
                load(&self.root, &id)?
                    .kill(signal, all)
                    .with_context(|| format!("cannot signal container `{id}`"))?;
                Ok(0)
            }
            RuntimeAction::Delete { force, id } => {
                if !self.root.join(&id).exists() {
                    return Ok(0);
                }
                load(&self.root, &id)?
                    .delete(force)
                    .with_context(|| format!("cannot delete container `{id}`"))?;
                Ok(0)
            }
            RuntimeAction::List { format } => {
                if format != "json" {
                    bail!("only `--format json` is supported");
                }
                println!("{}", serde_json::to_string(&list(&self.root)?)?);
                Ok(0)
            }
        }
    }
}

/// What a standby helper is told to run.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct StandbyOrder {
    /// The bundle (config.json and root).
    pub bundle: PathBuf,
    /// The container id.
    pub id: String,
    /// Create the container now, start it at the next line.
    #[serde(default)]
    pub wait_for_start: bool,
}

/// The line that starts a container created ahead.
pub const START: &str = "start";

/// Reads orders from stdin, which is pointed at `/dev/null` first so that
/// the container does not inherit the order pipe.
fn standby(root: &Path) -> Result<i32> {
    use std::io::BufRead as _;
    // A re-execution to seal itself would lose the order.
    if std::env::var_os(SEALED_ENV).is_none() && !runs_from_read_only_mount() {
        bail!("`standby` runs only from a read-only helper (wasmhost's sealed mount)");
    }
    let mut orders = std::io::BufReader::new(detach_stdin()?);
    let mut line = String::new();
    orders
        .read_line(&mut line)
        .context("cannot read the order")?;
    if line.trim().is_empty() {
        return Ok(0);
    }
    let order: StandbyOrder = serde_json::from_str(&line).context("bad order")?;
    if !order.wait_for_start {
        return run(root, &order.bundle, &order.id);
    }
    let mut container = create(root, &order.bundle, &order.id)?;
    line.clear();
    orders
        .read_line(&mut line)
        .context("cannot read the order")?;
    if line.trim() != START {
        // wasmhost stopped (or dropped) the container it made ahead.
        let _ = container.delete(true);
        return Ok(0);
    }
    start_and_wait(&mut container, &order.id)
}

/// stdin as a file of its own (close-on-exec), and `/dev/null` as fd 0.
fn detach_stdin() -> Result<std::fs::File> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _};
    // SAFETY: fcntl duplicates fd 0 into a new descriptor we then own.
    let orders = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
    if orders < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot take stdin");
    }
    // SAFETY: `orders` was just returned by fcntl and nothing else owns it.
    let orders = unsafe { std::fs::File::from_raw_fd(orders) };
    let null = std::fs::File::open("/dev/null").context("cannot open /dev/null")?;
    // SAFETY: dup2 of a descriptor we own onto fd 0.
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot detach stdin");
    }
    Ok(orders)
}

fn load(root: &Path, id: &str) -> Result<Container> {
    Container::load(root.join(id)).with_context(|| format!("no container `{id}`"))
}

fn list(root: &Path) -> Result<Vec<serde_json::Value>> {
    let mut containers = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(containers);
    };
    for entry in entries.flatten() {
        if let Ok(container) = Container::load(entry.path()) {
            containers.push(serde_json::json!({
                "id": container.id(),
                "pid": container.pid().map(|p| p.as_raw()),
                "status": container.status().to_string(),
            }));
        }
    }
    Ok(containers)
}

/// Whether our executable is on a read-only mount already (wasmhost
/// bind-mounts its helper read-only once, or the binary is installed on a
/// read-only file system): then no re-execution is needed.
fn runs_from_read_only_mount() -> bool {
    nix::sys::statvfs::statvfs("/proc/self/exe")
        .is_ok_and(|fs| fs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// Set in the helper once it runs from the read-only binary.
const SEALED_ENV: &str = "WASMHOST_RUNTIME_SEALED";

fn run(root: &Path, bundle: &Path, id: &str) -> Result<i32> {
    if std::env::var_os(SEALED_ENV).is_none() && !runs_from_read_only_mount() {
        return reexec_read_only().context("cannot run from a read-only wasmhost binary");
    }
    let mut container = create(root, bundle, id)?;
    start_and_wait(&mut container, id)
}

/// The container, created: its init process waits to be started.
fn create(root: &Path, bundle: &Path, id: &str) -> Result<Container> {
    std::fs::create_dir_all(root).with_context(|| format!("cannot create `{}`", root.display()))?;
    ContainerBuilder::new(id.to_owned(), SyscallType::default())
        .with_root_path(root)
        .context("bad state directory")?
        .validate_id()
        .context("bad container id")?
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(false)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot create container `{id}`: {e}"))
}

/// Starts a created container, waits for it, deletes it; its exit code.
fn start_and_wait(container: &mut Container, id: &str) -> Result<i32> {
    container
        .start()
        .map_err(|e| anyhow::anyhow!("cannot start container `{id}`: {e}"))?;
    let init = container
        .pid()
        .context("the container has no init process")?;
    let code = wait_forwarding_signals(init);
    let _ = container.delete(true);
    code
}

/// Waits for `init` (our child: libcontainer clones it with
/// `CLONE_PARENT`), passing every other signal we get on to it, and
/// returns its exit code as runc does (128 + signal when killed).
fn wait_forwarding_signals(init: Pid) -> Result<i32> {
    // Blocked only now: the container's own processes must not inherit a
    // blocked mask. A SIGCHLD that came before is caught by the first
    // non-blocking wait.
    let all = SigSet::all();
    all.thread_block().context("cannot block signals")?;
    loop {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == init => return Ok(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == init => return Ok(128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(_) => continue,
                Err(e) => return Err(e).context("waitpid"),
            }
        }
        let received = all.wait().context("sigwait")?;
        match received {
            signal::Signal::SIGCHLD | signal::Signal::SIGURG | signal::Signal::SIGWINCH => {}
            other => {
                let _ = signal::kill(init, other);
            }
        }
    }
}

/// Bind-mounts our own executable read-only over itself in a private
/// mount namespace, then executes it again from there (never returns on
/// success): `/proc/self/exe` of the new image is on a read-only mount.
fn reexec_read_only() -> Result<i32> {
    use std::os::unix::process::CommandExt as _;
    let exe = std::env::current_exe()?;
    // SAFETY: unshare/mount with valid NUL-terminated paths; they affect
    // only this (single-threaded) process.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error()).context("unshare(CLONE_NEWNS)");
        }
        let root = c"/";
        let private = libc::MS_REC | libc::MS_PRIVATE;
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            private,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error()).context("make mounts private");
        }
    }
    crate::container::runtime::bind_read_only(&exe, &exe)?;
    let error = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(SEALED_ENV, "1")
        .exec();
    Err(error).context("exec")
}
