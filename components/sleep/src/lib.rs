//! Bench guest: waits, then answers. The memory-at-scale bench
//! (bench/scale_bench.py) holds 10,000 requests in flight with it, so
//! each must wait without holding a core: the wait is a
//! `wasi:clocks/monotonic-clock` timer the guest blocks on through
//! `wasi:io/poll`, which the host serves asynchronously (the instance is
//! parked, its thread serves others). Plain wasi:http/proxy, so the same
//! file runs under `wasmtime serve`.

use wasi::clocks::monotonic_clock;
use wasmhost_sdk::http::header::{HeaderValue, CONTENT_TYPE};
use wasmhost_sdk::{http_component, Request, Response};

/// How long a request waits unless `?ms=N` says otherwise: the issue's
/// "a component that waits 1 s".
const DEFAULT_WAIT_MS: u64 = 1_000;

/// The longest wait a query may ask for, so a typo cannot park an
/// instance for hours.
const MAX_WAIT_MS: u64 = 60_000;

#[http_component]
fn handle(req: Request) -> Response {
    let wait_ms = wait_ms(req.uri().query().unwrap_or_default());
    monotonic_clock::subscribe_duration(wait_ms * 1_000_000).block();
    let mut response = Response::new(format!("waited {wait_ms} ms\n").into());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// `ms=N` from the query (capped at [`MAX_WAIT_MS`]), else the default.
fn wait_ms(query: &str) -> u64 {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("ms="))
        .and_then(|n| n.parse().ok())
        .map_or(DEFAULT_WAIT_MS, |ms: u64| ms.min(MAX_WAIT_MS))
}
