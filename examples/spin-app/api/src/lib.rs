//! The JSON API route of examples/spin-app: `GET /api/greet/:name` answers
//! `{"greeting": "...", "route": "..."}` using the `spin-path-match-name`
//! header the host sets for the `:name` segment, and the `GREETING`
//! environment variable the manifest gives this component.

use wasmhost_sdk::http::header::{HeaderValue, CONTENT_TYPE};
use wasmhost_sdk::http::StatusCode;
use wasmhost_sdk::{http_component, Request, Response};

#[http_component]
fn handle(req: Request) -> Response {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let name = header("spin-path-match-name");
    if name.is_empty() {
        let mut resp = Response::new("{\"error\": \"no name\"}\n".into());
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    }
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_owned());
    let body = format!(
        "{{\"greeting\": \"{}, {}!\", \"route\": \"{}\"}}\n",
        escape(&greeting),
        escape(&name),
        escape(&header("spin-matched-route"))
    );
    let mut resp = Response::new(body.into());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Just enough JSON string escaping for header and environment values.
fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => vec![],
            c => vec![c],
        })
        .collect()
}
