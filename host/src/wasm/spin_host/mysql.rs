//! `fermyon:spin/mysql@2.0.0` and `spin:mysql/mysql@3.0.0` (Spin SDK 7,
//! WASIp3) over [`crate::services::mysql`]: allowed only by
//! `allowed_outbound_hosts` (`mysql://host[:port]`, default 3306; Spin's
//! error text when not), a connection from the app's pool for the address
//! per `open`.

use std::sync::Arc;

use wasmtime::component::{Accessor, FutureReader, HasSelf, Linker, Resource, StreamReader};

use super::bindings::fermyon::spin::{mysql as v2, rdbms_types};
use crate::services::mysql::{self as my, MyConnection, MyError, MyPool, MyRows, MyType, MyValue};
use crate::wasm::state::GuestState;

/// A guest's open connection.
pub struct MysqlConnection {
    conn: MyConnection,
}

mod generated_v3 {
    wasmtime::component::bindgen!({
        inline: "
            package spin:mysql@3.0.0;

            interface mysql {
                variant error {
                    connection-failed(string),
                    bad-parameter(string),
                    query-failed(string),
                    value-conversion-failed(string),
                    other(string)
                }

                enum db-data-type {
                    boolean, int8, int16, int32, int64, uint8, uint16, uint32, uint64,
                    floating32, floating64, str, binary, other,
                }

                variant db-value {
                    boolean(bool), int8(s8), int16(s16), int32(s32), int64(s64),
                    uint8(u8), uint16(u16), uint32(u32), uint64(u64),
                    floating32(f32), floating64(f64), str(string), binary(list<u8>),
                    db-null, unsupported,
                }

                variant parameter-value {
                    boolean(bool), int8(s8), int16(s16), int32(s32), int64(s64),
                    uint8(u8), uint16(u16), uint32(u32), uint64(u64),
                    floating32(f32), floating64(f64), str(string), binary(list<u8>),
                    db-null,
                }

                record column {
                    name: string,
                    data-type: db-data-type,
                }

                type row = list<db-value>;

                resource connection {
                    open: static async func(address: string) -> result<connection, error>;
                    query: async func(statement: string, params: list<parameter-value>) -> result<tuple<list<column>, stream<row>, future<result<_, error>>>, error>;
                    execute: async func(statement: string, params: list<parameter-value>) -> result<_, error>;
                }
            }

            world host {
                import mysql;
            }
        ",
        world: "spin:mysql/host",
        imports: { default: trappable },
        with: {
            "spin:mysql/mysql.connection": super::MysqlConnection,
        },
    });
}

use generated_v3::spin::mysql::mysql as v3;

/// Adds `spin:mysql/mysql@3.0.0` to `linker`, whose engine supports
/// concurrency (WASIp3 components only).
pub fn add_v3_to_linker(linker: &mut Linker<GuestState>) -> anyhow::Result<()> {
    v3::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    Ok(())
}

impl GuestState {
    /// The app's pool for `address`, if `allowed_outbound_hosts` lets the
    /// component connect there (Spin's error text if not). Connecting is
    /// left to the caller, outside any borrow of the instance's state.
    fn mysql_allowed(&self, address: &str) -> Result<Arc<MyPool>, MyError> {
        if !self.outbound_allows_address(address) {
            tracing::info!(
                "MySQL connection denied: not in the component's allowed outbound hosts"
            );
            // Spin's text, address and all.
            return Err(MyError::ConnectionFailed(format!(
                "address {address} is not permitted"
            )));
        }
        Ok(Arc::clone(self.mysql_pool()))
    }

    fn mysql_conn(&self, conn: &Resource<MysqlConnection>) -> Result<MyConnection, MyError> {
        self.table()
            .get(conn)
            .map(|c| c.conn.clone())
            .map_err(|e| MyError::ConnectionFailed(e.to_string()))
    }

    fn mysql_push(&mut self, conn: MyConnection) -> Result<Resource<MysqlConnection>, MyError> {
        self.table_mut()
            .push(MysqlConnection { conn })
            .map_err(|_| MyError::ConnectionFailed("too many connections".into()))
    }
}

