//! Outbound MySQL (and MariaDB) for Spin's two MySQL interfaces
//! (`fermyon:spin/mysql@2.0.0`, `spin:mysql/mysql@3.0.0`): one connection
//! pool per address shared by every instance of an app, a guest's open
//! connection holding one pooled connection until it drops it (so its
//! session state, a transaction for one, stays its own), and values in one
//! vocabulary both interfaces convert from and to (their shapes are the
//! same). Column types map to values as Spin's `factor-outbound-mysql`
//! maps them, so a guest reads the same variants under either host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, PoolConstraints, PoolOpts, SslOpts};

use super::rdbms::{DbError, Rows};

/// How long connecting (and authenticating) may take: a server that is
/// down fails the guest's `open`, not its whole request deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most a query result may hold (Spin bounds host-buffered results
/// the same way, with its `MAX_HOST_BUFFERED_BYTES`).
const MAX_RESULT_BYTES: usize = 32 << 20;

/// The most connections one app holds to one address at once: a guest
/// opening more waits for one to come back to the pool. MySQL's own
/// default `max_connections` is 151, so one app cannot take all of a
/// default server.
const MAX_CONNECTIONS_PER_ADDRESS: usize = 100;

/// A value, in or out (`db-value` and `parameter-value` of both
/// interfaces).
#[derive(Debug, Clone, PartialEq)]
pub enum MyValue {
    /// `db-null`.
    Null,
    /// `boolean` (parameters only: MySQL's BOOLEAN is a TINYINT).
    Bool(bool),
    /// `int8`.
    Int8(i8),
    /// `int16`.
    Int16(i16),
    /// `int32`.
    Int32(i32),
    /// `int64`.
    Int64(i64),
    /// `uint8`.
    Uint8(u8),
    /// `uint16`.
    Uint16(u16),
    /// `uint32`.
    Uint32(u32),
    /// `uint64`.
    Uint64(u64),
    /// `floating32`.
    Float32(f32),
    /// `floating64`.
    Float64(f64),
    /// `str`.
    Str(String),
    /// `binary`.
    Binary(Vec<u8>),
}

impl MyValue {
    /// What the value costs to hold, for [`MAX_RESULT_BYTES`].
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + match self {
                MyValue::Str(s) => s.len(),
                MyValue::Binary(b) => b.len(),
                _ => 0,
            }
    }
}

/// A column's type (`db-data-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MyType {
    /// `boolean` (never reported: MySQL has no boolean column type).
    Boolean,
    /// `int8`.
    Int8,
    /// `int16`.
    Int16,
    /// `int32`.
    Int32,
    /// `int64`.
    Int64,
    /// `uint8`.
    Uint8,
    /// `uint16`.
    Uint16,
    /// `uint32`.
    Uint32,
    /// `uint64`.
    Uint64,
    /// `floating32`.
    Floating32,
    /// `floating64`.
    Floating64,
    /// `str`.
    Str,
    /// `binary`.
    Binary,
    /// Anything else (dates, decimals, JSON...): Spin refuses to convert
    /// these, and so does this host.
    Other,
}

/// A query's result.
pub type MyRows = Rows<MyType, MyValue>;

/// Why a call failed, in Spin's terms.
pub type MyError = DbError;

/// A guest's open connection: one of the pool's, returned to it when the
/// guest drops the resource (or its instance ends). Behind an async mutex
/// because a query holds the connection across awaits.
pub type MyConnection = Arc<tokio::sync::Mutex<Conn>>;

/// One app's MySQL connection pools, by address.
#[derive(Default)]
pub struct MyPool {
    pools: Mutex<HashMap<String, mysql_async::Pool>>,
}

impl std::fmt::Debug for MyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MyPool").finish_non_exhaustive()
    }
}

/// Whether a query parameter names the TLS mode (`ssl-mode`, as MySQL's
/// connectors spell it, or `sslmode`): Spin accepts it though
/// mysql_async's URL parser does not.
fn is_ssl_param(name: &str) -> bool {
    name.eq_ignore_ascii_case("ssl-mode") || name.eq_ignore_ascii_case("sslmode")
}

