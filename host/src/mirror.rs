//! Traffic mirroring: a route is served by one component while a copy of
//! each request goes to another, whose answer is compared with the served
//! one (status, body, and the headers the user names). Mismatches are
//! counted per route and logged with a sample, so a migration can be
//! judged on real traffic before any user sees the new backend.
//!
//! The mirrored call runs on a task of its own and never delays or fails
//! the served response; the served body streams to the client as usual
//! while a bounded copy is kept for the comparison. The request body is
//! buffered (bounded by the front door's body limit) since both backends
//! need it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::HeaderName;
use http_body::{Body, Frame};
use http_body_util::{BodyExt as _, Full};
use tokio::sync::oneshot;

use crate::backend::{
    text_response, Backend, BodyError, BoxError, BoxFuture, RequestBody, RequestContext, RequestId,
    ResponseBody,
};
use crate::metrics::Metrics;

/// Bodies longer than this are compared by length and digest of their
/// first part only.
pub const COMPARE_LIMIT: usize = 1 << 20;

/// Where a route's copies go.
pub struct Mirror {
    /// The route, as written (for logs and counters).
    pub route: Arc<str>,
    /// The component that gets the copies.
    pub component: Arc<str>,
    /// Its backend.
    pub backend: Arc<dyn Backend>,
    /// Response headers compared besides status and body.
    pub compare_headers: Vec<HeaderName>,
    /// Only requests with these methods are copied; empty: all. Copying a
    /// write to a component that shares the served one's data would apply
    /// it twice.
    pub methods: Vec<http::Method>,
}

impl Mirror {
    /// Whether a `method` request gets copied.
    pub fn applies_to(&self, method: &http::Method) -> bool {
        self.methods.is_empty() || self.methods.contains(method)
    }
}

/// Serves `req` with `primary` and mirrors it to `mirror`.
pub fn serve(
    primary: Arc<dyn Backend>,
    mirror: &Mirror,
    req: http::Request<RequestBody>,
    ctx: RequestContext,
    metrics: Arc<Metrics>,
) -> BoxFuture<http::Response<ResponseBody>> {
    let shadow_backend = mirror.backend.clone();
    let shadow_component = mirror.component.clone();
    let compare_headers = mirror.compare_headers.clone();
    let route = mirror.route.clone();
    Box::pin(async move {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(BodyError::TooLarge { limit }) => {
                return text_response(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body exceeds the {limit}-byte limit"),
                )
            }
            Err(e) => return text_response(http::StatusCode::BAD_REQUEST, format!("{e}")),
        };
        let shadow_req = {
            let mut r = http::Request::new(full(body.clone()));
            *r.method_mut() = parts.method.clone();
            *r.uri_mut() = parts.uri.clone();
            *r.version_mut() = parts.version;
            *r.headers_mut() = parts.headers.clone();
            r
        };
        let shadow_ctx = RequestContext {
            id: RequestId::next(),
            client_addr: ctx.client_addr,
            deadline: ctx.deadline,
        };
        let response = primary
            .handle(http::Request::from_parts(parts, full(body)), ctx)
            .await;
        let (head, body) = response.into_parts();
        let declared = head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let (captured_tx, captured_rx) = oneshot::channel::<Bytes>();
        let served = Compared {
            status: head.status,
            headers: compare_headers
                .iter()
                .map(|name| head.headers.get(name).cloned())
                .collect(),
        };
        tracing::debug!(route = %route, "mirroring to `{shadow_component}`");
        tokio::spawn(async move {
            let shadow = shadow_backend.handle(shadow_req, shadow_ctx).await;
            tracing::debug!(route = %route, "mirror answered {}", shadow.status());
            let (shadow_head, shadow_body) = shadow.into_parts();
            let shadow_bytes = collect_bounded(shadow_body).await;
            let Ok(served_bytes) = captured_rx.await else {
                tracing::debug!(route = %route, "served body not complete: not compared");
                return; // the client went away before the body ended
            };
            let mut differences = Vec::new();
            if shadow_head.status != served.status {
                differences.push(format!(
                    "status {} vs {}",
                    served.status, shadow_head.status
                ));
            }
            for (name, value) in compare_headers.iter().zip(&served.headers) {
                if shadow_head.headers.get(name) != value.as_ref() {
                    differences.push(format!("header `{name}`"));
                }
            }
            if shadow_bytes != served_bytes {
                differences.push(format!(
                    "body ({} vs {} bytes)",
                    served_bytes.len(),
                    shadow_bytes.len()
                ));
            }
            metrics.observe_mirror(&route, &shadow_component, differences.is_empty());
            if !differences.is_empty() {
                metrics.record_mismatch(crate::metrics::Mismatch {
                    at: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    route: route.to_string(),
                    component: shadow_component.to_string(),
                    differences: differences.join(", "),
                });
                tracing::warn!(
                    route = %route,
                    component = %shadow_component,
                    "mirror mismatch: {}",
                    differences.join(", ")
                );
            }
        });
        http::Response::from_parts(head, Tee::new(body, captured_tx, declared).boxed_unsync())
    })
}

struct Compared {
    status: http::StatusCode,
    headers: Vec<Option<http::HeaderValue>>,
}

fn full(bytes: Bytes) -> RequestBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

async fn collect_bounded(mut body: ResponseBody) -> Bytes {
    let mut out = BytesMut::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline.into(), body.frame()).await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    let room = COMPARE_LIMIT.saturating_sub(out.len());
                    out.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Err(_) => break,
        }
    }
    out.freeze()
}

/// The served body, passed through unchanged, with a bounded copy handed
/// over when it ends.
struct Tee {
    inner: ResponseBody,
    copy: BytesMut,
    done: Option<oneshot::Sender<Bytes>>,
    /// Bytes passed through so far.
    seen: u64,
    /// The body's length when it declared one.
    expected: Option<u64>,
}

impl Tee {
    /// `declared`: the response's `content-length`, if any.
    fn new(inner: ResponseBody, done: oneshot::Sender<Bytes>, declared: Option<u64>) -> Self {
        let expected = inner.size_hint().exact().or(declared);
        Self {
            inner,
            copy: BytesMut::new(),
            done: Some(done),
            seen: 0,
            expected,
        }
    }

    fn finish(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(std::mem::take(&mut self.copy).freeze());
        }
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        // hyper may drop a body of known length without polling its end;
        // all of it went out, so it counts as complete. A body cut short
        // (the client left) is not compared.
        if self.expected == Some(self.seen) {
            self.finish();
        }
    }
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let room = COMPARE_LIMIT.saturating_sub(self.copy.len());
                    let take = data.len().min(room);
                    let len = data.len() as u64;
                    self.copy.extend_from_slice(&data[..take]);
                    self.seen += len;
                }
                // hyper stops polling once the body says it has ended.
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(None) => self.finish(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