/// The conversions both versions share in shape: errors, parameters,
/// values and column types.
macro_rules! conversions {
    ($E:path, $P:path, $D:path, $T:path) => {
        use $D as D;
        use $E as E;
        use $P as P;
        use $T as T;

        impl From<MyError> for E {
            fn from(e: MyError) -> Self {
                match e {
                    MyError::ConnectionFailed(m) => E::ConnectionFailed(m),
                    MyError::BadParameter(m) => E::BadParameter(m),
                    MyError::QueryFailed(m) => E::QueryFailed(m),
                    MyError::ValueConversionFailed(m) => E::ValueConversionFailed(m),
                    MyError::Other(m) => E::Other(m),
                }
            }
        }

        pub(super) fn param(p: P) -> MyValue {
            match p {
                P::Boolean(v) => MyValue::Bool(v),
                P::Int8(v) => MyValue::Int8(v),
                P::Int16(v) => MyValue::Int16(v),
                P::Int32(v) => MyValue::Int32(v),
                P::Int64(v) => MyValue::Int64(v),
                P::Uint8(v) => MyValue::Uint8(v),
                P::Uint16(v) => MyValue::Uint16(v),
                P::Uint32(v) => MyValue::Uint32(v),
                P::Uint64(v) => MyValue::Uint64(v),
                P::Floating32(v) => MyValue::Float32(v),
                P::Floating64(v) => MyValue::Float64(v),
                P::Str(v) => MyValue::Str(v),
                P::Binary(v) => MyValue::Binary(v),
                P::DbNull => MyValue::Null,
            }
        }

        pub(super) fn value(v: MyValue) -> D {
            match v {
                MyValue::Null => D::DbNull,
                MyValue::Bool(v) => D::Boolean(v),
                MyValue::Int8(v) => D::Int8(v),
                MyValue::Int16(v) => D::Int16(v),
                MyValue::Int32(v) => D::Int32(v),
                MyValue::Int64(v) => D::Int64(v),
                MyValue::Uint8(v) => D::Uint8(v),
                MyValue::Uint16(v) => D::Uint16(v),
                MyValue::Uint32(v) => D::Uint32(v),
                MyValue::Uint64(v) => D::Uint64(v),
                MyValue::Float32(v) => D::Floating32(v),
                MyValue::Float64(v) => D::Floating64(v),
                MyValue::Str(v) => D::Str(v),
                MyValue::Binary(v) => D::Binary(v),
            }
        }

        pub(super) fn data_type(t: MyType) -> T {
            match t {
                MyType::Boolean => T::Boolean,
                MyType::Int8 => T::Int8,
                MyType::Int16 => T::Int16,
                MyType::Int32 => T::Int32,
                MyType::Int64 => T::Int64,
                MyType::Uint8 => T::Uint8,
                MyType::Uint16 => T::Uint16,
                MyType::Uint32 => T::Uint32,
                MyType::Uint64 => T::Uint64,
                MyType::Floating32 => T::Floating32,
                MyType::Floating64 => T::Floating64,
                MyType::Str => T::Str,
                MyType::Binary => T::Binary,
                MyType::Other => T::Other,
            }
        }

        pub(super) fn params(ps: Vec<P>) -> Vec<MyValue> {
            ps.into_iter().map(param).collect()
        }
    };
}

mod spin2 {
    use super::*;
    conversions!(
        rdbms_types::Error,
        rdbms_types::ParameterValue,
        rdbms_types::DbValue,
        rdbms_types::DbDataType
    );

    pub(super) fn row_set(rows: MyRows) -> rdbms_types::RowSet {
        rdbms_types::RowSet {
            columns: rows
                .columns
                .into_iter()
                .map(|(name, t)| rdbms_types::Column {
                    name,
                    data_type: data_type(t),
                })
                .collect(),
            rows: rows
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(value).collect())
                .collect(),
        }
    }
}

mod spin3 {
    use super::*;
    conversions!(v3::Error, v3::ParameterValue, v3::DbValue, v3::DbDataType);
}

impl rdbms_types::Host for GuestState {}
impl v2::Host for GuestState {}

