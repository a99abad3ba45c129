//! Outbound PostgreSQL for Spin's PostgreSQL interfaces
//! (`fermyon:spin/postgres@2.0.0`, `spin:postgres/postgres@3.0.0` and
//! `@4.x`): one client per address (and TLS configuration) shared by
//! every instance of an app (tokio-postgres pipelines concurrent queries
//! on one connection), values in one vocabulary the three interfaces
//! convert from and to.
//!
//! TLS as in Spin: the address's `sslmode` decides (`disable`: plain TCP;
//! `prefer`, the default, and `require`: TLS through rustls, `prefer`
//! falling back to plain TCP only when the server offers no TLS at all).
//! The server's certificate is always verified, against the roots of the
//! component's `[[client_tls]]` entry for the host (webpki's otherwise);
//! the entry's client certificate is presented; SCRAM gets
//! `tls-server-end-point` channel binding (tokio-postgres-rustls).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Datelike, Timelike};
use rustls::pki_types::CertificateDer;
use sha2::Digest as _;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Row, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::client_tls::{self, ComponentTls};
use super::postgres_types::{self as types, Bound, Interval, RangeDecimal};
use super::rdbms::{DbError, Rows};

/// How long connecting (and authenticating) may take: a server that is
/// down fails the guest's `open`, not its whole request deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most a query result may hold (Spin bounds host-buffered results
/// the same way).
const MAX_RESULT_BYTES: usize = 32 << 20;

/// A value, in or out, as the richest interface (4.x) has it.
#[derive(Debug, Clone, PartialEq)]
pub enum PgValue {
    /// `db-null`.
    Null,
    /// `boolean`.
    Bool(bool),
    /// `int8` (PostgreSQL's `"char"`).
    Int8(i8),
    /// `int16`.
    Int16(i16),
    /// `int32`.
    Int32(i32),
    /// `int64`.
    Int64(i64),
    /// `floating32`.
    Float32(f32),
    /// `floating64`.
    Float64(f64),
    /// `str`.
    Str(String),
    /// `binary`.
    Binary(Vec<u8>),
    /// `date`: year, month, day.
    Date(i32, u8, u8),
    /// `time`: hour, minute, second, nanosecond.
    Time(u8, u8, u8, u32),
    /// `datetime` (UTC): year, month, day, hour, minute, second, nanosecond.
    DateTime(i32, u8, u8, u8, u8, u8, u32),
    /// `timestamp`: seconds since the Unix epoch (parameters only).
    Timestamp(i64),
    /// `uuid` (4.0.0).
    Uuid(String),
    /// `jsonb` (4.0.0).
    Jsonb(Vec<u8>),
    /// `array-int32` (4.0.0).
    ArrayInt32(Vec<Option<i32>>),
    /// `array-int64` (4.0.0).
    ArrayInt64(Vec<Option<i64>>),
    /// `array-str` (4.0.0).
    ArrayStr(Vec<Option<String>>),
    /// `decimal` (4.0.0): `numeric` as base-10 text.
    Decimal(String),
    /// `range-int32` (4.0.0).
    RangeInt32(Bound<i32>, Bound<i32>),
    /// `range-int64` (4.0.0).
    RangeInt64(Bound<i64>, Bound<i64>),
    /// `range-decimal` (4.0.0).
    RangeDecimal(Bound<String>, Bound<String>),
    /// `array-decimal` (4.0.0).
    ArrayDecimal(Vec<Option<String>>),
    /// `interval` (4.0.0).
    Interval(Interval),
    /// A column of a type this host does not convert.
    Unsupported,
}

