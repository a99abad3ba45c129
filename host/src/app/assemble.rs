//! From a checked manifest to the backend that serves it: every routed
//! component loaded and linked before anything listens, all on one engine
//! (one instance pool, one epoch ticker), behind a [`Dispatch`].
//!
//! What this first version serves: `[[trigger.http]]` routes (exact,
//! wildcard, `:name`, private) to components with a local `source` (a
//! `{ url, digest }` or `{ registry, package, version }` one is resolved to
//! its verified local copy first, see [`super::sources`]) and the
//! default executor or Spin's `wagi` one, with their `environment`, `files`, `variables`,
//! `key_value_stores` (the `default` store) and `allowed_outbound_hosts`
//! (empty: no outgoing HTTP at all, as in Spin). What is not supported yet
//! (nothing at the moment) is refused
//! at start-up by name, so an app never runs with a capability silently
//! missing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use super::files;
use super::manifest::{Component, Executor, LoadedManifest, Source, WAGI_DEFAULT_ENTRYPOINT};
use super::runtime_config::{KvStoreConfig, RuntimeConfig, SqliteConfig};
use super::variables::{self, Provided};
use crate::backend::Backend;
use crate::container::backend::ContainerBackend;
use crate::container::image::PreparedImage;
use crate::container::settings::Settings;
use crate::dispatch::{Choice, Dispatch, Rollout, Split, Target};
use crate::mirror::Mirror;
use crate::oci::store::ContentStore;
use crate::rollout::Rollouts;
use crate::router::Route;
use crate::services::chaining::AppHandle;
use crate::services::client_tls::{self, ComponentTls, TlsConfig};
use crate::services::key_value::{KeyValue, KvAccess, KvBackend, DEFAULT_STORE, STATE_DIR};
use crate::services::key_value_redis::RedisStore;
use crate::services::llm::{LlmAccess, RemoteLlm};
use crate::services::outbound::AllowList;
use crate::services::sqlite::{Database, SqliteAccess, DEFAULT_DATABASE, DEFAULT_FILE};
use crate::upstream::UpstreamBackend;
use crate::wasm::engine::Runtime;
use crate::wasm::load::{self, ComponentBytes, HandlerKind};
use crate::wasm::state::Outbound;
use crate::wasm::wagi::{self, WagiBackend};
use crate::wasm::{ComponentBackend, ComponentOptions};

