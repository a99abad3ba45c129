//! Test guest: what a Spin SDK 7 user writes, unmodified. The path's last
//! segment picks the capability; the query is its argument:
//! `/hello`, `/var?<name>`, `/count` (key-value `default`),
//! `/kv-other` (an undeclared store), `/keys`, `/fetch?<url>` (outbound),
//! `/mysql?<address>` (a table written and read back through
//! `spin:mysql@3.0.0`), `/sqlite` (the `default` database through
//! `spin:sqlite@3.1.0`'s async functions), `/pg?<address>` and
//! `/pg-builder?<address>` (`spin:postgres@4.2.0`: `open-async` or the
//! connection builder's `build-async`, then `execute-async` and
//! `query-async`), `/pg-ca?<address>` (the builder with the CA root in the
//! file `/ca.pem`: `set-ca-root`), `/redis?<address>` (`spin:redis@3.0.0`) and
//! `/mqtt?<address>` (`spin:mqtt@3.0.0`, publishing the topic `p3`).

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
        "sqlite" => match sqlite().await {
            Ok(text) => text,
            Err(e) => format!("error: {e:?}"),
        },
        "pg" => match pg(&arg, None).await {
            Ok(text) => text,
            Err(e) => format!("error: {e:?}"),
        },
        "pg-builder" => match pg(&arg, Some(spin_sdk::pg::OpenOptions::default())).await {
            Ok(text) => text,
            Err(e) => format!("error: {e:?}"),
        },
        "pg-ca" => {
            let options = spin_sdk::pg::OpenOptions {
                ca_root: Some(spin_sdk::pg::Certificate::FilePath("/ca.pem".into())),
            };
            match pg(&arg, Some(options)).await {
                Ok(text) => text,
                Err(e) => format!("error: {e:?}"),
            }
        }
        "redis" => match redis(&arg).await {
            Ok(text) => text,
            Err(e) => format!("error: {e:?}"),
        },
        "mqtt" => match mqtt(&arg).await {
            Ok(()) => "published".to_owned(),
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

async fn sqlite() -> Result<String, spin_sdk::sqlite::Error> {
    use spin_sdk::sqlite::{Connection, Value};
    let db = Connection::open_default().await?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS p3 (id INTEGER PRIMARY KEY, name TEXT, data BLOB, score REAL)",
        [],
    )
    .await?
    .result()
    .await?;
    db.execute(
        "INSERT INTO p3 (name, data, score) VALUES (?, ?, ?)",
        [
            Value::text("three"),
            Value::blob(vec![1u8, 2, 3]),
            Value::real(0.5),
        ],
    )
    .await?
    .result()
    .await?;
    let rowid = db.last_insert_rowid().await;
    let changes = db.changes().await;
    let result = db
        .execute(
            "SELECT id, name, data, score, NULL AS absent FROM p3 WHERE id = ?",
            [Value::integer(rowid)],
        )
        .await?;
    let columns = result.columns().to_vec();
    let rows: Vec<_> = result
        .collect()
        .await?
        .into_iter()
        .map(|row| format!("{:?}", row.values))
        .collect();
    // Two statements at once on one connection, as WASIp3 allows: they
    // take turns on the host, neither is refused.
    let (count, name) = futures::join!(
        db.execute("SELECT COUNT(*) FROM p3", []),
        db.execute("SELECT name FROM p3 WHERE id = ?", [Value::integer(rowid)]),
    );
    let (count, name) = (count?.collect().await?, name?.collect().await?);
    let together = format!("{:?}/{:?}", count[0].values, name[0].values);
    Ok(format!(
        "rowid={rowid} changes={changes} columns={columns:?} rows={rows:?} together={together}"
    ))
}

async fn pg(
    address: &str,
    builder: Option<spin_sdk::pg::OpenOptions>,
) -> Result<String, spin_sdk::pg::Error> {
    use spin_sdk::pg::{Connection, ParameterValue as P};
    let db = match builder {
        Some(options) => Connection::open_with_options(address, options).await?,
        None => Connection::open(address).await?,
    };
    db.execute(
        "CREATE TABLE IF NOT EXISTS p3 (id INT, name TEXT)",
        Vec::new(),
    )
    .await?;
    let inserted = db
        .execute(
            "INSERT INTO p3 VALUES ($1, $2)",
            vec![P::Int32(3), P::Str("three".into())],
        )
        .await?;
    let result = db
        .query(
            "SELECT id, name FROM p3 WHERE id = $1 LIMIT 1",
            vec![P::Int32(3)],
        )
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
    Ok(format!(
        "inserted={inserted} columns={columns:?} rows={rows:?}"
    ))
}

async fn redis(address: &str) -> Result<String, spin_sdk::redis::Error> {
    use spin_sdk::redis::{Connection, RedisParameter};
    let db = Connection::open(address).await?;
    db.set("p3-key", b"p3-value").await?;
    let got = db.get("p3-key").await?.map(String::from_utf8);
    let count = db.incr("p3-count").await?;
    db.sadd("p3-set", ["a", "b"]).await?;
    let mut members = db.smembers("p3-set").await?;
    members.sort();
    let echoed = db
        .execute("ECHO", [RedisParameter::Binary(b"hi".to_vec())])
        .await?;
    Ok(format!(
        "get={got:?} incr={count} smembers={members:?} execute={echoed:?}"
    ))
}

async fn mqtt(address: &str) -> Result<(), spin_sdk::mqtt::Error> {
    use spin_sdk::mqtt::{Connection, Qos};
    let broker = Connection::open(address, "", "", 30).await?;
    broker
        .publish("p3", b"hello from p3".to_vec(), Qos::AtLeastOnce)
        .await
}