/// A column's type, as the richest interface has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgType {
    /// `boolean`.
    Boolean,
    /// `int16`.
    Int16,
    /// `int32`.
    Int32,
    /// `int64`.
    Int64,
    /// `floating32`.
    Floating32,
    /// `floating64`.
    Floating64,
    /// `str`.
    Str,
    /// `binary`.
    Binary,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `datetime`.
    Datetime,
    /// `uuid`.
    Uuid,
    /// `jsonb`.
    Jsonb,
    /// `array-int32`.
    ArrayInt32,
    /// `array-int64`.
    ArrayInt64,
    /// `array-str`.
    ArrayStr,
    /// `decimal`.
    Decimal,
    /// `range-int32`.
    RangeInt32,
    /// `range-int64`.
    RangeInt64,
    /// `range-decimal`.
    RangeDecimal,
    /// `array-decimal`.
    ArrayDecimal,
    /// `interval`.
    Interval,
    /// Anything else, by PostgreSQL's name.
    Other(String),
}

/// A query's result.
pub type PgRows = Rows<PgType, PgValue>;

/// Why a call failed, in Spin's terms.
pub type PgError = DbError;

/// One app's PostgreSQL clients, by address and TLS configuration.
#[derive(Default)]
pub struct PgPool {
    clients: Mutex<HashMap<PoolKey, Arc<Client>>>,
}

/// What a client is shared by: its address, the TLS configuration of each
/// of its hosts, and the CA root the guest added, if any.
type PoolKey = (String, Vec<u64>, Option<[u8; 32]>);

/// A CA root a guest gives for one connection (4.x's `set-ca-root`),
/// trusted besides the component's roots for the host.
#[derive(Debug, Clone)]
pub struct CaRoot {
    der: CertificateDer<'static>,
    digest: [u8; 32],
}

impl CaRoot {
    /// Reads the first certificate of `pem`; Spin's `other` error text if
    /// there is none or it is no usable root.
    pub fn from_pem(pem: &str) -> Result<Self, PgError> {
        use rustls::pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| PgError::Other(format!("invalid root certificate: {e}")))?;
        rustls::RootCertStore::empty()
            .add(der.clone())
            .map_err(|e| PgError::Other(format!("invalid root certificate: {e}")))?;
        let digest = sha2::Sha256::digest(der.as_ref()).into();
        Ok(Self { der, digest })
    }
}

/// TLS for a connection: for each host, the component's configuration
/// for it (plus the guest's CA root, if any).
#[derive(Clone)]
struct PerHost {
    tls: ComponentTls,
    ca_root: Option<CaRoot>,
}

impl MakeTlsConnect<Socket> for PerHost {
    type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;
    type TlsConnect = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        let config = self.tls.for_host(domain);
        let mut make = match &self.ca_root {
            None => config.postgres().clone(),
            Some(root) => MakeRustlsConnect::new(
                config
                    .settings()
                    .client_config(Some(&root.der))
                    .map_err(|e| format!("{e:#}"))?,
            ),
        };
        let connect = <MakeRustlsConnect as MakeTlsConnect<Socket>>::make_tls_connect(
            &mut make, domain,
        );
        Ok(connect?)
    }
}

/// Connects with `tls` and runs the connection on a task of its own.
async fn connect<T>(config: &tokio_postgres::Config, tls: T) -> Result<Client, PgError>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tls))
        .await
        .map_err(|_| {
            PgError::ConnectionFailed(format!("connecting timed out after {CONNECT_TIMEOUT:?}"))
        })?
        .map_err(connect_error)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::info!("a PostgreSQL connection closed: {e}");
        }
    });
    Ok(client)
}

/// `connection-failed` with the whole reason (`error performing TLS
/// handshake: invalid peer certificate: UnknownIssuer`, `db error: FATAL:
/// pg_hba.conf rejects connection ...`) and, for a server certificate not
/// trusted, what to do about it.
fn connect_error(e: tokio_postgres::Error) -> PgError {
    let mut text = client_tls::chain(&e);
    if let Some(hint) = client_tls::untrusted_hint(&e) {
        text.push_str(" (");
        text.push_str(hint);
        text.push(')');
    }
    PgError::ConnectionFailed(text)
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool").finish_non_exhaustive()
    }
}

