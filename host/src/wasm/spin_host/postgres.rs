//! `fermyon:spin/postgres@2.0.0`, `spin:postgres/postgres@3.0.0`, `@4.1.0`
//! (4.0.0 plus the connection builder; 4.0.0 components link to it) and
//! `@4.2.0` (4.1.0 plus `async` twins, rows as a stream: WASIp3
//! components) over [`crate::services::postgres`]: allowed only by
//! `allowed_outbound_hosts` (`postgres://host[:port]`, default 5432; Spin's
//! error text when not), one client per address (and TLS configuration)
//! per app; TLS by the address's `sslmode`, with the component's
//! `[[client_tls]]` for the host and 4.x's `set-ca-root`.

use std::sync::Arc;

use tokio_postgres::Client;
use wasmtime::component::{Accessor, FutureReader, HasSelf, Resource, StreamReader};

use super::bindings::fermyon::spin::{postgres as v2, rdbms_types as rdbms};
use super::bindings::spin::postgres3_0_0::postgres as v3;
use super::bindings::spin::postgres4_1_0::postgres as v4;
use super::bindings_p3::spin::postgres::postgres as v42;
use crate::services::client_tls::ComponentTls;
use crate::services::postgres::{self as pg, CaRoot, PgError, PgPool, PgRows, PgType, PgValue};
use crate::services::postgres_types::{Bound, BoundKind, Interval};
use crate::wasm::state::GuestState;

/// A guest's open connection: the app's client for its address.
pub struct PgConnection {
    client: Arc<Client>,
}

/// 4.1.0's `connection-builder`: the address and the CA root to trust
/// besides the component's, until `build`.
pub struct PgConnectionBuilder {
    address: String,
    ca_root: Option<CaRoot>,
}

/// What connecting needs, taken from the instance's state: the app's
/// clients and the component's TLS configurations.
type PgTarget = (Arc<PgPool>, ComponentTls);

impl GuestState {
    /// The app's clients, if `allowed_outbound_hosts` lets the component
    /// reach every host `address` names (Spin's error text if not).
    /// Connecting is left to the caller, outside any borrow of the state.
    fn pg_allowed(&self, address: &str) -> Result<PgTarget, PgError> {
        for (host, port) in pg::endpoints(address)? {
            if !self.outbound_allows_address(&format!("postgres://{host}:{port}")) {
                tracing::info!(
                    "PostgreSQL connection to `{host}:{port}` denied: not in the component's allowed outbound hosts"
                );
                return Err(PgError::ConnectionFailed(format!(
                    "address postgres://{host}:{port} is not permitted"
                )));
            }
        }
        Ok((Arc::clone(self.postgres_pool()), self.client_tls().clone()))
    }

    fn pg_push(&mut self, client: Arc<Client>) -> Result<Resource<PgConnection>, PgError> {
        self.table_mut()
            .push(PgConnection { client })
            .map_err(|e| PgError::ConnectionFailed(e.to_string()))
    }

    async fn pg_open(
        &mut self,
        address: String,
        ca_root: Option<CaRoot>,
    ) -> Result<Resource<PgConnection>, PgError> {
        let (pool, tls) = self.pg_allowed(&address)?;
        let client = pool.client(&address, &tls, ca_root.as_ref()).await?;
        self.pg_push(client)
    }

    fn pg_builder(
        &self,
        builder: &Resource<PgConnectionBuilder>,
    ) -> Result<(String, Option<CaRoot>), PgError> {
        self.table()
            .get(builder)
            .map(|b| (b.address.clone(), b.ca_root.clone()))
            .map_err(|e| PgError::ConnectionFailed(e.to_string()))
    }

