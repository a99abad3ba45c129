//! The todo API of examples/migration as a `wasi:http` component, built with
//! `scripts/build-guests.sh` (`target/guest/wasm32-wasip2/release/todo_wasm.wasm`).
//! The API and its storage are `todo-core`'s, exactly as in the native form:
//! a directory (`TODO_DATA_DIR`, default `/data`) that the host mounts into
//! every instance (`volumes = ["data:/data"]` in the manifest, or
//! `wasmhost serve --volume`). Mounted at the same host directory as the
//! container's `/data`, both forms serve the same todos, which is what lets
//! a route move between them request by request.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::io::Read;

use todo_core::{DirStorage, Reply, MAX_BODY_BYTES};
use wasmhost_sdk::http::header::HeaderValue;
use wasmhost_sdk::{http_component, Body, Request, Response};

/// Where the data directory is mounted unless `TODO_DATA_DIR` says
/// otherwise: where the container form has it too.
const DEFAULT_DATA_DIR: &str = "/data";

/// Header that tells a client which form answered; the native form says
/// `container`.
const SERVED_BY: &str = "x-served-by";

/// Set (to anything) in the component's environment, the port has a bug
/// the container does not: one answer, a single todo, calls its `done`
/// field `completed`. What the rollout walkthrough (`5-rollout.toml`) must
/// catch by its mirrored reads before many users see it.
const DELIBERATE_BUG: &str = "TODO_DELIBERATE_BUG";

/// Answers one request with [`todo_core::handle`].
#[http_component]
fn handle(request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let reply = match read_capped(request, MAX_BODY_BYTES + 1) {
        Err(error) => {
            eprintln!("todo-wasm: reading the request body failed: {error}");
            Reply::unreadable_body()
        }
        Ok(body) => {
            let dir = std::env::var("TODO_DATA_DIR").unwrap_or_else(|_| DEFAULT_DATA_DIR.into());
            todo_core::handle(&method, &path, &body, &mut DirStorage::at(dir))
        }
    };
    let buggy = std::env::var_os(DELIBERATE_BUG).is_some()
        && method == "GET"
        && path.trim_start_matches("/todos/").parse::<u64>().is_ok();
    let mut response = reply.into_response(|bytes| {
        let bytes = if buggy {
            String::from_utf8_lossy(&bytes)
                .replace("\"done\":", "\"completed\":")
                .into_bytes()
        } else {
            bytes
        };
        // `Body::Bytes` would get a `content-length: 0`, which a 204 must
        // not carry.
        if bytes.is_empty() {
            Body::Empty
        } else {
            Body::Bytes(bytes)
        }
    });
    response
        .headers_mut()
        .insert(SERVED_BY, HeaderValue::from_static("wasm"));
    response
}

/// Reads at most `cap` bytes of the body: [`todo_core::handle`] only needs
/// to know that there is more than [`MAX_BODY_BYTES`], and the rest would
/// only use up the instance's memory.
fn read_capped(request: Request, cap: usize) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    // `usize` is 32 bits on wasm32, so this widening cannot lose anything.
    request
        .into_body()
        .take(cap as u64)
        .read_to_end(&mut body)?;
    Ok(body)
}
