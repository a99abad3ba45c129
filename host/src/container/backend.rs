//! [`ContainerBackend`]: a container image served behind the front door.
//!
//! Lifecycle: started at serve start or on the first request (a setting);
//! ready once its port accepts a connection inside its network namespace
//! (past the ready timeout: 503 and a log line saying why); stopped after
//! an idle time, and started again (a cold start) by the next request; when
//! it exits on its own, requests get 503 until a restart, which waits a
//! backoff that doubles with each crash in a row. Its stdout and stderr go
//! to the host log under the component id. On shutdown: SIGTERM, then
//! SIGKILL after a grace period; its root is unmounted and removed.
//!
//! Requests reach it through a connection made inside its network
//! namespace ([`super::netns`]), proxied as HTTP/1.1.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use http::header::{HeaderName, HeaderValue, HOST};
use http::StatusCode;
use http_body_util::BodyExt as _;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::{watch, Mutex};

use super::image::ImageConfig;
use super::netns::{self, NetNs};
use super::rootfs::{ContainerRoot, LayerCache};
use super::runtime::{Created, OciRuntime, ID_PREFIX};
use super::spec::{self, Policy};
use super::upstream::{self, Driven, DrivenBody};
use crate::backend::{
    text_response, Backend, BoxError, BoxFuture, ComponentStatus, RequestBody, RequestContext,
    ResponseBody, StatusKind,
};
use crate::oci::media::Descriptor;
use crate::oci::store::ContentStore;
use crate::telemetry;
use tracing::Instrument as _;

/// Where container roots and bundles live: under `/run` (a tmpfs cleared
/// at boot), so nothing outlives a reboot.
pub const CONTAINERS_DIR: &str = "/run/wasmhost/containers";

/// The port to proxy to: the one given, else the image's only exposed
/// TCP port.
pub fn service_port(image: &ImageConfig, port: Option<u16>) -> Result<u16> {
    if let Some(port) = port {
        return Ok(port);
    }
    match image.exposed_tcp_ports().as_slice() {
        [port] => Ok(*port),
        [] => anyhow::bail!("the image exposes no TCP port: give the port"),
        ports => anyhow::bail!("the image exposes ports {ports:?}: choose one"),
    }
}

/// How one container component runs.
#[derive(Debug, Clone)]
pub struct ContainerSettings {
    /// The port the service listens on inside the container.
    pub port: u16,
    /// The runtime that runs the bundle.
    pub runtime: OciRuntime,
    /// Memory limit in bytes.
    pub memory_limit: i64,
    /// Most processes and threads.
    pub pids_limit: i64,
    /// CPUs (0.5 = half a core).
    pub cpus: f64,
    /// Start at serve start rather than on the first request.
    pub start_eagerly: bool,
    /// Stop after this long without requests; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// How long a start may take to accept connections.
    pub ready_timeout: Duration,
    /// Between SIGTERM and SIGKILL on stop.
    pub stop_grace: Duration,
    /// Environment added to the image's.
    pub environment: Vec<(String, String)>,
    /// Where container roots and bundles go.
    pub state_dir: PathBuf,
    /// Host directories mounted into the container.
    pub volumes: Vec<crate::volume::Volume>,
    /// Run in a user namespace with these ids (root inside is an
    /// unprivileged host id); `None`: as host root, in the other
    /// namespaces only.
    pub user_namespace: Option<spec::IdMap>,
}

/// The image, unpacked, ready to start containers from.
pub struct PreparedImage {
    /// Its config.
    pub config: ImageConfig,
    /// Its layers, unpacked, lowest first.
    pub lower: Vec<PathBuf>,
    /// Its layer descriptors (for the copy fallback).
    pub layers: Vec<Descriptor>,
    /// The store holding the layer blobs.
    pub store: ContentStore,
}

impl PreparedImage {
    /// Unpacks (or finds cached) the layers of a pulled image.
    pub fn prepare(
        store: &ContentStore,
        config: &Descriptor,
        layers: &[Descriptor],
        cache: &LayerCache,
    ) -> Result<Self> {
        let config = ImageConfig::parse(&store.read(&config.digest)?)?;
        let lower = cache.unpack(store, layers, &config.rootfs.diff_ids)?;
        Ok(Self {
            config,
            lower,
            layers: layers.to_vec(),
            store: store.clone(),
        })
    }
}

