//! What each `Store` carries: the WASI and wasi:http contexts, the resource
//! table and the memory limiter.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, LazyLock};

use http::HeaderName;

use http_body_util::BodyExt;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView, DEFAULT_FORBIDDEN_HEADERS,
};

use super::guest_log::CurrentRequest;
use super::lazy_wasi::{LazyWasi, Recipe};
use super::kept_body::KeptBody;
use super::spin_host::{RedisPool, Variables};
use crate::backend::BodyError;
use crate::services::chaining::{AppHandle, SPIN_INTERNAL};
use crate::services::client_tls::ComponentTls;
use crate::services::key_value::KvAccess;
use crate::services::llm::LlmAccess;
use crate::services::mysql::MyPool;
use crate::services::outbound::AllowList;
use crate::services::postgres::PgPool;
use crate::services::sqlite::SqliteAccess;
use crate::telemetry;
use tracing::Instrument as _;

/// Table growth allowed per instance when no pooling slot caps it. Far
/// above what compiled Rust and C need (their function tables hold a few
/// thousand entries), far below what would hurt the host.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// What every instance of one component runs with.
#[derive(Debug, Clone)]
pub struct InstancePolicy {
    /// Linear-memory cap in bytes.
    pub memory_limit: usize,
    /// Environment variables (Spin's `environment`).
    pub environment: Vec<(String, String)>,
    /// Where outgoing HTTP requests may go.
    pub outbound: Outbound,
    /// Which CA roots and client certificate its outbound TLS (HTTPS,
    /// PostgreSQL) uses, per host.
    pub client_tls: ComponentTls,
    /// A directory every instance sees read-only at `/` (Spin's `files`);
    /// shared so it lives as long as any instance may read it.
    pub files: Option<Arc<tempfile::TempDir>>,
    /// Host directories every instance sees (preopens, read-write unless
    /// marked read-only); created at start-up.
    pub volumes: Vec<crate::volume::Volume>,
    /// The component's Spin variables, rendered at start-up.
    pub variables: Variables,
    /// The key-value stores the component may open, if it may open any.
    pub key_value: Option<KvAccess>,
    /// The SQLite databases the component may open, if it may open any.
    pub sqlite: Option<SqliteAccess>,
    /// The LLM models the component may use and who serves them.
    pub llm: LlmAccess,
    /// Outbound Redis connections, shared by every component of the app.
    pub redis: Arc<RedisPool>,
    /// Outbound PostgreSQL clients, shared by every component of the app.
    pub postgres: Arc<PgPool>,
    /// Outbound MySQL connection pools, shared by every component of the
    /// app.
    pub mysql: Arc<MyPool>,
    /// The app the component belongs to, for `self` and `*.spin.internal`
    /// requests (Spin apps only).
    pub app: Option<AppHandle>,
}

impl Default for InstancePolicy {
    fn default() -> Self {
        Self {
            memory_limit: crate::limits::MEMORY_LIMIT,
            environment: Vec::new(),
            outbound: Outbound::Anywhere,
            client_tls: ComponentTls::default(),
            files: None,
            volumes: Vec::new(),
            variables: Variables::default(),
            key_value: None,
            sqlite: None,
            llm: LlmAccess::default(),
            redis: Arc::default(),
            postgres: Arc::default(),
            mysql: Arc::default(),
            app: None,
        }
    }
}

/// Store data for one instance.
pub struct GuestState {
    wasi: LazyWasi,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: Hooks,
    variables: Variables,
    key_value: Option<KvAccess>,
    sqlite: Option<SqliteAccess>,
    llm: LlmAccess,
    redis: Arc<RedisPool>,
    postgres: Arc<PgPool>,
    mysql: Arc<MyPool>,
    /// Enforces the memory cap and remembers a refused growth, so a trap
    /// that follows can be explained.
    pub limiter: MemoryLimiter,
}

impl GuestState {
    /// Fresh state for one instance of component `id`. `request` tells its
    /// stdio which request it serves. Its WASI context is built on first
    /// use ([`super::lazy_wasi`]).
    pub fn new(id: Arc<str>, request: CurrentRequest, policy: &InstancePolicy) -> Self {
        let recipe = Recipe::new(id, request, policy);
        Self::with_context(LazyWasi::deferred(recipe), policy)
    }

    /// As [`GuestState::new`], letting `customize` add to the WASI context
    /// (a WAGI program's argv, environment, stdin and captured stdout),
    /// which is then built at once: such a program always uses it.
    pub fn with_wasi(
        id: Arc<str>,
        request: CurrentRequest,
        policy: &InstancePolicy,
        customize: impl FnOnce(&mut wasmtime_wasi::WasiCtxBuilder),
    ) -> Self {
        let mut wasi = Recipe::new(id, request, policy).builder();
        customize(&mut wasi);
        Self::with_context(LazyWasi::built(wasi.build()), policy)
    }

