//! Test fixture: the Spin SDK 5.2 template's handler, unmodified in shape:
//! `#[http_component]` over `spin_sdk::http` types. wasmhost must run it
//! as `spin up` does.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(format!("Hello from the Spin SDK at {}\n", req.path()))
        .build())
}