/// The `host:port` pairs `address` (a URL or `key=value` string, as
/// tokio-postgres reads them) would connect to; Unix sockets are refused.
pub fn endpoints(address: &str) -> Result<Vec<(String, u16)>, PgError> {
    let config: tokio_postgres::Config = address
        .parse()
        .map_err(|e: tokio_postgres::Error| PgError::ConnectionFailed(e.to_string()))?;
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            tokio_postgres::config::Host::Tcp(host) => {
                let port = ports
                    .get(i)
                    .or(if ports.len() == 1 {
                        ports.first()
                    } else {
                        None
                    })
                    .copied()
                    .unwrap_or(5432);
                Ok((host.clone(), port))
            }
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(_) => Err(PgError::ConnectionFailed(
                "Unix sockets are not supported on WebAssembly".into(),
            )),
        })
        .collect()
}

impl PgPool {
    /// The app's client for `address` with the TLS configuration `tls`
    /// has for its hosts (and `ca_root`), connecting if there is none (or
    /// the one there closed).
    pub async fn client(
        &self,
        address: &str,
        tls: &ComponentTls,
        ca_root: Option<&CaRoot>,
    ) -> Result<Arc<Client>, PgError> {
        let config: tokio_postgres::Config = address
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::ConnectionFailed(client_tls::chain(&e)))?;
        let plain = config.get_ssl_mode() == SslMode::Disable;
        let key: PoolKey = if plain {
            (address.to_owned(), Vec::new(), None)
        } else {
            let ids = config
                .get_hosts()
                .iter()
                .map(|host| match host {
                    tokio_postgres::config::Host::Tcp(host) => tls.for_host(host).id(),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(_) => 0,
                })
                .collect();
            (address.to_owned(), ids, ca_root.map(|r| r.digest))
        };
        let cached = self
            .clients
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
            .filter(|c| !c.is_closed());
        if let Some(client) = cached {
            return Ok(client);
        }
        let client = if plain {
            connect(&config, NoTls).await?
        } else {
            let tls = PerHost {
                tls: tls.clone(),
                ca_root: ca_root.cloned(),
            };
            connect(&config, tls).await?
        };
        let client = Arc::new(client);
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(key, client.clone());
        }
        Ok(client)
    }
}

fn parameter(value: PgValue) -> Result<Box<dyn ToSql + Send + Sync>, PgError> {
    Ok(match value {
        PgValue::Null => Box::new(Option::<String>::None),
        PgValue::Bool(v) => Box::new(v),
        PgValue::Int8(v) => Box::new(v),
        PgValue::Int16(v) => Box::new(v),
        PgValue::Int32(v) => Box::new(v),
        PgValue::Int64(v) => Box::new(v),
        PgValue::Float32(v) => Box::new(v),
        PgValue::Float64(v) => Box::new(v),
        PgValue::Str(v) => Box::new(v),
        PgValue::Binary(v) => Box::new(v),
        PgValue::Date(y, m, d) => Box::new(
            chrono::NaiveDate::from_ymd_opt(y, m.into(), d.into())
                .ok_or_else(|| PgError::BadParameter(format!("invalid date {y}-{m}-{d}")))?,
        ),
        // PostgreSQL keeps microseconds. Nanoseconds are cut here, not by
        // tokio-postgres, which truncates toward 2000-01-01: a datetime
        // before it would be stored 1 µs later than the guest's.
        PgValue::Time(h, mi, s, ns) => Box::new(
            chrono::NaiveTime::from_hms_micro_opt(h.into(), mi.into(), s.into(), ns / 1000)
                .ok_or_else(|| PgError::BadParameter(format!("invalid time {h}:{mi}:{s}.{ns}")))?,
        ),
        PgValue::DateTime(y, m, d, h, mi, s, ns) => Box::new(
            chrono::NaiveDate::from_ymd_opt(y, m.into(), d.into())
                .and_then(|date| date.and_hms_micro_opt(h.into(), mi.into(), s.into(), ns / 1000))
                .ok_or_else(|| PgError::BadParameter("invalid datetime".into()))?,
        ),
        PgValue::Timestamp(secs) => Box::new(
            chrono::DateTime::from_timestamp(secs, 0)
                .ok_or_else(|| PgError::BadParameter(format!("invalid timestamp {secs}")))?,
        ),
        PgValue::Uuid(v) => Box::new(
            uuid::Uuid::parse_str(&v)
                .map_err(|e| PgError::BadParameter(format!("invalid uuid `{v}`: {e}")))?,
        ),
        PgValue::Jsonb(v) => Box::new(
            serde_json::from_slice::<serde_json::Value>(&v)
                .map_err(|e| PgError::BadParameter(format!("invalid JSON: {e}")))?,
        ),
        PgValue::ArrayInt32(v) => Box::new(v),
        PgValue::ArrayInt64(v) => Box::new(v),
        PgValue::ArrayStr(v) => Box::new(v),
        PgValue::Decimal(v) => Box::new(types::decimal(&v)?),
        PgValue::RangeInt32(lower, upper) => Box::new(types::range(lower, upper)),
        PgValue::RangeInt64(lower, upper) => Box::new(types::range(lower, upper)),
        PgValue::RangeDecimal(lower, upper) => Box::new(types::decimal_range(lower, upper)?),
        PgValue::ArrayDecimal(v) => Box::new(types::decimals(&v)?),
        PgValue::Interval(v) => Box::new(v),
        PgValue::Unsupported => {
            return Err(PgError::BadParameter(
                "a parameter of a type this host does not support".into(),
            ))
        }
    })
}

