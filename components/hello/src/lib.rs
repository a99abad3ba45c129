//! Test guest: a fixed greeting. It also writes one line to stdout and one to
//! stderr per request, because the host's tests check that guest stdio ends
//! up in the host log. Built for wasm32-wasip1 too, as the core-module input
//! the host must componentize itself.

use wasmhost_sdk::http::header::{HeaderValue, CONTENT_TYPE};
use wasmhost_sdk::{http_component, Request, Response};

#[http_component]
fn handle(req: Request) -> Response {
    println!("hello: handled {} {}", req.method(), req.uri().path());
    eprintln!("hello: stderr check");
    let mut response = Response::new("Hello, world!\n".into());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
