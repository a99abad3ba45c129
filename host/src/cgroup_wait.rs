//! The kernel's wait before a process moves between cgroups, taken early.
//!
//! Moving a process into a cgroup (writing its pid to `cgroup.procs`, as
//! libcontainer does for a container's first process) takes the kernel's
//! global `cgroup_threadgroup_rwsem` for writing. Unless the hierarchy is
//! mounted with `favordynmods`, that waits for an RCU grace period whenever
//! no other writer took the lock in the last grace period or so: 5–7 ms on
//! the bench machine (a write of a sleeping process's pid into one cgroup
//! v1 hierarchy after another: the first write 5.1–7.4 ms, the next eight
//! 0.01–0.18 ms). runc pays the same, once per container.
//!
//! Two processes move another into a cgroup shortly after they start, and
//! take that wait first, in the meantime: they write their own pid into
//! the cgroup they are already in (nothing moves, but the lock is taken),
//! so that the real move shortly after finds the grace period passed, or
//! waits only for what is left of it.
//!
//! - A standby container helper is executed at wasmhost's start and waits
//!   a few milliseconds for its first order; it takes the wait while the
//!   order is on the way.
//! - The containerd shim's daemon is forked by `start` a few milliseconds
//!   before containerd's `Create`, which puts the task's process in its
//!   cgroup; a thread of the daemon takes the wait meanwhile (a perf
//!   timeline of a task start on the bench machine under load: the first
//!   `cgroup.procs` write of Create took 15.8 ms, the writes after it
//!   0.01–0.05 ms).
//!
//! A process whose move comes later gains nothing and loses nothing: the
//! wait was off the start's path either way. Failures are ignored: this
//! only ever saves time.

#![forbid(unsafe_code)]

/// Takes the cgroup move's wait now (see the module), in the cgroup this
/// process is already in.
pub fn take_early() {
    let Ok(cgroups) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    if let Some(procs) = own_procs_file(&cgroups) {
        // The pid of this process, which is already in that cgroup.
        let _ = std::fs::write(procs, std::process::id().to_string());
    }
}

/// The `cgroup.procs` file of this process's cgroup in the first
/// hierarchy mounted where systemd and Docker mount them, from
/// `/proc/self/cgroup` (`N:controllers:/path`, or `0::/path` on v2).
fn own_procs_file(cgroups: &str) -> Option<std::path::PathBuf> {
    cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let mount = match controllers {
            "" => std::path::PathBuf::from("/sys/fs/cgroup"),
            named if named.starts_with("name=") => return None,
            controllers => std::path::Path::new("/sys/fs/cgroup").join(controllers),
        };
        let procs = mount
            .join(path.trim_start_matches('/'))
            .join("cgroup.procs");
        procs.exists().then_some(procs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_hierarchy_or_a_cgroup_not_mounted_here_is_skipped() {
        assert_eq!(own_procs_file("9:name=systemd:/\n"), None);
        assert_eq!(own_procs_file("7:pids:/wasmhost-no-such-cgroup\n"), None);
    }

    #[test]
    fn the_file_found_lists_this_process() {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let procs =
            own_procs_file(&cgroups).expect("a cgroup hierarchy mounted under /sys/fs/cgroup");
        let members = std::fs::read_to_string(&procs).unwrap();
        let me = std::process::id().to_string();
        assert!(
            members.lines().any(|pid| pid == me),
            "{} lists {members}",
            procs.display()
        );
    }
}
