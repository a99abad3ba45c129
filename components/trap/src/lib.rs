//! Test guest: panics on every request. On wasm a panic aborts, i.e. traps,
//! which is how the host's handling of a crashing guest is tested.

use wasmhost_sdk::{http_component, Request, Response};

#[http_component]
fn handle(_req: Request) -> Response {
    panic!("trap component: deliberate panic");
}
