//! `fermyon:spin/postgres@2.0.0`, `spin:postgres/postgres@3.0.0` and
//! `@4.0.0` over [`crate::services::postgres`]: allowed only by
//! `allowed_outbound_hosts` (`postgres://host[:port]`, default 5432; Spin's
//! error text when not), one client per address per app.

use std::sync::Arc;

use tokio_postgres::Client;
use wasmtime::component::Resource;

use super::bindings::fermyon::spin::{postgres as v2, rdbms_types as rdbms};
use super::bindings::spin::postgres3_0_0::postgres as v3;
use super::bindings::spin::postgres4_0_0::postgres as v4;
use crate::services::postgres::{self as pg, PgError, PgRows, PgType, PgValue};
use crate::wasm::state::GuestState;

/// A guest's open connection: the app's client for its address.
pub struct PgConnection {
    client: Arc<Client>,
}

impl GuestState {
    async fn pg_open(&mut self, address: String) -> Result<Resource<PgConnection>, PgError> {
        for (host, port) in pg::endpoints(&address)? {
            if !self.outbound_allows_address(&format!("postgres://{host}:{port}")) {
                tracing::info!(
                    "PostgreSQL connection to `{host}:{port}` denied: not in the component's allowed outbound hosts"
                );
                return Err(PgError::ConnectionFailed(format!(
                    "address postgres://{host}:{port} is not permitted"
                )));
            }
        }
        let client = self.postgres_pool().client(&address).await?;
        self.table_mut()
            .push(PgConnection { client })
            .map_err(|e| PgError::ConnectionFailed(e.to_string()))
    }

    fn pg_client(&self, conn: &Resource<PgConnection>) -> Result<Arc<Client>, PgError> {
        self.table()
            .get(conn)
            .map(|c| c.client.clone())
            .map_err(|e| PgError::ConnectionFailed(e.to_string()))
    }

    async fn pg_query(
        &mut self,
        conn: &Resource<PgConnection>,
        statement: String,
        params: Vec<PgValue>,
    ) -> Result<PgRows, PgError> {
        let client = self.pg_client(conn)?;
        pg::query(&client, &statement, params).await
    }

    async fn pg_execute(
        &mut self,
        conn: &Resource<PgConnection>,
        statement: String,
        params: Vec<PgValue>,
    ) -> Result<u64, PgError> {
        let client = self.pg_client(conn)?;
        pg::execute(&client, &statement, params).await
    }
}

/// Conversions shared in shape by every version: errors, the values both
/// directions for the scalar types, and the resource's methods.
macro_rules! common {
    ($m:ident, $column:ident, $error:ty, $query_failed:expr) => {
        impl From<PgError> for $error {
            fn from(e: PgError) -> Self {
                use $m::Error as E;
                match e {
                    PgError::ConnectionFailed(m) => E::ConnectionFailed(m),
                    PgError::BadParameter(m) => E::BadParameter(m),
                    PgError::QueryFailed(m) => E::QueryFailed($query_failed(m)),
                    PgError::ValueConversionFailed(m) => E::ValueConversionFailed(m),
                }
            }
        }

        impl $m::HostConnection for GuestState {
            async fn open(&mut self, address: String) -> Result<Resource<PgConnection>, $error> {
                Ok(self.pg_open(address).await?)
            }

            async fn query(
                &mut self,
                conn: Resource<PgConnection>,
                statement: String,
                params: Vec<$m::ParameterValue>,
            ) -> Result<$m::RowSet, $error> {
                let params = params
                    .into_iter()
                    .map(param)
                    .collect::<Result<Vec<_>, _>>()?;
                let rows = self.pg_query(&conn, statement, params).await?;
                Ok($m::RowSet {
                    columns: rows
                        .columns
                        .into_iter()
                        .map(|(name, t)| $column {
                            name,
                            data_type: data_type(t),
                        })
                        .collect(),
                    rows: rows
                        .rows
                        .into_iter()
                        .map(|row| row.into_iter().map(db_value).collect())
                        .collect(),
                })
            }

            async fn execute(
                &mut self,
                conn: Resource<PgConnection>,
                statement: String,
                params: Vec<$m::ParameterValue>,
            ) -> Result<u64, $error> {
                let params = params
                    .into_iter()
                    .map(param)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(self.pg_execute(&conn, statement, params).await?)
            }

            async fn drop(&mut self, conn: Resource<PgConnection>) -> wasmtime::Result<()> {
                self.table_mut().delete(conn)?;
                Ok(())
            }
        }
    };
}