/// Loads every component the manifest routes to, on one shared runtime,
/// and builds the dispatcher.
pub async fn assemble(
    loaded: &LoadedManifest,
    options: &ComponentOptions,
    timeout: Duration,
    provided: &Provided,
    runtime_config: &RuntimeConfig,
    store: &ContentStore,
    metrics: Arc<crate::metrics::Metrics>,
    rollouts: &Rollouts,
) -> Result<Arc<Dispatch>> {
    let started = Instant::now();
    let manifest = &loaded.manifest;
    let app_variables = variables::resolve_app(&manifest.variables, provided)?;
    // How components reach their own app (`http://self`); bound below.
    let app_handle = AppHandle::default();
    // Opened on first use: an app without key-value leaves no state behind.
    let mut key_value = KvStores {
        app_dir: &loaded.dir,
        config: runtime_config,
        open: BTreeMap::new(),
        files: BTreeMap::new(),
    };
    let mut sqlite = SqliteDatabases {
        app_dir: &loaded.dir,
        config: runtime_config,
        open: BTreeMap::new(),
    };
    if !runtime_config.key_value_seeds.is_empty() {
        let db = key_value.database("--key-value", DEFAULT_STORE)?;
        for (key, value) in &runtime_config.key_value_seeds {
            db.set(DEFAULT_STORE, key, value.as_bytes())
                .await
                .map_err(|e| anyhow::anyhow!("--key-value `{key}`: {e:?}"))?;
        }
    }
    if !runtime_config.sqlite_statements.is_empty() {
        sqlite.run_statements(&runtime_config.sqlite_statements)?;
    }
    // Each component's outbound TLS (`[[client_tls]]`), its ids checked.
    let mut client_tls = client_tls(manifest, runtime_config)?;
    // One pool of outbound connections for the whole app.
    let redis = Arc::new(crate::wasm::spin_host::RedisPool::default());
    let postgres = Arc::new(crate::services::postgres::PgPool::default());
    let mysql = Arc::new(crate::services::mysql::MyPool::default());
    let llm_remote = runtime_config
        .llm
        .as_ref()
        .map(|config| Arc::new(RemoteLlm::new(config)));
    // First read and check every routed component, so the runtime can be
    // built once with what they all need.
    let mut prepared: BTreeMap<&str, (PathBuf, ComponentBytes, ComponentOptions)> = BTreeMap::new();
    let mut wagi: BTreeMap<&str, (PathBuf, Vec<u8>, ComponentOptions, Option<String>)> =
        BTreeMap::new();
    let mut containers: BTreeMap<&str, &Component> = BTreeMap::new();
    let mut upstreams: BTreeMap<&str, Arc<dyn Backend>> = BTreeMap::new();
    // A trigger's component, and every component its `split` names.
    let routed = manifest.http_triggers.iter().flat_map(|trigger| {
        std::iter::once(trigger.component.as_str())
            .chain(trigger.split.iter().map(|(id, _)| id.as_str()))
            .chain(trigger.mirror.iter().map(|m| m.to.as_str()))
            .chain(
                trigger
                    .rollout
                    .iter()
                    .flat_map(|r| [r.from.as_str(), r.to.as_str()]),
            )
            .map(move |id| (trigger, id))
    });
    for (trigger, id) in routed {
        if prepared.contains_key(id) || wagi.contains_key(id) || containers.contains_key(id) {
            continue;
        }
        let component = manifest
            .components
            .get(id)
            .with_context(|| format!("trigger `{}` names no component `{id}`", trigger.id))?;
        if let Source::Container(_) = component.source {
            containers.insert(id, component);
            continue;
        }
        if let Source::Upstream(address) = &component.source {
            let backend = upstream_backend(id, address, component, &app_variables)?;
            tracing::info!(component = %id, "component `{id}` is the service at {}", address.url);
            upstreams.insert(id, Arc::new(backend));
            continue;
        }
        let (path, mut component_options) = plan(
            id,
            component,
            &loaded.dir,
            options,
            &app_variables,
            &mut key_value,
            &mut sqlite,
        )?;
        component_options.instance.client_tls = client_tls.remove(id).unwrap_or_default();
        component_options.instance.redis = redis.clone();
        component_options.instance.postgres = postgres.clone();
        component_options.instance.mysql = mysql.clone();
        component_options.instance.llm = LlmAccess {
            models: Arc::new(component.ai_models.clone()),
            remote: llm_remote.clone(),
        };
        component_options.instance.app = Some(app_handle.clone());
        if let Executor::Wagi { argv, entrypoint } = &trigger.executor {
            if entrypoint
                .as_deref()
                .is_some_and(|e| e != WAGI_DEFAULT_ENTRYPOINT)
            {
                bail!(
                    "trigger `{}`: the wagi `entrypoint` is deprecated and only `{WAGI_DEFAULT_ENTRYPOINT}` \
                     runs (as in Spin 3); remove it",
                    trigger.id
                );
            }
            let (bytes, _) = wagi::read_command(&path)
                .with_context(|| format!("cannot load WAGI component `{id}`"))?;
            wagi.insert(id, (path, bytes, component_options, argv.clone()));
            continue;
        }
        let bytes =
            load::read_component(&path).with_context(|| format!("cannot load component `{id}`"))?;
        prepared.insert(id, (path, bytes, component_options));
    }
    let concurrency = prepared
        .values()
        .any(|(_, bytes, _)| bytes.kind == HandlerKind::P3);
    let runtime = Runtime::new(&options.engine_settings(concurrency))?;
    let mut backends: BTreeMap<&str, Arc<dyn Backend>> = upstreams;
    for (id, (path, bytes, component_options)) in prepared {
        let (backend, report) = off_thread({
            let (runtime, id, path) = (runtime.clone(), id.to_owned(), path.clone());
            move || {
                ComponentBackend::on(
                    &runtime,
                    &id,
                    &path,
                    bytes,
                    component_options,
                    timeout,
                    Instant::now(),
                )
            }
        })
        .await
        .with_context(|| format!("cannot load component `{id}`"))?;
        tracing::info!(component = %id, "loaded `{}` {report}", path.display());
        backends.insert(id, Arc::new(backend));
    }
    for (id, component) in containers {
        let backend = container_backend(id, component, store, &app_variables)
            .await
            .with_context(|| format!("cannot load container component `{id}`"))?;
        backends.insert(id, Arc::new(backend));
    }
    for (id, (path, bytes, component_options, argv)) in wagi {
        let (backend, origin) = off_thread({
            let (runtime, id) = (runtime.clone(), id.to_owned());
            move || WagiBackend::on(&runtime, &id, &bytes, &component_options, argv.as_deref())
        })
        .await
        .with_context(|| format!("cannot load WAGI component `{id}` (`{}`)", path.display()))?;
        tracing::info!(component = %id, "loaded `{}` as a WAGI program ({origin:?})", path.display());
        backends.insert(id, Arc::new(backend));
    }
    // Where rollouts keep their state: the app's state directory.
    let state_dir = match &runtime_config.state_dir {
        Some(dir) => dir.clone(),
        None => loaded.dir.join(STATE_DIR),
    };
    let routes = manifest
        .http_triggers
        .iter()
        .filter_map(|trigger| {
            let label = route_label(&trigger.route);
            let choice = |id: &str| {
                Some(Choice {
                    component: Arc::from(id),
                    backend: backends.get(id)?.clone(),
                    series: metrics.series(label, id),
                })
            };
            let split = trigger
                .split
                .iter()
                .filter_map(|(id, weight)| Some((choice(id)?, *weight)))
                .collect::<Vec<_>>();
            let mirror = |to: &str, policy: &crate::rollout::Policy| {
                (!policy.mirror_methods.is_empty()).then(|| {
                    Some(Arc::new(Mirror {
                        route: Arc::from(label),
                        component: Arc::from(to),
                        backend: backends.get(to)?.clone(),
                        compare_headers: headers(&policy.compare_headers),
                        methods: methods(&policy.mirror_methods),
                    }))
                })?
            };
            let rollout = match &trigger.rollout {
                Some(policy) => Some(Arc::new(Rollout {
                    from: choice(&policy.from)?,
                    to: choice(&policy.to)?,
                    weight: rollouts.register(label, policy, &state_dir, &metrics),
                    mirror_to: mirror(&policy.to, policy),
                    mirror_from: mirror(&policy.from, policy),
                })),
                None => None,
            };
            let target = Target {
                rollout,
                route: Arc::from(label),
                primary: choice(&trigger.component)?,
                split: if split.is_empty() {
                    None
                } else {
                    Split::new(split).map(Arc::new)
                },
                mirror: trigger.mirror.as_ref().and_then(|m| {
                    Some(Arc::new(Mirror {
                        route: Arc::from(label),
                        component: Arc::from(m.to.as_str()),
                        backend: backends.get(m.to.as_str())?.clone(),
                        compare_headers: headers(&m.compare_headers),
                        methods: methods(&m.methods),
                    }))
                }),
            };
            Some((trigger.route.clone(), target))
        })
        .collect();
    let dispatch = Arc::new(
        Dispatch::new(routes, metrics)
            .context("the manifest's routes do not form a route table")?,
    );
    rollouts.retain(
        manifest
            .http_triggers
            .iter()
            .filter(|trigger| trigger.rollout.is_some())
            .map(|trigger| route_label(&trigger.route)),
    );
    let app: Arc<dyn crate::services::chaining::App> = dispatch.clone();
    app_handle.bind(Arc::downgrade(&app), timeout);
    tracing::info!(
        "app `{}` ready in {:?}",
        manifest.application.name,
        started.elapsed()
    );
    Ok(dispatch)
}