fn column_type(t: &Type) -> PgType {
    match *t {
        Type::BOOL => PgType::Boolean,
        Type::BYTEA => PgType::Binary,
        Type::FLOAT4 => PgType::Floating32,
        Type::FLOAT8 => PgType::Floating64,
        Type::INT2 => PgType::Int16,
        Type::INT4 => PgType::Int32,
        Type::INT8 => PgType::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => PgType::Str,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => PgType::Datetime,
        Type::DATE => PgType::Date,
        Type::TIME => PgType::Time,
        Type::UUID => PgType::Uuid,
        Type::JSONB => PgType::Jsonb,
        Type::INT4_ARRAY => PgType::ArrayInt32,
        Type::INT8_ARRAY => PgType::ArrayInt64,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => PgType::ArrayStr,
        Type::NUMERIC => PgType::Decimal,
        Type::INT4_RANGE => PgType::RangeInt32,
        Type::INT8_RANGE => PgType::RangeInt64,
        Type::NUM_RANGE => PgType::RangeDecimal,
        Type::NUMERIC_ARRAY => PgType::ArrayDecimal,
        Type::INTERVAL => PgType::Interval,
        _ => PgType::Other(t.name().to_owned()),
    }
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
) -> Result<Option<T>, PgError> {
    row.try_get::<_, Option<T>>(i)
        .map_err(|e| PgError::ValueConversionFailed(e.to_string()))
}

fn datetime(d: chrono::NaiveDateTime) -> PgValue {
    PgValue::DateTime(
        d.year(),
        d.month() as u8,
        d.day() as u8,
        d.hour() as u8,
        d.minute() as u8,
        d.second() as u8,
        d.nanosecond(),
    )
}

