//! Entering a running container for `exec`, as runc's `nsexec` does: its
//! user namespace first, then its other namespaces, then a child forked
//! inside becomes the command.
//!
//! libcontainer's tenant (what `youki exec` is) joins every namespace but
//! the user namespace, so in a container that has one its command would
//! run with host ids (root inside as root on the host). The helper, a
//! single-threaded process (checked: `setns(CLONE_NEWUSER)` and a safe
//! `fork` both need it), does the entry itself:
//!
//! 1. with the host's privileges it still has: opens `/proc/<init>/ns/*`
//!    for every namespace the container's spec names, joins the
//!    container's cgroups (as libcontainer's tenant did; the helper stays
//!    there while it waits, so its pids limit counts it too) and sets the
//!    container's rlimits, and opens the pid file;
//! 2. joins the user namespace first: that gives it every capability in
//!    it, which joining the namespaces it owns needs; then ipc, uts, net,
//!    pid, cgroup and mount last (joining it also moves the root and the
//!    working directory to the container's);
//! 3. forks, since a pid namespace is entered by children only; the child
//!    sets its groups, gid and uid (keeping its capabilities across the
//!    change, as the container's init does), the working directory, the
//!    container's capability sets (root keeps them; a non-root user holds
//!    none after its exec: nothing is inheritable or ambient),
//!    no_new_privs, the container's seccomp filter, and executes the
//!    command with the container's environment.
//!
//! The helper is made non-dumpable first, as runc's is: between the joins
//! and the exec, the child is a process inside the container running
//! wasmhost's code, and root inside (which holds capabilities over the
//! child's credentials) must not ptrace it or open its `/proc/<pid>/`
//! files; for a non-dumpable process that takes capabilities in the user
//! namespace its memory belongs to, the host's.

#![forbid(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use libcgroups::common::CgroupManager as _;
use libcontainer::syscall::Syscall;
use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Gid, Pid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::container::sys;

/// Who the command runs as, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct As {
    /// Its uid inside the container.
    pub uid: u32,
    /// Its gid inside the container.
    pub gid: u32,
    /// Its supplementary groups (none unless the spec names some).
    pub additional_gids: Vec<u32>,
    /// Its working directory inside the container.
    pub cwd: PathBuf,
}

/// The namespaces that can be joined, in the order they are: the user
/// namespace first (joining it gives the capabilities the others need),
/// the mount namespace last (it changes the root, as runc's `nsexec`
/// orders them).
const JOIN_ORDER: [(LinuxNamespaceType, &str, CloneFlags); 7] = [
    (LinuxNamespaceType::User, "user", CloneFlags::CLONE_NEWUSER),
    (LinuxNamespaceType::Ipc, "ipc", CloneFlags::CLONE_NEWIPC),
    (LinuxNamespaceType::Uts, "uts", CloneFlags::CLONE_NEWUTS),
    (LinuxNamespaceType::Network, "net", CloneFlags::CLONE_NEWNET),
    (LinuxNamespaceType::Pid, "pid", CloneFlags::CLONE_NEWPID),
    (
        LinuxNamespaceType::Cgroup,
        "cgroup",
        CloneFlags::CLONE_NEWCGROUP,
    ),
    (LinuxNamespaceType::Mount, "mnt", CloneFlags::CLONE_NEWNS),
];

/// `PATH` when the container's environment has none (the one spec.rs
/// gives every container, and Docker's).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The most of the container's `/etc/passwd` read for `HOME`: the file is
/// the image's, and a hostile one must not make the helper read forever.
const PASSWD_LIMIT: u64 = 1 << 20;

