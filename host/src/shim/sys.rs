//! The shim's system calls that need `unsafe`: the task's process (forked
//! by hand so that it can wait, set up, at a gate until `Start`), the
//! daemon's fork, mounts. Everything the forked child does is an
//! async-signal-safe system call on memory prepared before the fork.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::process::CommandExt as _;

/// Which network namespace the task's process runs in.
pub enum NetNs {
    /// The shim's (the host's, under containerd).
    Host,
    /// The one at this open `/proc/.../ns/net` or `/var/run/netns/...`.
    Join(OwnedFd),
    /// A new one, with `lo` up (the spec names a network namespace
    /// without a path).
    New,
}

/// Everything the task's process needs, ready before the fork.
pub struct Exec {
    /// The program (an absolute path).
    pub program: CString,
    /// argv, program name first.
    pub argv: Vec<CString>,
    /// The environment, `NAME=value`.
    pub envp: Vec<CString>,
    /// The working directory.
    pub cwd: CString,
    /// stdin, stdout, stderr.
    pub stdio: [OwnedFd; 3],
    /// The network namespace.
    pub netns: NetNs,
    /// The read end of a pipe the program inherits as descriptor
    /// `start_gate.1`, to wait on for Start after it executed.
    pub start_gate: Option<(OwnedFd, RawFd)>,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Forks the task's process: it enters its network namespace, takes its
/// stdio and working directory, then waits until a byte arrives on the
/// returned gate before it executes the program (`Start`; or at once for
/// a process preloaded at Create, which then waits on its `start_gate`).
/// Closing the gate without a byte makes it exit with status 1 (deleted
/// unstarted).
pub fn spawn_gated(exec: &Exec) -> io::Result<(libc::pid_t, OwnedFd)> {
    let (gate_r, gate_w) = pipe()?;
    let mut argv: Vec<*const libc::c_char> = exec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = exec.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut lo: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in lo.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    let stdio = exec.stdio.each_ref().map(|fd| fd.as_raw_fd());
    let start_gate = exec
        .start_gate
        .as_ref()
        .map_or((-1, -1), |(fd, target)| (fd.as_raw_fd(), *target));
    let netns = match &exec.netns {
        NetNs::Host => -1,
        NetNs::Join(fd) => fd.as_raw_fd(),
        NetNs::New => -2,
    };
    // SAFETY: the child only makes async-signal-safe calls on memory
    // prepared above, then executes or exits.
    let pid = check(unsafe { libc::fork() })?;
    if pid == 0 {
        // SAFETY: in the child, see above.
        unsafe {
            child(
                exec,
                &argv,
                &envp,
                &mut lo,
                stdio,
                netns,
                Gates {
                    exec: gate_r.as_raw_fd(),
                    start: start_gate,
                },
            )
        }
    }
    drop(gate_r);
    Ok((pid, gate_w))
}

/// A pipe, both ends close-on-exec: (read, write).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: a valid two-element array.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both ends were just created and are owned here alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The child's gates: the one it reads before executing, and the start
/// gate it passes on (its descriptor, and the number it gets; -1: none).
struct Gates {
    exec: RawFd,
    start: (RawFd, RawFd),
}

/// The child's side of [`spawn_gated`]; never returns.
unsafe fn child(
    exec: &Exec,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    lo: &mut libc::ifreq,
    stdio: [RawFd; 3],
    netns: RawFd,
    gates: Gates,
) -> ! {
    let fail = |what: &[u8]| -> ! {
        libc::write(2, what.as_ptr().cast(), what.len());
        libc::_exit(127)
    };
    // Rust ignores SIGPIPE; a program started by containerd expects the
    // default. The mask is left as it is: the shim blocks nothing.
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    if netns >= 0 && libc::setns(netns, libc::CLONE_NEWNET) != 0 {
        fail(b"wasmhost shim: cannot join the network namespace\n");
    }
    if netns == -2 {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            fail(b"wasmhost shim: cannot create a network namespace\n");
        }
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 || libc::ioctl(sock, libc::SIOCGIFFLAGS, lo as *mut libc::ifreq) != 0 {
            fail(b"wasmhost shim: cannot read lo's flags\n");
        }
        lo.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock, libc::SIOCSIFFLAGS, lo as *mut libc::ifreq) != 0 {
            fail(b"wasmhost shim: cannot bring lo up\n");
        }
        libc::close(sock);
    }
    for (target, fd) in stdio.into_iter().enumerate() {
        // dup2 clears close-on-exec on the target.
        if libc::dup2(fd, target as libc::c_int) < 0 {
            fail(b"wasmhost shim: cannot set up stdio\n");
        }
    }
    if libc::chdir(exec.cwd.as_ptr()) != 0 {
        fail(b"wasmhost shim: cannot enter the working directory\n");
    }
    let mut byte = 0u8;
    loop {
        let n = libc::read(gates.exec, (&mut byte as *mut u8).cast(), 1);
        if n == 1 {
            break;
        }
        if n < 0 && *libc::__errno_location() == libc::EINTR {
            continue;
        }
        // The shim closed the gate without starting the task.
        libc::_exit(1);
    }
    // After the gate is read: the gate's own descriptor may be the target.
    let (from, to) = gates.start;
    if from >= 0 {
        let kept = if from == to {
            libc::fcntl(to, libc::F_SETFD, 0)
        } else {
            // dup2 clears close-on-exec on the target.
            libc::dup2(from, to)
        };
        if kept < 0 {
            fail(b"wasmhost shim: cannot pass the start gate\n");
        }
    }
    libc::execve(exec.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
    fail(b"wasmhost shim: cannot execute wasmhost\n")
}

