//! `wasmhost serve`: serve one component, or a Spin app, over HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::Parser;

use super::front_door::{start_admin_at, FrontDoorArgs};
use super::parse::{DurationArg, SizeArg};
use super::precompiled::{self, Trusted};
use crate::admin::Admin;
use crate::app::assemble::assemble;
use crate::app::manifest;
use crate::app::runtime_config::RuntimeConfig;
use crate::app::sources;
use crate::app::variables::Provided;
use crate::backend::Backend;
use crate::frontdoor::{self, Stopped};
use crate::limits;
use crate::metrics::Metrics;
use crate::oci::access::Access;
use crate::oci::media::Kind;
use crate::oci::progress::Progress;
use crate::oci::pull;
use crate::oci::registry::{self, RegistryOptions};
use crate::oci::signature::PublicKey;
use crate::oci::store::ContentStore;
use crate::reload::Swappable;
use crate::rollout::Rollouts;
use crate::shutdown::Shutdown;
use crate::wasm::cache::CompileCache;
use crate::wasm::engine::Runtime;
use crate::wasm::load::{self, HandlerKind};
use crate::wasm::state::InstancePolicy;
use crate::wasm::{ComponentBackend, ComponentOptions};
use crate::workers::{supervisor, worker, Handoff, WorkerCount};

/// The manifest `wasmhost serve` looks for when given no argument, as
/// `spin up` does.
pub const DEFAULT_MANIFEST: &str = "spin.toml";

/// Serve a wasi:http component, or a Spin app: a fresh instance for every
/// request.
#[derive(Debug, Parser)]
pub struct ServeCommand {
    /// What to serve: a component (`.wasm`: a wasi:http component, or a
    /// wasip1 module with component type information, wrapped at load time),
    /// a Spin manifest (`*.toml`), or a registry reference to either
    /// (`registry/repo:tag` or `@sha256:…`) [default: ./spin.toml].
    pub app: Option<PathBuf>,

    /// Reload a manifest's app when the file changes (SIGHUP always
    /// reloads): the new version is loaded completely, then swapped in
    /// without dropping a request; a broken edit keeps the old one serving.
    #[arg(long)]
    pub watch: bool,

    /// Counters shared by every version of the app across reloads.
    #[arg(skip)]
    pub metrics: Arc<Metrics>,

    /// Rollouts, kept across reloads (a reload updates their policies).
    #[arg(skip)]
    pub rollouts: Arc<Rollouts>,

    /// Use plain HTTP (and accept any certificate) for every registry;
    /// loopback registries get plain HTTP without it.
    #[arg(long)]
    pub insecure: bool,

    /// Listener, limits, TLS, access log, admin listener.
    #[command(flatten)]
    pub front: FrontDoorArgs,

    /// Linear-memory cap per instance; a guest that needs more fails with 500.
    #[arg(long, default_value_t = SizeArg(limits::MEMORY_LIMIT as u64))]
    pub memory_limit: SizeArg,

    /// Serve up to N requests with one instance before replacing it. Faster,
    /// but requests then share guest state. 1 = a fresh instance per request.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub reuse: u32,

    /// Requests served at once (and instances the pool reserves); more wait
    /// for a free instance, and get 503 (with `Retry-After`) if none frees
    /// up within `--queue-timeout` or their deadline.
    #[arg(long, default_value_t = limits::MAX_CONCURRENCY, value_name = "N")]
    pub max_concurrency: u32,

    /// Longest a request waits for a free instance when all
    /// `--max-concurrency` are busy (`500ms`, `5s`, `1m`).
    #[arg(long, default_value_t = DurationArg(limits::QUEUE_TIMEOUT), value_name = "DURATION")]
    pub queue_timeout: DurationArg,

    /// Set a Spin application variable (`name=value`); overrides
    /// `SPIN_VARIABLE_<NAME>` and the manifest's default. Repeatable.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_variable)]
    pub variable: Vec<(String, String)>,

    /// Spin runtime configuration: where key-value stores live
    /// (`[key_value_store.<label>]` with `type = "spin"` and an optional
    /// `path`).
    #[arg(long, value_name = "FILE")]
    pub runtime_config_file: Option<PathBuf>,

    /// Run SQL against the `default` SQLite database before serving (as
    /// `spin up --sqlite`): a statement, or `@FILE` for a file of them.
    /// Repeatable, run in order.
    #[arg(long = "sqlite", value_name = "SQL|@FILE", value_parser = super::parse::sql)]
    pub sqlite: Vec<String>,

