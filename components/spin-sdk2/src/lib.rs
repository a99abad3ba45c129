//! Test fixture: a Spin SDK 2.2 component, as a Spin 2 user wrote one. The
//! SDK's bindings import `wasi:http`, `wasi:io` and friends at
//! `0.2.0-rc-2023-10-18` and export
//! `wasi:http/incoming-handler@0.2.0-rc-2023-10-18`; built for
//! wasm32-wasip1, as Spin 2 built it, the host componentizes it at load.
//!
//! Paths are below the component's route (Spin's `spin-path-info`):
//! - `GET /`: a greeting.
//! - `POST /echo`: `<n> bytes: <body>`, the request body read through the
//!   SDK's body stream.
//! - `GET /fetch?<url>`: the SDK's `send` to `<url>`: `<status> <body>`,
//!   or `error: <why>` when the host refuses.
//! - `GET /stream?<n>`: `n` lines written one at a time to the response
//!   body after the head is sent.
//! - `GET /trap`: panics (the instance traps).

use futures::SinkExt;
use spin_sdk::http::{
    Fields, IncomingRequest, OutgoingResponse, Request, Response, ResponseOutparam,
};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let path_with_query = req.path_with_query().unwrap_or_default();
    let query = path_with_query.split_once('?').map_or("", |(_, q)| q);
    // The path below the route, as Spin hands it over.
    let path = req
        .headers()
        .get("spin-path-info")
        .first()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    match path.as_str() {
        "/" => respond(out, 200, "hello from WASI 0.2.0-rc-2023-10-18\n".into()).await,
        "/echo" => match req.into_body().await {
            Ok(body) => {
                let text = format!("{} bytes: {}", body.len(), String::from_utf8_lossy(&body));
                respond(out, 200, text).await
            }
            Err(e) => respond(out, 500, format!("cannot read the body: {e:?}")).await,
        },
        "/fetch" => {
            let outgoing = Request::get(query.to_owned()).build();
            let text = match spin_sdk::http::send::<_, Response>(outgoing).await {
                Ok(resp) => format!("{} {}", resp.status(), String::from_utf8_lossy(resp.body())),
                Err(e) => format!("error: {e}"),
            };
            respond(out, 200, text).await
        }
        "/stream" => {
            let lines: u32 = query.parse().unwrap_or(3);
            let response = OutgoingResponse::new(200, &Fields::new(&[]));
            let mut body = response.take_body();
            out.set(response);
            for i in 0..lines {
                if body.send(format!("line {i}\n").into_bytes()).await.is_err() {
                    return;
                }
            }
        }
        "/trap" => panic!("this guest traps on purpose"),
        _ => respond(out, 404, "not found\n".into()).await,
    }
}

async fn respond(out: ResponseOutparam, status: u16, body: String) {
    let headers = Fields::new(&[("content-type".to_owned(), b"text/plain".to_vec())]);
    let response = OutgoingResponse::new(status, &headers);
    // A body the client stopped reading is nothing this guest can fix.
    let _ = out.set_with_body(response, body.into_bytes()).await;
}
