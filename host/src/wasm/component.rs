//! [`ComponentBackend`]: serves requests from a wasi:http component, a
//! fresh instance per request by default.
//!
//! Per request: a new `Store` from the pooling allocator, instantiation
//! through imports resolved once at load (`ProxyPre`), one call of the
//! guest's handler, run on the connection's task (and moved to a task of
//! its own only if it is still running when its response head arrives). The
//! response head comes back through `response-outparam`; the body streams
//! while the guest keeps writing. The
//! whole call runs under the request deadline: the guest yields its thread
//! at every epoch tick, so a looping guest neither blocks other requests
//! nor outlives its deadline by more than a tick.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;

use anyhow::{Context as _, Result};
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::WasiHttpView;

use super::admission::Admission;
use super::cache::{CompileCache, Origin};
use super::engine::{Allocator, EngineSettings, Runtime};
use super::guest_log::CurrentRequest;
use super::load::{self, ComponentBytes, HandlerKind};
use super::p2_handler::{P2Handler, P2HandlerPre};
use super::p3::P3Handler;
use super::state::{new_store, GuestState, InstancePolicy};
use super::tiered::{self, Code, Upgrade};
use crate::backend::{
    text_response, Backend, BodyDeadline, BodyError, BoxError, BoxFuture, ComponentStatus,
    RequestBody, RequestContext, RequestId, ResponseBody, StatusKind,
};
use crate::overrun::Overrun;
use tracing::Instrument as _;

/// How to load and run a component.
#[derive(Debug, Clone)]
pub struct ComponentOptions {
    /// Memory cap, environment and outbound policy of every instance.
    pub instance: InstancePolicy,
    /// Requests one instance may serve before it is dropped; 1 means a
    /// fresh instance per request (the default: no state leaks between
    /// requests).
    pub reuse: u32,
    /// Where compiled code is cached.
    pub cache: CompileCache,
    /// Try the pooling allocator.
    pub pooling: bool,
    /// Requests served at once; more wait for a free instance.
    pub max_concurrency: u32,
    /// Longest a request waits for a free instance before its 503.
    pub queue_timeout: Duration,
    /// Start a component missing from the cache on baseline code
    /// ([`super::tiered`]).
    pub baseline: bool,
}

/// What loading found, for the start-up log and tests.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The handler the component exports.
    pub kind: HandlerKind,
    /// The allocator in use.
    pub allocator: Allocator,
    /// Whether the compiled code came from the cache.
    pub origin: Origin,
    /// Whether the file was a wasip1 module wrapped at load.
    pub componentized: bool,
    /// Time from reading the file to ready.
    pub elapsed: Duration,
}

impl std::fmt::Display for LoadReport {
    /// "in 6ms: P2 handler, Pooling allocator, compiled code loaded from
    /// cache": the start-up log line's tail.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "in {:?}: {:?} handler, {:?} allocator, {}{}",
            self.elapsed,
            self.kind,
            self.allocator,
            match self.origin {
                Origin::Cached => "compiled code loaded from cache",
                Origin::Compiled => "compiled",
                Origin::Peer =>
                    "compiled code loaded from cache once another process compiled it",
                Origin::Baseline =>
                    "serving baseline (Winch) code while Cranelift compiles in the background",
            },
            if self.componentized {
                ", wasip1 module componentized"
            } else {
                ""
            },
        )
    }
}

/// A wasi:http component, ready to serve.
pub struct ComponentBackend {
    serve: Serve,
}

/// The per-request machinery for each handler kind.
enum Serve {
    P2(Arc<Inner>),
    P3(Arc<P3Handler>),
}

struct Inner {
    id: Arc<str>,
    /// The code new instances come from: baseline code is replaced by
    /// optimised code when it is ready.
    code: Arc<Code<P2HandlerPre>>,
    options: ComponentOptions,
    /// Instances waiting for their next request (reuse mode only).
    idle: Mutex<Vec<Slot>>,
    /// One permit per pooling slot: requests beyond it wait.
    admission: Admission,
}

/// One instance and its store.
struct Slot {
    /// The code this instance was (or will be) created from.
    pre: Arc<P2HandlerPre>,
    store: Store<GuestState>,
    proxy: Option<P2Handler>,
    request: CurrentRequest,
    served: u32,
}

/// Idle instances kept for reuse at most; beyond this a finished instance
/// is dropped rather than kept resident.
const MAX_IDLE_INSTANCES: usize = 64;