/// Every component's TLS configurations by host, from the runtime
/// config's `[[client_tls]]` entries (the first naming a component and
/// host wins, as in Spin); an id the app does not have stops the start.
fn client_tls(
    manifest: &super::manifest::Manifest,
    runtime_config: &RuntimeConfig,
) -> Result<BTreeMap<String, ComponentTls>> {
    let mut by_component: BTreeMap<String, HashMap<String, Arc<TlsConfig>>> = BTreeMap::new();
    for entry in &runtime_config.client_tls {
        for id in &entry.component_ids {
            if !manifest.components.contains_key(id) {
                let known: Vec<&str> = manifest.components.keys().map(String::as_str).collect();
                bail!(
                    "{}: `{}.component_ids` names `{id}`, which is not a component of the app \
                     (its components: {})",
                    runtime_config.describe(),
                    entry.key,
                    known.join(", ")
                );
            }
            let hosts = by_component.entry(id.clone()).or_default();
            for host in &entry.hosts {
                hosts
                    .entry(client_tls::host_key(host))
                    .or_insert_with(|| entry.config.clone());
            }
        }
    }
    Ok(by_component
        .into_iter()
        .map(|(id, hosts)| (id, ComponentTls::new(hosts)))
        .collect())
}

/// What counters and rollouts call a route: the route as written.
fn route_label(route: &Route) -> &str {
    match route {
        Route::Pattern(pattern) => pattern.as_written(),
        Route::Private => "(private)",
    }
}

