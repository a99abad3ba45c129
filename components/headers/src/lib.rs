//! Test guest: answers with the `spin-*` headers it received, one
//! `name: value` line each in name order, then the `GREETING` environment
//! variable, so tests can check what the host tells a routed component.

use wasmhost_sdk::{http_component, Request, Response};

#[http_component]
fn handle(req: Request) -> Response {
    let mut lines: Vec<String> = req
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("spin-"))
        .map(|(name, value)| format!("{}: {}", name, value.to_str().unwrap_or("<binary>")))
        .collect();
    lines.sort();
    lines.push(format!(
        "env GREETING={}",
        std::env::var("GREETING").unwrap_or_default()
    ));
    Response::new((lines.join("\n") + "\n").into())
}
