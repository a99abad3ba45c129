//! The system calls of `container/` that std does not wrap, in one place:
//! the only `unsafe` code of the subsystem (every other file forbids it).
//!
//! - [`Syscall`]: what the subsystem's logic asks of the kernel (mounts,
//!   whether a process lives, network namespaces, sockets in them). Taken
//!   as `Arc<dyn Syscall>`, so that logic runs in unit tests against
//!   [`fake::Recording`], which records the calls and answers as told
//!   (and stays in the host's own network namespace, so a "container"
//!   port is a port on the host's loopback).
//! - Free functions for calls no fake could stand in for: the ones a
//!   freshly executed helper makes on itself ([`private_mount_namespace`],
//!   [`detach_stdin`], [`OneThread::fork`]) and the metadata a layer
//!   sets on the inodes it writes ([`set_xattr`],
//!   [`set_owner_and_mtime`]), which the layer tests check on real files.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

/// What `container/` asks of the kernel.
pub trait Syscall: Send + Sync + 'static {
    /// Mounts an overlay at `target` with these mount options
    /// (`lowerdir=…,upperdir=…,workdir=…`).
    fn mount_overlay(&self, target: &Path, options: &str) -> io::Result<()>;

    /// Bind-mounts `source` on `target` (an existing file or directory)
    /// and makes that mount read-only: writes through it fail with EROFS
    /// whatever the file's own permissions.
    fn bind_read_only(&self, source: &Path, target: &Path) -> io::Result<()>;

    /// Detaches the mount at `target` (lazily: it goes once unused).
    fn unmount(&self, target: &Path) -> io::Result<()>;

    /// Whether process `pid` exists (signal 0).
    fn process_exists(&self, pid: i32) -> bool;

    /// Moves the calling thread into a new network namespace.
    fn unshare_network(&self) -> io::Result<()>;

    /// Moves the calling thread into the network namespace `namespace`
    /// (an open `/proc/<pid>/ns/net`).
    fn join_network(&self, namespace: BorrowedFd<'_>) -> io::Result<()>;

    /// Brings `lo` up in the calling thread's network namespace.
    fn loopback_up(&self) -> io::Result<()>;

    /// The calling thread's id.
    fn thread_id(&self) -> i32;

    /// A non-blocking, close-on-exec TCP socket in the calling thread's
    /// network namespace.
    fn tcp_socket(&self) -> io::Result<OwnedFd>;
}

/// The real kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Linux;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
}

/// `Ok` for a zero return, else the OS error.
fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is null or a NUL-terminated string that
    // outlives the call.
    check(unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    })
}

impl Syscall for Linux {
    fn mount_overlay(&self, target: &Path, options: &str) -> io::Result<()> {
        let options = CString::new(options)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "options with a NUL byte"))?;
        mount(
            Some(c"overlay"),
            &c_path(target)?,
            Some(c"overlay"),
            0,
            Some(&options),
        )
    }

    fn bind_read_only(&self, source: &Path, target: &Path) -> io::Result<()> {
        let target = c_path(target)?;
        mount(Some(&c_path(source)?), &target, None, libc::MS_BIND, None)?;
        mount(
            None,
            &target,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        let target = c_path(target)?;
        // SAFETY: a NUL-terminated path; detaching only drops the mount.
        check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) })
    }

    fn process_exists(&self, pid: i32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        pid > 0 && unsafe { libc::kill(pid, 0) } == 0
    }

    fn unshare_network(&self) -> io::Result<()> {
        // SAFETY: unshare affects only the calling thread's namespaces.
        check(unsafe { libc::unshare(libc::CLONE_NEWNET) })
    }

    fn join_network(&self, namespace: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: setns on a descriptor borrowed for the call; affects
        // only the calling thread.
        check(unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) })
    }

    fn loopback_up(&self) -> io::Result<()> {
        // SAFETY: socket(2), then ioctls on an ifreq we own and
        // initialise; the descriptor is owned at once and closed on drop.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let socket = OwnedFd::from_raw_fd(fd);
            let mut req: libc::ifreq = std::mem::zeroed();
            for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
                *dst = *src as libc::c_char;
            }
            check(libc::ioctl(
                socket.as_raw_fd(),
                libc::SIOCGIFFLAGS,
                &mut req,
            ))?;
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            check(libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &req))
        }
    }

    fn thread_id(&self) -> i32 {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    }

    fn tcp_socket(&self) -> io::Result<OwnedFd> {
        // SAFETY: a plain socket(2) call; the descriptor is owned on
        // success.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and nothing else
        // owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// Moves this (single-threaded) process into a mount namespace of its
/// own, with every mount private, so mounts made next go with it.
pub fn private_mount_namespace() -> io::Result<()> {
    // SAFETY: unshare affects only this process, which has one thread.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) })?;
    mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
}

/// How many threads this process has (`/proc/self/status`'s `Threads:`).
fn threads() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no `Threads:` in /proc/self/status"))
}

