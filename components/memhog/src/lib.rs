//! Test guest: allocates `?mb=N` MiB (256 by default) and touches every page,
//! so the host's memory cap is hit for real. Failing to allocate aborts,
//! which traps the instance: that is the behaviour under test.

use std::hint::black_box;

use wasmhost_sdk::http::StatusCode;
use wasmhost_sdk::{http_component, Request, Response};

const DEFAULT_MB: usize = 256;
const MIB: usize = 1024 * 1024;
const PAGE: usize = 4096;

#[http_component]
fn handle(req: Request) -> Response {
    let mb = match megabytes(req.uri().query()) {
        Ok(mb) => mb,
        Err(message) => {
            let mut response = Response::new(message.into());
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return response;
        }
    };
    let Some(len) = mb.checked_mul(MIB) else {
        let mut response = Response::new(format!("mb={mb} is too large\n").into());
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };

    // `vec![0; len]` may be served from fresh, already-zero pages without
    // writing them, so one byte per page is written to make the memory real;
    // black_box keeps those writes from being optimised away.
    let mut memory = vec![0u8; len];
    for i in (0..len).step_by(PAGE) {
        memory[i] = 1;
    }
    black_box(&memory);

    Response::new(format!("allocated {mb} MiB\n").into())
}

/// Parses `mb` from the query string; absent means the default.
fn megabytes(query: Option<&str>) -> Result<usize, String> {
    let value = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("mb="));
    match value {
        None => Ok(DEFAULT_MB),
        Some(value) => value
            .parse()
            .map_err(|_| format!("mb must be a whole number of MiB, got {value:?}\n")),
    }
}