    /// Set a key in the `default` key-value store before serving (as
    /// `spin up --key-value`). Repeatable.
    #[arg(long = "key-value", value_name = "KEY=VALUE", value_parser = super::parse::key_value)]
    pub key_value: Vec<(String, String)>,

    /// Mount a host directory into every component, read-write unless
    /// `:ro`: `HOST:PATH[:ro]` (a relative `HOST` is relative to the
    /// current directory). Repeatable.
    #[arg(long = "volume", short = 'v', value_name = "HOST:PATH[:ro]")]
    pub volumes: Vec<String>,

    /// Where an app's state lives (its `default` key-value store), as
    /// Spin's `--state-dir` [default: `.wasmhost/` beside the manifest].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Use no cache: compile every component and download every remote
    /// source afresh, and write nothing to the cache directory.
    #[arg(long)]
    pub no_cache: bool,

    /// Cache directory: compiled code in `compiled/`, the content store
    /// (downloads and pulls) in `blobs/` and `refs/`, pulled apps in `apps/`
    /// [default: $XDG_CACHE_HOME/wasmhost].
    #[arg(long, conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,

    /// Allocate instances on demand instead of from the pooling allocator.
    #[arg(long)]
    pub no_pooling: bool,

    /// Compile a component missing from the compile cache with Cranelift
    /// before serving it. By default it answers at once from a quick
    /// baseline (Winch) compile while Cranelift compiles in the background,
    /// and new instances switch to the optimised code when it is ready.
    #[arg(long)]
    pub no_baseline: bool,

    /// Load compiled code attached to a component in this registry (or
    /// under this `REGISTRY/REPOSITORY` prefix) by `wasmhost push
    /// --precompiled`, instead of compiling. Compiled code is native code
    /// run as it is: name only registries whose pushers you trust as you
    /// trust this binary, or narrow the trust to signers with
    /// `--precompiled-signer`. Used only when it is made for this engine
    /// and tied by digests to the component served. Repeatable.
    #[arg(long, value_name = "REGISTRY[/REPOSITORY]")]
    pub trust_precompiled: Vec<String>,

    /// Use precompiled code only when its referrer is signed, in cosign's
    /// key-based format (`wasmhost push --sign-key`, or `cosign sign
    /// --key` on the referrer), by this ECDSA P-256 public key (a `PUBLIC
    /// KEY` PEM file, as `openssl pkey -pubout` or `cosign public-key`
    /// writes it). Narrows the trust of `--trust-precompiled` from anyone
    /// who can push to its registries to the holders of these keys.
    /// Repeatable: any one of the keys will do.
    #[arg(long, value_name = "PUBLIC-KEY.pem", requires = "trust_precompiled")]
    pub precompiled_signer: Vec<PathBuf>,

    /// The keys of `--precompiled-signer`, read before anything is served.
    #[arg(skip)]
    pub signers: Vec<PublicKey>,

    /// Load everything, then wait to bind until a byte can be read from
    /// this inherited descriptor (EOF: exit unstarted). The containerd
    /// shim starts `serve` at a task's Create and writes at its Start, so
    /// the loading overlaps containerd's own work in between.
    #[arg(long, value_name = "FD", hide = true)]
    pub start_gate_fd: Option<u32>,

    /// Serve with N processes (`auto`: one per CPU), each pinned to a CPU
    /// and listening on the same port, under a supervisor that forwards
    /// signals, starts a worker that dies again and serves the admin
    /// listener for all of them. Faster for fresh instances on several
    /// cores; a manifest with container components and the rollout API
    /// need one process.
    #[arg(long, value_name = "N|auto", default_value_t = WorkerCount::Fixed(1), conflicts_with = "start_gate_fd")]
    pub workers: WorkerCount,

    /// Serve as a worker of `--workers`, with what its supervisor passed
    /// (internal).
    #[arg(long, value_name = "ADDRESS,READY,LIFELINE", hide = true)]
    pub worker_of: Option<Handoff>,
}

impl ServeCommand {
    /// Loads and checks everything, binds, then serves until SIGINT/SIGTERM.
    pub async fn execute(mut self) -> Result<Stopped> {
        // A key file that cannot be read stops the start: the operator
        // asked for signed code only, and must not get unsigned code.
        self.signers = self
            .precompiled_signer
            .iter()
            .map(|path| PublicKey::load(path).context("--precompiled-signer"))
            .collect::<Result<_>>()?;
        let this = Arc::new(self);
        this.clone().serve().await
    }