/// The options for `address` (`mysql://user:password@host[:port]/db`),
/// read as Spin reads it: TLS when an `ssl-mode` other than `disabled` is
/// given, the pool bounded by [`MAX_CONNECTIONS_PER_ADDRESS`].
pub fn options(address: &str) -> Result<Opts, MyError> {
    let bad = |e: &dyn std::fmt::Display| {
        MyError::ConnectionFailed(format!("invalid MySQL address `{address}`: {e}"))
    };
    let mut url = url::Url::parse(address).map_err(|e| bad(&e))?;
    let use_tls = url
        .query_pairs()
        .any(|(k, v)| is_ssl_param(&k) && !v.eq_ignore_ascii_case("disabled"));
    let rest: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !is_ssl_param(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    if !rest.is_empty() {
        url.query_pairs_mut().extend_pairs(rest);
    }
    let opts = Opts::from_url(url.as_str()).map_err(|e| bad(&e))?;
    let constraints = PoolConstraints::new(0, MAX_CONNECTIONS_PER_ADDRESS)
        .expect("0 <= MAX_CONNECTIONS_PER_ADDRESS, which is positive");
    Ok(OptsBuilder::from_opts(opts)
        .ssl_opts(use_tls.then(SslOpts::default))
        .pool_opts(PoolOpts::default().with_constraints(constraints))
        .into())
}

impl MyPool {
    /// A connection to `address` from the app's pool for it (made on first
    /// use).
    pub async fn connect(&self, address: &str) -> Result<MyConnection, MyError> {
        let pool = {
            let mut pools = self
                .pools
                .lock()
                .map_err(|_| MyError::Other("MySQL pool lock poisoned".into()))?;
            match pools.get(address) {
                Some(pool) => pool.clone(),
                None => {
                    let pool = mysql_async::Pool::new(options(address)?);
                    pools.insert(address.to_owned(), pool.clone());
                    pool
                }
            }
        };
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, pool.get_conn())
            .await
            .map_err(|_| {
                MyError::ConnectionFailed(format!("connecting timed out after {CONNECT_TIMEOUT:?}"))
            })?
            .map_err(|e| MyError::ConnectionFailed(format!("{e:?}")))?;
        Ok(Arc::new(tokio::sync::Mutex::new(conn)))
    }
}

fn to_mysql(value: MyValue) -> mysql_async::Value {
    use mysql_async::Value;
    match value {
        MyValue::Null => Value::NULL,
        MyValue::Bool(v) => Value::from(v),
        MyValue::Int8(v) => Value::from(v),
        MyValue::Int16(v) => Value::from(v),
        MyValue::Int32(v) => Value::from(v),
        MyValue::Int64(v) => Value::from(v),
        MyValue::Uint8(v) => Value::from(v),
        MyValue::Uint16(v) => Value::from(v),
        MyValue::Uint32(v) => Value::from(v),
        MyValue::Uint64(v) => Value::from(v),
        MyValue::Float32(v) => Value::from(v),
        MyValue::Float64(v) => Value::from(v),
        MyValue::Str(v) => Value::from(v),
        MyValue::Binary(v) => Value::from(v),
    }
}

fn params(values: Vec<MyValue>) -> mysql_async::Params {
    if values.is_empty() {
        mysql_async::Params::Empty
    } else {
        mysql_async::Params::Positional(values.into_iter().map(to_mysql).collect())
    }
}

/// Runs `statement` (insert, update, delete, DDL...) with `values` bound
/// to its `?`s.
pub async fn execute(
    conn: &MyConnection,
    statement: &str,
    values: Vec<MyValue>,
) -> Result<(), MyError> {
    conn.lock()
        .await
        .exec_drop(statement, params(values))
        .await
        .map_err(|e| MyError::QueryFailed(format!("{e:?}")))
}

/// Runs `statement` (a select) with `values` bound to its `?`s; its first
/// result set, whole.
pub async fn query(
    conn: &MyConnection,
    statement: &str,
    values: Vec<MyValue>,
) -> Result<MyRows, MyError> {
    let mut conn = conn.lock().await;
    let mut result = conn
        .exec_iter(statement, params(values))
        .await
        .map_err(|e| MyError::QueryFailed(format!("{e:?}")))?;
    let columns: Vec<(String, MyType)> = result
        .columns()
        .map(|columns| {
            columns
                .iter()
                .map(|c| (c.name_str().into_owned(), column_type(c)))
                .collect()
        })
        .unwrap_or_default();
    let mut rows = Vec::new();
    let mut bytes = 0;
    while let Some(row) = result
        .next()
        .await
        .map_err(|e| MyError::Other(e.to_string()))?
    {
        let row = convert_row(row, &columns)?;
        bytes += row.iter().map(MyValue::size).sum::<usize>();
        if bytes > MAX_RESULT_BYTES {
            return Err(MyError::Other(format!(
                "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
            )));
        }
        rows.push(row);
    }
    // Any further result sets (a multi-statement's) are read and dropped so
    // the connection goes back to the pool clean.
    result
        .drop_result()
        .await
        .map_err(|e| MyError::Other(e.to_string()))?;
    Ok(MyRows { columns, rows })
}