/// A container image, ready to serve.
pub struct ContainerBackend {
    inner: Arc<Inner>,
}

struct Inner {
    id: Arc<str>,
    settings: ContainerSettings,
    image: PreparedImage,
    state: Mutex<State>,
    /// The next container, created ahead, waiting to be started.
    ahead: StdMutex<Option<Ahead>>,
    me: Weak<Inner>,
}

/// What a container runs from: its id, bundle directory, root and (unless
/// it makes its own in a user namespace) network namespace.
struct Bundle {
    container_id: String,
    dir: PathBuf,
    root: ContainerRoot,
    netns: Option<NetNs>,
}

/// A container created ahead with its bundle.
struct Ahead {
    bundle: Bundle,
    created: Created,
}

enum State {
    Stopped {
        failures: u32,
        retry_at: Option<Instant>,
    },
    Running(Arc<Running>),
    ShutDown,
}

struct Running {
    container_id: String,
    netns: NetNs,
    /// `Some(how it ended)` once the container exited.
    exited: watch::Receiver<Option<String>>,
    in_flight: AtomicUsize,
    last_used: StdMutex<Instant>,
    stop_requested: std::sync::atomic::AtomicBool,
    /// Keep-alive connections to the container, idle.
    idle: Arc<StdMutex<Vec<SendRequest<RequestBody>>>>,
}

/// Containers this process started, for unique ids: per process, not per
/// backend, because a reloaded app's backend runs beside the previous
/// version's, which has a component of the same name.
static CONTAINERS_STARTED: AtomicU64 = AtomicU64::new(0);

/// How often a starting container is asked whether it is there yet (its
/// init process, its port): the timer's resolution, since every tick of
/// waiting is part of the cold start.
const READY_POLL: Duration = Duration::from_millis(1);

/// Idle keep-alive connections kept per container at most.
const MAX_IDLE_CONNECTIONS: usize = 32;

impl ContainerBackend {
    /// A backend for component `id` running `image`. Sweeps containers a
    /// killed wasmhost left behind first; starts now if the settings say so.
    pub async fn new(id: &str, image: PreparedImage, settings: ContainerSettings) -> Result<Self> {
        for volume in &settings.volumes {
            volume.create_host_dir()?;
        }
        sweep(&settings.runtime, &settings.state_dir).await;
        settings.runtime.keep_standby();
        let inner = Arc::new_cyclic(|me| Inner {
            id: Arc::from(id),
            settings,
            image,
            state: Mutex::new(State::Stopped {
                failures: 0,
                retry_at: None,
            }),
            ahead: StdMutex::new(None),
            me: me.clone(),
        });
        if inner.settings.start_eagerly {
            inner
                .running()
                .await
                .map_err(|why| anyhow!("container `{id}` did not start: {why}"))?;
        } else {
            inner.create_ahead();
        }
        Ok(Self { inner })
    }
}

impl Backend for ContainerBackend {
    fn handle(
        &self,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> BoxFuture<http::Response<ResponseBody>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.serve(req, ctx).await })
    }

    fn shutdown(&self) -> BoxFuture<()> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.shut_down().await })
    }

    fn status(&self) -> Vec<ComponentStatus> {
        vec![ComponentStatus {
            component: self.inner.id.clone(),
            kind: self.inner.status(),
        }]
    }
}

