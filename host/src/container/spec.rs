//! The OCI runtime spec (`config.json`) of a container: the image's
//! process (Entrypoint, Cmd, Env, WorkingDir, User) under the host's
//! policy.
//!
//! The policy is runc's and containerd's defaults: new pid, mount, ipc,
//! uts, cgroup and network namespaces (the network one prepared by
//! wasmhost, loopback only), `no_new_privs`, the small capability set
//! (AUDIT_WRITE, KILL, NET_BIND_SERVICE), masked and read-only `/proc`
//! paths, an allowlist seccomp filter (everything else fails with EPERM;
//! x86-64 system calls only),
//! an open-file rlimit, and memory, pids and CPU limits in the
//! container's own cgroup.

#![forbid(unsafe_code)]

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxCapabilities, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, LinuxSeccomp, LinuxSeccompAction,
    LinuxSeccompBuilder, LinuxSyscallBuilder, RootBuilder, Spec, UserBuilder,
};

use super::image::ImageConfig;

/// Limits and placement of one container.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Memory limit in bytes (cgroup memory.limit).
    pub memory_limit: i64,
    /// Most processes and threads at once.
    pub pids_limit: i64,
    /// CPU share, in CPUs (0.5 = half a core), via CFS quota.
    pub cpus: f64,
    /// The network namespace to join; `None`: a new one the runtime makes
    /// (needed with a user namespace, which must own it).
    pub network_namespace: Option<std::path::PathBuf>,
    /// Run in a user namespace with these ids; `None`: as host root.
    pub user_namespace: Option<IdMap>,
    /// cgroup path, relative to each hierarchy's root.
    pub cgroups_path: String,
    /// The container's hostname.
    pub hostname: String,
    /// Environment the deployment adds (after the image's own).
    pub environment: Vec<(String, String)>,
    /// Host directories bind-mounted into the container.
    pub volumes: Vec<crate::volume::Volume>,
}

/// A user namespace's ids: container ids `0..size` are host ids
/// `host..host + size`, for users and groups alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    /// The host id of the container's root.
    pub host: u32,
    /// How many ids are mapped.
    pub size: u32,
}

impl IdMap {
    /// 65536 ids from host id 1,000,000,000: far above the ranges
    /// `useradd` hands out in `/etc/subuid` (100000 onwards, 65536 per
    /// user), so a container's users are nobody else's. Every container of
    /// wasmhost shares it for now (one slice per container would also
    /// keep containers apart from each other).
    pub const DEFAULT: IdMap = IdMap {
        host: 1_000_000_000,
        size: 65_536,
    };
}

/// The runtime spec for running `image` with root `rootfs` under `policy`.
/// `passwd`/`group` are the image's `/etc/passwd` and `/etc/group`, read
/// safely by the caller, for a `User` given by name.
pub fn runtime_spec(
    image: &ImageConfig,
    rootfs: &Path,
    policy: &Policy,
    passwd: &str,
    group: &str,
) -> Result<Spec> {
    let mut spec = Spec::default();
    spec.set_hostname(Some(policy.hostname.clone()));
    spec.set_root(Some(
        RootBuilder::default()
            .path(rootfs)
            .readonly(false)
            .build()?,
    ));
    let process = spec
        .process_mut()
        .as_mut()
        .context("default spec has a process")?;
    process.set_args(Some(image.args()?));
    process.set_env(Some(environment(image, &policy.environment)));
    process.set_cwd(
        image
            .config
            .working_dir
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/".to_owned())
            .into(),
    );
    let (uid, gid) = user(image.config.user.as_deref().unwrap_or(""), passwd, group)?;
    process.set_user(UserBuilder::default().uid(uid).gid(gid).build()?);
    process.set_no_new_privileges(Some(true));
    process.set_capabilities(Some(capabilities()?));

    let linux = spec
        .linux_mut()
        .as_mut()
        .context("default spec has linux")?;
    let namespaces: Vec<LinuxNamespace> = oci_spec::runtime::get_default_namespaces()
        .into_iter()
        .map(|ns| match &policy.network_namespace {
            Some(path) if ns.typ() == LinuxNamespaceType::Network => {
                LinuxNamespaceBuilder::default()
                    .typ(LinuxNamespaceType::Network)
                    .path(path.clone())
                    .build()
            }
            _ => Ok(ns),
        })
        .chain(policy.user_namespace.map(|_| {
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()
        }))
        .collect::<Result<_, _>>()?;
    linux.set_namespaces(Some(namespaces));
    if let Some(map) = policy.user_namespace {
        let ids = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(map.host)
            .size(map.size)
            .build()?;
        linux.set_uid_mappings(Some(vec![ids]));
        linux.set_gid_mappings(Some(vec![ids]));
    }
    linux.set_cgroups_path(Some(policy.cgroups_path.clone().into()));
    let period: u64 = 100_000;
    linux.set_resources(Some(
        LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(policy.memory_limit)
                    .swap(policy.memory_limit)
                    .build()?,
            )
            .pids(
                LinuxPidsBuilder::default()
                    .limit(policy.pids_limit)
                    .build()?,
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .period(period)
                    .quota((policy.cpus * period as f64) as i64)
                    .build()?,
            )
            .build()?,
    ));
    linux.set_seccomp(Some(seccomp()?));
    add_volumes(&mut spec, &policy.volumes)?;
    Ok(spec)
}

