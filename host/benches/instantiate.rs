//! In-process cost of one request to `hello`: a fresh instance from the
//! pooling allocator, the guest's handler, and the response body read to
//! the end, through the same `Backend::handle` the front door calls.
//!
//! Run with `bench/run.sh` (which builds the guests first) or
//! `cargo bench -p wasmhost --bench instantiate`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Empty};
use wasmhost::backend::{Backend, RequestContext, RequestId};
use wasmhost::wasm::cache::CompileCache;
use wasmhost::wasm::{ComponentBackend, ComponentOptions};

fn hello() -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/guest/wasm32-wasip2/release/hello.wasm");
    assert!(
        path.exists(),
        "build the guests first: scripts/build-guests.sh"
    );
    path
}

fn backend(reuse: u32) -> ComponentBackend {
    let options = ComponentOptions {
        instance: Default::default(),
        reuse,
        cache: CompileCache::disabled(),
        pooling: true,
        max_concurrency: wasmhost::limits::MAX_CONCURRENCY,
        queue_timeout: wasmhost::limits::QUEUE_TIMEOUT,
        // Measures the optimised code, as served once it is ready.
        baseline: false,
    };
    ComponentBackend::load("hello", &hello(), options, Duration::from_secs(30))
        .expect("load hello")
        .0
}

fn one_request(rt: &tokio::runtime::Runtime, backend: &ComponentBackend) {
    rt.block_on(async {
        let req = http::Request::builder()
            .uri("/")
            .header("host", "bench")
            .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
            .expect("request");
        let ctx = RequestContext {
            id: RequestId::next(),
            client_addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            deadline: Instant::now() + Duration::from_secs(30),
        };
        let resp = backend.handle(req, ctx).await;
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"Hello, world!\n");
    });
}

fn per_request(c: &mut Criterion) {
    // One thread: the guest task and the caller run on the same thread, as
    // they mostly do on a busy server, so no cross-thread wake-up is timed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fresh = rt.block_on(async { backend(1) });
    c.bench_function("hello: fresh instance per request", |b| {
        b.iter(|| one_request(&rt, &fresh))
    });
    let reused = rt.block_on(async { backend(u32::MAX) });
    c.bench_function("hello: reused instance", |b| {
        b.iter(|| one_request(&rt, &reused))
    });
}

criterion_group!(benches, per_request);
criterion_main!(benches);
