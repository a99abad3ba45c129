//! The embedded OCI runtime's helper process (`wasmhost-runtime …`, or
//! `wasmhost runtime …`): youki's `libcontainer`, driven from a process of
//! its own that was just executed and so has one thread: creating a
//! container clones the calling process, which must never be the
//! multi-threaded server.
//!
//! It speaks the subset of runc's command line the driver
//! ([`super::OciRuntime`]) uses (`run` in the foreground, `exec`, `kill`,
//! `delete`, `list`), plus `standby` ([`super::standby`]), so the same
//! driver runs the same bundle with the embedded runtime, runc, crun or
//! youki. The command line itself is `commands::runtime`'s.
//!
//! The helper must run from a read-only executable: a container process
//! can reach its creator's executable through `/proc/<pid>/exe` while it
//! is being set up (and keep it open), and must never be able to write to
//! it (CVE-2019-5736). wasmhost starts it from a read-only bind mount it
//! makes once ([`super::sealed`]); started any other way, from a writable
//! file system, the helper re-executes itself from a read-only bind mount
//! of itself in a private mount namespace, which dies with it.

#![forbid(unsafe_code)]

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::{self, SigSet};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::enter;
use super::protocol::{ListEntry, Order, Word};
use crate::container::sys::{self, Linux, Syscall as _};

/// Set in the helper once it runs from the read-only binary.
const SEALED_ENV: &str = "WASMHOST_RUNTIME_SEALED";

/// `run`: creates and starts container `id` from `bundle`, waits for it,
/// deletes it; returns its exit code.
pub fn run(root: &Path, bundle: &Path, id: &str) -> Result<i32> {
    if !sealed() {
        return reexec_read_only().context("cannot run from a read-only wasmhost binary");
    }
    let mut container = create(root, bundle, id)?;
    start_and_wait(&mut container, id)
}

/// `standby`: waits, already executed, for one [`Order`] on stdin, then
/// runs it as `run` would; exits quietly at end of input. With
/// `wait_for_start` the container is created at once and started at the
/// word [`Word::Start`]; anything else deletes it.
///
/// Stdin is pointed at `/dev/null` first, so that the container does not
/// inherit the order pipe.
pub fn standby(root: &Path) -> Result<i32> {
    use std::io::BufRead as _;
    // A re-execution to seal itself would lose the order.
    if !sealed() {
        bail!("`standby` runs only from a read-only helper (wasmhost's sealed mount)");
    }
    let mut orders = std::io::BufReader::new(sys::detach_stdin().context("cannot take stdin")?);
    // While the order is on its way.
    crate::cgroup_wait::take_early();
    let mut line = String::new();
    orders
        .read_line(&mut line)
        .context("cannot read the order")?;
    let Some(order) = Order::from_line(&line).context("bad order")? else {
        return Ok(0);
    };
    if !order.wait_for_start {
        return run(root, &order.bundle, &order.id);
    }
    let mut container = create(root, &order.bundle, &order.id)?;
    line.clear();
    orders
        .read_line(&mut line)
        .context("cannot read the order")?;
    match Word::from_line(&line) {
        Word::Start => start_and_wait(&mut container, &order.id),
        Word::Discard => {
            // wasmhost stopped (or dropped) the container it made ahead.
            container
                .delete(true)
                .with_context(|| format!("cannot delete container `{}`", order.id))?;
            Ok(0)
        }
    }
}