impl Inner {
    async fn serve(
        &self,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> http::Response<ResponseBody> {
        let running = match tokio::time::timeout_at(ctx.deadline.into(), self.running()).await {
            Ok(Ok(running)) => running,
            Ok(Err(why)) => {
                tracing::warn!(request = %ctx.id, component = %self.id, "container unavailable: {why}");
                return text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("container unavailable: {why}"),
                );
            }
            Err(_) => {
                return text_response(StatusCode::SERVICE_UNAVAILABLE, "container start timed out")
            }
        };
        let _in_flight = InFlight::begin(&running);
        // The deadline covers the proxying too: a container that accepts
        // the connection and never answers gets 504, not a hung request.
        // (The response body is bounded by the front door.)
        let response =
            tokio::time::timeout_at(ctx.deadline.into(), self.forward(&running, req, &ctx)).await;
        match response {
            Ok(Ok(response)) => response,
            Err(_) => {
                tracing::warn!(request = %ctx.id, component = %self.id, "the container did not answer before the request deadline");
                text_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the container did not answer in time",
                )
            }
            Ok(Err(e)) => {
                tracing::warn!(request = %ctx.id, component = %self.id, "proxying to the container failed: {e:#}");
                text_response(
                    StatusCode::BAD_GATEWAY,
                    format!("the container did not answer: {e}"),
                )
            }
        }
    }

    async fn forward(
        &self,
        running: &Running,
        req: http::Request<RequestBody>,
        ctx: &RequestContext,
    ) -> Result<http::Response<ResponseBody>> {
        // A pooled connection has a task driving it; a fresh one is driven
        // by this request's own task (see `upstream`).
        let (mut sender, mut driven) = match take_idle(&running.idle) {
            Some(sender) => (sender, None),
            None => {
                let (sender, driven) = self.connect(running).await?;
                (sender, Some(driven))
            }
        };
        let mut req = upstream_request(req, ctx);
        let span = telemetry::client_span(req.method(), req.uri(), "container");
        telemetry::inject(&span, req.headers_mut());
        let response = upstream::exchange(&mut sender, driven.as_mut(), req)
            .instrument(span.clone())
            .await;
        telemetry::record_client_status(&span, response.as_ref().ok().map(|r| r.status()));
        let response = response.context("the container closed the connection")?;
        let closing = response
            .headers()
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
            || response.version() == http::Version::HTTP_10;
        let response = downstream_response(response);
        if closing {
            // Nothing to keep: whoever reads the body drives what is left
            // of the exchange, and the connection goes with the body.
            return Ok(response.map(|body| match driven {
                Some(driven) => DrivenBody { body, driven }
                    .map_err(|e| Box::new(e) as BoxError)
                    .boxed_unsync(),
                None => body.map_err(|e| Box::new(e) as BoxError).boxed_unsync(),
            }));
        }
        // The container keeps the connection open: it gets a task of its
        // own and goes back to the idle list once this response is through.
        if let Some(driven) = driven {
            driven.spawn();
        }
        let idle = running.idle.clone();
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                if let Ok(mut idle) = idle.lock() {
                    if idle.len() < MAX_IDLE_CONNECTIONS {
                        idle.push(sender);
                    }
                }
            }
        });
        Ok(response.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
    }

    /// A fresh HTTP/1 connection to the container's port, not yet driven.
    async fn connect(&self, running: &Running) -> Result<(SendRequest<RequestBody>, Driven)> {
        let stream = running
            .netns
            .connect(self.settings.port)
            .await
            .context("cannot connect to the container's port")?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake with the container failed")?;
        Ok((sender, Driven::new(connection)))
    }

    /// The lifecycle state for `/readyz` and the metrics. A start holds
    /// the state's lock, so a locked state is a start in progress.
    fn status(&self) -> StatusKind {
        let eager = self.settings.start_eagerly;
        let (state, ready) = match self.state.try_lock() {
            // A lazy container starting for a request can take requests.
            Err(_) => ("starting", !eager),
            Ok(state) => match &*state {
                State::Running(running) if running.exited.borrow().is_none() => ("running", true),
                State::Running(_) => ("exited", false),
                State::Stopped {
                    retry_at: Some(at), ..
                } if Instant::now() < *at => ("restarting", false),
                // Stopped (never started, or idle): the next request starts it.
                State::Stopped { .. } => ("stopped", true),
                State::ShutDown => ("shut-down", false),
            },
        };
        StatusKind::Container { state, ready }
    }

    /// The running container, starting it if needed.
    async fn running(&self) -> Result<Arc<Running>, String> {
        let mut state = self.state.lock().await;
        match &*state {
            State::Running(running) if running.exited.borrow().is_none() => {
                return Ok(running.clone())
            }
            State::ShutDown => return Err("wasmhost is shutting down".into()),
            State::Stopped {
                retry_at: Some(at), ..
            } if Instant::now() < *at => {
                return Err(format!(
                    "it exited and restarts in {:.1} s",
                    at.saturating_duration_since(Instant::now()).as_secs_f64()
                ))
            }
            _ => {}
        }
        let failures = match &*state {
            State::Stopped { failures, .. } => *failures,
            _ => 0,
        };
        match self.start().await {
            Ok(running) => {
                *state = State::Running(running.clone());
                Ok(running)
            }
            Err(e) => {
                let failures = failures + 1;
                *state = State::Stopped {
                    failures,
                    retry_at: Some(Instant::now() + backoff(failures)),
                };
                tracing::error!(component = %self.id, "container start failed: {e:#}");
                Err(format!("{e:#}"))
            }
        }
    }

    async fn start(&self) -> Result<Arc<Running>> {
        let span = tracing::info_span!(target: telemetry::TARGET, "container.start", wasmhost.component = %self.id);
        self.start_container().instrument(span).await
    }

    async fn start_container(&self) -> Result<Arc<Running>> {
        let started = Instant::now();
        let ahead = self.ahead.lock().ok().and_then(|mut ahead| ahead.take());
        let launched = match ahead {
            Some(Ahead { bundle, created }) => match created.start().await {
                Some(child) => Some((bundle, child, "created ahead")),
                None => {
                    tracing::warn!(component = %self.id, "the container created ahead is gone; starting a new one");
                    let _ = self.settings.runtime.delete(&bundle.container_id).await;
                    None
                }
            },
            None => None,
        };
        let (bundle, mut child, how) = match launched {
            Some(launched) => launched,
            None => {
                let bundle = self.bundle()?;
                let child = self
                    .settings
                    .runtime
                    .run(&bundle.container_id, &bundle.dir)
                    .await?;
                (bundle, child, "started")
            }
        };
        let Bundle {
            container_id,
            root,
            netns: premade,
            ..
        } = bundle;
        let launched = started.elapsed();
        forward_output(&self.id, child.stdout.take(), "stdout");
        forward_output(&self.id, child.stderr.take(), "stderr");
        let netns = match premade {
            Some(netns) => netns,
            None => match self.adopt_network(&container_id, started).await {
                Ok(netns) => netns,
                Err(e) => {
                    // The helper may be stuck creating it: kill it too.
                    let _ = self.settings.runtime.kill(&container_id, "KILL").await;
                    let _ = child.kill().await;
                    let _ = self.settings.runtime.delete(&container_id).await;
                    return Err(e);
                }
            },
        };
        let (exit_tx, exited) = watch::channel(None);
        let running = Arc::new(Running {
            container_id: container_id.clone(),
            netns,
            exited,
            in_flight: AtomicUsize::new(0),
            last_used: StdMutex::new(Instant::now()),
            stop_requested: false.into(),
            idle: Arc::new(StdMutex::new(Vec::new())),
        });
        // Reaps the container and cleans up after it, however it ends.
        let runtime = self.settings.runtime.clone();
        let me = self.me.clone();
        let watched = running.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let how = match status {
                Ok(status) => format!("{status}"),
                Err(e) => format!("wait failed: {e}"),
            };
            let _ = runtime.delete(&watched.container_id).await;
            drop(root);
            let _ = exit_tx.send(Some(how.clone()));
            if let Some(inner) = me.upgrade() {
                inner.exited(&watched, &how).await;
            }
        });
        if let Err(e) = self.wait_ready(&running, started).await {
            let _ = self.settings.runtime.kill(&container_id, "KILL").await;
            return Err(e);
        }
        tracing::info!(
            component = %self.id,
            "container `{container_id}` ({how}) ready in {:?} (bundle and runtime {launched:?}, then to port {:?})",
            started.elapsed(),
            started.elapsed() - launched,
        );
        if let Some(idle) = self.settings.idle_timeout {
            self.watch_idle(running.clone(), idle);
        }
        Ok(running)
    }

    /// Root, network namespace and `config.json` of the next container.
    fn bundle(&self) -> Result<Bundle> {
        let n = CONTAINERS_STARTED.fetch_add(1, Ordering::SeqCst);
        let container_id = format!(
            "{ID_PREFIX}{}-{}-{n}",
            std::process::id(),
            sanitize(&self.id)
        );
        let dir = self.settings.state_dir.join(&container_id);
        let root = ContainerRoot::create(
            &dir,
            &self.image.lower,
            &self.image.store,
            &self.image.layers,
        )?;
        let user_namespace = self.settings.user_namespace;
        if let Some(ids) = user_namespace {
            // The container's root must own its root directory (through
            // the overlay: the upper directory), or it cannot even create
            // its mount points. The image's own files keep host ids: they
            // show as `nobody` inside and stay readable, not writable.
            std::os::unix::fs::chown(root.path(), Some(ids.host), Some(ids.host))
                .context("cannot hand the container's root to its user namespace")?;
        }
        // In a user namespace the container makes its own network namespace
        // (a runtime enters the user namespace first, and then may not join
        // one the host owns); wasmhost adopts it once the container runs.
        let netns = match user_namespace {
            None => Some(NetNs::create(&container_id)?),
            Some(_) => None,
        };
        let policy = Policy {
            memory_limit: self.settings.memory_limit,
            pids_limit: self.settings.pids_limit,
            cpus: self.settings.cpus,
            network_namespace: netns.as_ref().map(|netns| netns.path().to_owned()),
            user_namespace,
            cgroups_path: format!("/wasmhost/{container_id}"),
            hostname: sanitize(&self.id),
            environment: self.settings.environment.clone(),
            volumes: self.settings.volumes.clone(),
        };
        let rootfs = root.path();
        let passwd = read_in_root(&rootfs, "etc/passwd").unwrap_or_default();
        let group = read_in_root(&rootfs, "etc/group").unwrap_or_default();
        let spec = spec::runtime_spec(&self.image.config, &rootfs, &policy, &passwd, &group)?;
        spec.save(dir.join("config.json"))
            .context("cannot write the bundle's config.json")?;
        Ok(Bundle {
            container_id,
            dir,
            root,
            netns,
        })
    }

    /// Creates the next container now, in the background, if the runtime
    /// can (the embedded one): its start then only starts the workload.
    /// Used where a cold start is expected next (lazy start, idle stop).
    fn create_ahead(&self) {
        let me = self.me.clone();
        tokio::spawn(async move {
            let Some(inner) = me.upgrade() else { return };
            if matches!(*inner.state.lock().await, State::ShutDown) {
                return;
            }
            let bundle = match inner.bundle() {
                Ok(bundle) => bundle,
                Err(e) => {
                    tracing::warn!(component = %inner.id, "cannot prepare the next container: {e:#}");
                    return;
                }
            };
            let created = match inner
                .settings
                .runtime
                .create_ahead(&bundle.container_id, &bundle.dir)
                .await
            {
                Ok(Some(created)) => created,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(component = %inner.id, "cannot create the next container ahead: {e:#}");
                    return;
                }
            };
            let previous = inner
                .ahead
                .lock()
                .ok()
                .and_then(|mut ahead| ahead.replace(Ahead { bundle, created }));
            if let Some(previous) = previous {
                inner.discard(previous).await;
            }
            // Shut down meanwhile: nobody else will discard it.
            if matches!(*inner.state.lock().await, State::ShutDown) {
                inner.discard_ahead().await;
            }
        });
    }

    /// Deletes the container created ahead, if any.
    async fn discard_ahead(&self) {
        let ahead = self.ahead.lock().ok().and_then(|mut ahead| ahead.take());
        if let Some(ahead) = ahead {
            self.discard(ahead).await;
        }
    }

    /// Deletes a container created ahead (its helper does at end of input;
    /// the runtime's `delete` makes sure), then its root and namespace go.
    async fn discard(&self, ahead: Ahead) {
        let Ahead { bundle, created } = ahead;
        created.discard().await;
        let _ = self.settings.runtime.delete(&bundle.container_id).await;
        drop(bundle);
    }

    /// The network namespace container `id` made for itself, once its
    /// init process is there.
    async fn adopt_network(&self, id: &str, started: Instant) -> Result<NetNs> {
        // Each look runs the runtime's `list`: back off from the timer's
        // resolution rather than start a process every millisecond.
        let mut pause = READY_POLL;
        loop {
            if let Some(pid) = self.settings.runtime.init_pid(id).await? {
                if netns::is_own(pid) {
                    return NetNs::adopt(id, pid);
                }
            }
            if started.elapsed() > self.settings.ready_timeout {
                bail!(
                    "container `{id}` had no network namespace of its own after {:?}",
                    self.settings.ready_timeout
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(16));
        }
    }

    async fn wait_ready(&self, running: &Running, started: Instant) -> Result<()> {
        let port = self.settings.port;
        loop {
            if let Some(how) = running.exited.borrow().clone() {
                anyhow::bail!("the container exited ({how}) before listening on port {port}");
            }
            if running.netns.connect(port).await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > self.settings.ready_timeout {
                anyhow::bail!(
                    "the container did not listen on port {port} within {:?}",
                    self.settings.ready_timeout
                );
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Called when a container ended: a crash counts towards the backoff,
    /// an asked-for stop does not.
    async fn exited(&self, running: &Arc<Running>, how: &str) {
        let mut state = self.state.lock().await;
        let State::Running(current) = &*state else {
            return;
        };
        if !Arc::ptr_eq(current, running) {
            return;
        }
        if running.stop_requested.load(Ordering::SeqCst) {
            *state = State::Stopped {
                failures: 0,
                retry_at: None,
            };
        } else {
            tracing::warn!(component = %self.id, "container `{}` exited: {how}", running.container_id);
            *state = State::Stopped {
                failures: 1,
                retry_at: Some(Instant::now() + backoff(1)),
            };
        }
    }

    fn watch_idle(&self, running: Arc<Running>, idle: Duration) {
        let me = self.me.clone();
        tokio::spawn(async move {
            let tick = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
            loop {
                tokio::time::sleep(tick).await;
                if running.exited.borrow().is_some() {
                    return;
                }
                let last = running
                    .last_used
                    .lock()
                    .map(|t| *t)
                    .unwrap_or_else(|_| Instant::now());
                if running.in_flight.load(Ordering::SeqCst) == 0 && last.elapsed() >= idle {
                    if let Some(inner) = me.upgrade() {
                        tracing::info!(component = %inner.id, "container idle for {idle:?}: stopping");
                        inner.stop(&running).await;
                        inner.create_ahead();
                    }
                    return;
                }
            }
        });
    }

    /// SIGTERM, then SIGKILL after the grace period; waits for the end.
    async fn stop(&self, running: &Running) {
        running.stop_requested.store(true, Ordering::SeqCst);
        let runtime = &self.settings.runtime;
        let id = &running.container_id;
        let mut exited = running.exited.clone();
        let _ = runtime.kill(id, "TERM").await;
        let ended =
            tokio::time::timeout(self.settings.stop_grace, exited.wait_for(Option::is_some))
                .await
                .is_ok();
        if !ended {
            tracing::warn!(component = %self.id, "container `{id}` ignored SIGTERM for {:?}: SIGKILL", self.settings.stop_grace);
            let _ = runtime.kill(id, "KILL").await;
            let _ = tokio::time::timeout(Duration::from_secs(10), exited.wait_for(Option::is_some))
                .await;
        }
        let how = exited.borrow().clone();
        match how {
            Some(how) => tracing::info!(component = %self.id, "container `{id}` stopped ({how})"),
            None => tracing::error!(component = %self.id, "container `{id}` did not stop"),
        }
    }

    async fn shut_down(&self) {
        let running = {
            let mut state = self.state.lock().await;
            match std::mem::replace(&mut *state, State::ShutDown) {
                State::Running(running) => Some(running),
                _ => None,
            }
        };
        self.discard_ahead().await;
        if let Some(running) = running {
            if running.exited.borrow().is_none() {
                self.stop(&running).await;
            }
        }
    }
}

/// An idle connection that can take a request now, if any.
fn take_idle(idle: &StdMutex<Vec<SendRequest<RequestBody>>>) -> Option<SendRequest<RequestBody>> {
    let mut idle = idle.lock().ok()?;
    while let Some(sender) = idle.pop() {
        if sender.is_ready() {
            return Some(sender);
        }
    }
    None
}

/// 0.5 s after the first crash, doubling, at most 30 s.
/// A request being proxied to a running container: counted so the idle
/// watcher never stops a container mid-request, and uncounted however the
/// request ends (answered, failed, or dropped at the deadline).
struct InFlight<'a> {
    running: &'a Running,
}

impl<'a> InFlight<'a> {
    fn begin(running: &'a Running) -> Self {
        running.in_flight.fetch_add(1, Ordering::SeqCst);
        Self { running }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut last) = self.running.last_used.lock() {
            *last = Instant::now();
        }
        self.running.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.saturating_sub(1).min(6)))
        .min(Duration::from_secs(30))
}

