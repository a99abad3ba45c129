//! Test guest: what a Spin SDK 7 user writes, unmodified. The path's last
//! segment picks the capability; the query is its argument:
//! `/hello`, `/var?<name>`, `/count` (key-value `default`),
//! `/kv-other` (an undeclared store), `/keys`, `/fetch?<url>` (outbound),
//! `/mysql?<address>` (a table written and read back through
//! `spin:mysql@3.0.0`).

use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{EmptyBody, IntoResponse, Request, Response, send};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;
use spin_sdk::variables;

#[http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let arg = req.uri().query().unwrap_or_default().to_owned();
    // Mounted under several routes (`/...`, `/closed/...` with no outbound
    // hosts allowed): the last segment picks.
    let text = match req.uri().path().rsplit('/').next().unwrap_or_default() {
        "hello" => "Hello from Spin SDK 7".to_owned(),
        "var" => match variables::get(&arg).await {
            Ok(value) => value,
            Err(e) => format!("error: {e:?}"),
        },
        "count" => {
            let store = Store::open_default().await?;
            let count = match store.get("count").await? {
                Some(bytes) => String::from_utf8(bytes)?.parse::<u64>()? + 1,
                None => 1,
            };
            store.set("count", count.to_string()).await?;
            count.to_string()
        }
        "kv-other" => match Store::open("other").await {
            Ok(_) => "opened".to_owned(),
            Err(e) => format!("error: {e:?}"),
        },
        "keys" => {
            let store = Store::open_default().await?;
            let mut keys = store.get_keys().await.collect().await?;
            keys.sort();
            keys.join(",")
        }
        "fetch" => {
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
        "mysql" => match mysql(&arg).await {
            Ok(text) => text,
            Err(e) => format!("error: {e:?}"),
        },
        _ => "unknown".to_owned(),
    };
    Ok(text)
}

async fn mysql(address: &str) -> Result<String, spin_sdk::mysql::Error> {
    use spin_sdk::mysql::{Connection, ParameterValue as P};
    let db = Connection::open(address).await?;
    db.execute("CREATE TABLE IF NOT EXISTS p3 (id INT, name TEXT)", [])
        .await?;
    db.execute(
        "INSERT INTO p3 VALUES (?, ?)",
        [P::Int32(3), P::Str("three".into())],
    )
    .await?;
    let result = db
        .query("SELECT id, name FROM p3 WHERE id = ?", [P::Int32(3)])
        .await?;
    let columns: Vec<_> = result
        .columns()
        .iter()
        .map(|c| format!("{}:{:?}", c.name, c.data_type))
        .collect();
    let rows: Vec<_> = result
        .collect()
        .await?
        .into_iter()
        .map(|row| format!("{:?} {:?}", row[0], row[1]))
        .collect();
    Ok(format!("columns={columns:?} rows={rows:?}"))
}
