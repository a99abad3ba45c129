//! Test guest: a fixed greeting. Asked with `?log` in the query, it also
//! writes one line to stdout and one to stderr, because the host's tests
//! check that guest stdio ends up in the host log (benchmarks leave it out,
//! so they measure instantiation, not logging). Built for wasm32-wasip1 too, as the core-module input
//! the host must componentize itself.

use std::sync::atomic::{AtomicU32, Ordering};

use wasmhost_sdk::http::header::{HeaderValue, CONTENT_TYPE};
use wasmhost_sdk::{http_component, Request, Response};

/// Requests this instance has served, reported in `x-instance-requests`
/// so tests can tell a fresh instance (always 1) from a reused one.
static SERVED: AtomicU32 = AtomicU32::new(0);

#[http_component]
fn handle(req: Request) -> Response {
    let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
    if req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "log"))
    {
        println!("hello: handled {} {}", req.method(), req.uri().path());
        eprintln!("hello: stderr check");
    }
    let mut response = Response::new("Hello, world!\n".into());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
        .headers_mut()
        .insert("x-instance-requests", HeaderValue::from(served));
    response
}