/// The request as the container should see it: origin-form target, a
/// `Host` header, no hop-by-hop headers, `X-Forwarded-For` appended.
fn upstream_request(
    mut req: http::Request<RequestBody>,
    ctx: &RequestContext,
) -> http::Request<RequestBody> {
    if req.headers().get(HOST).is_none() {
        if let Some(authority) = req.uri().authority().map(|a| a.as_str().to_owned()) {
            if let Ok(value) = HeaderValue::from_str(&authority) {
                req.headers_mut().insert(HOST, value);
            }
        }
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    if let Ok(uri) = path.parse() {
        *req.uri_mut() = uri;
    }
    *req.version_mut() = http::Version::HTTP_11;
    strip_hop_by_hop(req.headers_mut());
    let forwarded = HeaderName::from_static("x-forwarded-for");
    let client = ctx.client_addr.ip().to_string();
    let value = match req.headers().get(&forwarded).and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {client}"),
        None => client,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        req.headers_mut().insert(forwarded, value);
    }
    req
}

/// Removes the headers that describe one connection, not the message
/// (RFC 9110 §7.6.1): the fixed hop-by-hop set and any header the
/// `Connection` header names. A proxy that passed on the container's
/// `Connection: close` would make every client reconnect per request.
fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        // `Connection: host` must not cost the message its Host.
        if name != HOST {
            headers.remove(name);
        }
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// The container's response as the client should see it.
fn downstream_response<B>(mut response: http::Response<B>) -> http::Response<B> {
    strip_hop_by_hop(response.headers_mut());
    response
}