impl v2::HostConnection for GuestState {
    async fn open(
        &mut self,
        address: String,
    ) -> Result<Resource<MysqlConnection>, rdbms_types::Error> {
        let pool = self.mysql_allowed(&address)?;
        let conn = pool.connect(&address).await?;
        Ok(self.mysql_push(conn)?)
    }

    async fn query(
        &mut self,
        conn: Resource<MysqlConnection>,
        statement: String,
        params: Vec<rdbms_types::ParameterValue>,
    ) -> Result<rdbms_types::RowSet, rdbms_types::Error> {
        let conn = self.mysql_conn(&conn)?;
        let rows = my::query(&conn, &statement, spin2::params(params)).await?;
        Ok(spin2::row_set(rows))
    }

    async fn execute(
        &mut self,
        conn: Resource<MysqlConnection>,
        statement: String,
        params: Vec<rdbms_types::ParameterValue>,
    ) -> Result<(), rdbms_types::Error> {
        let conn = self.mysql_conn(&conn)?;
        Ok(my::execute(&conn, &statement, spin2::params(params)).await?)
    }

    async fn drop(&mut self, conn: Resource<MysqlConnection>) -> wasmtime::Result<()> {
        self.table_mut().delete(conn)?;
        Ok(())
    }
}

impl v3::Host for GuestState {}

impl v3::HostConnection for GuestState {
    fn drop(&mut self, conn: Resource<MysqlConnection>) -> wasmtime::Result<()> {
        self.table_mut().delete(conn)?;
        Ok(())
    }
}

/// What `query` answers: the columns, a stream of rows and the future
/// that says whether every row came.
type QueryResult = (
    Vec<v3::Column>,
    StreamReader<Vec<v3::DbValue>>,
    FutureReader<Result<(), v3::Error>>,
);

// The connection is taken out of the instance's state inside `with`, and
// the call awaited outside it, so nothing is held across an await.
fn v3_conn<T>(
    accessor: &Accessor<T, HasSelf<GuestState>>,
    conn: &Resource<MysqlConnection>,
) -> Result<MyConnection, v3::Error> {
    Ok(accessor.with(|mut access| access.get().mysql_conn(conn))?)
}

impl<T> v3::HostConnectionWithStore<T> for HasSelf<GuestState> {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<MysqlConnection>, v3::Error>> {
        // Connecting needs no instance state: the pool is taken inside
        // `with`, the connection made outside it.
        let checked = accessor.with(|mut access| access.get().mysql_allowed(&address));
        let opened = match checked {
            Ok(pool) => pool.connect(&address).await,
            Err(e) => Err(e),
        };
        Ok(match opened {
            Ok(conn) => accessor
                .with(|mut access| access.get().mysql_push(conn))
                .map_err(v3::Error::from),
            Err(e) => Err(e.into()),
        })
    }

    async fn query(
        accessor: &Accessor<T, Self>,
        conn: Resource<MysqlConnection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> wasmtime::Result<Result<QueryResult, v3::Error>> {
        let conn = match v3_conn(accessor, &conn) {
            Ok(conn) => conn,
            Err(e) => return Ok(Err(e)),
        };
        let rows = match my::query(&conn, &statement, spin3::params(params)).await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(e.into())),
        };
        let columns = rows
            .columns
            .into_iter()
            .map(|(name, t)| v3::Column {
                name,
                data_type: spin3::data_type(t),
            })
            .collect();
        let rows: Vec<Vec<v3::DbValue>> = rows
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(spin3::value).collect())
            .collect();
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, rows)?;
            let done = FutureReader::new(&mut access, async {
                Ok::<_, wasmtime::Error>(Ok::<(), v3::Error>(()))
            })?;
            Ok(Ok((columns, rows, done)))
        })
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        conn: Resource<MysqlConnection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> wasmtime::Result<Result<(), v3::Error>> {
        let conn = match v3_conn(accessor, &conn) {
            Ok(conn) => conn,
            Err(e) => return Ok(Err(e)),
        };
        Ok(my::execute(&conn, &statement, spin3::params(params))
            .await
            .map_err(v3::Error::from))
    }
}
