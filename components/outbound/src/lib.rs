//! Test guest: fetches the URL given as `?url=` (GET) and answers with the
//! upstream's status and body; a request the host denies becomes 403 with
//! the reason, any other failure 502.

use wasmhost_sdk::http::StatusCode;
use wasmhost_sdk::outbound::{self, OutboundError};
use wasmhost_sdk::{http_component, Request, Response};

#[http_component]
fn handle(req: Request) -> Response {
    let query = req.uri().query().unwrap_or_default();
    let Some(url) = query.strip_prefix("url=") else {
        return status(
            StatusCode::BAD_REQUEST,
            "usage: ?url=http://host:port/path\n".into(),
        );
    };
    let upstream = match wasmhost_sdk::http::Request::get(url).body(Vec::new()) {
        Ok(request) => request,
        Err(e) => return status(StatusCode::BAD_REQUEST, format!("bad url {url}: {e}\n")),
    };
    match outbound::send(upstream) {
        Ok(resp) => {
            let code = resp.status();
            status(code, String::from_utf8_lossy(resp.body()).into_owned())
        }
        Err(e @ OutboundError::Denied) => status(StatusCode::FORBIDDEN, format!("{e}\n")),
        Err(e) => status(StatusCode::BAD_GATEWAY, format!("{e}\n")),
    }
}

fn status(code: StatusCode, text: String) -> Response {
    let mut resp = Response::new(text.into());
    *resp.status_mut() = code;
    resp
}