fn unsupported_parameter(what: &str) -> PgError {
    PgError::BadParameter(format!("PostgreSQL has no {what} type"))
}

/// A guest's parameter as a [`PgValue`]: the arms every version shares,
/// then the version's own.
macro_rules! to_pg {
    ($p:expr, $P:ident, { $($own:tt)* }) => {
        match $p {
            $P::Boolean(v) => PgValue::Bool(v),
            $P::Int8(v) => PgValue::Int8(v),
            $P::Int16(v) => PgValue::Int16(v),
            $P::Int32(v) => PgValue::Int32(v),
            $P::Int64(v) => PgValue::Int64(v),
            $P::Floating32(v) => PgValue::Float32(v),
            $P::Floating64(v) => PgValue::Float64(v),
            $P::Str(v) => PgValue::Str(v),
            $P::Binary(v) => PgValue::Binary(v),
            $P::DbNull => PgValue::Null,
            $($own)*
        }
    };
}

/// A [`PgValue`] as a version's `db-value`: the shared arms, then its own
/// (which end with what it cannot carry).
macro_rules! from_pg {
    ($v:expr, $D:ident, { $($own:tt)* }) => {
        match $v {
            PgValue::Null => $D::DbNull,
            PgValue::Bool(v) => $D::Boolean(v),
            PgValue::Int8(v) => $D::Int8(v),
            PgValue::Int16(v) => $D::Int16(v),
            PgValue::Int32(v) => $D::Int32(v),
            PgValue::Int64(v) => $D::Int64(v),
            PgValue::Float32(v) => $D::Floating32(v),
            PgValue::Float64(v) => $D::Floating64(v),
            PgValue::Str(v) => $D::Str(v),
            PgValue::Binary(v) => $D::Binary(v),
            $($own)*
        }
    };
}

/// A [`PgType`] as a version's `db-data-type`.
macro_rules! type_from_pg {
    ($t:expr, $T:ident, { $($own:tt)* }) => {
        match $t {
            PgType::Boolean => $T::Boolean,
            PgType::Int16 => $T::Int16,
            PgType::Int32 => $T::Int32,
            PgType::Int64 => $T::Int64,
            PgType::Floating32 => $T::Floating32,
            PgType::Floating64 => $T::Floating64,
            PgType::Str => $T::Str,
            PgType::Binary => $T::Binary,
            $($own)*
        }
    };
}

mod spin2 {
    use super::*;
    use rdbms::{DbDataType as T, DbValue as D, ParameterValue as P};

    pub(super) fn param(p: P) -> Result<PgValue, PgError> {
        Ok(to_pg!(p, P, {
            P::Uint8(_) | P::Uint16(_) | P::Uint32(_) | P::Uint64(_) => {
                return Err(unsupported_parameter("unsigned integer"))
            }
        }))
    }

    pub(super) fn data_type(t: PgType) -> T {
        type_from_pg!(t, T, { _ => T::Other })
    }

    pub(super) fn db_value(v: PgValue) -> D {
        from_pg!(v, D, { _ => D::Unsupported })
    }
}

mod spin3 {
    use super::*;
    use v3::{DbDataType as T, DbValue as D, ParameterValue as P};

    pub(super) fn param(p: P) -> Result<PgValue, PgError> {
        Ok(to_pg!(p, P, {
            P::Date((y, m, d)) => PgValue::Date(y, m, d),
            P::Time((h, mi, s, ns)) => PgValue::Time(h, mi, s, ns),
            P::Datetime((y, m, d, h, mi, s, ns)) => PgValue::DateTime(y, m, d, h, mi, s, ns),
            P::Timestamp(v) => PgValue::Timestamp(v),
        }))
    }