/// Bind mounts for the volumes, without setuid or device files, after the
/// runtime's default mounts.
fn add_volumes(spec: &mut Spec, volumes: &[crate::volume::Volume]) -> Result<()> {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for volume in volumes {
        // A read-only remount applies to one mount only, so a read-only
        // volume does not bring the host directory's submounts along
        // (they would stay writable); a read-write one does.
        let options = if volume.read_only {
            ["bind", "nosuid", "nodev", "ro"]
        } else {
            ["rbind", "nosuid", "nodev", "rw"]
        };
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination(&volume.container)
                .typ("bind")
                .source(&volume.host)
                .options(options.into_iter().map(str::to_owned).collect::<Vec<_>>())
                .build()?,
        );
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// The image's `Env`, a default `PATH` if it has none, then the
/// deployment's additions (which win).
fn environment(image: &ImageConfig, extra: &[(String, String)]) -> Vec<String> {
    let mut env: Vec<String> = image.config.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned());
    }
    for (name, value) in extra {
        env.retain(|e| e.split('=').next() != Some(name.as_str()));
        env.push(format!("{name}={value}"));
    }
    env
}

/// `User` as uid and gid: numbers, or names looked up in the image's own
/// `/etc/passwd` and `/etc/group`.
pub fn user(spec: &str, passwd: &str, group: &str) -> Result<(u32, u32)> {
    if spec.is_empty() {
        return Ok((0, 0));
    }
    let (user, group_name) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = |file: &str, name: &str| -> Option<Vec<String>> {
        file.lines()
            .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
            .find(|fields| fields.first().map(String::as_str) == Some(name))
    };
    let (uid, primary_gid) = match user.parse::<u32>() {
        Ok(uid) => {
            let gid = passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.get(2).and_then(|u| u.parse::<u32>().ok()) == Some(uid))
                .and_then(|f| f.get(3).and_then(|g| g.parse().ok()))
                .unwrap_or(0);
            (uid, gid)
        }
        Err(_) => match entry(passwd, user) {
            Some(fields) => (
                fields
                    .get(2)
                    .and_then(|u| u.parse().ok())
                    .context("bad uid in /etc/passwd")?,
                fields.get(3).and_then(|g| g.parse().ok()).unwrap_or(0),
            ),
            None => bail!("the image's user `{user}` is not in its /etc/passwd"),
        },
    };
    let gid = match group_name {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => match entry(group, g) {
                Some(fields) => fields
                    .get(2)
                    .and_then(|id| id.parse().ok())
                    .context("bad gid in /etc/group")?,
                None => bail!("the image's group `{g}` is not in its /etc/group"),
            },
        },
    };
    Ok((uid, gid))
}

/// runc's default capabilities: AUDIT_WRITE, KILL and NET_BIND_SERVICE
/// in the bounding, permitted and effective sets (root inside holds them),
/// none inheritable or ambient, so an image's non-root user holds none.
/// oci-spec's default also fills the inheritable and ambient sets, which
/// runc and Docker stopped doing (CVE-2022-29162, CVE-2022-24769).
fn capabilities() -> Result<LinuxCapabilities> {
    let three: Capabilities = [
        Capability::AuditWrite,
        Capability::Kill,
        Capability::NetBindService,
    ]
    .into_iter()
    .collect();
    Ok(LinuxCapabilitiesBuilder::default()
        .bounding(three.clone())
        .permitted(three.clone())
        .effective(three)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()?)
}

