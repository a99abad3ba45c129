//! Descriptors wasmhost inherited are not passed on to its children.
//!
//! Whoever starts wasmhost may leave descriptors open without
//! close-on-exec: a shell's redirections, a supervisor's pipes, a lock
//! file held with `flock(1)`. wasmhost itself never uses them, but every
//! process it executes would inherit them — and a container's runtime
//! helper can outlive wasmhost by design (a SIGKILLed wasmhost's containers
//! are swept by the next start), holding the caller's lock or pipe open
//! until then. Marking them close-on-exec once, at start, before any
//! thread or child exists, keeps them to wasmhost. Descriptors wasmhost
//! opens are close-on-exec already (Rust opens everything so).

use std::os::fd::RawFd;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// Marks every inherited descriptor above stderr close-on-exec; returns
/// how many it marked. Descriptors that cannot be read or changed are
/// left as they are (nothing to do for them, and no reason to fail a start).
pub fn keep_to_ourselves() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    // Collected first: the directory's own descriptor is among them.
    let fds: Vec<RawFd> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    fds.into_iter().filter(|&fd| mark(fd)).count()
}

/// Sets close-on-exec on `fd`; whether it was inherited without it.
fn mark(fd: RawFd) -> bool {
    let Ok(flags) = fcntl(fd, FcntlArg::F_GETFD) else {
        // The directory's descriptor, closed by now.
        return false;
    };
    let flags = FdFlag::from_bits_truncate(flags);
    if flags.contains(FdFlag::FD_CLOEXEC) {
        return false;
    }
    fcntl(fd, FcntlArg::F_SETFD(flags | FdFlag::FD_CLOEXEC)).is_ok()
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd as _;

    use super::*;

    #[test]
    fn an_inherited_descriptor_is_marked_close_on_exec_and_stays_open() {
        let file = tempfile::tempfile().unwrap();
        let fd = file.as_raw_fd();
        // As a parent that leaves it open across exec would.
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
        assert!(keep_to_ourselves() >= 1);
        let flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD).unwrap());
        assert!(flags.contains(FdFlag::FD_CLOEXEC));
        // Still ours to use.
        assert!(file.metadata().is_ok());
        assert_eq!(keep_to_ourselves(), 0, "marked once, nothing left to mark");
    }
}
