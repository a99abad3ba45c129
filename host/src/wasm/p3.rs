//! Serving `wasi:http/handler@0.3` components.
//!
//! A p3 handler is an async export driven by the store's concurrent event
//! loop, and its response body keeps that loop busy after the handler
//! returns. wasmtime-wasi-http's `ProxyHandler` owns that machinery; this
//! module supplies the policy it asks for: a fresh instance per request
//! (or up to `--reuse`), the request deadline, and log lines.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::StatusCode;
use http_body_util::BodyExt;
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, ProxyHandler, ProxyPre, ShouldAccept,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use super::admission::Admission;
use super::component::ComponentOptions;
use super::engine::Runtime;
use super::guest_log::CurrentRequest;
use super::state::{new_store, GuestState, InstancePolicy};
use crate::backend::{
    text_response, BoxError, RequestBody, RequestContext, RequestId, ResponseBody,
};
use crate::overrun::OnPool;

/// How long a reused p3 instance may sit idle before it is dropped.
const IDLE_INSTANCE_TTL: Duration = Duration::from_secs(10);

/// Serves requests through wasmtime-wasi-http's `ProxyHandler`.
pub struct P3Handler {
    handler: ProxyHandler<Policy>,
    /// One permit per pooling slot, shared with the app's other components.
    admission: Admission,
}

struct Policy {
    id: Arc<str>,
    engine: wasmtime::Engine,
    pre: ProxyPre<GuestState>,
    instance: InstancePolicy,
    reuse: u32,
    timeout: Duration,
}

struct Worker {
    id: Arc<str>,
    request: CurrentRequest,
    reuse: u32,
}

struct Expiry {
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
}

impl P3Handler {
    /// A handler for the pre-instantiated p3 component `pre`.
    pub fn new(
        id: Arc<str>,
        runtime: &Runtime,
        pre: ProxyPre<GuestState>,
        options: &ComponentOptions,
        timeout: Duration,
    ) -> Self {
        let policy = Policy {
            id,
            engine: runtime.engine.clone(),
            pre,
            instance: options.instance.clone(),
            reuse: options.reuse,
            timeout,
        };
        Self {
            handler: ProxyHandler::new(policy),
            admission: runtime.admission.clone(),
        }
    }

    /// Instance slots in use.
    pub fn status(&self) -> crate::backend::ComponentStatus {
        super::component::pool_status(&self.handler.state().id, &self.admission)
    }

    /// Handles one request; failures become responses.
    pub async fn serve(
        &self,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> http::Response<ResponseBody> {
        let id = self.handler.state().id.clone();
        let req = with_absolute_uri(req)
            .map(|body| body.map_err(super::component::body_error).boxed_unsync());
        let deadline = tokio::time::Instant::from_std(ctx.deadline);
        let _permit = match self.admission.enter(deadline).await {
            Ok(permit) => permit,
            Err(refused) => return refused.answer(&ctx, &id),
        };
        // The guest's worker tasks, which the handler spawns itself, run on
        // the overrun pool: a WASIp3 guest never holds the front door's
        // threads (see `crate::overrun`).
        let handled = OnPool::new(self.handler.handle((ctx.id, ctx.deadline), req));
        let result = tokio::time::timeout_at(deadline, handled).await;
        match result {
            Ok(Ok(resp)) => {
                resp.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync())
            }
            Ok(Err(e)) if e.is::<ExpirationError>() => timed_out(&id, &ctx),
            Err(_) => timed_out(&id, &ctx),
            Ok(Err(e)) => {
                tracing::error!(request = %ctx.id, component = %id, "guest failed: {}", e.root_cause());
                text_response(StatusCode::INTERNAL_SERVER_ERROR, "component failed")
            }
        }
    }
}

fn timed_out(id: &str, ctx: &RequestContext) -> http::Response<ResponseBody> {
    tracing::warn!(request = %ctx.id, component = %id, "request deadline passed: instance stopped");
    text_response(
        StatusCode::GATEWAY_TIMEOUT,
        "component did not answer in time",
    )
}

/// p3 requests carry scheme and authority in the URI; HTTP/1.1 requests
/// arrive with only a path and a `host` header.
fn with_absolute_uri<B>(mut req: http::Request<B>) -> http::Request<B> {
    if req.uri().authority().is_some() {
        return req;
    }
    let Some(host) = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return req;
    };
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    if let Ok(authority) = host.parse() {
        parts.authority = Some(authority);
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

impl HandlerState for Policy {
    type StoreData = GuestState;
    type WorkerExpiration = Expiry;
    type WorkerState = Worker;

    fn instantiate(
        &self,
    ) -> impl Future<Output = wasmtime::Result<Instance<GuestState, Expiry, Worker>>> + Send {
        let request = CurrentRequest::default();
        let mut store = new_store(
            &self.engine,
            self.id.clone(),
            request.clone(),
            &self.instance,
        );
        let worker = Worker {
            id: self.id.clone(),
            request,
            reuse: self.reuse,
        };
        let expiry = Expiry {
            timeout: self.timeout,
            sleep: Box::pin(tokio::time::sleep(self.timeout)),
            armed: None,
        };
        async move {
            let proxy = self.pre.instantiate_async(&mut store).await?;
            Ok(Instance {
                store,
                proxy,
                view: http_view,
                expiration: expiry,
                state: worker,
            })
        }
    }
}

fn http_view(state: &mut GuestState) -> WasiHttpCtxView<'_> {
    state.http()
}

impl WorkerState for Worker {
    type StoreData = GuestState;
    type RequestData = (RequestId, Instant);

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        match (total < self.reuse as usize, concurrent) {
            (false, _) => ShouldAccept::Never,
            (true, 0) => ShouldAccept::Yes,
            (true, _) => ShouldAccept::No,
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, GuestState>,
        (id, deadline): (RequestId, Instant),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        self.request.set(id);
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn drop(&self, _store: Store<GuestState>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            tracing::error!(component = %self.id, "guest instance failed: {}", e.root_cause());
        }
    }
}

impl WorkerExpiration for Expiry {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        state: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        // Post-return work (a p3 guest writes its body from a task that
        // outlives the handler) gets the request timeout again, counted from
        // when the response was produced.
        let limit = match state {
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.timeout,
            WorkerStatus::Idle => IDLE_INSTANCE_TTL,
        };
        let deadline = start + limit;
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        // Re-arm the timer only when the deadline moves: this is polled for
        // every body chunk.
        if self.armed != Some(deadline) {
            self.armed = Some(deadline);
            self.sleep.as_mut().reset(deadline.into());
        }
        self.sleep.as_mut().poll(cx)
    }
}
