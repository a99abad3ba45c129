//! The smallest useful wasmhost component: greets the caller by path.

use wasmhost_sdk::http::header::{HeaderValue, CONTENT_TYPE};
use wasmhost_sdk::{http_component, Request, Response};

#[http_component]
fn handle(req: Request) -> Response {
    let body = format!(
        "Hello from a WebAssembly component! You asked for {}\n",
        req.uri().path()
    );
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
