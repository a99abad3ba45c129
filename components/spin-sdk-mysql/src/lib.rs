//! Test fixture: an unmodified Spin SDK 5.2 component using outbound
//! MySQL (`fermyon:spin/mysql@2.0.0`, `spin_sdk::mysql`) at the address in
//! its variable `mysql_address`.
//!
//! - `GET /mysql/write`: creates a table, inserts a row of every value
//!   type through typed parameters, selects it back; answers the columns
//!   and rows, or the error.
//! - `GET /mysql/read`: selects the row's name by id.
//! - `GET /mysql/bad`: a statement MySQL refuses (its error, as the guest
//!   sees it).
//! - `GET /mysql/sleep`: a query that takes 30 s (for the request
//!   deadline).

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::mysql::{Connection, MysqlError, ParameterValue as P};

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let address = spin_sdk::variables::get("mysql_address")?;
    let run = match req.path().rsplit('/').next() {
        Some("write") => write,
        Some("read") => read,
        Some("bad") => bad,
        Some("sleep") => sleep,
        _ => return Ok(Response::builder().status(404).body("no route").build()),
    };
    let text = run(&address).unwrap_or_else(|e| format!("{e:?}"));
    Ok(Response::builder().status(200).body(text).build())
}

fn write(address: &str) -> Result<String, MysqlError> {
    let db = Connection::open(address)?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS items (id INT, name VARCHAR(32), small TINYINT, \
         big BIGINT UNSIGNED, price DOUBLE, data VARBINARY(8), note TEXT)",
        &[],
    )?;
    db.execute(
        "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
        &[
            P::Int32(7),
            P::Str("seven".into()),
            P::Int8(-3),
            P::Uint64(u64::MAX),
            P::Floating64(2.5),
            P::Binary(vec![1, 2, 3]),
            P::DbNull,
        ],
    )?;
    let rows = db.query("SELECT * FROM items WHERE id = ?", &[P::Int32(7)])?;
    let columns: Vec<_> = rows
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.data_type))
        .collect();
    Ok(format!("columns={columns:?} rows={:?}", rows.rows))
}

fn read(address: &str) -> Result<String, MysqlError> {
    let db = Connection::open(address)?;
    let rows = db.query("SELECT name FROM items WHERE id = ?", &[P::Int32(7)])?;
    Ok(format!("rows={:?}", rows.rows))
}

fn bad(address: &str) -> Result<String, MysqlError> {
    let db = Connection::open(address)?;
    db.query("SELECT * FROM no_such_table", &[])?;
    Ok("no error".into())
}

fn sleep(address: &str) -> Result<String, MysqlError> {
    let db = Connection::open(address)?;
    db.query("SELECT SLEEP(30)", &[])?;
    Ok("slept".into())
}