/// Lines of the container's output into the host log.
fn forward_output<R>(id: &Arc<str>, pipe: Option<R>, stream: &'static str)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let Some(pipe) = pipe else { return };
    let id = id.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(target: "wasmhost::container", "[{id} {stream}] {line}");
        }
    });
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

/// Reads `path` inside `root` with every component resolved in the root
/// (`openat2` with `RESOLVE_IN_ROOT`): an image's `/etc/passwd` may be a
/// symlink, and must never lead to the host's.
pub fn read_in_root(root: &std::path::Path, path: &str) -> Option<String> {
    use std::ffi::CString;
    use std::io::Read as _;
    use std::os::fd::{AsRawFd as _, FromRawFd as _};
    let dir = std::fs::File::open(root).ok()?;
    let path = CString::new(path).ok()?;
    // SAFETY: open_how is plain data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid fd, NUL-terminated path and an initialised open_how of
    // the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: openat2 returned a new fd that we now own.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd as i32) };
    let mut text = String::new();
    file.by_ref().take(1 << 20).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Removes containers (and their roots) that a wasmhost process which no
/// longer exists left behind: ids carry the creating process's pid.
async fn sweep(runtime: &OciRuntime, state_dir: &std::path::Path) {
    let alive = |id: &str| -> bool {
        id.strip_prefix(ID_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
            // SAFETY: signal 0 only checks that the process exists.
            .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0)
    };
    if let Ok(ids) = runtime.list().await {
        for id in ids.iter().filter(|id| !alive(id)) {
            tracing::info!("removing container `{id}` left by an earlier wasmhost");
            let _ = runtime.delete(id).await;
        }
    }
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(ID_PREFIX) && !alive(&name) {
            let _ = super::rootfs::unmount(&entry.path().join("rootfs"));
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(20), Duration::from_secs(30));
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_stripped() {
        let response = http::Response::builder()
            .header("connection", "close, x-hop")
            .header("keep-alive", "timeout=5")
            .header("x-hop", "1")
            .header("transfer-encoding", "chunked")
            .header("content-type", "text/html")
            .header("x-end-to-end", "kept")
            .body(())
            .unwrap();
        let response = downstream_response(response);
        let names: Vec<&str> = response.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "x-end-to-end"]);

        let mut headers = http::HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("example.com"));
        headers.insert("connection", HeaderValue::from_static("host"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.get(HOST).unwrap(), "example.com");
    }
}
