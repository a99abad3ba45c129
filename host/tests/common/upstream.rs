//! A real HTTP/1 service on loopback, run by the test itself: what an
//! upstream component (`upstream = "http://127.0.0.1:PORT"`) points at.
//! Its answers are set by the test while it runs (status, delay, body), and
//! it counts the connections it accepted and the requests it answered.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// How the service answers, changeable while it runs.
pub struct Behaviour {
    /// The status of every answer.
    pub status: AtomicU16,
    /// Milliseconds before the head goes out.
    pub delay_ms: AtomicU64,
    /// The body of every answer.
    pub body: Mutex<String>,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
}

/// A running service.
pub struct Service {
    /// `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
    /// Its behaviour.
    pub behaviour: Arc<Behaviour>,
    task: tokio::task::JoinHandle<()>,
}

impl Service {
    /// A service answering 200 `body` at once, with `x-served-by: name`.
    pub async fn start(name: &'static str, body: &str) -> Service {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let behaviour = Arc::new(Behaviour {
            status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            body: Mutex::new(body.to_owned()),
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        });
        let shared = behaviour.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let b = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                        let b = b.clone();
                        async move {
                            let delay = b.delay_ms.load(Ordering::SeqCst);
                            if delay > 0 {
                                tokio::time::sleep(Duration::from_millis(delay)).await;
                            }
                            b.requests.fetch_add(1, Ordering::SeqCst);
                            let body = b.body.lock().unwrap().clone();
                            http::Response::builder()
                                .status(b.status.load(Ordering::SeqCst))
                                .header("x-served-by", name)
                                .header("content-type", "text/plain")
                                .body(Full::new(Bytes::from(body)))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Service {
            addr,
            behaviour,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
    }
}