/// Runs `command` inside container `id` (spec `spec`, init process
/// `init`) as `who`, writing its host pid to `pid_file`; returns that pid
/// (a child of this process). Leaves this process inside the container's
/// namespaces and cgroups: call it last, from the helper.
pub fn spawn(
    id: &str,
    init: Pid,
    spec: &Spec,
    who: &As,
    command: &[String],
    pid_file: Option<&Path>,
) -> Result<Pid> {
    // The helper starts no thread: joining a user namespace and forking
    // safely both need it to have one.
    let one_thread = sys::one_thread().context("the runtime helper cannot enter a container")?;
    nix::sys::prctl::set_dumpable(false).context("cannot make the helper non-dumpable")?;
    let named: Vec<LinuxNamespaceType> = spec
        .linux()
        .as_ref()
        .and_then(|linux| linux.namespaces().as_ref())
        .map(|all| all.iter().map(|ns| ns.typ()).collect())
        .unwrap_or_default();
    let namespaces = join_order(&named)?
        .into_iter()
        .map(|(name, flag)| {
            let path = format!("/proc/{init}/ns/{name}");
            File::open(&path)
                .with_context(|| format!("cannot open `{path}` (has container `{id}` exited?)"))
                .map(|file| (name, flag, file))
        })
        .collect::<Result<Vec<_>>>()?;
    join_cgroups(id, spec)?;
    let syscall = libcontainer::syscall::syscall::create_syscall();
    let process = spec
        .process()
        .as_ref()
        .context("the container has no process")?;
    for rlimit in process.rlimits().iter().flatten() {
        syscall
            .set_rlimit(rlimit)
            .with_context(|| format!("cannot set the container's {:?}", rlimit.typ()))?;
    }
    let mut pid_file = pid_file
        .map(|path| {
            File::create(path).with_context(|| format!("cannot create `{}`", path.display()))
        })
        .transpose()?;
    for (name, flag, file) in &namespaces {
        nix::sched::setns(file, *flag)
            .with_context(|| format!("cannot join the {name} namespace of container `{id}`"))?;
    }
    drop(namespaces);
    // In the container's mount namespace now: paths are the container's.
    let env = environment(process.env().as_deref().unwrap_or_default(), who.uid);
    let program = resolve(command, &env)?;
    let exec = Exec {
        program: c_string(program.as_os_str().as_bytes())?,
        args: command
            .iter()
            .map(|a| c_string(a.as_bytes()))
            .collect::<Result<_>>()?,
        env: env
            .iter()
            .map(|e| c_string(e.as_bytes()))
            .collect::<Result<_>>()?,
    };
    match one_thread.fork().context("cannot fork")? {
        ForkResult::Parent { child } => {
            if let Some(file) = &mut pid_file {
                write!(file, "{child}").context("cannot write the pid file")?;
            }
            Ok(child)
        }
        ForkResult::Child => {
            let Err(e) = become_command(spec, who, &*syscall, &exec);
            // Its stderr is the command's: the health check's output.
            eprintln!(
                "cannot exec `{}` in container `{id}`: {e:#}",
                command.join(" ")
            );
            std::process::exit(126)
        }
    }
}

/// What the forked child executes, built before the fork.
struct Exec {
    program: CString,
    args: Vec<CString>,
    env: Vec<CString>,
}

/// The child's part: credentials, working directory, confinement, exec.
/// Returns only on failure.
fn become_command(
    spec: &Spec,
    who: &As,
    syscall: &dyn Syscall,
    exec: &Exec,
) -> Result<std::convert::Infallible> {
    // Nothing of the helper's but stdin, stdout and stderr goes along.
    syscall
        .close_range(0)
        .context("cannot close the helper's descriptors")?;
    // As root still, as the container's init does: the user may lack
    // search permission on a parent of its own working directory.
    nix::unistd::chdir(&who.cwd)
        .with_context(|| format!("cannot change to `{}`", who.cwd.display()))?;
    let gids: Vec<Gid> = who
        .additional_gids
        .iter()
        .copied()
        .map(Gid::from_raw)
        .collect();
    syscall.set_groups(&gids).context("cannot set the groups")?;
    syscall
        .set_id(Uid::from_raw(who.uid), Gid::from_raw(who.gid))
        .with_context(|| format!("cannot become {}:{}", who.uid, who.gid))?;
    libcontainer::capabilities::reset_effective(syscall)
        .context("cannot reset the effective capabilities")?;
    if let Some(caps) = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
    {
        let mut caps = caps.clone();
        // Nothing inheritable or ambient, whatever the helper had.
        if caps.inheritable().is_none() {
            caps.set_inheritable(Some(Default::default()));
        }
        if caps.ambient().is_none() {
            caps.set_ambient(Some(Default::default()));
        }
        libcontainer::capabilities::drop_privileges(&caps, syscall)
            .context("cannot set the container's capabilities")?;
    }
    nix::sys::prctl::set_no_new_privs().context("cannot set no_new_privs")?;
    // Last, so that as few calls as possible run under it before the
    // exec; no_new_privs lets it load without CAP_SYS_ADMIN.
    if let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        libcontainer::seccomp::initialize_seccomp(seccomp)
            .map_err(|e| anyhow::anyhow!("cannot load the container's seccomp filter: {e}"))?;
    }
    let Err(e) = nix::unistd::execve(&exec.program, &exec.args, &exec.env);
    Err(e).context("execve")
}

