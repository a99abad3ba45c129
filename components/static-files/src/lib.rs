//! Test guest: a static file server over the files the host mounts at `/`
//! (Spin's `files`): the request path is the file path; missing → 404;
//! `PUT` tries to write the file, which a read-only mount must refuse.

use wasmhost_sdk::http::StatusCode;
use wasmhost_sdk::{http_component, Request, Response};

#[http_component]
fn handle(req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if req.method() == "PUT" {
        return match std::fs::write(&path, b"overwritten") {
            Ok(()) => Response::new("written\n".into()),
            Err(e) => status(StatusCode::FORBIDDEN, format!("cannot write {path}: {e}\n")),
        };
    }
    match std::fs::read(&path) {
        Ok(bytes) => Response::new(bytes.into()),
        Err(e) => status(StatusCode::NOT_FOUND, format!("cannot read {path}: {e}\n")),
    }
}

fn status(code: StatusCode, text: String) -> Response {
    let mut resp = Response::new(text.into());
    *resp.status_mut() = code;
    resp
}
