//! Proxying against a real HTTP/1 server on the host's loopback, reached
//! through a network namespace made with the fake kernel (which leaves the
//! namespace thread in the host's own namespace).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::rt::TokioIo;

use super::*;
use crate::backend::RequestId;
use crate::container::sys::fake::Recording;

/// A container's service, as far as proxying cares: `/hang` never
/// answers, `/close` answers and closes its connection (with hop-by-hop
/// headers of its own), anything else answers `hello` and keeps the
/// connection open.
struct Service {
    port: u16,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<(http::Uri, http::HeaderMap)>>>,
}

async fn service() -> Service {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (counted, recorded) = (connections.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<_>| {
                    let recorded = recorded.clone();
                    async move {
                        let (parts, _) = req.into_parts();
                        recorded
                            .lock()
                            .unwrap()
                            .push((parts.uri.clone(), parts.headers.clone()));
                        let response = match parts.uri.path() {
                            "/hang" => std::future::pending().await,
                            "/close" => http::Response::builder()
                                .header("connection", "close, x-hop")
                                .header("x-hop", "1")
                                .header("keep-alive", "timeout=5")
                                .body(Full::new(Bytes::from("bye")))
                                .unwrap(),
                            _ => http::Response::new(Full::new(Bytes::from("hello"))),
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Service {
        port,
        connections,
        seen,
    }
}

fn upstream(port: u16) -> Upstream {
    let netns = NetNs::create("proxy-test", Arc::new(Recording::default())).unwrap();
    Upstream::new(netns, port)
}

fn context(within: Duration) -> RequestContext {
    RequestContext {
        id: RequestId::next(),
        client_addr: SocketAddr::from(([10, 0, 0, 7], 40000)),
        deadline: Instant::now() + within,
    }
}

fn get(uri: &str) -> http::Request<RequestBody> {
    http::Request::builder()
        .uri(uri)
        .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync())
        .unwrap()
}

async fn text(response: http::Response<ResponseBody>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Waits until the pool holds `n` connections (a connection goes back to
/// it from a task of its own once its response is through).
async fn pooled(upstream: &Upstream, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while upstream.idle_connections() != n {
        assert!(Instant::now() < deadline, "the pool never held {n}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn hop_by_hop_headers_stay_on_their_side_and_the_container_sees_an_origin_request() {
    let service = service().await;
    let upstream = upstream(service.port);
    let mut req = get("http://example.com/close?q=1");
    for (name, value) in [
        ("te", "trailers"),
        ("connection", "x-private"),
        ("x-private", "secret"),
        ("x-forwarded-for", "192.0.2.1"),
        ("x-end-to-end", "kept"),
    ] {
        req.headers_mut().insert(name, value.parse().unwrap());
    }
    let response = forward(&upstream, req, &context(Duration::from_secs(5)), "web").await;
    assert_eq!(response.status(), 200);
    for name in ["connection", "keep-alive", "x-hop"] {
        assert!(
            response.headers().get(name).is_none(),
            "{name} reached the client"
        );
    }
    assert_eq!(text(response).await, "bye");
    let seen = service.seen.lock().unwrap().clone();
    let (uri, headers) = &seen[0];
    assert_eq!(uri.to_string(), "/close?q=1");
    assert_eq!(headers["host"], "example.com");
    assert_eq!(headers["x-forwarded-for"], "192.0.2.1, 10.0.0.7");
    assert_eq!(headers["x-end-to-end"], "kept");
    for name in ["te", "x-private"] {
        assert!(headers.get(name).is_none(), "{name} reached the container");
    }
}

#[tokio::test]
async fn a_connection_the_container_keeps_open_serves_the_next_request() {
    let service = service().await;
    let upstream = upstream(service.port);
    let ctx = context(Duration::from_secs(5));
    for _ in 0..3 {
        let response = forward(&upstream, get("/"), &ctx, "web").await;
        assert_eq!(text(response).await, "hello");
        pooled(&upstream, 1).await;
    }
    assert_eq!(service.connections.load(Ordering::SeqCst), 1);
    // The container closes it after this one: it is not kept...
    let response = forward(&upstream, get("/close"), &ctx, "web").await;
    assert_eq!(text(response).await, "bye");
    assert_eq!(upstream.idle_connections(), 0);
    // ...and the next request connects afresh.
    let response = forward(&upstream, get("/"), &ctx, "web").await;
    assert_eq!(text(response).await, "hello");
    assert_eq!(service.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_container_that_never_answers_gets_504_at_the_deadline() {
    let service = service().await;
    let upstream = upstream(service.port);
    let started = Instant::now();
    let response = forward(
        &upstream,
        get("/hang"),
        &context(Duration::from_millis(200)),
        "web",
    )
    .await;
    assert_eq!(response.status(), 504);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // Its other requests are served meanwhile and after.
    let response = forward(&upstream, get("/"), &context(Duration::from_secs(5)), "web").await;
    assert_eq!(text(response).await, "hello");
}

#[tokio::test]
async fn a_port_nobody_listens_on_is_502() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let upstream = upstream(port);
    let response = forward(&upstream, get("/"), &context(Duration::from_secs(5)), "web").await;
    assert_eq!(response.status(), 502);
    assert!(text(response).await.contains("cannot connect"));
}
