//! Test guest: fetches the URL given as `?url=` (GET) and answers with the
//! upstream's status and body; a request the host denies becomes 403 with
//! the reason, any other failure 502.
//!
//! `?late&url=…` sends the GET as the Spin Python SDK does when its event
//! loop comes back late: `content-length: 0`, the request handed to the
//! host, the response awaited, and only then the empty body checked,
//! flushed and finished. The answer names each step's result, so a test
//! sees a host that closed the body under the guest (the SDK's
//! `StreamError_Closed()`, host/src/wasm/kept_body.rs).

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasmhost_sdk::http::{StatusCode, Uri};
use wasmhost_sdk::outbound::{self, OutboundError};
use wasmhost_sdk::{http_component, Request, Response};

#[http_component]
fn handle(req: Request) -> Response {
    let query = req.uri().query().unwrap_or_default();
    if let Some(url) = query.strip_prefix("late&url=") {
        return match late_finish(url) {
            Ok(steps) => status(StatusCode::OK, steps),
            Err(e) => status(StatusCode::BAD_GATEWAY, format!("{e}\n")),
        };
    }
    let Some(url) = query.strip_prefix("url=") else {
        return status(
            StatusCode::BAD_REQUEST,
            "usage: ?url=http://host:port/path or ?late&url=…\n".into(),
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

/// GET `url` with an empty body finished only after the response arrived;
/// the upstream's status and each body step's result, one per line.
fn late_finish(url: &str) -> Result<String, String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad url {url}: {e}"))?;
    let authority = uri.authority().ok_or("no host in the url")?.as_str();
    let headers = Fields::from_list(&[("content-length".into(), b"0".to_vec())])
        .map_err(|e| format!("headers: {e:?}"))?;
    let request = OutgoingRequest::new(headers);
    request.set_method(&Method::Get).map_err(|()| "method")?;
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|()| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    request
        .set_path_with_query(Some("/"))
        .map_err(|()| "path")?;
    let body = request.body().map_err(|()| "body")?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("send: {e:?}"))?;
    future.subscribe().block();
    let code = match future.get() {
        Some(Ok(Ok(response))) => response.status(),
        other => return Err(format!("no response: {other:?}")),
    };
    let stream = body.write().map_err(|()| "body stream")?;
    let check = stream.check_write();
    let flush = stream.flush();
    drop(stream);
    let finish = OutgoingBody::finish(body, None);
    Ok(format!(
        "status {code}\ncheck-write {check:?}\nflush {flush:?}\nfinish {finish:?}\n"
    ))
}

fn status(code: StatusCode, text: String) -> Response {
    let mut resp = Response::new(text.into());
    *resp.status_mut() = code;
    resp
}
