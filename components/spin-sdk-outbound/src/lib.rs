//! Test fixture: a Spin SDK 5.2 component fetching the URL in its query
//! string with the SDK's own `spin_sdk::http::send`, as a Spin user writes
//! it. Answers `<status> <body>`, or `error: <why>` when the host refuses.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let outgoing = Request::get(req.query()).build();
    let text = match spin_sdk::http::send::<_, Response>(outgoing).await {
        Ok(resp) => format!("{} {}", resp.status(), String::from_utf8_lossy(resp.body())),
        Err(e) => format!("error: {e}"),
    };
    Ok(Response::new(200, text))
}
