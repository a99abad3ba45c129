//! The one backend trait. The front door hands every request to a
//! `Backend` and never asks which kind it holds: a Wasm component today, a
//! native container later.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// Error type of response bodies: whatever a backend's body stream fails
/// with, boxed so hyper can report it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body as the front door hands it over: streamed, with the
/// size limit already applied.
pub type RequestBody = UnsyncBoxBody<Bytes, BodyError>;

/// A response body: streamed from the backend to the client.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// A boxed, sendable future, so backends of different kinds fit behind
/// `dyn Backend`.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Why reading a request body failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client sent more than the configured limit.
    #[error("request body exceeds the {limit}-byte limit")]
    TooLarge {
        /// The limit in force.
        limit: u64,
    },
    /// The connection failed mid-body.
    #[error("reading the request body failed: {0}")]
    Transport(#[from] hyper::Error),
    /// The calling component's body failed (a request one component sent
    /// to another of the same app).
    #[error("the calling component's request body failed: {0}")]
    Guest(String),
}

/// Identifies one request in logs, so a guest's output and the access log
/// can be matched. Unique within a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(u64);

impl RequestId {
    /// The next id; ids start at 1 and only grow.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The raw value, for storing in an atomic.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Rebuilds an id stored with [`RequestId::as_u64`].
    pub fn from_u64(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// What the front door knows about a request besides the request itself.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// For log lines.
    pub id: RequestId,
    /// The peer, for backends that pass it on (Spin's `spin-client-addr`).
    pub client_addr: SocketAddr,
    /// When the backend must have finished, body included.
    pub deadline: Instant,
}

/// Which route and component served a response: put in the response's
/// extensions by whoever knows (the app's dispatcher), read by the front
/// door for the access log and the request's span.
#[derive(Debug, Clone)]
pub struct Served {
    /// The route as written in the manifest; `None` for a lone component
    /// or image, which takes every path.
    pub route: Option<Arc<str>>,
    /// The component's id.
    pub component: Arc<str>,
}

impl Served {
    /// Served by `component`, with no route of its own.
    pub fn component(component: Arc<str>) -> Self {
        Self {
            route: None,
            component,
        }
    }
}

/// A time limit on a response body, armed only once the body has to wait
/// (most bodies never do, and a timer per request is not free).
#[derive(Debug)]
pub struct BodyDeadline {
    deadline: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl BodyDeadline {
    /// A limit at `deadline`.
    pub fn at(deadline: tokio::time::Instant) -> Self {
        Self {
            deadline,
            timer: None,
        }
    }

    /// Whether the deadline has passed; registers `cx` to be woken when it
    /// does. Call it when the body is about to return `Pending`.
    pub fn passed(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer.as_mut().poll(cx).is_ready()
    }
}

/// How one component of an app is doing, for `/readyz` and the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentStatus {
    /// The component's id.
    pub component: Arc<str>,
    /// What it is and how it is doing.
    pub kind: StatusKind,
}

/// The part of [`ComponentStatus`] that depends on the kind of workload.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusKind {
    /// Wasm: instance slots in use of the app's pool.
    Wasm {
        /// Identifies the pool, which an app's components share.
        pool: usize,
        /// Slots held by requests now.
        slots_in_use: usize,
        /// The pool's size.
        slots: usize,
    },
    /// A container: its lifecycle state, and whether it can take requests
    /// (a lazy container that is stopped can: it starts on demand).
    Container {
        /// `stopped`, `starting`, `running`, `failed`, ...
        state: &'static str,
        /// Ready for requests.
        ready: bool,
        /// What its health checks say (`starting`, `healthy`,
        /// `unhealthy`), while one runs with a check.
        health: Option<&'static str>,
    },
}

impl ComponentStatus {
    /// Whether the component can take requests now.
    pub fn ready(&self) -> bool {
        match self.kind {
            StatusKind::Wasm { .. } => true,
            StatusKind::Container { ready, .. } => ready,
        }
    }
}

/// Something that turns requests into responses.
///
/// Implementations never fail: a failure becomes a response (500, 502,
/// 504, ...) and a log line, so one bad request or one bad guest never takes
/// the listener down.
pub trait Backend: Send + Sync + 'static {
    /// Handles one request.
    fn handle(
        &self,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> BoxFuture<http::Response<ResponseBody>>;

    /// Releases what outlives requests (a container's processes), once
    /// the front door has drained. Wasm components hold nothing.
    fn shutdown(&self) -> BoxFuture<()> {
        Box::pin(async {})
    }

    /// How its components are doing (`/readyz`, metrics).
    fn status(&self) -> Vec<ComponentStatus> {
        Vec::new()
    }
}

/// A short plain-text response, for errors the host itself answers.
pub fn text_response(
    status: http::StatusCode,
    text: impl Into<String>,
) -> http::Response<ResponseBody> {
    let mut body = text.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let mut resp = http::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