/// Header names as the manifest gives them (checked when it was read).
fn headers(names: &[String]) -> Vec<http::HeaderName> {
    names
        .iter()
        .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
        .collect()
}

/// Methods as the manifest gives them (checked when it was read).
fn methods(names: &[String]) -> Vec<http::Method> {
    names
        .iter()
        .filter_map(|x| http::Method::from_bytes(x.as_bytes()).ok())
        .collect()
}

/// An upstream component: the service at `address`, which the component's
/// `allowed_outbound_hosts` must allow when it lists any (an app that
/// restricts where its components go restricts its upstreams too).
fn upstream_backend(
    id: &str,
    address: &crate::upstream::Address,
    component: &Component,
    app_variables: &BTreeMap<String, String>,
) -> Result<UpstreamBackend> {
    if !component.allowed_outbound_hosts.is_empty() {
        let list = allow_list(id, &outbound_entries(id, component, app_variables)?)?;
        if !list.allows("http", &address.host, address.port) {
            bail!(
                "component `{id}`: its `allowed_outbound_hosts` do not allow its upstream `{}`; \
                 add `http://{}:{}`",
                address.url,
                address.host,
                address.port
            );
        }
    }
    Ok(UpstreamBackend::new(id, address))
}

/// Where component `id`'s code is and the options its instances run with.

/// Runs `work` (compiling a component: seconds of CPU for a big one) on a
/// blocking thread: a reload assembles the new version while the old one
/// serves, and a compile on an async thread held every request queued
/// behind it on that thread (a container route's requests hit their
/// deadline during a 3.5 s compile).
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("the thread loading a component panicked")?
}