    async fn serve(self: Arc<Self>) -> Result<Stopped> {
        if self.worker_of.is_none() {
            let cpus = supervisor::allowed_cpus()?;
            let workers = self.workers.resolve(&cpus);
            if workers > 1 {
                return self.supervise(workers, cpus).await;
            }
        }
        let app = self.app_path()?;
        // Without a cache, the store lives only as long as this serve.
        let scratch = match self.cache_root() {
            Some(_) => None,
            None => Some(tempfile::tempdir().context("cannot create a download directory")?),
        };
        let store = match (self.cache_root(), &scratch) {
            (Some(root), _) => ContentStore::at(root),
            (None, Some(dir)) => ContentStore::at(dir.path()),
            (None, None) => unreachable!("a scratch store exists whenever no cache does"),
        };
        let (backend, metrics) = self.load(&app, &store).await?;
        let lone_component = metrics
            .is_none()
            .then(|| Arc::from(component_id(&app).as_str()));
        let backend: Arc<dyn Backend> = if metrics.is_some() {
            // A manifest's app: reloadable.
            let swappable = Arc::new(Swappable::new(backend));
            self.clone()
                .watch_for_reloads(app.clone(), store.clone(), swappable.clone())?;
            swappable
        } else {
            ignore_hangups()?;
            backend
        };
        if let Some(fd) = self.start_gate_fd {
            wait_for_start(fd).await?;
        }
        let beside_workers = self.worker_of.as_ref().map(worker::listen).transpose()?;
        let mut bound = self
            .front
            .bind_or_adopt(self.max_concurrency, beside_workers)
            .await?;
        bound.front.component = lone_component;
        let admin = Admin {
            metrics: metrics.unwrap_or_default(),
            rollouts: self.rollouts.clone(),
            token: self.front.admin_token()?,
            history: Arc::default(),
            stats: bound.front.stats.clone(),
            backend: backend.clone(),
        };
        let shutdown = Shutdown::from_signals().context("cannot install signal handlers")?;
        match &self.worker_of {
            Some(handoff) => {
                // The supervisor serves the admin address and prints the line.
                let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                let admin = start_admin_at(loopback, admin).await?;
                worker::report_ready(handoff, admin)?;
                worker::watch_lifeline(handoff)?;
            }
            None => {
                self.front.start_admin(admin).await?;
                // Printed, not logged: scripts and tests read the bound port here.
                println!("serving `{}` on {}", app.display(), bound.url()?);
            }
        }
        let stopped =
            frontdoor::serve(bound.listener, backend.clone(), bound.front, shutdown).await;
        backend.shutdown().await;
        Ok(stopped)
    }

    /// Runs `workers` worker processes of this same command line.
    async fn supervise(&self, workers: usize, cpus: Vec<usize>) -> Result<Stopped> {
        anyhow::ensure!(
            self.front.admin_token_file.is_none(),
            "--admin-token-file needs one process: with --workers each worker would hold \
             its own rollouts; drive rollouts from a server without --workers"
        );
        let app = self.app_path()?;
        supervisor::supervise(supervisor::Plan {
            workers,
            cpus,
            listen: self.front.listen,
            admin_listen: self.front.admin_listen,
            scheme: if self.front.tls_cert.is_some() {
                "https"
            } else {
                "http"
            },
            app: app.display().to_string(),
        })
        .await
    }