/// What `exec` runs, and as whom (runc's `exec` flags).
pub struct ExecOrder<'a> {
    /// The container id.
    pub id: &'a str,
    /// `uid[:gid]`; the container's process's when absent.
    pub user: Option<&'a str>,
    /// The working directory; the container's process's when absent.
    pub cwd: Option<&'a Path>,
    /// Where to write the command's host pid (the driver kills it there
    /// past its timeout).
    pub pid_file: Option<&'a Path>,
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// `exec`: runs a command inside running container `id` (all its
/// namespaces, its user namespace first, and its cgroups; its
/// environment, capabilities, seccomp filter and no_new_privs), waits for
/// it, and returns its exit code (128 + the signal that ended it).
///
/// [`enter`] does the entry, as runc's `nsexec` does: libcontainer's
/// tenant leaves the user namespace out (its command would run with host
/// ids) and the seccomp filter too.
pub fn exec(root: &Path, order: ExecOrder<'_>) -> Result<i32> {
    if !sealed() {
        return reexec_read_only().context("cannot run from a read-only wasmhost binary");
    }
    let id = order.id;
    let container = load(root, id)?;
    if container.status() != ContainerStatus::Running {
        bail!("cannot exec in container `{id}`: it is {}", container.status());
    }
    let init = container
        .pid()
        .context("the container has no init process")?;
    let spec_path = container.bundle().join("config.json");
    let spec = oci_spec::runtime::Spec::load(&spec_path)
        .with_context(|| format!("cannot read `{}`", spec_path.display()))?;
    let process = spec
        .process()
        .as_ref()
        .context("the container has no process")?;
    let (uid, gid) = match order.user {
        Some(user) => parse_user(user)?,
        None => (process.user().uid(), Some(process.user().gid())),
    };
    let who = enter::As {
        uid,
        // runc's `--user uid` alone: group 0.
        gid: gid.unwrap_or(0),
        additional_gids: process.user().additional_gids().clone().unwrap_or_default(),
        cwd: order
            .cwd
            .map_or_else(|| process.cwd().clone(), Path::to_path_buf),
    };
    let pid = enter::spawn(id, init, &spec, &who, &order.command, order.pid_file)
        .with_context(|| format!("cannot exec in container `{id}`"))?;
    wait_forwarding_signals(pid)
}

/// `uid[:gid]`, as runc's `exec --user` takes it.
fn parse_user(user: &str) -> Result<(u32, Option<u32>)> {
    let number = |text: &str| {
        text.parse::<u32>()
            .with_context(|| format!("`{user}` is not uid[:gid]"))
    };
    match user.split_once(':') {
        Some((uid, gid)) => Ok((number(uid)?, Some(number(gid)?))),
        None => Ok((number(user)?, None)),
    }
}

/// `kill`: sends `signal` (`TERM`, `KILL`, `SIGTERM`, `15`, …) to
/// container `id`'s init, or every process of it.
pub fn kill(root: &Path, id: &str, signal: &str, all: bool) -> Result<()> {
    let signal =
        Signal::try_from(signal).map_err(|e| anyhow::anyhow!("bad signal `{signal}`: {e}"))?;
    load(root, id)?
        .kill(signal, all)
        .with_context(|| format!("cannot signal container `{id}`"))
}

/// `delete`: removes container `id` (killing it first with `force`); a
/// container that is not there is no error.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    if !root.join(id).exists() {
        return Ok(());
    }
    load(root, id)?
        .delete(force)
        .with_context(|| format!("cannot delete container `{id}`"))
}

/// `list`: every container under `root` whose state can be read.
pub fn list(root: &Path) -> Result<Vec<ListEntry>> {
    let mut containers = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(containers);
    };
    for entry in entries.flatten() {
        if let Ok(container) = Container::load(entry.path()) {
            containers.push(ListEntry {
                id: container.id().to_owned(),
                pid: container.pid().map(|p| i64::from(p.as_raw())),
                status: container.status().to_string(),
            });
        }
    }
    Ok(containers)
}

fn load(root: &Path, id: &str) -> Result<Container> {
    Container::load(root.join(id)).with_context(|| format!("no container `{id}`"))
}

/// Whether this process runs from a read-only executable: re-executed so
/// already, or on a read-only mount (wasmhost's sealed one, or a binary
/// installed on a read-only file system).
fn sealed() -> bool {
    std::env::var_os(SEALED_ENV).is_some()
        || nix::sys::statvfs::statvfs("/proc/self/exe")
            .is_ok_and(|fs| fs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
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
    if let Err(e) = container.delete(true) {
        // The driver deletes it too; say why this one did not.
        eprintln!("cannot delete container `{id}`: {e}");
    }
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
                // Gone already: its exit is what the next wait reports.
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
    sys::private_mount_namespace().context("cannot make a private mount namespace")?;
    Linux
        .bind_read_only(&exe, &exe)
        .context("cannot bind-mount the binary read-only")?;
    let error = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(SEALED_ENV, "1")
        .exec();
    Err(error).context("exec")
}