fn value(row: &Row, i: usize, t: &Type) -> Result<PgValue, PgError> {
    let v = match *t {
        Type::BOOL => get::<bool>(row, i)?.map(PgValue::Bool),
        Type::BYTEA => get::<Vec<u8>>(row, i)?.map(PgValue::Binary),
        Type::FLOAT4 => get::<f32>(row, i)?.map(PgValue::Float32),
        Type::FLOAT8 => get::<f64>(row, i)?.map(PgValue::Float64),
        Type::CHAR => get::<i8>(row, i)?.map(PgValue::Int8),
        Type::INT2 => get::<i16>(row, i)?.map(PgValue::Int16),
        Type::INT4 => get::<i32>(row, i)?.map(PgValue::Int32),
        Type::INT8 => get::<i64>(row, i)?.map(PgValue::Int64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            get::<String>(row, i)?.map(PgValue::Str)
        }
        Type::TIMESTAMP => get::<chrono::NaiveDateTime>(row, i)?.map(datetime),
        Type::TIMESTAMPTZ => {
            get::<chrono::DateTime<chrono::Utc>>(row, i)?.map(|d| datetime(d.naive_utc()))
        }
        Type::DATE => get::<chrono::NaiveDate>(row, i)?
            .map(|d| PgValue::Date(d.year(), d.month() as u8, d.day() as u8)),
        Type::TIME => get::<chrono::NaiveTime>(row, i)?.map(|t| {
            PgValue::Time(
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
                t.nanosecond(),
            )
        }),
        Type::UUID => get::<uuid::Uuid>(row, i)?.map(|u| PgValue::Uuid(u.to_string())),
        Type::JSONB => {
            get::<serde_json::Value>(row, i)?.map(|j| PgValue::Jsonb(j.to_string().into_bytes()))
        }
        Type::INT4_ARRAY => get::<Vec<Option<i32>>>(row, i)?.map(PgValue::ArrayInt32),
        Type::INT8_ARRAY => get::<Vec<Option<i64>>>(row, i)?.map(PgValue::ArrayInt64),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            get::<Vec<Option<String>>>(row, i)?.map(PgValue::ArrayStr)
        }
        Type::NUMERIC => {
            get::<rust_decimal::Decimal>(row, i)?.map(|d| PgValue::Decimal(d.to_string()))
        }
        Type::INT4_RANGE => get::<postgres_range::Range<i32>>(row, i)?.map(|r| {
            let (lower, upper) = types::bounds(&r, |v| *v);
            PgValue::RangeInt32(lower, upper)
        }),
        Type::INT8_RANGE => get::<postgres_range::Range<i64>>(row, i)?.map(|r| {
            let (lower, upper) = types::bounds(&r, |v| *v);
            PgValue::RangeInt64(lower, upper)
        }),
        Type::NUM_RANGE => get::<postgres_range::Range<RangeDecimal>>(row, i)?.map(|r| {
            let (lower, upper) = types::bounds(&r, |v| v.0.to_string());
            PgValue::RangeDecimal(lower, upper)
        }),
        Type::NUMERIC_ARRAY => get::<Vec<Option<rust_decimal::Decimal>>>(row, i)?.map(|a| {
            PgValue::ArrayDecimal(a.into_iter().map(|d| d.map(|d| d.to_string())).collect())
        }),
        Type::INTERVAL => get::<Interval>(row, i)?.map(PgValue::Interval),
        _ => Some(PgValue::Unsupported),
    };
    Ok(v.unwrap_or(PgValue::Null))
}

fn size(v: &PgValue) -> usize {
    std::mem::size_of::<PgValue>()
        + match v {
            PgValue::Str(s) | PgValue::Uuid(s) | PgValue::Decimal(s) => s.len(),
            PgValue::Binary(b) | PgValue::Jsonb(b) => b.len(),
            PgValue::ArrayInt32(a) => a.len() * 8,
            PgValue::ArrayInt64(a) => a.len() * 16,
            PgValue::ArrayStr(a) | PgValue::ArrayDecimal(a) => a
                .iter()
                .map(|s| 24 + s.as_ref().map_or(0, String::len))
                .sum(),
            _ => 0,
        }
}

fn query_error(e: tokio_postgres::Error) -> PgError {
    PgError::QueryFailed(match e.as_db_error() {
        Some(db) => db.to_string(),
        None => e.to_string(),
    })
}

type Parameters = Vec<Box<dyn ToSql + Send + Sync>>;