/// An allowlist in the spirit of Docker's default profile: what ordinary
/// programs (glibc, musl, Go, busybox, JVMs) call. Not on it, so failing
/// with EPERM: kernel modules, kexec, mount and namespaces, reboot, swap,
/// clock setting, bpf, perf, keyrings, ptrace, userfaultfd,
/// open_by_handle_at, personality changes and the like.
const ALLOWED_SYSCALLS: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "clone",
    "clone3",
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
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
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
    "get_robust_list",
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
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "kill",
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
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
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
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "pselect6",
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
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
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
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_tid_address",
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
    "socket",
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
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
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
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// The filter covers the x86-64 system call ABI only. Docker's profile
/// also lists x86 and x32, which triples the filter libseccomp compiles in
/// every container start: ~7.5 ms instead of ~2 ms here
/// (`bench/RESULTS.md`). wasmhost runs linux/amd64 images; a 32-bit (i386
/// or x32) system call from inside hits libseccomp's bad-architecture
/// action and kills the calling thread, which refuses more, not less.
fn seccomp() -> Result<LinuxSeccomp> {
    Ok(LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(libc::EPERM as u32)
        .architectures(vec![Arch::ScmpArchX86_64])
        .syscalls(vec![LinuxSyscallBuilder::default()
            .names(
                ALLOWED_SYSCALLS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            )
            .action(LinuxSeccompAction::ScmpActAllow)
            .build()?])
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwww-data:x:34:\nstaff:x:50:\n";

    #[test]
    fn users_by_number_and_by_name() {
        assert_eq!(user("", PASSWD, GROUP).unwrap(), (0, 0));
        assert_eq!(user("33", PASSWD, GROUP).unwrap(), (33, 34));
        assert_eq!(user("www", PASSWD, GROUP).unwrap(), (33, 34));
        assert_eq!(user("www:staff", PASSWD, GROUP).unwrap(), (33, 50));
        assert_eq!(user("1000:1000", PASSWD, GROUP).unwrap(), (1000, 1000));
        assert!(user("nobody", PASSWD, GROUP).is_err());
    }

    #[test]
    fn the_spec_joins_our_network_namespace_and_sets_limits() {
        let image = ImageConfig::parse(
            br#"{"os":"linux","config":{"Cmd":["/bin/httpd","-f"],"Env":["A=1"],"WorkingDir":"/www"},
                "rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let policy = Policy {
            memory_limit: 64 << 20,
            pids_limit: 64,
            cpus: 0.5,
            network_namespace: Some("/proc/1/task/2/ns/net".into()),
            user_namespace: None,
            cgroups_path: "/wasmhost/test".into(),
            hostname: "legacy".into(),
            environment: vec![("A".into(), "2".into())],
            volumes: vec![crate::volume::Volume {
                host: "/srv/data".into(),
                container: "/data".into(),
                read_only: true,
            }],
        };
        let spec = runtime_spec(&image, Path::new("/r"), &policy, "", "").unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json["process"]["args"],
            serde_json::json!(["/bin/httpd", "-f"])
        );
        assert_eq!(json["process"]["cwd"], "/www");
        assert!(json["process"]["env"]
            .as_array()
            .unwrap()
            .contains(&"A=2".into()));
        assert_eq!(json["process"]["noNewPrivileges"], true);
        let capabilities = &json["process"]["capabilities"];
        for set in ["bounding", "permitted", "effective"] {
            let mut names: Vec<&str> = capabilities[set]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            names.sort_unstable();
            assert_eq!(
                names,
                ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "{set}"
            );
        }
        for set in ["inheritable", "ambient"] {
            assert!(
                capabilities[set].as_array().is_none_or(Vec::is_empty),
                "{set}: {capabilities}"
            );
        }
        let net = json["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["type"] == "network")
            .unwrap()
            .clone();
        assert_eq!(net["path"], "/proc/1/task/2/ns/net");
        assert_eq!(json["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(json["linux"]["resources"]["pids"]["limit"], 64);
        assert_eq!(json["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(json["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(
            json["linux"]["seccomp"]["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64"])
        );
        let volume = json["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/data")
            .unwrap()
            .clone();
        assert_eq!(volume["source"], "/srv/data");
        assert_eq!(
            volume["options"],
            serde_json::json!(["bind", "nosuid", "nodev", "ro"])
        );
        assert!(json["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&"/proc/kcore".into()));
        assert!(json["linux"]["uidMappings"].is_null());

        // In a user namespace: mapped ids, and a network namespace of its
        // own (no path to join).
        let policy = Policy {
            network_namespace: None,
            user_namespace: Some(IdMap::DEFAULT),
            ..policy
        };
        let json =
            serde_json::to_value(runtime_spec(&image, Path::new("/r"), &policy, "", "").unwrap())
                .unwrap();
        let namespaces = json["linux"]["namespaces"].as_array().unwrap();
        assert!(namespaces.iter().any(|n| n["type"] == "user"));
        let net = namespaces.iter().find(|n| n["type"] == "network").unwrap();
        assert!(net["path"].is_null(), "{net}");
        let ids =
            serde_json::json!([{"containerID": 0, "hostID": 1_000_000_000u32, "size": 65536}]);
        assert_eq!(json["linux"]["uidMappings"], ids);
        assert_eq!(json["linux"]["gidMappings"], ids);
    }
}