/// How a guest call ended.
enum Outcome {
    Returned,
    Failed(String),
    TimedOut,
}

impl ComponentBackend {
    /// Loads the component at `path` under the name `id` (used in logs),
    /// on an engine of its own. Every problem a request could only discover
    /// later (bad file, no handler, missing import) is reported here, before
    /// a port is bound.
    pub fn load(
        id: &str,
        path: &Path,
        options: ComponentOptions,
        request_timeout: Duration,
    ) -> Result<(Self, LoadReport)> {
        let started = Instant::now();
        let prepared = load::read_component(path)?;
        tracing::debug!("read and inspected in {:?}", started.elapsed());
        let runtime = Runtime::new(&options.engine_settings(prepared.kind == HandlerKind::P3))?;
        tracing::debug!("engine ready at {:?}", started.elapsed());
        Self::on(
            &runtime,
            id,
            path,
            prepared,
            options,
            request_timeout,
            started,
        )
    }

    /// Compiles (or loads from the cache) and links a component already
    /// read from `path`, on a runtime shared with other components.
    /// `started` is when loading began, for the report.
    pub fn on(
        runtime: &Runtime,
        id: &str,
        path: &Path,
        prepared: ComponentBytes,
        options: ComponentOptions,
        request_timeout: Duration,
        started: Instant,
    ) -> Result<(Self, LoadReport)> {
        let id: Arc<str> = Arc::from(id);
        let (component, origin) = first_code(runtime, &options, &prepared, &id)
            .with_context(|| format!("cannot compile `{}`", path.display()))?;
        tracing::debug!("code ready at {:?}", started.elapsed());
        let linked = instance_pre(&component, prepared.kind, path)?;
        let unusable = || format!("`{}` does not export a usable HTTP handler", path.display());
        let serve = match prepared.kind {
            kind @ (HandlerKind::P2 | HandlerKind::P2Rc20231018) => {
                let pre = P2HandlerPre::new(kind, linked).with_context(unusable)?;
                let code = Arc::new(Code::new(pre));
                if origin == Origin::Baseline {
                    let path = path.to_owned();
                    tiered::optimise_in_background(
                        id.clone(),
                        runtime.engine.clone(),
                        options.cache.clone(),
                        prepared.bytes,
                        Upgrade {
                            target: Arc::downgrade(&code),
                            link: move |component: &Component| {
                                P2HandlerPre::new(kind, instance_pre(component, kind, &path)?)
                            },
                        },
                    )?;
                }
                Serve::P2(Arc::new(Inner {
                    id,
                    code,
                    admission: runtime.admission.clone(),
                    options,
                    idle: Mutex::new(Vec::new()),
                }))
            }
            HandlerKind::P3 => {
                let pre = ServicePre::new(linked)
                    .map_err(anyhow::Error::from)
                    .with_context(unusable)?;
                Serve::P3(Arc::new(P3Handler::new(
                    id,
                    runtime,
                    wasmtime_wasi_http::handler::ProxyPre::P3(pre),
                    &options,
                    request_timeout,
                )))
            }
        };
        let report = LoadReport {
            kind: prepared.kind,
            allocator: runtime.allocator,
            origin,
            componentized: prepared.componentized,
            elapsed: started.elapsed(),
        };
        Ok((Self { serve }, report))
    }
}

impl ComponentOptions {
    /// The engine these options need; `concurrency` for p3 components.
    pub fn engine_settings(&self, concurrency: bool) -> EngineSettings {
        EngineSettings {
            memory_limit: self.instance.memory_limit,
            concurrency,
            pooling: self.pooling,
            max_concurrency: self.max_concurrency,
            queue_timeout: self.queue_timeout,
            baseline: self.baseline,
        }
    }
}

/// The code to start serving from, and where it came from: the cache;
/// else, for a 0.2 handler when allowed, a baseline compile (Cranelift
/// then runs in the background); else a Cranelift compile now.
fn first_code(
    runtime: &Runtime,
    options: &ComponentOptions,
    prepared: &ComponentBytes,
    id: &str,
) -> Result<(Component, Origin)> {
    let engine = &runtime.engine;
    if let Some(component) = options.cache.lookup(engine, &prepared.bytes) {
        return Ok((component, Origin::Cached));
    }
    if runtime.baseline && prepared.kind.is_p2() {
        let baseline = runtime
            .baseline_engine()
            .and_then(|baseline| tiered::compile_baseline(&baseline, &prepared.bytes));
        match baseline {
            Ok(component) => return Ok((component, Origin::Baseline)),
            Err(e) => tracing::warn!(
                component = %id,
                "compiling with Cranelift before serving: {e:#}"
            ),
        }
    }
    options.cache.compile(engine, &prepared.bytes)
}

