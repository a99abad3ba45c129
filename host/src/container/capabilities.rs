//! The capabilities a container's process gets: Docker's and containerd's
//! default set for root (images are built for it: nginx's master `chown`s
//! its temp directories, servers bind ports below 1024), minus what the
//! component drops, plus what it adds.
//!
//! The set goes into the bounding, permitted and effective sets only;
//! the inheritable and ambient sets stay empty, as in Docker and runc
//! since CVE-2022-24769, so a non-root user ends with no capabilities
//! after its `execve` (a file with file capabilities could still raise
//! its own, bounded by the bounding set, were `no_new_privs` not set).

#![forbid(unsafe_code)]

use std::collections::BTreeSet;

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, LinuxCapabilitiesBuilder};

/// Docker's default capabilities (moby `oci/caps/defaults.go`, the same
/// list containerd's CRI uses).
pub const DOCKER_DEFAULT: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The word `cap_drop` takes for "every capability".
pub const ALL: &str = "ALL";

/// A capability name as the user wrote it (`NET_ADMIN`, `cap_net_admin`)
/// in its canonical form (`NET_ADMIN`), or why it is none.
pub fn canonical(name: &str) -> Result<String, String> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if bare == ALL {
        return Ok(ALL.to_owned());
    }
    bare.parse::<Capability>()
        .map(|cap| cap.to_string())
        .map_err(|_| {
            format!("`{name}` is not a Linux capability (such as `NET_ADMIN` or `CAP_SYS_PTRACE`)")
        })
}

/// The capabilities root in the container holds: [`DOCKER_DEFAULT`] minus
/// `drop` (`ALL` drops every one), plus `add` (`ALL` adds every one),
/// as Docker combines `--cap-drop` and `--cap-add`. Names are canonical.
pub fn resolve(add: &[String], drop: &[String]) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = if drop.iter().any(|d| d == ALL) {
        BTreeSet::new()
    } else {
        DOCKER_DEFAULT
            .iter()
            .map(|c| (*c).to_owned())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    if add.iter().any(|a| a == ALL) {
        set.extend(every().into_iter().map(|c| c.to_string()));
    } else {
        set.extend(add.iter().cloned());
    }
    set
}

/// Every capability oci-spec knows.
fn every() -> Vec<Capability> {
    use Capability::*;
    vec![
        AuditControl,
        AuditRead,
        AuditWrite,
        BlockSuspend,
        Bpf,
        CheckpointRestore,
        Chown,
        DacOverride,
        DacReadSearch,
        Fowner,
        Fsetid,
        IpcLock,
        IpcOwner,
        Kill,
        Lease,
        LinuxImmutable,
        MacAdmin,
        MacOverride,
        Mknod,
        NetAdmin,
        NetBindService,
        NetBroadcast,
        NetRaw,
        Perfmon,
        Setgid,
        Setfcap,
        Setpcap,
        Setuid,
        SysAdmin,
        SysBoot,
        SysChroot,
        SysModule,
        SysNice,
        SysPacct,
        SysPtrace,
        SysRawio,
        SysResource,
        SysTime,
        SysTtyConfig,
        Syslog,
        WakeAlarm,
    ]
}

/// The process's capability sets for `held` (canonical names): bounding,
/// permitted and effective; inheritable and ambient empty.
pub fn process_sets(held: &BTreeSet<String>) -> anyhow::Result<LinuxCapabilities> {
    let caps: Capabilities = held
        .iter()
        .filter_map(|name| name.parse::<Capability>().ok())
        .collect();
    Ok(LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .permitted(caps.clone())
        .effective(caps)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| canonical(s).unwrap()).collect()
    }

    #[test]
    fn names_are_read_with_or_without_the_prefix_in_any_case() {
        assert_eq!(canonical("NET_ADMIN").unwrap(), "NET_ADMIN");
        assert_eq!(canonical("cap_sys_ptrace").unwrap(), "SYS_PTRACE");
        assert_eq!(canonical("all").unwrap(), "ALL");
        let err = canonical("NET_MAGIC").unwrap_err();
        assert!(err.contains("`NET_MAGIC`"), "{err}");
        for default in DOCKER_DEFAULT {
            assert_eq!(canonical(default).unwrap(), *default);
        }
    }

    #[test]
    fn root_gets_dockers_default_set_minus_drops_plus_adds() {
        let default = resolve(&[], &[]);
        assert_eq!(default.len(), 14);
        assert!(default.contains("CHOWN") && default.contains("NET_BIND_SERVICE"));
        let changed = resolve(&names(&["NET_ADMIN"]), &names(&["CHOWN", "NET_RAW"]));
        assert!(changed.contains("NET_ADMIN"));
        assert!(!changed.contains("CHOWN") && !changed.contains("NET_RAW"));
        assert_eq!(changed.len(), 13);
        let only = resolve(&names(&["NET_BIND_SERVICE"]), &names(&["ALL"]));
        assert_eq!(only.into_iter().collect::<Vec<_>>(), ["NET_BIND_SERVICE"]);
        assert!(resolve(&names(&["ALL"]), &[]).contains("SYS_ADMIN"));
    }

    #[test]
    fn nothing_is_inheritable_or_ambient() {
        let sets = process_sets(&resolve(&[], &[])).unwrap();
        assert_eq!(sets.effective().as_ref().unwrap().len(), 14);
        assert_eq!(sets.bounding(), sets.permitted());
        assert!(sets.inheritable().as_ref().is_none_or(|s| s.is_empty()));
        assert!(sets.ambient().as_ref().is_none_or(|s| s.is_empty()));
    }
}
