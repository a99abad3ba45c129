//! Test fixture: an unmodified Spin SDK 5.2 component using outbound
//! PostgreSQL at the address in its variable `pg_address`.
//!
//! - `GET /pg/v4`: through `spin:postgres/postgres@4.0.0` (`spin_sdk::pg4`):
//!   creates a table, inserts a row with typed parameters, selects it back;
//!   answers the columns and rows, or the error.
//! - `GET /pg/v4-types`: decimal, range, numeric-array and interval
//!   parameters sent and read back (`SELECT $1::numeric, ...`), then the
//!   same types from PostgreSQL's own literals.
//! - `GET /pg/v2`: the same select through `fermyon:spin/postgres@2.0.0`
//!   (`spin_sdk::pg`).

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let address = spin_sdk::variables::get("pg_address")?;
    let text = match req.path().rsplit('/').next() {
        Some("v4") => v4(&address),
        Some("v2") => v2(&address),
        Some("v4-types") => v4_types(&address),
        _ => return Ok(Response::builder().status(404).body("no route").build()),
    };
    Ok(Response::builder().status(200).body(text).build())
}

fn v4(address: &str) -> String {
    use spin_sdk::pg4::{Connection, ParameterValue as P};
    let run = || -> Result<String, spin_sdk::pg4::PgError> {
        let db = Connection::open(address)?;
        db.execute(
            "CREATE TABLE IF NOT EXISTS items (id INT4, name TEXT, born DATE, tag UUID, price FLOAT8, ok BOOL)",
            &[],
        )?;
        let inserted = db.execute(
            "INSERT INTO items VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                P::Int32(7),
                P::Str("seven".into()),
                P::Date((2024, 2, 29)),
                P::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
                P::Floating64(2.5),
                P::Boolean(true),
            ],
        )?;
        let rows = db.query("SELECT * FROM items WHERE id = $1", &[P::Int32(7)])?;
        let columns: Vec<_> = rows
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect();
        Ok(format!(
            "inserted={inserted} columns={columns:?} rows={:?}",
            rows.rows
        ))
    };
    run().unwrap_or_else(|e| format!("{e:?}"))
}

fn v2(address: &str) -> String {
    use spin_sdk::pg::{Connection, ParameterValue as P};
    let run = || -> Result<String, spin_sdk::pg::PgError> {
        let db = Connection::open(address)?;
        let rows = db.query("SELECT name FROM items WHERE id = $1", &[P::Int32(7)])?;
        Ok(format!("rows={:?}", rows.rows))
    };
    run().unwrap_or_else(|e| format!("{e:?}"))
}

fn v4_types(address: &str) -> String {
    use spin_sdk::pg4::{Connection, Interval, ParameterValue as P, RangeBoundKind as K};
    let run = || -> Result<String, spin_sdk::pg4::PgError> {
        let db = Connection::open(address)?;
        let sent = db.query(
            "SELECT $1::numeric, $2::int4range, $3::int8range, $4::numrange, $5::numeric[], $6::interval",
            &[
                P::Decimal("-1234.5678".into()),
                P::RangeInt32((Some((1, K::Exclusive)), Some((5, K::Inclusive)))),
                P::RangeInt64((None, Some((1 << 40, K::Exclusive)))),
                P::RangeDecimal((Some(("1.5".into(), K::Inclusive)), None)),
                P::ArrayDecimal(vec![Some("0.1".into()), None]),
                P::Interval(Interval {
                    micros: 3_000_001,
                    days: 2,
                    months: 14,
                }),
            ],
        )?;
        let literal = db.query(
            "SELECT '12.50'::numeric, '[1,5]'::int4range, 'empty'::int4range, '1 year 2 days 3 seconds'::interval",
            &[],
        )?;
        let types: Vec<_> = sent.columns.iter().map(|c| c.data_type.clone()).collect();
        Ok(format!(
            "types={types:?} sent={:?} literal={:?}",
            sent.rows, literal.rows
        ))
    };
    run().unwrap_or_else(|e| format!("{e:?}"))
}