/// `component` linked against everything wasmhost provides, on the engine
/// that compiled it.
fn instance_pre(
    component: &Component,
    kind: HandlerKind,
    path: &Path,
) -> Result<InstancePre<GuestState>> {
    linker(component.engine(), kind)?
        .instantiate_pre(component)
        .map_err(|e| {
            anyhow::anyhow!(
                "`{}` needs an import wasmhost does not provide: {e:#}",
                path.display()
            )
        })
}

/// The imports every component may use: all of WASI 0.2 (what `wasmtime
/// serve -Scli` provides: Rust's std imports `wasi:cli/*` even in an HTTP
/// handler), wasi:http and the Spin interfaces; for p3 components WASI 0.3
/// as well; for every 0.2 handler, the `0.2.0-rc-2023-10-18` pre-release's
/// WASI too (a Spin SDK 2 module componentized at load imports both it and
/// 0.2, through the adapter; a component exporting a 0.2.x handler may
/// still import interfaces of the pre-release through an older library).
pub(crate) fn linker(engine: &wasmtime::Engine, kind: HandlerKind) -> Result<Linker<GuestState>> {
    let mut linker = Linker::<GuestState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // So a handler's streams do not build the WASI context it never uses.
    super::lazy_wasi::add_io_to_linker(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    super::spin_host::add_to_linker(&mut linker)?;
    if kind.is_p2() {
        super::wasi_2023_10_18::add_to_linker(&mut linker)?;
    }
    if kind == HandlerKind::P3 {
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        super::spin_host::add_p3_to_linker(&mut linker)?;
    }
    Ok(linker)
}

/// The status of a component drawing on the `admission` pool.
pub(crate) fn pool_status(id: &Arc<str>, admission: &Admission) -> ComponentStatus {
    ComponentStatus {
        component: id.clone(),
        kind: StatusKind::Wasm {
            pool: admission.pool_id(),
            slots_in_use: admission.in_use(),
            slots: admission.size() as usize,
        },
    }
}

impl Backend for ComponentBackend {
    fn status(&self) -> Vec<ComponentStatus> {
        vec![match &self.serve {
            Serve::P2(inner) => pool_status(&inner.id, &inner.admission),
            Serve::P3(handler) => handler.status(),
        }]
    }

    fn handle(
        &self,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> BoxFuture<http::Response<ResponseBody>> {
        match &self.serve {
            Serve::P2(inner) => {
                let inner = inner.clone();
                Box::pin(async move { inner.serve(req, ctx).await })
            }
            Serve::P3(handler) => {
                let handler = handler.clone();
                Box::pin(async move { handler.serve(req, ctx).await })
            }
        }
    }
}

impl Inner {
    async fn serve(
        self: Arc<Self>,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> http::Response<ResponseBody> {
        let deadline = tokio::time::Instant::from_std(ctx.deadline);
        // Never more requests in flight than the pool has instances.
        let permit = match self.admission.enter(deadline).await {
            Ok(permit) => permit,
            Err(refused) => return refused.answer(&ctx, &self.id),
        };
        let mut slot = self.checkout();
        slot.request.set(ctx.id);
        let (tx, mut rx) = oneshot::channel();
        let req = req.map(|body| body.map_err(body_error));
        let resources = {
            let mut http = slot.store.data_mut().http();
            http.new_incoming_request(Scheme::Http, req)
                .and_then(|req| Ok((req, http.new_response_outparam(tx)?)))
        };
        let (req, out) = match resources {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(request = %ctx.id, "bad request: {e:#}");
                return text_response(StatusCode::BAD_REQUEST, format!("bad request: {e:#}"));
            }
        };
        // The task reports whether the guest finished cleanly, so a response
        // already streaming can be failed rather than cut off silently.
        let (done_tx, done_rx) = oneshot::channel();
        let this = self.clone();
        let request_id = ctx.id;
        let guest = async move {
            let result = tokio::time::timeout_at(deadline, this.call(&mut slot, req, out)).await;
            let outcome = match result {
                Err(_) => Outcome::TimedOut,
                Ok(Err(e)) => Outcome::Failed(explain(&e, &slot)),
                Ok(Ok(())) => {
                    this.checkin(slot);
                    Outcome::Returned
                }
            };
            this.log(&outcome, request_id);
            let _ = done_tx.send(matches!(outcome, Outcome::Returned));
            drop(permit);
            outcome
        };
        // Run the guest on this task first: a handler that answers and
        // returns within one poll (most do) then costs no task spawn and no
        // cross-thread wake-up. Only a guest still running when its
        // response head arrives (a streaming body) moves to a task of its
        // own, so the head can go out while it works.
        let mut guest = Box::pin(guest);
        let outcome = tokio::select! {
            biased;
            outcome = &mut guest => match rx.try_recv() {
                Ok(result) => return self.response(result, done_rx, None, deadline, &ctx),
                Err(_) => outcome,
            },
            sent = &mut rx => match sent {
                Ok(result) => {
                    // Still overrunning from here on, it moves to the
                    // overrun pool like any other request.
                    let task = tokio::spawn(Overrun::new(guest).in_current_span());
                    let abort = task.abort_handle();
                    return self.response(result, done_rx, Some(abort), deadline, &ctx);
                }
                Err(_) => guest.await,
            },
        };
        self.failure(outcome, &ctx)
    }

    async fn call(
        &self,
        slot: &mut Slot,
        req: wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostIncomingRequest>,
        out: wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostResponseOutparam>,
    ) -> wasmtime::Result<()> {
        let started = Instant::now();
        let proxy = match slot.proxy.take() {
            Some(proxy) => proxy,
            None => {
                let span = tracing::info_span!(target: crate::telemetry::TARGET, "instantiate", wasmhost.component = %self.id);
                slot.pre
                    .instantiate(&mut slot.store)
                    .instrument(span)
                    .await?
            }
        };
        let result = proxy.handle(&mut slot.store, req, out).await;
        crate::telemetry::record_instance_time(started.elapsed());
        slot.proxy = Some(proxy);
        slot.served += 1;
        result
    }

    /// An instance for the next request: a warm one in reuse mode, else new
    /// (from the current code: an idle instance of replaced code is dropped).
    fn checkout(&self) -> Slot {
        let pre = self.code.current();
        if self.options.reuse > 1 {
            if let Some(mut slot) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
                if Arc::ptr_eq(&slot.pre, &pre) {
                    slot.store.data_mut().limiter.refused = None;
                    slot.store.set_epoch_deadline(1);
                    return slot;
                }
            }
        }
        let request = CurrentRequest::default();
        let store = new_store(
            pre.engine(),
            self.id.clone(),
            request.clone(),
            &self.options.instance,
        );
        Slot {
            pre,
            store,
            proxy: None,
            request,
            served: 0,
        }
    }

    /// Keeps a healthy instance for reuse, if reuse is on, it has budget
    /// left and the idle list is not full (a burst's instances are not kept
    /// resident for ever).
    fn checkin(&self, slot: Slot) {
        if self.options.reuse > 1
            && slot.served < self.options.reuse
            && Arc::ptr_eq(&slot.pre, &self.code.current())
        {
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < MAX_IDLE_INSTANCES {
                    idle.push(slot);
                }
            }
        }
    }

    /// Logs a guest call that did not end well, once, wherever it ended:
    /// before or after the response head was sent.
    fn log(&self, outcome: &Outcome, request: RequestId) {
        match outcome {
            Outcome::Returned => {}
            Outcome::TimedOut => {
                tracing::warn!(request = %request, component = %self.id, "request deadline passed: instance stopped")
            }
            Outcome::Failed(why) => {
                tracing::error!(request = %request, component = %self.id, "guest failed: {why}")
            }
        }
    }

    fn response(
        &self,
        result: Result<hyper::Response<HyperOutgoingBody>, ErrorCode>,
        done: oneshot::Receiver<bool>,
        guest: Option<AbortHandle>,
        deadline: tokio::time::Instant,
        ctx: &RequestContext,
    ) -> http::Response<ResponseBody> {
        match result {
            Ok(resp) => {
                let who = (ctx.id, self.id.clone());
                resp.map(|body| GuardedBody::new(body, done, guest, deadline, who).boxed_unsync())
            }
            Err(code) => {
                tracing::warn!(request = %ctx.id, component = %self.id, "guest answered with error code {code:?}");
                text_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("component failed: {code:?}"),
                )
            }
        }
    }

    fn failure(&self, outcome: Outcome, ctx: &RequestContext) -> http::Response<ResponseBody> {
        match outcome {
            Outcome::Returned => {
                tracing::error!(
                    request = %ctx.id, component = %self.id,
                    "guest returned without setting a response (it never called `response-outparam::set`)"
                );
                text_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "component returned no response",
                )
            }
            Outcome::TimedOut => text_response(
                StatusCode::GATEWAY_TIMEOUT,
                "component did not answer in time",
            ),
            Outcome::Failed(_) => {
                text_response(StatusCode::INTERNAL_SERVER_ERROR, "component failed")
            }
        }
    }
}

