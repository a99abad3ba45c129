//! A bundle: what one container runs from, built before any runtime sees
//! it. An id (`wasmhost-<host pid>-<component>-<n>`), a directory under
//! the state directory holding its root ([`ContainerRoot`], an overlay of
//! the image's layers) and its `config.json` (the runtime spec under the
//! component's settings), and, unless the container makes its own in a
//! user namespace, the network namespace it joins.
//!
//! Dropped, a bundle takes its root and namespace with it.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::image::PreparedImage;
use super::netns::NetNs;
use super::rootfs::ContainerRoot;
use super::runtime::ID_PREFIX;
use super::settings::Settings;
use super::spec::{self, IdMap, Policy};
use super::sys::Syscall;

/// Where container roots and bundles live: under `/run` (a tmpfs cleared
/// at boot), so nothing outlives a reboot.
pub const CONTAINERS_DIR: &str = "/run/wasmhost/containers";

/// Containers this process made bundles for, for unique ids: per process,
/// not per backend, because a reloaded app's backend runs beside the
/// previous version's, which has a component of the same name.
static BUNDLES_MADE: AtomicU64 = AtomicU64::new(0);

/// What a container runs from.
pub struct Bundle {
    /// The container id.
    pub id: String,
    /// The bundle directory (`config.json`, `rootfs/`).
    pub dir: PathBuf,
    /// Its root filesystem.
    pub root: ContainerRoot,
    /// The network namespace it joins; `None` in a user namespace, where
    /// the container makes its own (see [`Bundle::build`]).
    pub netns: Option<NetNs>,
}

/// Everything a bundle is built from.
pub struct Recipe<'a> {
    /// The component id (hostname, and part of the container id).
    pub component: &'a str,
    /// The unpacked image.
    pub image: &'a PreparedImage,
    /// The component's settings (limits, environment, volumes).
    pub settings: &'a Settings,
    /// Where bundles go ([`CONTAINERS_DIR`] outside tests).
    pub state_dir: &'a Path,
    /// Mounts and namespaces.
    pub sys: &'a Arc<dyn Syscall>,
}

impl Bundle {
    /// Root, network namespace and `config.json` of the next container of
    /// `recipe.component`.
    pub fn build(recipe: &Recipe<'_>) -> Result<Self> {
        let id = container_id(recipe.component);
        let dir = recipe.state_dir.join(&id);
        let image = recipe.image;
        let user_namespace = recipe.settings.user_namespace.then_some(IdMap::DEFAULT);
        // The root (an overlay mount) and the network namespace (a thread,
        // `unshare`, `lo` up) do not depend on each other: made side by
        // side, a cold start waits for the longer of the two only.
        let (root, netns) = std::thread::scope(|scope| {
            let netns = scope.spawn(|| network(recipe, &id, user_namespace));
            let root = ContainerRoot::create(
                &dir,
                &image.lower,
                &image.store,
                &image.layers,
                recipe.sys.clone(),
            );
            let netns = netns
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the network namespace's set-up panicked")));
            (root, netns)
        });
        let (root, netns) = (root?, netns?);
        if let Some(ids) = user_namespace {
            // The container's root must own its root directory (through
            // the overlay: the upper directory), or it cannot even create
            // its mount points. The image's own files keep host ids: they
            // show as `nobody` inside and stay readable, not writable.
            std::os::unix::fs::chown(root.path(), Some(ids.host), Some(ids.host))
                .context("cannot hand the container's root to its user namespace")?;
        }
        let netns = match netns {
            Some(mut netns) if recipe.settings.outbound => {
                // Its resolver needs to know what the image's resolv.conf
                // names (`outbound::dns`): opened once the root is there.
                netns
                    .open_outbound(
                        &id,
                        recipe.settings,
                        None,
                        root.read("etc/resolv.conf").as_deref(),
                    )
                    .context("outbound network")?;
                Some(netns)
            }
            netns => netns,
        };
        let init = match recipe.settings.init {
            true => Some(super::init::installed()?),
            false => None,
        };
        let policy = policy(recipe, &id, user_namespace, netns.as_ref(), init);
        let passwd = root.read("etc/passwd").unwrap_or_default();
        let group = root.read("etc/group").unwrap_or_default();
        let spec = spec::runtime_spec(&image.config, &root.path(), &policy, &passwd, &group)?;
        spec.save(dir.join("config.json"))
            .context("cannot write the bundle's config.json")?;
        Ok(Self {
            id,
            dir,
            root,
            netns,
        })
    }
}