/// Proof that this process had one thread when it was made
/// ([`one_thread`]), for a process that starts none afterwards (the
/// runtime helper). Neither `Send` nor `Sync`.
pub struct OneThread(std::marker::PhantomData<*const ()>);

/// [`OneThread`] if this process has one thread (checked while
/// `/proc/self` is still this process's: inside a container's mount
/// namespace it is the container's `/proc`, where this process has no
/// entry).
pub fn one_thread() -> io::Result<OneThread> {
    match threads()? {
        1 => Ok(OneThread(std::marker::PhantomData)),
        count => Err(io::Error::other(format!(
            "the process has {count} threads, not one"
        ))),
    }
}

impl OneThread {
    /// `fork` of this single-threaded process. The child of a
    /// multi-threaded one may only make async-signal-safe calls until it
    /// executes, and the runtime helper's child (`runtime::enter`)
    /// allocates, reads files and loads a seccomp filter first.
    pub fn fork(&self) -> io::Result<nix::unistd::ForkResult> {
        // SAFETY: the process had one thread when `self` was made and, as
        // its holder promises, has started none since: no lock or other
        // state can be held by a thread the child would not have.
        Ok(unsafe { nix::unistd::fork() }?)
    }
}

/// Stdin as a file of its own (close-on-exec), and `/dev/null` as fd 0,
/// so that what this process starts next does not inherit stdin.
pub fn detach_stdin() -> io::Result<std::fs::File> {
    // SAFETY: fcntl duplicates fd 0 into a new descriptor.
    let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by fcntl and nothing else owns it.
    let orders = unsafe { std::fs::File::from_raw_fd(fd) };
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: dup2 of a descriptor we own onto fd 0.
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(orders)
}

/// Sets extended attribute `name` of the open inode `fd` to `value`.
pub fn set_xattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: `fd` is open for the call's duration; `name` is
    // NUL-terminated and `value` points to `value.len()` bytes.
    check(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// Owner and both times (to `mtime` seconds) of the inode an `O_PATH`
/// descriptor `fd` names, following nothing: for inodes that cannot be
/// opened for I/O (a symlink, a whiteout device).
pub fn set_owner_and_mtime(
    fd: BorrowedFd<'_>,
    uid: u32,
    gid: u32,
    mtime: libc::time_t,
) -> io::Result<()> {
    let flags = libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW;
    // SAFETY: `fd` stays open while borrowed; the path is a NUL-terminated
    // empty string.
    check(unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, flags) })?;
    let time = libc::timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = [time, time];
    // SAFETY: as above; `times` holds the two timespecs utimensat reads.
    check(unsafe { libc::utimensat(fd.as_raw_fd(), c"".as_ptr(), times.as_ptr(), flags) })
}

/// The value of extended attribute `name` of `path` (not following a
/// final symlink), or `None` when it is not set. For tests.
#[cfg(test)]
pub fn get_xattr(path: &Path, name: &CStr) -> Option<Vec<u8>> {
    let path = c_path(path).ok()?;
    let mut value = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and `value` has room for
    // the length passed.
    let len = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    let len = usize::try_from(len).ok()?;
    value.truncate(len);
    Some(value)
}

/// A recording stand-in for the kernel, for unit tests.
#[cfg(test)]
pub mod fake {
    use std::collections::HashSet;
    use std::io;
    use std::os::fd::{BorrowedFd, OwnedFd};
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use super::{Linux, Syscall};