/// The namespaces of `named` to join, in [`JOIN_ORDER`], by their
/// `/proc/<pid>/ns/` names; one that cannot be joined (a time namespace)
/// is an error, not a command running half outside.
fn join_order(named: &[LinuxNamespaceType]) -> Result<Vec<(&'static str, CloneFlags)>> {
    if let Some(other) = named
        .iter()
        .find(|typ| !JOIN_ORDER.iter().any(|(known, ..)| known == *typ))
    {
        bail!("cannot join the container's {other:?} namespace");
    }
    Ok(JOIN_ORDER
        .iter()
        .filter(|(typ, ..)| named.contains(typ))
        .map(|&(_, name, flag)| (name, flag))
        .collect())
}

/// Moves this process into the container's cgroups, as libcontainer's
/// tenant moved its own (the same manager, from the spec's path).
fn join_cgroups(id: &str, spec: &Spec) -> Result<()> {
    let path = libcontainer::utils::get_cgroup_path(
        &spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()),
        id,
    );
    let manager = libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
        cgroup_path: path.clone(),
        systemd_cgroup: false,
        container_name: id.to_owned(),
    })
    .map_err(|e| anyhow::anyhow!("cannot find the cgroups of `{}`: {e}", path.display()))?;
    manager
        .add_task(Pid::this())
        .map_err(|e| anyhow::anyhow!("cannot join the cgroups of `{}`: {e}", path.display()))
}

/// The container's environment, with `HOME` from its `/etc/passwd` (else
/// `/`) when it has none, as the container's init and Docker's exec give.
fn environment(spec_env: &[String], uid: u32) -> Vec<String> {
    let mut env = spec_env.to_vec();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let mut passwd = String::new();
        let _ = read_passwd(&mut passwd);
        env.push(format!("HOME={}", home(&passwd, uid).unwrap_or("/")));
    }
    env
}

/// The container's `/etc/passwd` into `text`, if it is a regular file:
/// the image's own, which must not hold the helper (a FIFO would block
/// the open without `O_NONBLOCK`, a device would never end).
fn read_passwd(text: &mut String) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/etc/passwd")?;
    if !file.metadata()?.is_file() {
        return Ok(());
    }
    file.take(PASSWD_LIMIT).read_to_string(text).map(drop)
}

/// The home directory of `uid` in `passwd` (`/etc/passwd`'s text).
fn home(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let home = *fields.get(5)?;
        (fields[2].parse() == Ok(uid) && !home.is_empty()).then_some(home)
    })
}

/// The program `command` names: a path as is, a bare name looked up in
/// the environment's `PATH` inside the container (as `execvp` would).
fn resolve(command: &[String], env: &[String]) -> Result<PathBuf> {
    let name = command.first().context("no command")?;
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .with_context(|| format!("`{name}` is not in the container's PATH (`{path}`)"))
}

fn c_string(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes)
        .with_context(|| format!("`{}` holds a NUL byte", String::from_utf8_lossy(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use LinuxNamespaceType::*;

    #[test]
    fn the_user_namespace_is_joined_first_and_the_mount_namespace_last() {
        let names = |named: &[LinuxNamespaceType]| -> Vec<&str> {
            join_order(named)
                .unwrap()
                .into_iter()
                .map(|(name, _)| name)
                .collect()
        };
        // The order of runtime_spec's list, with a user namespace.
        assert_eq!(
            names(&[Pid, Network, Ipc, Uts, Mount, Cgroup, User]),
            ["user", "ipc", "uts", "net", "pid", "cgroup", "mnt"]
        );
        // Without one, the rest in the same order.
        assert_eq!(names(&[Mount, Pid, Network]), ["net", "pid", "mnt"]);
        let err = join_order(&[Pid, Time]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot join the container's Time namespace"
        );
    }

    #[test]
    fn home_comes_from_the_containers_passwd_unless_the_environment_has_it() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/www:/bin/sh\nbad line\nnohome:x:7:7::\n";
        assert_eq!(home(passwd, 33), Some("/www"));
        assert_eq!(home(passwd, 0), Some("/root"));
        assert_eq!(home(passwd, 7), None);
        assert_eq!(home(passwd, 1000), None);
        let given = environment(&["HOME=/data".into(), "PATH=/bin".into()], 33);
        assert_eq!(given, ["HOME=/data", "PATH=/bin"]);
    }
}