fn plan(
    id: &str,
    component: &Component,
    dir: &Path,
    options: &ComponentOptions,
    app_variables: &BTreeMap<String, String>,
    key_value: &mut KvStores<'_>,
    sqlite: &mut SqliteDatabases<'_>,
) -> Result<(PathBuf, ComponentOptions)> {
    let Source::Local(path) = &component.source else {
        bail!(
            "component `{id}`: registry `source`s are not supported yet \
             (they come with the OCI work); use a local path or `{{ url, digest }}`"
        );
    };
    let mut options = options.clone();
    options.instance.environment = component
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    options.instance.outbound = if component.allowed_outbound_hosts.is_empty() {
        Outbound::Nowhere
    } else {
        let entries = outbound_entries(id, component, app_variables)?;
        Outbound::AllowList(Arc::new(allow_list(id, &entries)?))
    };
    options.instance.variables =
        Arc::new(variables::render(id, &component.variables, app_variables)?);
    for volume in &component.volumes {
        volume
            .create_host_dir()
            .with_context(|| format!("component `{id}`"))?;
    }
    options.instance.volumes = component.volumes.clone();
    if !component.key_value_stores.is_empty() {
        let mut stores = BTreeMap::new();
        for label in &component.key_value_stores {
            stores.insert(label.clone(), key_value.database(id, label)?);
        }
        options.instance.key_value = Some(KvAccess {
            stores: Arc::new(stores),
            allowed: Arc::new(component.key_value_stores.clone()),
        });
    }
    if !component.sqlite_databases.is_empty() {
        let mut databases = BTreeMap::new();
        for label in &component.sqlite_databases {
            databases.insert(label.clone(), sqlite.database(id, label)?);
        }
        options.instance.sqlite = Some(SqliteAccess {
            databases: Arc::new(databases),
        });
    }
    if !component.files.is_empty() {
        let staging = tempfile::Builder::new()
            .prefix(&format!("wasmhost-files-{id}-"))
            .tempdir()
            .context("cannot create a directory for the component's files")?;
        files::stage(
            id,
            dir,
            &component.files,
            &component.exclude_files,
            staging.path(),
        )?;
        options.instance.files = Some(Arc::new(staging));
    }
    Ok((path.clone(), options))
}

/// The app's key-value databases: opened on first use, one per file, the
/// app's own file (`.wasmhost/key_value.redb` beside the manifest) unless
/// the runtime config gives a store a file of its own.
struct KvStores<'a> {
    app_dir: &'a Path,
    config: &'a RuntimeConfig,
    /// By label: every component naming a store shares its backend.
    open: BTreeMap<String, Arc<KvBackend>>,
    /// By file: stores sharing a file share the open database.
    files: BTreeMap<PathBuf, Arc<KeyValue>>,
}

impl KvStores<'_> {
    fn database(&mut self, component: &str, label: &str) -> Result<Arc<KvBackend>> {
        if let Some(db) = self.open.get(label) {
            return Ok(db.clone());
        }
        let own_file = || {
            let dir = match &self.config.state_dir {
                Some(dir) => dir.clone(),
                None => self.app_dir.join(STATE_DIR),
            };
            dir.join("key_value.redb")
        };
        let path = match self.config.key_value_stores.get(label) {
            Some(KvStoreConfig::Redis { url }) => {
                let store = RedisStore::new(url).with_context(|| {
                    format!("component `{component}`: key-value store `{label}`")
                })?;
                let backend = Arc::new(KvBackend::Redis(store));
                self.open.insert(label.to_owned(), backend.clone());
                return Ok(backend);
            }
            Some(KvStoreConfig::Spin { path: Some(path) }) => path.clone(),
            Some(KvStoreConfig::Spin { path: None }) => own_file(),
            None if label == DEFAULT_STORE => own_file(),
            None => bail!(
                "component `{component}`: key-value store `{label}` is not defined; define it in a \
                 runtime config file (`--runtime-config-file`) as `[key_value_store.{label}]` with \
                 `type = \"spin\"`"
            ),
        };
        let db = match self.files.get(&path) {
            Some(db) => db.clone(),
            None => {
                let db = KeyValue::open_file(&path).with_context(|| {
                    format!("component `{component}`: key-value store `{label}`")
                })?;
                self.files.insert(path, db.clone());
                db
            }
        };
        let backend = Arc::new(KvBackend::Local(db));
        self.open.insert(label.to_owned(), backend.clone());
        Ok(backend)
    }
}

