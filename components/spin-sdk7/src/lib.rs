//! Test guest: what a Spin SDK 7 user writes, unmodified. The path picks
//! the capability; the query is its argument:
//! `/hello`, `/var?<name>`, `/count` (key-value `default`),
//! `/kv-other` (an undeclared store), `/keys`, `/fetch?<url>` (outbound).

use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{EmptyBody, IntoResponse, Request, Response, send};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;
use spin_sdk::variables;

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let arg = req.uri().query().unwrap_or_default().to_owned();
    // Mounted at `/...` and at `/closed/...` (no outbound hosts allowed).
    let text = match req.uri().path().trim_start_matches("/closed") {
        "/hello" => "Hello from Spin SDK 7".to_owned(),
        "/var" => match variables::get(&arg).await {
            Ok(value) => value,
            Err(e) => format!("error: {e:?}"),
        },
        "/count" => {
            let store = Store::open_default().await?;
            let count = match store.get("count").await? {
                Some(bytes) => String::from_utf8(bytes)?.parse::<u64>()? + 1,
                None => 1,
            };
            store.set("count", count.to_string()).await?;
            count.to_string()
        }
        "/kv-other" => match Store::open("other").await {
            Ok(_) => "opened".to_owned(),
            Err(e) => format!("error: {e:?}"),
        },
        "/keys" => {
            let store = Store::open_default().await?;
            let mut keys = store.get_keys().await.collect().await?;
            keys.sort();
            keys.join(",")
        }
        "/fetch" => {
            let outgoing = Request::get(arg).body(EmptyBody::new())?;
            match send(outgoing).await {
                Ok(resp) => {
                    let resp: Response = resp;
                    let status = resp.status().as_u16();
                    let body = resp
                        .into_body()
                        .bytes()
                        .await
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                    format!("{status} {}", String::from_utf8_lossy(&body))
                }
                Err(e) => format!("error: {e:?}"),
            }
        }
        _ => "unknown".to_owned(),
    };
    Ok(text)
}