    fn with_context(wasi: LazyWasi, policy: &InstancePolicy) -> Self {
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: Hooks {
                outbound: policy.outbound.clone(),
                client_tls: policy.client_tls.clone(),
                app: policy.app.clone(),
            },
            variables: policy.variables.clone(),
            key_value: policy.key_value.clone(),
            sqlite: policy.sqlite.clone(),
            llm: policy.llm.clone(),
            redis: policy.redis.clone(),
            postgres: policy.postgres.clone(),
            mysql: policy.mysql.clone(),
            limiter: MemoryLimiter {
                limit: policy.memory_limit,
                refused: None,
            },
        }
    }
}

/// A store for one instance of component `id`, with the memory cap and
/// the epoch policy every instance runs under: yield the thread at every
/// epoch tick (the request deadline itself is enforced by a timeout around
/// the call, which can only fire when the guest yields).
pub fn new_store(
    engine: &Engine,
    id: Arc<str>,
    request: CurrentRequest,
    policy: &InstancePolicy,
) -> Store<GuestState> {
    store_for(engine, GuestState::new(id, request, policy))
}

/// A store holding `state`, under the memory cap and epoch policy of
/// [`new_store`]. At a tick, a guest that has used its slice (run for a
/// tick in one poll) is also marked as overrunning it, which moves its
/// request off the front door's threads ([`crate::overrun`]); one just back
/// from a wait goes on with a new slice.
pub fn store_for(engine: &Engine, state: GuestState) -> Store<GuestState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| {
        if crate::overrun::slice_used() {
            crate::overrun::mark();
            Ok(wasmtime::UpdateDeadline::Yield(1))
        } else {
            Ok(wasmtime::UpdateDeadline::Continue(1))
        }
    });
    store
}

impl GuestState {
    /// The component's Spin variables.
    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.variables
    }

    /// The key-value stores the component may open.
    pub fn key_value(&self) -> Option<&KvAccess> {
        self.key_value.as_ref()
    }

    /// The SQLite databases the component may open.
    pub fn sqlite(&self) -> Option<&SqliteAccess> {
        self.sqlite.as_ref()
    }

    /// The app's outbound Redis connections.
    pub fn redis_pool(&self) -> &Arc<RedisPool> {
        &self.redis
    }

    /// The component's outbound TLS configurations, by host.
    pub fn client_tls(&self) -> &ComponentTls {
        &self.hooks.client_tls
    }

    /// The app's outbound PostgreSQL clients.
    pub fn postgres_pool(&self) -> &Arc<PgPool> {
        &self.postgres
    }

    /// The app's outbound MySQL connection pools.
    pub fn mysql_pool(&self) -> &Arc<MyPool> {
        &self.mysql
    }

    /// The LLM models the component may use.
    pub fn llm(&self) -> &LlmAccess {
        &self.llm
    }

    /// Whether the component may connect to `address`
    /// (`scheme://[user[:password]@]host[:port][/...]`, as Redis, MQTT,
    /// PostgreSQL and MySQL addresses are written), by the same
    /// `allowed_outbound_hosts` as its HTTP requests; a missing port is the
    /// scheme's well-known one.
    pub fn outbound_allows_address(&self, address: &str) -> bool {
        let Ok(uri) = address.parse::<http::Uri>() else {
            return false;
        };
        match &self.hooks.outbound {
            Outbound::Anywhere => true,
            Outbound::Nowhere => false,
            Outbound::AllowList(list) => {
                let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
                    return false;
                };
                let Some(port) = uri
                    .port_u16()
                    .or_else(|| crate::services::outbound::well_known_port(scheme))
                else {
                    return false;
                };
                list.allows(scheme, host, port)
            }
        }
    }

    /// The instance's resource table (for host interfaces' resources).
    pub fn table(&self) -> &ResourceTable {
        &self.table
    }

    /// Whether the guest has used its WASI context (built on first use).
    pub fn wasi_built(&self) -> bool {
        self.wasi.is_built()
    }

    /// As [`GuestState::table`], mutable.
    pub fn table_mut(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get(),
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The per-instance memory cap.
pub struct MemoryLimiter {
    limit: usize,
    /// The size, in bytes, of the last growth refused.
    pub refused: Option<usize>,
}

impl MemoryLimiter {
    /// The cap in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Where a guest's outgoing HTTP requests may go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Outbound {
    /// Anywhere, as under `wasmtime serve` (the default for a bare
    /// component).
    #[default]
    Anywhere,
    /// Nowhere: every request fails with `HTTP-request-denied` (a Spin
    /// component with no `allowed_outbound_hosts`).
    Nowhere,
    /// Only where the list allows (a Spin component's
    /// `allowed_outbound_hosts`); elsewhere `HTTP-request-denied`.
    AllowList(Arc<AllowList>),
}

impl Outbound {
    /// Whether a request to `uri` may go out.
    fn allows(&self, uri: &http::Uri) -> bool {
        match self {
            Outbound::Anywhere => true,
            Outbound::Nowhere => false,
            Outbound::AllowList(list) => {
                let scheme = uri.scheme_str().unwrap_or("http");
                let default_port = if scheme == "https" { 443 } else { 80 };
                let port = uri.port_u16().unwrap_or(default_port);
                list.allows(scheme, uri.host().unwrap_or_default(), port)
            }
        }
    }
}

/// Where a request into the component's own app goes.
enum Internal {
    /// `http://self/...` or a URL without a host: through the app's routes.
    Routes,
    /// `http://<id>.spin.internal/...`: straight to component `<id>`.
    Component(String),
}

fn internal_target(uri: &http::Uri) -> Option<Internal> {
    match uri.host() {
        None | Some("self") | Some("self.alt") => Some(Internal::Routes),
        Some(host) => host
            .strip_suffix(SPIN_INTERNAL)
            .map(|id| Internal::Component(id.to_owned())),
    }
}

impl Hooks {
    /// A request into the app itself, if the allow-list and the app allow
    /// it: no socket, the other component's backend called directly.
    fn send_internal(
        &self,
        request: http::Request<WasiBody>,
        target: Internal,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let allowed = match (&target, &self.outbound) {
            (_, Outbound::Anywhere) => false,
            (_, Outbound::Nowhere) => false,
            (Internal::Routes, Outbound::AllowList(list)) => list.allows_self(),
            (Internal::Component(_), Outbound::AllowList(_)) => self.outbound.allows(request.uri()),
        };
        let app = self.app.clone().filter(|_| allowed);
        Box::new(async move {
            let Some(app) = app else {
                tracing::info!(
                    "outgoing request to `{}` denied: the app's own routes need `http://self` \
                     (a component: `http://<id>.spin.internal`) in allowed_outbound_hosts",
                    request.uri()
                );
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            };
            let request = request.map(|body| {
                body.map_err(|e| BodyError::Guest(e.to_string()))
                    .boxed_unsync()
            });
            let component = match &target {
                Internal::Routes => None,
                Internal::Component(id) => Some(id.as_str()),
            };
            // The other component runs on a task of its own: on this one
            // its store would run inside the caller's, which a p3 caller's
            // `run_concurrent` refuses (it panics on the nested store).
            let task = tokio::spawn(app.send(request, component).in_current_span());
            let _abort = AbortOnDrop(task.abort_handle());
            let response = match task.await {
                Ok(response) => response,
                Err(e) => {
                    tracing::error!("the chained request failed: {e}");
                    return Err(wasmtime_wasi_http::Error::InternalError(Some(
                        "the chained request failed".to_owned(),
                    )));
                }
            };
            let response = response.map(|body| {
                body.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string())))
                    .boxed_unsync()
            });
            Ok((
                response,
                Box::new(async { Ok(()) })
                    as Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            ))
        })
    }
}