/// The app's SQLite databases: opened on first use, `default` as
/// `sqlite_db.db` in the state directory (as Spin), others where the
/// runtime config says.
struct SqliteDatabases<'a> {
    app_dir: &'a Path,
    config: &'a RuntimeConfig,
    open: BTreeMap<String, Arc<Database>>,
}

impl SqliteDatabases<'_> {
    fn state_dir(&self) -> PathBuf {
        match &self.config.state_dir {
            Some(dir) => dir.clone(),
            None => self.app_dir.join(STATE_DIR),
        }
    }

    fn database(&mut self, component: &str, label: &str) -> Result<Arc<Database>> {
        if let Some(db) = self.open.get(label) {
            return Ok(db.clone());
        }
        let path = match self.config.sqlite_databases.get(label) {
            Some(SqliteConfig { path: Some(path) }) => path.clone(),
            _ if label == DEFAULT_DATABASE => self.state_dir().join(DEFAULT_FILE),
            Some(_)
                if label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                self.state_dir().join(format!("{label}.db"))
            }
            Some(_) => bail!(
                "component `{component}`: SQLite database `{label}` needs a `path` in \
                 `[sqlite_database.{label}]` (its label is not usable as a file name)"
            ),
            None => bail!(
                "component `{component}`: SQLite database `{label}` is not defined; define it in a \
                 runtime config file (`--runtime-config-file`) as `[sqlite_database.{label}]` with \
                 `type = \"spin\"`"
            ),
        };
        let db = Database::open(&path)
            .with_context(|| format!("component `{component}`: SQLite database `{label}`"))?;
        self.open.insert(label.to_owned(), db.clone());
        Ok(db)
    }

    /// `--sqlite`: each statement (or `@file`'s contents, already read)
    /// run against `default` before anything is served.
    fn run_statements(&mut self, statements: &[String]) -> Result<()> {
        let db = self.database("--sqlite", DEFAULT_DATABASE)?;
        for sql in statements {
            db.execute_batch(sql)
                .with_context(|| format!("--sqlite `{sql}` failed"))?;
        }
        Ok(())
    }
}

/// The component's `allowed_outbound_hosts`, application variables filled
/// in (entries may name them: `https://{{ api_host }}`).
fn outbound_entries(
    id: &str,
    component: &Component,
    app_variables: &BTreeMap<String, String>,
) -> Result<Vec<String>> {
    Ok(component
        .allowed_outbound_hosts
        .iter()
        .map(|entry| variables::render_template(id, "allowed_outbound_hosts", entry, app_variables))
        .collect::<Result<Vec<_>, _>>()?)
}

/// `entries` parsed, an error naming the component.
fn allow_list(id: &str, entries: &[String]) -> Result<AllowList> {
    AllowList::parse(entries).with_context(|| format!("component `{id}`"))
}

/// A container component: its image unpacked (layers shared through the
/// store's layer cache), its settings from the manifest, its environment
/// and volumes from the component.
async fn container_backend(
    id: &str,
    component: &Component,
    store: &ContentStore,
    app_variables: &BTreeMap<String, String>,
) -> Result<ContainerBackend> {
    let Source::Container(container) = &component.source else {
        bail!("component `{id}` is not a container");
    };
    let (config, layers) = container
        .pulled
        .as_ref()
        .context("the image was not pulled before assembly")?;
    let image = PreparedImage::prepare(store, &container.image, config, layers)?;
    let settings = Settings {
        environment: component
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        volumes: component.volumes.clone(),
        allowed_outbound_hosts: outbound_entries(id, component, app_variables)?,
        ..container.settings.clone()
    };
    allow_list(id, &settings.allowed_outbound_hosts)?;
    ContainerBackend::new(id, image, settings).await
}
