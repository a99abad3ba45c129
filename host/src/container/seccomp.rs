//! The seccomp filter of a container: Docker's default profile for
//! x86-64 (moby `profiles/seccomp/default.json`, as of moby 25, which took
//! io_uring out: its submissions bypass the filter), with its rules that
//! depend on the container's capabilities resolved against the set the
//! container gets.
//!
//! Everything not allowed fails with EPERM, as in Docker.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;

use anyhow::Result;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// What any container may call (Docker's unconditional list, x86-64
/// names only). Not on it, so failing with EPERM: io_uring, kernel
/// modules, kexec, mount and namespaces, reboot, swap, clock setting,
/// bpf, perf, keyrings, userfaultfd, open_by_handle_at, most personality
/// changes and the like.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_waitv",
    "futimesat",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_setup",
    "io_submit",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "modify_ldt",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "process_vm_readv",
    "process_vm_writev",
    "pselect6",
    "ptrace",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// Syscalls allowed only with a capability, as Docker's profile says.
const WITH_CAPABILITY: &[(&str, &[&str])] = &[
    ("SYS_CHROOT", &["chroot"]),
    ("DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "SYS_ADMIN",
        &[
            "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
            "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree",
            "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname",
            "setns", "syslog", "umount2", "unshare",
        ],
    ),
    ("SYS_BOOT", &["reboot"]),
    ("SYS_MODULE", &["delete_module", "init_module", "finit_module"]),
    ("SYS_PACCT", &["acct"]),
    ("SYS_PTRACE", &["kcmp", "pidfd_getfd", "process_madvise"]),
    ("SYS_RAWIO", &["iopl", "ioperm"]),
    ("SYS_TIME", &["settimeofday", "clock_settime"]),
    ("SYS_TTY_CONFIG", &["vhangup"]),
    ("SYS_NICE", &["get_mempolicy", "mbind", "set_mempolicy"]),
    ("SYSLOG", &["syslog"]),
    ("BPF", &["bpf"]),
    ("PERFMON", &["perf_event_open"]),
];

/// `personality(2)` personas Docker allows: PER_LINUX, PER_LINUX32,
/// UNAME26, PER_LINUX32|UNAME26, and the query (0xffffffff).
const PERSONAS: &[u64] = &[0, 8, 0x20000, 0x20008, 0xffff_ffff];

/// Namespace flags of `clone(2)`: without CAP_SYS_ADMIN a clone asking
/// for any of them is refused (CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC
/// | NEWUSER | NEWPID | NEWNET).
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// `AF_VSOCK`: the one socket family Docker's profile refuses.
const AF_VSOCK: u64 = 40;

/// The filter for a container whose root holds `capabilities` (canonical
/// names). It covers the x86-64 system call ABI only. Docker's profile
/// also lists x86 and x32, which triples the filter libseccomp compiles in
/// every container start: ~7.5 ms instead of ~2 ms here
/// (`bench/RESULTS.md`). wasmhost runs linux/amd64 images; a 32-bit (i386
/// or x32) system call from inside hits libseccomp's bad-architecture
/// action and kills the calling thread, which refuses more, not less.
pub fn filter(capabilities: &BTreeSet<String>) -> Result<LinuxSeccomp> {
    let mut allowed: BTreeSet<&str> = ALLOWED.iter().copied().collect();
    for (capability, calls) in WITH_CAPABILITY {
        if capabilities.contains(*capability) {
            allowed.extend(calls.iter().copied());
        }
    }
    let admin = capabilities.contains("SYS_ADMIN");
    let mut rules = vec![allow(allowed.into_iter().collect())?];
    for persona in PERSONAS {
        rules.push(allow_if("personality", 0, LinuxSeccompOperator::ScmpCmpEq, *persona, 0)?);
    }
    rules.push(allow_if("socket", 0, LinuxSeccompOperator::ScmpCmpNe, AF_VSOCK, 0)?);
    if !admin {
        // clone without namespace flags; clone3 (whose flags sit in memory
        // a filter cannot read) fails with ENOSYS, so libc falls back to
        // clone, as under Docker.
        rules.push(allow_if(
            "clone",
            0,
            LinuxSeccompOperator::ScmpCmpMaskedEq,
            CLONE_NAMESPACE_FLAGS,
            0,
        )?);
        rules.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone3".to_owned()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(libc::ENOSYS as u32)
                .build()?,
        );
    }
    Ok(LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(libc::EPERM as u32)
        .architectures(vec![Arch::ScmpArchX86_64])
        .syscalls(rules)
        .build()?)
}

fn allow(names: Vec<&str>) -> Result<LinuxSyscall> {
    Ok(LinuxSyscallBuilder::default()
        .names(names.into_iter().map(str::to_owned).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActAllow)
        .build()?)
}

/// Allows `name` when argument `index` compares to `value` by `op`
/// (`mask` for the masked comparison).
fn allow_if(
    name: &str,
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    expected: u64,
) -> Result<LinuxSyscall> {
    let arg = match op {
        LinuxSeccompOperator::ScmpCmpMaskedEq => LinuxSeccompArgBuilder::default()
            .index(index)
            .value(value)
            .value_two(expected)
            .op(op)
            .build()?,
        _ => LinuxSeccompArgBuilder::default()
            .index(index)
            .value(value)
            .op(op)
            .build()?,
    };
    Ok(LinuxSyscallBuilder::default()
        .names(vec![name.to_owned()])
        .action(LinuxSeccompAction::ScmpActAllow)
        .args(vec![arg])
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed_unconditionally(filter: &LinuxSeccomp) -> Vec<String> {
        filter.syscalls().as_ref().unwrap()[0].names().clone()
    }

    #[test]
    fn io_uring_is_refused_as_in_dockers_profile() {
        let filter = filter(&crate::container::capabilities::resolve(&[], &[])).unwrap();
        let names = allowed_unconditionally(&filter);
        assert!(names.iter().all(|n| !n.starts_with("io_uring")), "{names:?}");
        assert!(names.contains(&"read".to_owned()));
        // Docker's default set holds SYS_CHROOT, so chroot is allowed; it
        // holds no SYS_ADMIN, so mount and unshare are not.
        assert!(names.contains(&"chroot".to_owned()));
        assert!(!names.contains(&"mount".to_owned()) && !names.contains(&"unshare".to_owned()));
        let json = serde_json::to_value(&filter).unwrap();
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(json["architectures"], serde_json::json!(["SCMP_ARCH_X86_64"]));
        let clone3 = json["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|rule| rule["names"] == serde_json::json!(["clone3"]))
            .unwrap()
            .clone();
        assert_eq!(clone3["errnoRet"], libc::ENOSYS);
    }

    #[test]
    fn capabilities_added_bring_their_system_calls() {
        let mut caps = crate::container::capabilities::resolve(&[], &[]);
        caps.insert("SYS_ADMIN".to_owned());
        caps.remove("SYS_CHROOT");
        let filter = filter(&caps).unwrap();
        let names = allowed_unconditionally(&filter);
        assert!(names.contains(&"mount".to_owned()) && names.contains(&"clone3".to_owned()));
        assert!(!names.contains(&"chroot".to_owned()));
        let json = serde_json::to_value(&filter).unwrap();
        assert!(!json.to_string().contains("\"errnoRet\":38"), "{json}");
    }
}