/// A column's type as Spin reports it: integers by width and signedness,
/// text and blobs by the binary flag, everything else `other`.
fn column_type(column: &mysql_async::Column) -> MyType {
    let t = column.column_type();
    let flags = column.flags();
    let signed = !flags.contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = flags.contains(ColumnFlags::BINARY_FLAG);
    match t {
        ColumnType::MYSQL_TYPE_DOUBLE => MyType::Floating64,
        ColumnType::MYSQL_TYPE_FLOAT => MyType::Floating32,
        ColumnType::MYSQL_TYPE_INT24 | ColumnType::MYSQL_TYPE_LONG if signed => MyType::Int32,
        ColumnType::MYSQL_TYPE_INT24 | ColumnType::MYSQL_TYPE_LONG => MyType::Uint32,
        ColumnType::MYSQL_TYPE_LONGLONG if signed => MyType::Int64,
        ColumnType::MYSQL_TYPE_LONGLONG => MyType::Uint64,
        ColumnType::MYSQL_TYPE_SHORT if signed => MyType::Int16,
        ColumnType::MYSQL_TYPE_SHORT => MyType::Uint16,
        ColumnType::MYSQL_TYPE_TINY if signed => MyType::Int8,
        ColumnType::MYSQL_TYPE_TINY => MyType::Uint8,
        ColumnType::MYSQL_TYPE_BLOB if !binary => MyType::Str,
        ColumnType::MYSQL_TYPE_BLOB
        | ColumnType::MYSQL_TYPE_LONG_BLOB
        | ColumnType::MYSQL_TYPE_MEDIUM_BLOB => MyType::Binary,
        ColumnType::MYSQL_TYPE_STRING | ColumnType::MYSQL_TYPE_VAR_STRING if binary => {
            MyType::Binary
        }
        ColumnType::MYSQL_TYPE_STRING | ColumnType::MYSQL_TYPE_VAR_STRING => MyType::Str,
        _ => MyType::Other,
    }
}

fn convert_row(
    mut row: mysql_async::Row,
    columns: &[(String, MyType)],
) -> Result<Vec<MyValue>, MyError> {
    (0..row.len())
        .map(|i| {
            let (name, data_type) = columns
                .get(i)
                .ok_or_else(|| MyError::Other(format!("Can't get column at index {i}")))?;
            match row.take::<mysql_async::Value, _>(i) {
                None | Some(mysql_async::Value::NULL) => Ok(MyValue::Null),
                Some(value) => convert_value(value, name, *data_type),
            }
        })
        .collect()
}

fn convert_value(
    value: mysql_async::Value,
    column: &str,
    data_type: MyType,
) -> Result<MyValue, MyError> {
    use mysql_async::from_value_opt as from;
    fn failed(e: impl std::fmt::Display) -> MyError {
        MyError::ValueConversionFailed(e.to_string())
    }
    Ok(match data_type {
        MyType::Binary => MyValue::Binary(from(value).map_err(failed)?),
        MyType::Boolean => MyValue::Bool(from(value).map_err(failed)?),
        MyType::Floating32 => MyValue::Float32(from(value).map_err(failed)?),
        MyType::Floating64 => MyValue::Float64(from(value).map_err(failed)?),
        MyType::Int8 => MyValue::Int8(from(value).map_err(failed)?),
        MyType::Int16 => MyValue::Int16(from(value).map_err(failed)?),
        MyType::Int32 => MyValue::Int32(from(value).map_err(failed)?),
        MyType::Int64 => MyValue::Int64(from(value).map_err(failed)?),
        MyType::Str => MyValue::Str(from(value).map_err(failed)?),
        MyType::Uint8 => MyValue::Uint8(from(value).map_err(failed)?),
        MyType::Uint16 => MyValue::Uint16(from(value).map_err(failed)?),
        MyType::Uint32 => MyValue::Uint32(from(value).map_err(failed)?),
        MyType::Uint64 => MyValue::Uint64(from(value).map_err(failed)?),
        MyType::Other => {
            return Err(MyError::ValueConversionFailed(format!(
                "Cannot convert value {value:?} in column {column} data type {data_type:?}"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_without_ssl_mode_connects_in_plain_text() {
        let opts = options("mysql://spin:spin@127.0.0.1:3307/db").unwrap();
        assert!(opts.ssl_opts().is_none());
        assert_eq!(opts.tcp_port(), 3307);
        assert_eq!(opts.db_name(), Some("db"));
    }

    #[test]
    fn ssl_mode_other_than_disabled_asks_for_tls_and_is_not_passed_on() {
        assert!(options("mysql://u@h/db?ssl-mode=REQUIRED")
            .unwrap()
            .ssl_opts()
            .is_some());
        assert!(options("mysql://u@h/db?sslmode=disabled")
            .unwrap()
            .ssl_opts()
            .is_none());
    }

    #[test]
    fn a_malformed_address_is_a_connection_failure_quoting_it() {
        let e = options("not a url").unwrap_err();
        assert!(
            matches!(&e, MyError::ConnectionFailed(m) if m.contains("`not a url`")),
            "{e:?}"
        );
    }

    #[test]
    fn the_pool_is_bounded_and_keeps_no_idle_minimum() {
        let opts = options("mysql://u@h/db").unwrap();
        assert_eq!(
            opts.pool_opts().constraints(),
            PoolConstraints::new(0, MAX_CONNECTIONS_PER_ADDRESS).unwrap()
        );
    }
}