/// Starts the daemon: `command` in a session of its own, with `listener`
/// as its fd 3.
pub fn spawn_daemon(
    mut command: std::process::Command,
    listener: RawFd,
) -> io::Result<std::process::Child> {
    // SAFETY: setsid, dup2 and fcntl are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            check(libc::setsid())?;
            if listener == 3 {
                // dup2 onto itself would leave close-on-exec set.
                check(libc::fcntl(3, libc::F_SETFD, 0))?;
            } else {
                check(libc::dup2(listener, 3))?;
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Whether this process has a single thread (`Threads:` in
/// /proc/self/status), so that a forked child may run any code.
fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Threads:"))
                .map(|n| n.trim() == "1")
        })
        .unwrap_or(false)
}

/// Forks the daemon off this `start` process without executing the shim
/// again (one exec and one process start fewer per task): the child gets
/// a session of its own, `listener` as fd 3 and /dev/null as stdio (so
/// containerd's read of `start`'s output ends when `start` exits), then
/// runs `daemon`, which exits the process. `Ok(false)` when this process has
/// more than one thread: then the caller executes the daemon instead.
pub fn fork_daemon(listener: RawFd, daemon: impl FnOnce()) -> io::Result<bool> {
    if !single_threaded() {
        return Ok(false);
    }
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    // SAFETY: the process has one thread (checked above), so the child
    // may run any code, not only async-signal-safe calls.
    let pid = check(unsafe { libc::fork() })?;
    if pid != 0 {
        return Ok(true);
    }
    let set_up = (|| -> io::Result<()> {
        // SAFETY: plain system calls on descriptor numbers this process owns.
        unsafe {
            check(libc::setsid())?;
            if listener == 3 {
                check(libc::fcntl(3, libc::F_SETFD, 0))?;
            } else {
                check(libc::dup2(listener, 3))?;
            }
            for target in 0..3 {
                check(libc::dup2(null.as_raw_fd(), target))?;
            }
        }
        Ok(())
    })();
    if set_up.is_err() {
        // SAFETY: leaves the child at once, without running the parent's
        // exit handlers twice.
        unsafe { libc::_exit(127) };
    }
    drop(null);
    daemon();
    // SAFETY: as above; `daemon` exits the process itself.
    unsafe { libc::_exit(1) }
}

/// Sets close-on-exec on `fd` (the daemon's listener, inherited as 3).
pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number; an invalid one is EBADF.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    Ok(())
}

/// Makes this process the reaper of its descendants' orphans, as a shim
/// must be.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) })?;
    Ok(())
}

/// Replaces stderr (fd 2) with `fd`.
pub fn redirect_stderr(fd: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on descriptor numbers.
    check(unsafe { libc::dup2(fd, 2) })?;
    Ok(())
}

/// `mount(2)`.
pub fn mount(
    source: &CStr,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    // SAFETY: NUL-terminated strings or null pointers.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.map_or(std::ptr::null(), CStr::as_ptr),
            flags,
            data.map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    })?;
    Ok(())
}

/// `umount2(target, MNT_DETACH)`.
pub fn unmount(target: &CStr) -> io::Result<()> {
    // SAFETY: a NUL-terminated string.
    check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) })?;
    Ok(())
}