fn parameters(values: Vec<PgValue>) -> Result<Parameters, PgError> {
    values.into_iter().map(parameter).collect()
}

fn borrowed(params: &Parameters) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect()
}

fn columns(columns: &[tokio_postgres::Column]) -> Vec<(String, PgType)> {
    columns
        .iter()
        .map(|c| (c.name().to_owned(), column_type(c.type_())))
        .collect()
}

/// Runs a query and collects its rows.
pub async fn query(
    client: &Client,
    statement: &str,
    params: Vec<PgValue>,
) -> Result<PgRows, PgError> {
    let params = parameters(params)?;
    let rows = client
        .query(statement, &borrowed(&params))
        .await
        .map_err(query_error)?;
    let mut result = PgRows::default();
    if let Some(first) = rows.first() {
        result.columns = columns(first.columns());
    } else if let Ok(prepared) = client.prepare(statement).await {
        // No rows to read the columns from: the statement says them.
        result.columns = columns(prepared.columns());
    }
    let mut bytes = 0;
    for row in &rows {
        let mut values = Vec::with_capacity(row.len());
        for (i, column) in row.columns().iter().enumerate() {
            let v = value(row, i, column.type_())?;
            bytes += size(&v);
            values.push(v);
        }
        if bytes > MAX_RESULT_BYTES {
            return Err(PgError::QueryFailed(format!(
                "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
            )));
        }
        result.rows.push(values);
    }
    Ok(result)
}

/// Runs a statement; the number of rows it changed.
pub async fn execute(
    client: &Client,
    statement: &str,
    params: Vec<PgValue>,
) -> Result<u64, PgError> {
    let params = parameters(params)?;
    client
        .execute(statement, &borrowed(&params))
        .await
        .map_err(query_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What PostgreSQL would read back for `value` sent as a `ty` parameter.
    fn round_trip<T: for<'a> tokio_postgres::types::FromSql<'a>>(value: PgValue, ty: &Type) -> T {
        let mut wire = bytes::BytesMut::new();
        parameter(value)
            .unwrap()
            .to_sql_checked(ty, &mut wire)
            .unwrap();
        T::from_sql(ty, &wire).unwrap()
    }

    #[test]
    fn sub_microsecond_times_are_cut_not_rounded_up_before_2000() {
        let sent = PgValue::DateTime(1989, 11, 24, 1, 2, 3, 4);
        let stored: chrono::NaiveDateTime = round_trip(sent, &Type::TIMESTAMP);
        assert_eq!(stored.to_string(), "1989-11-24 01:02:03");
        let sent = PgValue::DateTime(2024, 2, 29, 1, 2, 3, 5_999);
        let stored: chrono::NaiveDateTime = round_trip(sent, &Type::TIMESTAMP);
        assert_eq!(stored.to_string(), "2024-02-29 01:02:03.000005");
        let stored: chrono::NaiveTime = round_trip(PgValue::Time(14, 15, 16, 17), &Type::TIME);
        assert_eq!(stored.to_string(), "14:15:16");
    }

    #[test]
    fn addresses_name_their_hosts_and_ports_in_both_forms() {
        let cases: &[(&str, &[(&str, u16)])] = &[
            (
                "postgres://u:p@db.internal:6543/app",
                &[("db.internal", 6543)],
            ),
            ("postgres://u@127.0.0.1/app", &[("127.0.0.1", 5432)]),
            ("host=a,b port=1,2 user=u", &[("a", 1), ("b", 2)]),
            ("host=a,b port=7 user=u", &[("a", 7), ("b", 7)]),
        ];
        for (address, expected) in cases {
            let got = endpoints(address).unwrap();
            let expected: Vec<_> = expected.iter().map(|(h, p)| (h.to_string(), *p)).collect();
            assert_eq!(got, expected, "{address}");
        }
        assert!(matches!(
            endpoints("host=/run/postgresql"),
            Err(PgError::ConnectionFailed(_))
        ));
    }
}
