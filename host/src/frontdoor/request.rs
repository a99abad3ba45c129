//! One request through the front door: limits, deadline, span, access log,
//! and the bookkeeping that lets the connection table tell busy
//! connections from idle ones.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::Instrument as _;

use super::access_log::Entry;
use super::connections::ConnState;
use super::Shared;
use crate::backend::{
    text_response, BodyDeadline, BodyError, BoxError, RequestContext, RequestId, ResponseBody,
    Served,
};
use crate::telemetry;

/// Handles one request on a connection whose state is `conn`.
pub(super) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> Result<http::Response<ResponseBody>, Infallible> {
    let started = Instant::now();
    let in_flight = InFlight::begin(conn, &shared);
    let ctx = RequestContext {
        id: RequestId::next(),
        client_addr: peer,
        deadline: started + shared.limits.request_timeout,
    };
    let span = telemetry::request_span(&req, &ctx);
    let pending = shared.access_log.as_ref().map(|_| PendingEntry::of(&req));
    let method = req.method().clone();
    let response = respond(&shared, req, &ctx).instrument(span.clone()).await;
    let served = response
        .extensions()
        .get::<Served>()
        .cloned()
        .or_else(|| shared.component.clone().map(Served::component));
    let status = response.status();
    telemetry::record_response(&span, status, served.as_ref(), &method, started.elapsed());
    Ok(response.map(|body| {
        Tracked {
            inner: body,
            deadline: BodyDeadline::at(ctx.deadline.into()),
            bytes: 0,
            ended: false,
            failed: false,
            log: pending.map(|pending| Finished {
                pending,
                shared: shared.clone(),
                status,
                served,
                started,
                client: peer,
                request: ctx.id,
            }),
            _span: span,
            _in_flight: in_flight,
        }
        .boxed_unsync()
    }))
}

/// The backend's answer within the limits: 413 for a body over the limit
/// (declared or streamed), 504 when nothing came back by the deadline.
async fn respond(
    shared: &Shared,
    req: http::Request<Incoming>,
    ctx: &RequestContext,
) -> http::Response<ResponseBody> {
    let limit = shared.limits.max_body_bytes;
    if declared_length(&req).is_some_and(|len| len > limit) {
        return too_large(ctx, limit);
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let body = LimitedBody {
        inner: body,
        remaining: limit,
        limit,
        exceeded: exceeded.clone(),
    };
    let req = http::Request::from_parts(parts, body.boxed_unsync());
    let handled = shared.backend.handle(req, ctx.clone());
    let deadline = tokio::time::Instant::from_std(ctx.deadline);
    let resp = match tokio::time::timeout_at(deadline, handled).await {
        Ok(resp) => resp,
        Err(_) => {
            shared.stats.deadline_504s.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(request = %ctx.id, "no response before the request deadline: 504");
            return text_response(StatusCode::GATEWAY_TIMEOUT, "no response in time");
        }
    };
    // Whatever the backend made of a cut-off body, the answer is 413.
    if exceeded.load(Ordering::Relaxed) {
        return too_large(ctx, limit);
    }
    resp
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

/// A request in flight, from its head to the end (or drop) of its
/// response: counted for the connection (so it is not closed as idle) and
/// for the metrics.
struct InFlight {
    conn: Arc<ConnState>,
    shared: Arc<Shared>,
}

impl InFlight {
    fn begin(conn: Arc<ConnState>, shared: &Arc<Shared>) -> Self {
        conn.request_started();
        shared.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            conn,
            shared: shared.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.request_finished();
        self.shared.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The parts of the request the access log needs, taken before the
/// request is handed on.
struct PendingEntry {
    time: DateTime<Utc>,
    method: http::Method,
    target: String,
    version: http::Version,
}

impl PendingEntry {
    fn of<B>(req: &http::Request<B>) -> Self {
        Self {
            time: Utc::now(),
            method: req.method().clone(),
            target: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().to_string(), |p| p.as_str().to_owned()),
            version: req.version(),
        }
    }
}

/// What the access line needs once the body has ended.
struct Finished {
    pending: PendingEntry,
    shared: Arc<Shared>,
    status: StatusCode,
    served: Option<Served>,
    started: Instant,
    client: SocketAddr,
    request: RequestId,
}

/// The response body on its way out: bounded by the request deadline
/// (every backend's body, a container's included), counted, and logged
/// when it ends or is dropped. Holds the request's span open until then.
struct Tracked {
    inner: ResponseBody,
    deadline: BodyDeadline,
    bytes: u64,
    ended: bool,
    failed: bool,
    log: Option<Finished>,
    _span: tracing::Span,
    _in_flight: InFlight,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.failed = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending if this.deadline.passed(cx) => {
                this.failed = true;
                tracing::warn!("the request deadline passed while the response body was streaming");
                Poll::Ready(Some(Err(
                    "the request deadline passed while the response body was streaming".into(),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let Some(done) = self.log.take() else {
            return;
        };
        let Some(log) = done.shared.access_log.as_ref() else {
            return;
        };
        let complete = !self.failed && (self.ended || self.inner.is_end_stream());
        log.write(&Entry {
            time: done.pending.time,
            client: done.client,
            method: &done.pending.method,
            target: &done.pending.target,
            version: done.pending.version,
            status: done.status.as_u16(),
            bytes: self.bytes,
            duration: done.started.elapsed(),
            route: done.served.as_ref().and_then(|s| s.route.as_deref()),
            component: done.served.as_ref().map(|s| &*s.component),
            request: done.request,
            aborted: !complete,
        });
    }
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