    /// Reloads the app on SIGHUP (and, with `--watch`, when the manifest
    /// changes) and swaps it into `target`.
    fn watch_for_reloads(
        self: Arc<Self>,
        app: PathBuf,
        store: ContentStore,
        target: Arc<Swappable>,
    ) -> Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup =
            signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        tokio::spawn(async move {
            let mut seen = modified(&app);
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                let reason = tokio::select! {
                    _ = hangup.recv() => Some("SIGHUP"),
                    _ = tick.tick(), if self.watch => {
                        let now = modified(&app);
                        (now != seen).then(|| {
                            seen = now;
                            "the manifest changed"
                        })
                    }
                };
                let Some(reason) = reason else { continue };
                match self.load(&app, &store).await {
                    Ok((backend, _)) => {
                        target.swap(backend, self.front.timeout());
                        tracing::info!("reloaded `{}` ({reason})", app.display());
                    }
                    Err(e) => tracing::error!(
                        "reload of `{}` failed ({reason}); still serving the previous version: {e:#}",
                        app.display()
                    ),
                }
            }
        });
        Ok(())
    }

    /// The file to serve: the one named, else `./spin.toml`.
    fn app_path(&self) -> Result<PathBuf> {
        match &self.app {
            Some(path) => Ok(path.clone()),
            None if Path::new(DEFAULT_MANIFEST).exists() => Ok(PathBuf::from(DEFAULT_MANIFEST)),
            None => anyhow::bail!(
                "nothing to serve: name a component (`wasmhost serve app.wasm`) or a manifest, \
                 or run where a `{DEFAULT_MANIFEST}` is"
            ),
        }
    }

    async fn load(&self, app: &Path, store: &ContentStore) -> Result<Loaded> {
        let text = app.to_string_lossy();
        if !app.exists() && registry::looks_like_reference(&text) {
            return self.load_reference(&text, store).await;
        }
        self.load_file(app, &component_id(app), store, None).await
    }

    /// Pulls (or finds in the store) a component or app, then serves it.
    async fn load_reference(&self, text: &str, store: &ContentStore) -> Result<Loaded> {
        let (pulled, reference) = match pull::pinned_in_store(text, store) {
            Some(pulled) => (pulled, None),
            None => {
                let reference = registry::parse_reference(text)?;
                let pulled = pull::pull(
                    &reference,
                    store,
                    &self.registry_options(),
                    &Progress::hidden(),
                )
                .await?;
                (pulled, Some(reference))
            }
        };
        let path = match pulled.kind {
            Kind::Image => anyhow::bail!(
                "`{text}` is a container image; serve it from a manifest's container component"
            ),
            _ => pulled
                .local_path(store)?
                .context("a pulled component or app has a local path")?,
        };
        tracing::info!(
            "`{}` is {} ({}{})",
            pulled.reference,
            pulled.digest,
            pulled.kind.describe(),
            if pulled.offline {
                ", from the local store"
            } else {
                ""
            }
        );
        // The repository's last segment names the component in logs.
        // A component or app pulled from a registry may come with compiled
        // code (one pinned and all in the store is served without the
        // network). An app's is adopted into the cache here, where
        // assembling it finds it; a component's once it is prepared.
        let origin = match (&reference, &pulled.kind) {
            (Some(reference), Kind::Component) => Some((reference, &pulled)),
            (Some(reference), Kind::SpinApp) => {
                let origin = precompiled::Origin {
                    reference,
                    pulled: &pulled,
                    store,
                    options: &self.registry_options(),
                };
                let trusted = self.trusted();
                precompiled::adopt_app(&origin, &trusted, &self.component_options()?).await;
                None
            }
            _ => None,
        };
        self.load_file(&path, &super::name_of(text), store, origin)
            .await
    }

    /// Whose precompiled code this node uses.
    fn trusted(&self) -> Trusted {
        Trusted {
            registries: self.trust_precompiled.clone(),
            signers: self.signers.clone(),
        }
    }

    fn registry_options(&self) -> RegistryOptions {
        self.access().options()
    }

    fn access(&self) -> Access {
        Access {
            insecure: self.insecure,
            cache_dir: self.cache_dir.clone(),
        }
    }

    async fn load_file(
        &self,
        app: &Path,
        id: &str,
        store: &ContentStore,
        pulled: Option<(&oci_client::Reference, &pull::Pulled)>,
    ) -> Result<Loaded> {
        let options = self.component_options()?;
        if app.extension().is_some_and(|ext| ext == "toml") {
            let mut loaded = manifest::load(app)?;
            if self.worker_of.is_some() {
                refuse_containers(&loaded.manifest)?;
            }
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            sources::resolve(&mut loaded, store, &self.registry_options()).await?;
            let volumes = self.volumes()?;
            for component in loaded.manifest.components.values_mut() {
                component.volumes.extend(volumes.iter().cloned());
            }
            let provided = Provided::from_env(self.variable.iter().cloned().collect());
            let mut runtime_config = match &self.runtime_config_file {
                Some(path) => RuntimeConfig::load(path)?,
                None => RuntimeConfig::default(),
            };
            runtime_config.state_dir = self.state_dir.clone();
            runtime_config.sqlite_statements = self.sqlite.clone();
            runtime_config.key_value_seeds = self.key_value.clone();
            for section in &runtime_config.ignored {
                tracing::warn!("runtime config: `[{section}]` is not supported and is ignored");
            }
            let dispatch = assemble(
                &loaded,
                &options,
                self.front.timeout(),
                &provided,
                &runtime_config,
                store,
                self.metrics.clone(),
                &self.rollouts,
            )
            .await?;
            let metrics = dispatch.metrics();
            return Ok((dispatch, Some(metrics)));
        }
        let started = Instant::now();
        let prepared = load::read_component(app)?;
        let runtime = Runtime::new(&options.engine_settings(prepared.kind == HandlerKind::P3))?;
        if let Some((reference, pulled)) = pulled {
            let origin = precompiled::Origin {
                reference,
                pulled,
                store,
                options: &self.registry_options(),
            };
            let trusted = self.trusted();
            precompiled::adopt(&origin, &trusted, &runtime, &prepared, &options.cache).await;
        }
        let (backend, report) = ComponentBackend::on(
            &runtime,
            id,
            app,
            prepared,
            options,
            self.front.timeout(),
            started,
        )?;
        tracing::info!(component = %id, "loaded `{}` {report}", app.display());
        Ok((Arc::new(backend), None))
    }

    fn component_options(&self) -> Result<ComponentOptions> {
        let memory_limit =
            usize::try_from(self.memory_limit.0).context("--memory-limit is too large")?;
        anyhow::ensure!(self.reuse >= 1, "--reuse must be at least 1");
        anyhow::ensure!(
            self.max_concurrency >= 1,
            "--max-concurrency must be at least 1"
        );
        let cache = match self.cache_root() {
            Some(root) => CompileCache::at(root.join("compiled")),
            None => CompileCache::disabled(),
        };
        let volumes = self.volumes()?;
        for volume in &volumes {
            volume.create_host_dir()?;
        }
        Ok(ComponentOptions {
            instance: InstancePolicy {
                memory_limit,
                volumes,
                ..InstancePolicy::default()
            },
            reuse: self.reuse,
            cache,
            pooling: !self.no_pooling,
            max_concurrency: self.max_concurrency,
            queue_timeout: self.queue_timeout.0,
            baseline: !self.no_baseline,
        })
    }

    /// `--volume`s, relative to the current directory.
    fn volumes(&self) -> Result<Vec<crate::volume::Volume>> {
        let here = std::env::current_dir().context("cannot read the current directory")?;
        self.volumes
            .iter()
            .map(|v| crate::volume::Volume::parse(v, &here).context("--volume"))
            .collect()
    }

    /// The cache root (`compiled/` for compiled code, `blobs/` for
    /// downloads): `--cache-dir`, else `$XDG_CACHE_HOME/wasmhost`, else
    /// `$HOME/.cache/wasmhost`; none with `--no-cache`.
    fn cache_root(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.access().cache_root()
    }
}