/// Cancels a chained request's task when the caller stops waiting for its
/// response head (its instance is gone, say); a no-op once it finished.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// wasi:http policy hooks: wasmtime's defaults, minus an allocation per
/// header (the default `forbidden_header_filter` builds a new `Arc` closure
/// for every header of every request; this shares one), plus the outbound
/// policy.
struct Hooks {
    outbound: Outbound,
    client_tls: ComponentTls,
    app: Option<AppHandle>,
}

static FORBIDDEN: LazyLock<ForbiddenHeaderFilter> =
    LazyLock::new(|| Arc::new(|name: &HeaderName| DEFAULT_FORBIDDEN_HEADERS.contains(name)));

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for Hooks {
    fn is_forbidden_header(&mut self, name: &HeaderName) -> bool {
        DEFAULT_FORBIDDEN_HEADERS.contains(name)
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        FORBIDDEN.clone()
    }

    /// An outgoing request: into the app itself, or out through
    /// wasmtime's client (with the component's TLS configuration for the
    /// host, [`super::outgoing`]) when the allow-list lets it. The request body is
    /// a [`KeptBody`]: hyper may be done with it before the guest is.
    /// `_fut` (wasi:http 0.3 only: how the guest's reading of the response
    /// ended) is dropped, as wasmtime's default hook drops it: nothing here
    /// reports on a response once its body is handed over.
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        if let Some(target) = internal_target(request.uri()) {
            return self.send_internal(request, target);
        }
        let allowed = self.outbound.allows(request.uri());
        let client_tls = self.client_tls.clone();
        let span = telemetry::client_span(request.method(), request.uri(), "http");
        telemetry::inject(&span, request.headers_mut());
        let sent = async move {
            if !allowed {
                tracing::info!(
                    "outgoing request to `{}` denied: not in the component's allowed outbound hosts",
                    request.uri()
                );
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            }
            // The guest may still be finishing the body when hyper is
            // done with it (kept_body.rs: the Python SDK's
            // `StreamError_Closed()`).
            let request = request.map(|body| KeptBody::new(body).boxed_unsync());
            let (response, io) =
                super::outgoing::send_request(request, options, &client_tls).await?;
            telemetry::record_client_status(&tracing::Span::current(), Some(response.status()));
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            ))
        };
        Box::new(sent.instrument(span))
    }
}
