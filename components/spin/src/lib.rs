//! Test guest: requests under `/loop` never return, so the host's
//! per-request deadline has something to stop; any other path answers at
//! once, so a test can show the same host keeps serving while guests loop.
//! Each loop starts with a line on stdout (`spin: looping`), so a test can
//! wait until its requests are looping rather than guess how long that
//! takes.

use std::hint::black_box;

use wasmhost_sdk::{http_component, Request, Response};

#[http_component]
fn handle(req: Request) -> Response {
    if !req.uri().path().starts_with("/loop") {
        return Response::new("not looping\n".into());
    }
    println!("spin: looping");
    let mut counter: u64 = 0;
    loop {
        // black_box hides the counter from the optimiser, which could
        // otherwise prove the loop side-effect free and delete it (an empty
        // infinite loop is also what LLVM may treat as unreachable).
        counter = black_box(counter.wrapping_add(1));
    }
}