    fn pg_set_ca_root(
        &mut self,
        builder: &Resource<PgConnectionBuilder>,
        certificate: &str,
    ) -> Result<(), PgError> {
        let root = CaRoot::from_pem(certificate)?;
        self.table_mut()
            .get_mut(builder)
            .map(|b| b.ca_root = Some(root))
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

/// What every version shares in shape: its parameters and row sets, and
/// the resource's methods.
macro_rules! common {
    ($m:ident, $column:ident, $error:ty) => {
        fn to_pg_params(params: Vec<$m::ParameterValue>) -> Result<Vec<PgValue>, PgError> {
            params.into_iter().map(param).collect()
        }

        fn row_set(rows: PgRows) -> $m::RowSet {
            $m::RowSet {
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
            }
        }

        impl $m::HostConnection for GuestState {
            async fn open(&mut self, address: String) -> Result<Resource<PgConnection>, $error> {
                Ok(self.pg_open(address, None).await?)
            }

            async fn query(
                &mut self,
                conn: Resource<PgConnection>,
                statement: String,
                params: Vec<$m::ParameterValue>,
            ) -> Result<$m::RowSet, $error> {
                let params = to_pg_params(params)?;
                let rows = self.pg_query(&conn, statement, params).await?;
                Ok(row_set(rows))
            }

            async fn execute(
                &mut self,
                conn: Resource<PgConnection>,
                statement: String,
                params: Vec<$m::ParameterValue>,
            ) -> Result<u64, $error> {
                let params = to_pg_params(params)?;
                Ok(self.pg_execute(&conn, statement, params).await?)
            }

            async fn drop(&mut self, conn: Resource<PgConnection>) -> wasmtime::Result<()> {
                self.table_mut().delete(conn)?;
                Ok(())
            }
        }
    };
}

/// Spin's errors for a version whose `query-failed` carries
/// `$query_failed(text)`. (2.0.0's `rdbms-types` error is shared with
/// MySQL, whose file converts it.)
macro_rules! error_from {
    ($m:ident, $error:ty, $query_failed:expr) => {
        impl From<PgError> for $error {
            fn from(e: PgError) -> Self {
                use $m::Error as E;
                match e {
                    PgError::ConnectionFailed(m) => E::ConnectionFailed(m),
                    PgError::BadParameter(m) => E::BadParameter(m),
                    PgError::QueryFailed(m) => E::QueryFailed($query_failed(m)),
                    PgError::ValueConversionFailed(m) => E::ValueConversionFailed(m),
                    PgError::Other(m) => E::Other(m),
                }
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

/// 4.x's conversions (4.1.0 and 4.2.0 share every type's shape).
macro_rules! spin4 {
    ($name:ident, $v:ident) => {
mod $name {
    use super::*;
    use $v::{DbDataType as T, DbValue as D, ParameterValue as P};

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
            P::Decimal(v) => PgValue::Decimal(v),
            P::RangeInt32((lower, upper)) => PgValue::RangeInt32(bounds_in(lower), bounds_in(upper)),
            P::RangeInt64((lower, upper)) => PgValue::RangeInt64(bounds_in(lower), bounds_in(upper)),
            P::RangeDecimal((lower, upper)) => {
                PgValue::RangeDecimal(bounds_in(lower), bounds_in(upper))
            }
            P::ArrayDecimal(v) => PgValue::ArrayDecimal(v),
            P::Interval(v) => PgValue::Interval(Interval {
                micros: v.micros,
                days: v.days,
                months: v.months,
            }),
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
            PgType::Decimal => T::Decimal,
            PgType::RangeInt32 => T::RangeInt32,
            PgType::RangeInt64 => T::RangeInt64,
            PgType::RangeDecimal => T::RangeDecimal,
            PgType::ArrayDecimal => T::ArrayDecimal,
            PgType::Interval => T::Interval,
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
            PgValue::Decimal(v) => D::Decimal(v),
            PgValue::RangeInt32(lower, upper) => D::RangeInt32((bounds_out(lower), bounds_out(upper))),
            PgValue::RangeInt64(lower, upper) => D::RangeInt64((bounds_out(lower), bounds_out(upper))),
            PgValue::RangeDecimal(lower, upper) => {
                D::RangeDecimal((bounds_out(lower), bounds_out(upper)))
            }
            PgValue::ArrayDecimal(v) => D::ArrayDecimal(v),
            PgValue::Interval(v) => D::Interval($v::Interval {
                micros: v.micros,
                days: v.days,
                months: v.months,
            }),
            PgValue::Unsupported => D::Unsupported(Vec::new()),
        })
    }

    fn bounds_in<V>(bound: Option<(V, $v::RangeBoundKind)>) -> Bound<V> {
        bound.map(|(v, kind)| {
            (
                v,
                match kind {
                    $v::RangeBoundKind::Inclusive => BoundKind::Inclusive,
                    $v::RangeBoundKind::Exclusive => BoundKind::Exclusive,
                },
            )
        })
    }

    fn bounds_out<V>(bound: Bound<V>) -> Option<(V, $v::RangeBoundKind)> {
        bound.map(|(v, kind)| {
            (
                v,
                match kind {
                    BoundKind::Inclusive => $v::RangeBoundKind::Inclusive,
                    BoundKind::Exclusive => $v::RangeBoundKind::Exclusive,
                },
            )
        })
    }
}
    };
}

spin4!(spin41, v4);
spin4!(spin42, v42);

impl v2::Host for GuestState {}
impl v3::Host for GuestState {}
impl v4::Host for GuestState {}
impl v42::Host for GuestState {}

mod v2_impl {
    use super::spin2::{data_type, db_value, param};
    use super::*;
    use rdbms::Column;
    common!(v2, Column, rdbms::Error);
}

mod v3_impl {
    use super::spin3::{data_type, db_value, param};
    use super::*;
    use v3::Column;
    common!(v3, Column, v3::Error);
    error_from!(v3, v3::Error, |m| m);
}

/// 4.1.0's connection builder, which 4.2.0 keeps.
macro_rules! builder {
    ($m:ident) => {
        impl $m::HostConnectionBuilder for GuestState {
            async fn new(
                &mut self,
                address: String,
            ) -> wasmtime::Result<Resource<PgConnectionBuilder>> {
                Ok(self.table_mut().push(PgConnectionBuilder {
                    address,
                    ca_root: None,
                })?)
            }

            async fn set_ca_root(
                &mut self,
                builder: Resource<PgConnectionBuilder>,
                certificate: String,
            ) -> Result<(), $m::Error> {
                Ok(self.pg_set_ca_root(&builder, &certificate)?)
            }

            async fn build(
                &mut self,
                builder: Resource<PgConnectionBuilder>,
            ) -> Result<Resource<PgConnection>, $m::Error> {
                let (address, ca_root) = self.pg_builder(&builder)?;
                Ok(self.pg_open(address, ca_root).await?)
            }

            async fn drop(
                &mut self,
                builder: Resource<PgConnectionBuilder>,
            ) -> wasmtime::Result<()> {
                self.table_mut().delete(builder)?;
                Ok(())
            }
        }
    };
}

mod v4_impl {
    use super::spin41::{data_type, db_value, param};
    use super::*;
    use v4::Column;
    common!(v4, Column, v4::Error);
    error_from!(v4, v4::Error, v4::QueryError::Text);
    builder!(v4);
}

mod v42_impl {
    use super::spin42::{data_type, db_value, param};
    use super::*;
    use v42::Column;
    common!(v42, Column, v42::Error);
    error_from!(v42, v42::Error, v42::QueryError::Text);
    builder!(v42);

    /// What `query-async` answers: the columns, a stream of rows and the
    /// future that says whether every row came.
    type Streamed = (
        Vec<v42::Column>,
        StreamReader<Vec<v42::DbValue>>,
        FutureReader<Result<(), v42::Error>>,
    );

    /// Opens a connection in three steps, borrowing the instance's state
    /// only inside `with`: the check, the connect, the resource.
    async fn open<T>(
        accessor: &Accessor<T, HasSelf<GuestState>>,
        address: String,
        ca_root: Option<CaRoot>,
    ) -> Result<Resource<PgConnection>, v42::Error> {
        let (pool, tls) = accessor.with(|mut access| access.get().pg_allowed(&address))?;
        let client = pool.client(&address, &tls, ca_root.as_ref()).await?;
        Ok(accessor.with(|mut access| access.get().pg_push(client))?)
    }

    fn client<T>(
        accessor: &Accessor<T, HasSelf<GuestState>>,
        conn: &Resource<PgConnection>,
    ) -> Result<Arc<Client>, v42::Error> {
        Ok(accessor.with(|mut access| access.get().pg_client(conn))?)
    }

    impl<T> v42::HostConnectionWithStore<T> for HasSelf<GuestState> {
        async fn open_async(
            accessor: &Accessor<T, Self>,
            address: String,
        ) -> Result<Resource<PgConnection>, v42::Error> {
            open(accessor, address, None).await
        }

        async fn query_async(
            accessor: &Accessor<T, Self>,
            conn: Resource<PgConnection>,
            statement: String,
            params: Vec<v42::ParameterValue>,
        ) -> Result<Streamed, v42::Error> {
            let params = to_pg_params(params)?;
            let client = client(accessor, &conn)?;
            let rows = row_set(pg::query(&client, &statement, params).await?);
            accessor
                .with(|mut access| {
                    let stream = StreamReader::new(&mut access, rows.rows)?;
                    let done = FutureReader::new(&mut access, async {
                        Ok::<_, wasmtime::Error>(Ok::<(), v42::Error>(()))
                    })?;
                    Ok::<_, wasmtime::Error>((rows.columns, stream, done))
                })
                .map_err(|e| v42::Error::Other(e.to_string()))
        }

        async fn execute_async(
            accessor: &Accessor<T, Self>,
            conn: Resource<PgConnection>,
            statement: String,
            params: Vec<v42::ParameterValue>,
        ) -> Result<u64, v42::Error> {
            let params = to_pg_params(params)?;
            let client = client(accessor, &conn)?;
            Ok(pg::execute(&client, &statement, params).await?)
        }
    }

    impl<T> v42::HostConnectionBuilderWithStore<T> for HasSelf<GuestState> {
        async fn build_async(
            accessor: &Accessor<T, Self>,
            builder: Resource<PgConnectionBuilder>,
        ) -> Result<Resource<PgConnection>, v42::Error> {
            let (address, ca_root) = accessor.with(|mut access| access.get().pg_builder(&builder))?;
            open(accessor, address, ca_root).await
        }
    }
}