/// A guest's response body that ends cleanly only if the guest did.
///
/// When the guest traps or hits its deadline mid-body, wasmtime ends the
/// body stream as if it were complete; this wrapper turns that end into an
/// error, so hyper aborts the response (no final chunk on HTTP/1.1,
/// RST_STREAM on HTTP/2) instead of passing a truncated body off as whole.
/// It also bounds a body that never ends (a reused guest that kept its
/// outgoing body) by the request deadline.
///
/// Dropped before the guest finished (the client reset the stream or
/// closed the connection), it cancels the guest, freeing its instance slot
/// instead of letting it run on to its deadline.
struct GuardedBody {
    inner: HyperOutgoingBody,
    done: Option<oneshot::Receiver<bool>>,
    /// The guest's task, when it outlived the response head.
    guest: Option<AbortHandle>,
    deadline: BodyDeadline,
    /// The request and component, for the log line when it is cut.
    who: (RequestId, Arc<str>),
}

impl GuardedBody {
    fn new(
        inner: HyperOutgoingBody,
        done: oneshot::Receiver<bool>,
        guest: Option<AbortHandle>,
        deadline: tokio::time::Instant,
        who: (RequestId, Arc<str>),
    ) -> Self {
        Self {
            inner,
            done: Some(done),
            guest,
            deadline: BodyDeadline::at(deadline),
            who,
        }
    }
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(frame)) => {
                Poll::Ready(Some(frame.map_err(|e| Box::new(e) as BoxError)))
            }
            Poll::Ready(None) => {
                let Some(done) = this.done.as_mut() else {
                    return Poll::Ready(None);
                };
                match Pin::new(done).poll(cx) {
                    Poll::Ready(Ok(true)) => {
                        this.done = None;
                        Poll::Ready(None)
                    }
                    Poll::Ready(_) => {
                        this.done = None;
                        Poll::Ready(Some(Err(
                            "the component failed while sending its response body".into(),
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            Poll::Pending if this.deadline.passed(cx) => {
                let (request, component) = &this.who;
                tracing::warn!(request = %request, component = %component, "request deadline passed while the response body was streaming: instance stopped");
                Poll::Ready(Some(Err(
                    "the request deadline passed while the response body was streaming".into(),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        if let (Some(_), Some(guest)) = (&self.done, &self.guest) {
            if !guest.is_finished() {
                let (request, component) = &self.who;
                tracing::info!(request = %request, component = %component, "response dropped before the guest finished (client gone, or the body cut off): instance stopped");
            }
            guest.abort();
        }
    }
}

/// A one-line account of a failed call: the root cause (the trap), plus
/// the refused memory growth when that is what led to it (a Rust guest
/// aborts when an allocation fails). The full wasm backtrace goes to the
/// debug log.
fn explain(error: &wasmtime::Error, slot: &Slot) -> String {
    tracing::debug!("guest failure in full: {error:?}");
    let root = error.root_cause().to_string();
    let limiter = &slot.store.data().limiter;
    match limiter.refused {
        Some(bytes) => format!(
            "{root} (memory growth to {} MiB was refused: the per-instance cap is {} MiB)",
            bytes >> 20,
            limiter.limit() >> 20
        ),
        None => root,
    }
}

pub(super) fn body_error(e: BodyError) -> wasmtime_wasi_http::Error {
    match e {
        BodyError::TooLarge { limit } => {
            wasmtime_wasi_http::Error::HttpRequestBodySize(Some(limit))
        }
        BodyError::Transport(e) => wasmtime_wasi_http::Error::Hyper(e),
        BodyError::Guest(why) => wasmtime_wasi_http::Error::InternalError(Some(why)),
    }
}