fn parse_variable(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if crate::services::variables::is_valid_name(name) => {
            Ok((name.to_owned(), value.to_owned()))
        }
        Some((name, _)) => Err(format!(
            "`{name}` is not a variable name: use lowercase letters, digits and `_`"
        )),
        None => Err(format!("`{text}` is not `name=value`")),
    }
}

/// The name a component goes by in logs: its file stem.
fn component_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "component".to_string())
}

/// A worker of `--workers` cannot run a manifest's containers: each
/// worker would start its own.
fn refuse_containers(manifest: &manifest::Manifest) -> Result<()> {
    let containers: Vec<&str> = manifest
        .components
        .iter()
        .filter(|(_, component)| matches!(component.source, manifest::Source::Container(_)))
        .map(|(id, _)| id.as_str())
        .collect();
    anyhow::ensure!(
        containers.is_empty(),
        "--workers needs an app without container components (each worker would start \
         its own container); `{}` is one: serve this app without --workers",
        containers.join("`, `")
    );
    Ok(())
}

/// The backend to serve, and its counters (a manifest's app has them).
type Loaded = (Arc<dyn Backend>, Option<Arc<Metrics>>);

/// A single component has nothing to reload: SIGHUP (which a `--workers`
/// supervisor forwards to every worker) is logged, not the default
/// action's exit.
fn ignore_hangups() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: a single component has nothing to reload (a manifest's app does)");
        }
    });
    Ok(())
}

/// Waits until a byte arrives on inherited descriptor `fd` (through
/// `/proc/self/fd`, a new description of the same pipe: no `unsafe`);
/// EOF means nobody will start this process.
async fn wait_for_start(fd: u32) -> Result<()> {
    let path = format!("/proc/self/fd/{fd}");
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<usize> {
        use std::io::Read as _;
        let mut byte = [0u8; 1];
        std::fs::File::open(&path)?.read(&mut byte)
    });
    match read.await.context("the start gate's reader failed")? {
        Ok(1) => Ok(()),
        Ok(_) => anyhow::bail!("closed before it started (descriptor {fd}): not serving"),
        Err(e) => Err(e).with_context(|| format!("cannot read the start gate, descriptor {fd}")),
    }
}