/// The container's network namespace (its way out is opened once the root
/// is there); `None` in a user namespace: there the container makes its
/// own (a runtime enters the user namespace first, and then may not join
/// one the host owns); wasmhost adopts it once the container runs, and
/// opens its way out then (`lifecycle::start`).
fn network(recipe: &Recipe<'_>, id: &str, user_namespace: Option<IdMap>) -> Result<Option<NetNs>> {
    match user_namespace {
        None => NetNs::create(id, recipe.sys.clone()).map(Some),
        Some(_) => Ok(None),
    }
}

/// The host's policy for this container: the component's limits and
/// additions, its place in the cgroup tree, its namespaces.
fn policy(
    recipe: &Recipe<'_>,
    id: &str,
    user_namespace: Option<IdMap>,
    netns: Option<&NetNs>,
    init: Option<PathBuf>,
) -> Policy {
    let settings = recipe.settings;
    Policy {
        // Bytes that fit no i64 are no limit anyone means; the cgroup
        // takes the largest it can.
        memory_limit: i64::try_from(settings.memory_limit).unwrap_or(i64::MAX),
        pids_limit: settings.pids_limit,
        cpus: settings.cpus.as_f64(),
        network_namespace: netns.map(|netns| netns.path().to_owned()),
        user_namespace,
        cgroups_path: format!("/wasmhost/{id}"),
        hostname: sanitize(recipe.component),
        environment: settings.environment.clone(),
        volumes: settings.volumes.clone(),
        capabilities: super::capabilities::resolve(&settings.cap_add, &settings.cap_drop),
        read_only_rootfs: settings.read_only_rootfs,
        init,
    }
}

/// A fresh container id for `component`: `wasmhost-<host pid>-<component,
/// sanitised>-<n>`. The pid says which wasmhost made it ([`creator`]).
pub fn container_id(component: &str) -> String {
    let n = BUNDLES_MADE.fetch_add(1, Ordering::SeqCst);
    format!(
        "{ID_PREFIX}{}-{}-{n}",
        std::process::id(),
        sanitize(component)
    )
}

/// The pid of the wasmhost that made container `id`, if it is one of
/// wasmhost's.
pub fn creator(id: &str) -> Option<i32> {
    id.strip_prefix(ID_PREFIX)?.split('-').next()?.parse().ok()
}

/// A component id as a name usable in container ids and hostnames.
fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_creator_and_component_and_never_repeat() {
        let a = container_id("Shop Cart");
        let b = container_id("Shop Cart");
        let prefix = format!("wasmhost-{}-shop-cart-", std::process::id());
        assert!(a.starts_with(&prefix) && b.starts_with(&prefix), "{a}");
        assert_ne!(a, b);
        assert_eq!(creator(&a), Some(std::process::id() as i32));
        assert_eq!(creator("someone-elses"), None);
        assert_eq!(creator("wasmhost-x-web-0"), None);
    }

    #[test]
    fn the_policy_carries_the_settings() {
        use super::super::image::ImageConfig;
        use super::super::settings::Cpus;
        let work = tempfile::tempdir().unwrap();
        let image = PreparedImage {
            config: ImageConfig::default(),
            lower: Vec::new(),
            layers: Vec::new(),
            store: crate::oci::store::ContentStore::at(work.path()),
        };
        let settings = Settings {
            memory_limit: 64 << 20,
            cpus: Cpus(500),
            environment: vec![("A".into(), "1".into())],
            cap_drop: vec!["NET_RAW".into()],
            read_only_rootfs: true,
            ..Settings::default()
        };
        let sys: Arc<dyn Syscall> = Arc::new(super::super::sys::fake::Recording::default());
        let recipe = Recipe {
            component: "web_1",
            image: &image,
            settings: &settings,
            state_dir: work.path(),
            sys: &sys,
        };
        let policy = policy(&recipe, "wasmhost-1-web-1-0", None, None, None);
        assert_eq!(policy.memory_limit, 64 << 20);
        assert_eq!(policy.cpus, 0.5);
        assert_eq!(policy.pids_limit, settings.pids_limit);
        assert_eq!(policy.hostname, "web-1");
        assert_eq!(policy.cgroups_path, "/wasmhost/wasmhost-1-web-1-0");
        assert_eq!(policy.environment, settings.environment);
        assert_eq!(policy.capabilities.len(), 13);
        assert!(!policy.capabilities.contains("NET_RAW"));
        assert!(policy.read_only_rootfs);
    }
}
