//! The HTTP front door: accepts connections, speaks HTTP/1.1 and HTTP/2
//! (h2c with prior knowledge) on the same port, applies the request limits
//! and hands each request to the backend. Shutdown drains in-flight
//! requests.
//!
//! Three layers, as in wasmtime's `serve`: the accept loop
//! ([`serve`]), one task per connection (hyper's), and per-request code
//! ([`handle_request`]).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::backend::{text_response, Backend, BodyError, RequestContext, RequestId, ResponseBody};
use crate::limits;
use crate::shutdown::Shutdown;

/// Front-door limits; every field has a default in [`crate::limits`].
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock budget per request.
    pub request_timeout: Duration,
    /// Largest request head in bytes (431 above).
    pub max_header_bytes: usize,
    /// Largest request body in bytes (413 above).
    pub max_body_bytes: u64,
    /// How long a shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: limits::REQUEST_TIMEOUT,
            max_header_bytes: limits::MAX_HEADER_BYTES,
            max_body_bytes: limits::MAX_BODY_BYTES,
            drain_timeout: limits::DRAIN_TIMEOUT,
        }
    }
}

/// How the server stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Every in-flight request finished.
    Drained,
    /// The drain timeout passed with connections still open.
    DrainTimedOut,
    /// A second shutdown request arrived during the drain.
    Forced,
}

/// Serves `backend` on `listener` until `shutdown` is requested, then
/// stops accepting and drains.
pub async fn serve(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
    limits: Limits,
    mut shutdown: Shutdown,
) -> Stopped {
    let builder = connection_builder(&limits);
    let graceful = GracefulShutdown::new();
    let limits = Arc::new(limits);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!("cannot set TCP_NODELAY for {peer}: {e}");
                    }
                    let service = hyper::service::service_fn({
                        let backend = backend.clone();
                        let limits = limits.clone();
                        move |req| handle_request(backend.clone(), limits.clone(), peer, req)
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!("connection from {peer} ended with an error: {e}");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead
                    // of spinning, and keep serving the open connections.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.requested(1) => break,
        }
    }
    drop(listener);
    tracing::info!(
        "shutting down: no longer accepting; draining in-flight requests for up to {:?}",
        limits.drain_timeout
    );
    tokio::select! {
        _ = graceful.shutdown() => {
            tracing::info!("all connections drained");
            Stopped::Drained
        }
        _ = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!("drain timeout of {:?} passed; closing the remaining connections", limits.drain_timeout);
            Stopped::DrainTimedOut
        }
        _ = shutdown.requested(2) => {
            tracing::warn!("second shutdown signal: stopping now");
            Stopped::Forced
        }
    }
}

fn connection_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // Closes connections that send no (complete) request head in time,
        // idle keep-alive connections included; without a timer hyper
        // silently applies none.
        .header_read_timeout(limits::HEADER_READ_TIMEOUT)
        // hyper answers 431 itself once the head outgrows this buffer.
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits::H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(limits::H2_KEEP_ALIVE_INTERVAL)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

async fn handle_request(
    backend: Arc<dyn Backend>,
    limits: Arc<Limits>,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> Result<http::Response<ResponseBody>, std::convert::Infallible> {
    let ctx = RequestContext {
        id: RequestId::next(),
        client_addr: peer,
        deadline: Instant::now() + limits.request_timeout,
    };
    if let Some(len) = declared_length(&req) {
        if len > limits.max_body_bytes {
            return Ok(too_large(&ctx, limits.max_body_bytes));
        }
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let body = LimitedBody {
        inner: body,
        remaining: limits.max_body_bytes,
        limit: limits.max_body_bytes,
        exceeded: exceeded.clone(),
    };
    let req = http::Request::from_parts(parts, body.boxed_unsync());
    let resp = backend.handle(req, ctx.clone()).await;
    // Whatever the backend made of a cut-off body, the answer is 413.
    if exceeded.load(Ordering::Relaxed) {
        return Ok(too_large(&ctx, limits.max_body_bytes));
    }
    Ok(resp)
}

fn declared_length<B>(req: &http::Request<B>) -> Option<u64> {
    req.headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn too_large(ctx: &RequestContext, limit: u64) -> http::Response<ResponseBody> {
    tracing::info!(request = %ctx.id, "request body larger than {limit} bytes: 413");
    text_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body larger than the {limit}-byte limit"),
    )
}

/// A request body that fails once more than `limit` bytes arrive, and
/// records that it did so the front door can answer 413.
struct LimitedBody {
    inner: Incoming,
    remaining: u64,
    limit: u64,
    exceeded: Arc<AtomicBool>,
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > self.remaining {
                self.exceeded.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(BodyError::TooLarge { limit: self.limit })));
            }
            self.remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
