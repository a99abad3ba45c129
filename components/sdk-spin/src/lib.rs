//! Test guest for wasmhost-sdk's Spin helpers. Routes (by path):
//! `/var/<name>`, `/kv/<store>/set/<key>/<value>`, `/kv/<store>/get/<key>`,
//! `/kv/<store>/delete/<key>`, `/kv/<store>/exists/<key>`, `/kv/<store>/keys`.

use wasmhost_sdk::key_value::Store;
use wasmhost_sdk::{http_component, variables, Request, Response};

#[http_component]
fn handle(req: Request) -> Result<Response, String> {
    let parts: Vec<&str> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .collect();
    let text = match parts.as_slice() {
        ["var", name] => match variables::get(name) {
            Ok(value) => value,
            Err(e) => format!("error: {e}"),
        },
        ["kv", store, rest @ ..] => match Store::open(store) {
            Err(e) => format!("error: {e}"),
            Ok(store) => match rest {
                ["set", key, value] => store
                    .set(key, value.as_bytes())
                    .map(|()| "ok".to_owned())
                    .map_err(|e| e.to_string())?,
                ["get", key] => match store.get(key).map_err(|e| e.to_string())? {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None => "(none)".to_owned(),
                },
                ["delete", key] => store
                    .delete(key)
                    .map(|()| "deleted".to_owned())
                    .map_err(|e| e.to_string())?,
                ["exists", key] => store.exists(key).map_err(|e| e.to_string())?.to_string(),
                ["keys"] => {
                    let mut keys = store.get_keys().map_err(|e| e.to_string())?;
                    keys.sort();
                    keys.join(",")
                }
                _ => return Err("unknown kv operation".to_owned()),
            },
        },
        _ => return Err("unknown route".to_owned()),
    };
    Ok(Response::new(text.into()))
}