    pub(super) fn data_type(t: PgType) -> T {
        type_from_pg!(t, T, {
            PgType::Date => T::Date,
            PgType::Time => T::Time,
            PgType::Datetime => T::Datetime,
            _ => T::Other,
        })
    }

    pub(super) fn db_value(v: PgValue) -> D {
        from_pg!(v, D, {
            PgValue::Date(y, m, d) => D::Date((y, m, d)),
            PgValue::Time(h, mi, s, ns) => D::Time((h, mi, s, ns)),
            PgValue::DateTime(y, m, d, h, mi, s, ns) => D::Datetime((y, m, d, h, mi, s, ns)),
            PgValue::Timestamp(v) => D::Timestamp(v),
            _ => D::Unsupported,
        })
    }
}

mod spin4 {
    use super::*;
    use v4::{DbDataType as T, DbValue as D, ParameterValue as P};

    pub(super) fn param(p: P) -> Result<PgValue, PgError> {
        Ok(to_pg!(p, P, {
            P::Date((y, m, d)) => PgValue::Date(y, m, d),
            P::Time((h, mi, s, ns)) => PgValue::Time(h, mi, s, ns),
            P::Datetime((y, m, d, h, mi, s, ns)) => PgValue::DateTime(y, m, d, h, mi, s, ns),
            P::Timestamp(v) => PgValue::Timestamp(v),
            P::Uuid(v) => PgValue::Uuid(v),
            P::Jsonb(v) => PgValue::Jsonb(v),
            P::ArrayInt32(v) => PgValue::ArrayInt32(v),
            P::ArrayInt64(v) => PgValue::ArrayInt64(v),
            P::ArrayStr(v) => PgValue::ArrayStr(v),
            P::Decimal(_)
            | P::RangeInt32(_)
            | P::RangeInt64(_)
            | P::RangeDecimal(_)
            | P::ArrayDecimal(_)
            | P::Interval(_) => {
                return Err(PgError::BadParameter(
                    "decimal, range and interval parameters are not supported by wasmhost yet"
                        .into(),
                ))
            }
        }))
    }

    pub(super) fn data_type(t: PgType) -> T {
        type_from_pg!(t, T, {
            PgType::Date => T::Date,
            PgType::Time => T::Time,
            PgType::Datetime => T::Datetime,
            PgType::Uuid => T::Uuid,
            PgType::Jsonb => T::Jsonb,
            PgType::ArrayInt32 => T::ArrayInt32,
            PgType::ArrayInt64 => T::ArrayInt64,
            PgType::ArrayStr => T::ArrayStr,
            PgType::Other(name) => T::Other(name),
        })
    }

    pub(super) fn db_value(v: PgValue) -> D {
        from_pg!(v, D, {
            PgValue::Date(y, m, d) => D::Date((y, m, d)),
            PgValue::Time(h, mi, s, ns) => D::Time((h, mi, s, ns)),
            PgValue::DateTime(y, m, d, h, mi, s, ns) => D::Datetime((y, m, d, h, mi, s, ns)),
            PgValue::Timestamp(v) => D::Timestamp(v),
            PgValue::Uuid(v) => D::Uuid(v),
            PgValue::Jsonb(v) => D::Jsonb(v),
            PgValue::ArrayInt32(v) => D::ArrayInt32(v),
            PgValue::ArrayInt64(v) => D::ArrayInt64(v),
            PgValue::ArrayStr(v) => D::ArrayStr(v),
            PgValue::Unsupported => D::Unsupported(Vec::new()),
        })
    }
}

impl v2::Host for GuestState {}
impl v3::Host for GuestState {}
impl v4::Host for GuestState {}

mod v2_impl {
    use super::spin2::{data_type, db_value, param};
    use super::*;
    use rdbms::Column;
    common!(v2, Column, rdbms::Error, |m| m);
}

mod v3_impl {
    use super::spin3::{data_type, db_value, param};
    use super::*;
    use v3::Column;
    common!(v3, Column, v3::Error, |m| m);
}

mod v4_impl {
    use super::spin4::{data_type, db_value, param};
    use super::*;
    use v4::Column;
    common!(v4, Column, v4::Error, v4::QueryError::Text);
}
