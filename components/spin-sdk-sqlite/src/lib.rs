//! Test fixture: an unmodified Spin SDK 5.2 component using SQLite through
//! `spin:sqlite/sqlite@3.0.0` (`spin_sdk::sqlite3`).
//!
//! - `POST /sql/<database>`: the body is one statement, each `?p=` query
//!   parameter one argument (`i:42`, `r:2.5`, `t:text`, `b:<hex>`, `n:`);
//!   answers `columns=[..] rows=[..] rowid=N changes=N` or the error.
//! - `GET /sql/open/<database>`: `opened` or the error.
//! - `GET /sql/bench`: one insert and one select on `default` (the
//!   per-request figure in bench/RESULTS.md).

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::sqlite3::{Connection, Value};

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    // Routes may sit under any prefix (`/other/sql/...`).
    let full = req.path();
    let path = full[full.find("/sql/").unwrap_or(0)..].to_owned();
    let text = if let Some(label) = path.strip_prefix("/sql/open/") {
        match Connection::open(label) {
            Ok(_) => "opened".to_owned(),
            Err(e) => format!("{e:?}"),
        }
    } else if path == "/sql/bench" {
        bench()?
    } else if let Some(label) = path.strip_prefix("/sql/") {
        let statement = String::from_utf8(req.body().to_vec())?;
        let params = parameters(req.query());
        match Connection::open(label) {
            Ok(db) => match db.execute(&statement, params.as_slice()) {
                Ok(result) => format!(
                    "columns={:?} rows={:?} rowid={} changes={}",
                    result.columns,
                    result.rows.iter().map(|r| &r.values).collect::<Vec<_>>(),
                    db.last_insert_rowid(),
                    db.changes()
                ),
                Err(e) => format!("{e:?}"),
            },
            Err(e) => format!("{e:?}"),
        }
    } else {
        return Ok(Response::builder().status(404).body("no route").build());
    };
    Ok(Response::builder().status(200).body(text).build())
}

fn parameters(query: &str) -> Vec<Value> {
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("p="))
        .map(|p| {
            let p = p.replace("%20", " ");
            match p.split_once(':') {
                Some(("i", v)) => Value::Integer(v.parse().unwrap_or_default()),
                Some(("r", v)) => Value::Real(v.parse().unwrap_or_default()),
                Some(("t", v)) => Value::Text(v.to_owned()),
                Some(("b", v)) => Value::Blob(
                    (0..v.len() / 2)
                        .filter_map(|i| u8::from_str_radix(&v[2 * i..2 * i + 2], 16).ok())
                        .collect(),
                ),
                _ => Value::Null,
            }
        })
        .collect()
}

fn bench() -> anyhow::Result<String> {
    let db = Connection::open_default()?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS bench (id INTEGER PRIMARY KEY, note TEXT)",
        &[],
    )?;
    db.execute(
        "INSERT INTO bench (note) VALUES (?)",
        &[Value::Text("hello".into())],
    )?;
    let id = db.last_insert_rowid();
    let rows = db.execute("SELECT note FROM bench WHERE id = ?", &[Value::Integer(id)])?;
    Ok(format!("{id} {}", rows.rows.len()))
}
