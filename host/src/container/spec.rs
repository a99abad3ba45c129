//! The OCI runtime spec (`config.json`) of a container: the image's
//! process (Entrypoint, Cmd, Env, WorkingDir, User) under the host's
//! policy.
//!
//! The policy is runc's and containerd's defaults: new pid, mount, ipc,
//! uts, cgroup and network namespaces (the network one prepared by
//! wasmhost), `no_new_privs`, Docker's default capabilities for root
//! ([`capabilities`]: none for a non-root user), masked and read-only
//! `/proc` paths, Docker's seccomp profile ([`seccomp`]), an open-file
//! rlimit, memory, pids and CPU limits in the container's own cgroup, and
//! wasmhost's init as pid 1 unless turned off.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespace,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder,
    RootBuilder, Spec, UserBuilder,
};

use super::image::ImageConfig;
use super::{capabilities, seccomp};

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
    /// What root in the container holds (canonical names, from
    /// [`capabilities::resolve`]); the seccomp filter follows it.
    pub capabilities: BTreeSet<String>,
    /// Mount the root filesystem read-only (volumes keep their own mode).
    pub read_only_rootfs: bool,
    /// wasmhost's init on the host, to run as pid 1 in front of the
    /// image's command (mounted read-only at [`INIT_IN_CONTAINER`]);
    /// `None`: the image's command is pid 1.
    pub init: Option<PathBuf>,
}

/// Where wasmhost's init appears inside a container: a file at the root,
/// so no directory of the image's is touched.
pub const INIT_IN_CONTAINER: &str = "/.wasmhost-init";

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
            .readonly(policy.read_only_rootfs)
            .build()?,
    ));
    let process = spec
        .process_mut()
        .as_mut()
        .context("default spec has a process")?;
    let mut args = image.args()?;
    if policy.init.is_some() {
        args.insert(0, INIT_IN_CONTAINER.to_owned());
    }
    process.set_args(Some(args));
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
    // Root holds the component's set; a non-root user loses it at exec
    // (nothing inheritable or ambient).
    process.set_capabilities(Some(capabilities::process_sets(&policy.capabilities)?));

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
            // Every device denied first, as runc's and Docker's specs do;
            // the runtime then allows its own `/dev` (null, zero, tty,
            // ...). Without it the cgroup inherits "allow all", and root
            // holds CAP_MKNOD: a node made inside, or one an image's layer
            // carries, would open the host's disks.
            .devices(vec![LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()?])
            .build()?,
    ));
    linux.set_seccomp(Some(seccomp::filter(&policy.capabilities)?));
    add_volumes(&mut spec, &policy.volumes)?;
    if let Some(init) = &policy.init {
        add_init(&mut spec, init)?;
    }
    Ok(spec)
}

/// wasmhost's init, bind-mounted read-only (and not writable through
/// `/proc/1/exe` either: CVE-2019-5736).
fn add_init(spec: &mut Spec, init: &Path) -> Result<()> {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(
        oci_spec::runtime::MountBuilder::default()
            .destination(INIT_IN_CONTAINER)
            .typ("bind")
            .source(init)
            .options(
                ["bind", "ro", "nosuid", "nodev"]
                    .into_iter()
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            )
            .build()?,
    );
    spec.set_mounts(Some(mounts));
    Ok(())
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
            capabilities: capabilities::resolve(&[], &["CHOWN".to_owned()]),
            read_only_rootfs: true,
            init: Some("/run/wasmhost/exe/init".into()),
        };
        let spec = runtime_spec(&image, Path::new("/r"), &policy, "", "").unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        // wasmhost's init first, mounted read-only from the host.
        assert_eq!(
            json["process"]["args"],
            serde_json::json!([INIT_IN_CONTAINER, "/bin/httpd", "-f"])
        );
        let init = json["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == INIT_IN_CONTAINER)
            .unwrap()
            .clone();
        assert_eq!(init["source"], "/run/wasmhost/exe/init");
        assert!(init["options"].as_array().unwrap().contains(&"ro".into()));
        assert_eq!(json["root"]["readonly"], true);
        assert_eq!(
            json["linux"]["resources"]["devices"],
            serde_json::json!([{"allow": false, "access": "rwm"}])
        );
        assert_eq!(json["process"]["cwd"], "/www");
        assert!(json["process"]["env"]
            .as_array()
            .unwrap()
            .contains(&"A=2".into()));
        assert_eq!(json["process"]["noNewPrivileges"], true);
        // Docker's default set less the one dropped; nothing inheritable
        // or ambient.
        let capabilities = &json["process"]["capabilities"];
        for set in ["bounding", "permitted", "effective"] {
            let names: Vec<&str> = capabilities[set]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            assert_eq!(names.len(), 13, "{set}: {names:?}");
            assert!(names.contains(&"CAP_DAC_OVERRIDE"), "{set}: {names:?}");
            assert!(!names.contains(&"CAP_CHOWN"), "{set}: {names:?}");
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
            init: None,
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
        // Without the init, the image's command is pid 1.
        assert_eq!(
            json["process"]["args"],
            serde_json::json!(["/bin/httpd", "-f"])
        );
    }
}
