//! Test fixture: a Spin SDK 5.2 key-value counter, as Spin's own examples
//! write it. `/kv/count` increments `count` in the default store and
//! answers the new value; `/kv/open/<label>` tries to open another store
//! and answers the outcome.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let path = req.path().to_owned();
    if let Some(label) = path.strip_prefix("/kv/open/") {
        let outcome = match Store::open(label) {
            Ok(_) => "opened".to_owned(),
            Err(e) => format!("{e:?}"),
        };
        return Ok(Response::builder().status(200).body(outcome).build());
    }
    let store = Store::open_default()?;
    let count: u64 = match store.get("count")? {
        Some(bytes) => String::from_utf8(bytes)?.parse()?,
        None => 0,
    };
    let next = count + 1;
    store.set("count", next.to_string().as_bytes())?;
    Ok(Response::builder()
        .status(200)
        .body(next.to_string())
        .build())
}