    /// One call, as the fake saw it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Call {
        /// [`Syscall::mount_overlay`].
        MountOverlay(PathBuf),
        /// [`Syscall::bind_read_only`].
        BindReadOnly(PathBuf, PathBuf),
        /// [`Syscall::unmount`].
        Unmount(PathBuf),
        /// [`Syscall::unshare_network`].
        UnshareNetwork,
        /// [`Syscall::join_network`].
        JoinNetwork,
        /// [`Syscall::loopback_up`].
        LoopbackUp,
    }

    /// Records every call; fails the mount calls it is told to; knows the
    /// processes it is told are alive. Network calls change nothing (the
    /// thread stays in the host's namespace); sockets are real ones.
    #[derive(Debug, Default)]
    pub struct Recording {
        calls: Mutex<Vec<Call>>,
        failing: Mutex<HashSet<&'static str>>,
        alive: Mutex<HashSet<i32>>,
    }

    impl Recording {
        /// The calls so far, in order.
        pub fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }

        /// Makes calls named `name` (`mount_overlay`, `bind_read_only`,
        /// `unmount`, `unshare_network`, `join_network`) fail with EPERM.
        pub fn fail(&self, name: &'static str) {
            self.failing.lock().unwrap().insert(name);
        }

        /// Makes `process_exists(pid)` true.
        pub fn alive(&self, pid: i32) {
            self.alive.lock().unwrap().insert(pid);
        }

        fn record(&self, name: &'static str, call: Call) -> io::Result<()> {
            self.calls.lock().unwrap().push(call);
            if self.failing.lock().unwrap().contains(name) {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok(())
        }
    }

    impl Syscall for Recording {
        fn mount_overlay(&self, target: &Path, _options: &str) -> io::Result<()> {
            self.record("mount_overlay", Call::MountOverlay(target.to_owned()))
        }

        fn bind_read_only(&self, source: &Path, target: &Path) -> io::Result<()> {
            self.record(
                "bind_read_only",
                Call::BindReadOnly(source.to_owned(), target.to_owned()),
            )
        }

        fn unmount(&self, target: &Path) -> io::Result<()> {
            self.record("unmount", Call::Unmount(target.to_owned()))
        }

        fn process_exists(&self, pid: i32) -> bool {
            self.alive.lock().unwrap().contains(&pid)
        }

        fn unshare_network(&self) -> io::Result<()> {
            self.record("unshare_network", Call::UnshareNetwork)
        }

        fn join_network(&self, _namespace: BorrowedFd<'_>) -> io::Result<()> {
            self.record("join_network", Call::JoinNetwork)
        }

        fn loopback_up(&self) -> io::Result<()> {
            self.record("loopback_up", Call::LoopbackUp)
        }

        fn thread_id(&self) -> i32 {
            Linux.thread_id()
        }

        fn tcp_socket(&self) -> io::Result<OwnedFd> {
            Linux.tcp_socket()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{Call, Recording};
    use super::*;

    #[test]
    fn the_fake_records_calls_and_fails_as_told() {
        let sys = Recording::default();
        sys.fail("unmount");
        sys.alive(42);
        assert!(sys.mount_overlay(Path::new("/a"), "lowerdir=/b").is_ok());
        assert!(sys.unmount(Path::new("/a")).is_err());
        assert!(sys.process_exists(42) && !sys.process_exists(43));
        assert_eq!(
            sys.calls(),
            [Call::MountOverlay("/a".into()), Call::Unmount("/a".into())]
        );
    }

    #[test]
    fn this_process_exists_and_pid_0_is_no_process() {
        assert!(Linux.process_exists(std::process::id() as i32));
        assert!(!Linux.process_exists(0));
    }

    #[test]
    fn sockets_are_non_blocking_and_close_on_exec() {
        let socket = Linux.tcp_socket().unwrap();
        // SAFETY: F_GETFL/F_GETFD on a descriptor we own.
        let (fl, fd) = unsafe {
            (
                libc::fcntl(socket.as_raw_fd(), libc::F_GETFL),
                libc::fcntl(socket.as_raw_fd(), libc::F_GETFD),
            )
        };
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        assert_ne!(fd & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn unmounting_what_is_not_mounted_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = Linux.unmount(dir.path()).unwrap_err();
        // EINVAL as root (not a mount point), EPERM otherwise.
        assert!(
            matches!(err.raw_os_error(), Some(libc::EINVAL | libc::EPERM)),
            "{err}"
        );
    }
}
