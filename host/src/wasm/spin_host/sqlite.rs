//! `fermyon:spin/sqlite@2.0.0`, `spin:sqlite/sqlite@3.0.0` (the same
//! interface plus `last-insert-rowid` and `changes`) and `@3.1.0` (3.0.0
//! plus an `async` twin of every function, rows as a stream: WASIp3
//! components) over the app's SQLite databases
//! ([`crate::services::sqlite`]).
//!
//! Every call that touches the database runs on tokio's blocking pool:
//! the guest waits (its fiber or its task is suspended), the thread that
//! serves other requests does not.

use std::sync::{Arc, Mutex};

use wasmtime::component::{Accessor, FutureReader, HasSelf, Resource, StreamReader};

use super::bindings::fermyon::spin::sqlite as v2;
use super::bindings::spin::sqlite::sqlite as v3;
use super::bindings_p3::spin::sqlite::sqlite as v31;
use crate::services::sqlite::{self, Database, QueryResult, SqlError, Value};
use crate::wasm::state::GuestState;

/// A guest's open connection: one SQLite connection of its own, so
/// `last-insert-rowid` and `changes` answer for its statements only.
pub struct SqliteConnection {
    db: Arc<Database>,
    /// Shared with the statements running on the blocking pool; a WASIp3
    /// guest may run several at once on one connection, and they take
    /// turns on the lock (a SQLite connection runs one at a time), as in
    /// Spin. `None` only once dropped.
    conn: Option<Shared>,
    last_insert_rowid: i64,
    changes: u64,
}

type Shared = Arc<Mutex<rusqlite::Connection>>;

impl Drop for SqliteConnection {
    /// Back to the database's idle connections, unless a statement still
    /// holds it (the guest dropped the handle mid-statement): then it
    /// closes when that statement ends.
    fn drop(&mut self) {
        let idle = self
            .conn
            .take()
            .and_then(|conn| Arc::try_unwrap(conn).ok())
            .and_then(|conn| conn.into_inner().ok());
        if let Some(conn) = idle {
            self.db.give_back(conn);
        }
    }
}

/// A blocking-pool task that died (a panic in SQLite's wrapper): the host's
/// fault, reported to the guest as an I/O error rather than a trap.
fn joined<T>(result: Result<Result<T, SqlError>, tokio::task::JoinError>) -> Result<T, SqlError> {
    result.unwrap_or_else(|e| Err(SqlError::Io(format!("database task failed: {e}"))))
}

/// A statement's run on the blocking pool: the result and the
/// connection's counters after it.
type Ran = (Result<QueryResult, SqlError>, i64, u64);

/// Opens a connection to `db` on the blocking pool.
async fn connect(db: Arc<Database>) -> Result<rusqlite::Connection, SqlError> {
    joined(tokio::task::spawn_blocking(move || db.connection()).await)
}

/// Runs one statement on the blocking pool, once the connection's
/// earlier statements are done.
async fn run(conn: Shared, statement: String, parameters: Vec<Value>) -> Result<Ran, SqlError> {
    joined(
        tokio::task::spawn_blocking(move || {
            // Poisoned: a statement panicked inside SQLite's wrapper; the
            // connection itself is still whole.
            let conn = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let result = sqlite::execute(&conn, &statement, parameters);
            Ok((result, conn.last_insert_rowid(), conn.changes()))
        })
        .await,
    )
}

fn invalid() -> SqlError {
    SqlError::Io("invalid connection".into())
}

/// Every version's calls in three steps, so that no borrow of the
/// instance's state is held while the database works: what the guest may
/// open or which connection it named (`sqlite_database`, `sqlite_connection`),
/// the work (`connect`, `run`), and the result kept (`sqlite_push`,
/// `sqlite_record`).
impl GuestState {
    fn sqlite_database(&self, label: &str) -> Result<Arc<Database>, SqlError> {
        Ok(self
            .sqlite()
            .ok_or(SqlError::AccessDenied)?
            .database(label)?
            .clone())
    }

    fn sqlite_push(
        &mut self,
        db: Arc<Database>,
        conn: rusqlite::Connection,
    ) -> Result<Resource<SqliteConnection>, SqlError> {
        self.table_mut()
            .push(SqliteConnection {
                db,
                conn: Some(Arc::new(Mutex::new(conn))),
                last_insert_rowid: 0,
                changes: 0,
            })
            .map_err(|e| SqlError::Io(e.to_string()))
    }

    async fn sqlite_open(&mut self, label: String) -> Result<Resource<SqliteConnection>, SqlError> {
        let db = self.sqlite_database(&label)?;
        let conn = connect(db.clone()).await?;
        self.sqlite_push(db, conn)
    }

    /// The connection `handle` names, for a statement to run on.
    fn sqlite_connection(&self, handle: &Resource<SqliteConnection>) -> Result<Shared, SqlError> {
        self.table()
            .get(handle)
            .map_err(|_| invalid())?
            .conn
            .clone()
            .ok_or_else(invalid)
    }

    /// Keeps a statement's counters (if the guest still holds the handle)
    /// and answers its result.
    fn sqlite_record(
        &mut self,
        handle: &Resource<SqliteConnection>,
        (result, rowid, changes): Ran,
    ) -> Result<QueryResult, SqlError> {
        if let (Ok(entry), Ok(_)) = (self.table_mut().get_mut(handle), &result) {
            entry.last_insert_rowid = rowid;
            entry.changes = changes;
        }
        result
    }

    async fn sqlite_execute(
        &mut self,
        handle: &Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, SqlError> {
        let conn = self.sqlite_connection(handle)?;
        let ran = run(conn, statement, parameters).await?;
        self.sqlite_record(handle, ran)
    }

    fn sqlite_counters(&self, handle: &Resource<SqliteConnection>) -> (i64, u64) {
        self.table()
            .get(handle)
            .map_or((0, 0), |c| (c.last_insert_rowid, c.changes))
    }
}

/// The two interface versions share every type's shape, not its Rust type:
/// one set of conversions per generated module.
macro_rules! conversions {
    ($m:ident) => {
        impl From<SqlError> for $m::Error {
            fn from(e: SqlError) -> Self {
                match e {
                    SqlError::AccessDenied => $m::Error::AccessDenied,
                    SqlError::NoSuchDatabase => $m::Error::NoSuchDatabase,
                    SqlError::Io(why) => $m::Error::Io(why),
                }
            }
        }

        impl From<$m::Value> for Value {
            fn from(v: $m::Value) -> Self {
                match v {
                    $m::Value::Integer(i) => Value::Integer(i),
                    $m::Value::Real(r) => Value::Real(r),
                    $m::Value::Text(t) => Value::Text(t),
                    $m::Value::Blob(b) => Value::Blob(b),
                    $m::Value::Null => Value::Null,
                }
            }
        }

        impl From<Value> for $m::Value {
            fn from(v: Value) -> Self {
                match v {
                    Value::Integer(i) => $m::Value::Integer(i),
                    Value::Real(r) => $m::Value::Real(r),
                    Value::Text(t) => $m::Value::Text(t),
                    Value::Blob(b) => $m::Value::Blob(b),
                    Value::Null => $m::Value::Null,
                }
            }
        }

        impl From<QueryResult> for $m::QueryResult {
            fn from(r: QueryResult) -> Self {
                $m::QueryResult {
                    columns: r.columns,
                    rows: r
                        .rows
                        .into_iter()
                        .map(|row| $m::RowResult {
                            values: row.into_iter().map(Into::into).collect(),
                        })
                        .collect(),
                }
            }
        }

        impl $m::Host for GuestState {}
    };
}

conversions!(v2);
conversions!(v3);
conversions!(v31);

impl v2::HostConnection for GuestState {
    async fn open(&mut self, database: String) -> Result<Resource<SqliteConnection>, v2::Error> {
        Ok(self.sqlite_open(database).await?)
    }

    async fn execute(
        &mut self,
        conn: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> Result<v2::QueryResult, v2::Error> {
        let parameters = parameters.into_iter().map(Into::into).collect();
        Ok(self
            .sqlite_execute(&conn, statement, parameters)
            .await?
            .into())
    }

    async fn drop(&mut self, conn: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        self.table_mut().delete(conn)?;
        Ok(())
    }
}

/// 3.0.0's functions, which 3.1.0 keeps unchanged beside its `async` ones.
macro_rules! connection_v3 {
    ($m:ident) => {
        impl $m::HostConnection for GuestState {
            async fn open(
                &mut self,
                database: String,
            ) -> Result<Resource<SqliteConnection>, $m::Error> {
                Ok(self.sqlite_open(database).await?)
            }

            async fn execute(
                &mut self,
                conn: Resource<SqliteConnection>,
                statement: String,
                parameters: Vec<$m::Value>,
            ) -> Result<$m::QueryResult, $m::Error> {
                let parameters = parameters.into_iter().map(Into::into).collect();
                Ok(self
                    .sqlite_execute(&conn, statement, parameters)
                    .await?
                    .into())
            }

            async fn last_insert_rowid(&mut self, conn: Resource<SqliteConnection>) -> i64 {
                self.sqlite_counters(&conn).0
            }

            async fn changes(&mut self, conn: Resource<SqliteConnection>) -> u64 {
                self.sqlite_counters(&conn).1
            }

            async fn drop(&mut self, conn: Resource<SqliteConnection>) -> wasmtime::Result<()> {
                self.table_mut().delete(conn)?;
                Ok(())
            }
        }
    };
}

connection_v3!(v3);
connection_v3!(v31);

/// What 3.1.0's `execute-async` answers: the columns, a stream of rows and
/// the future that says whether every row came.
type Streamed = (
    Vec<String>,
    StreamReader<v31::RowResult>,
    FutureReader<Result<(), v31::Error>>,
);

// 3.1.0's `async` functions: the same steps as the others, each borrow of
// the instance's state inside `with`, the database's work outside it.
impl<T> v31::HostConnectionWithStore<T> for HasSelf<GuestState> {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        database: String,
    ) -> Result<Resource<SqliteConnection>, v31::Error> {
        let db = accessor.with(|mut access| access.get().sqlite_database(&database))?;
        let conn = connect(db.clone()).await?;
        Ok(accessor.with(|mut access| access.get().sqlite_push(db, conn))?)
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<v31::Value>,
    ) -> Result<Streamed, v31::Error> {
        let parameters = parameters.into_iter().map(Into::into).collect();
        let shared = accessor.with(|mut access| access.get().sqlite_connection(&conn))?;
        let ran = run(shared, statement, parameters).await?;
        let result = accessor.with(|mut access| access.get().sqlite_record(&conn, ran))?;
        let result = v31::QueryResult::from(result);
        accessor
            .with(|mut access| {
                let rows = StreamReader::new(&mut access, result.rows)?;
                let done = FutureReader::new(&mut access, async {
                    Ok::<_, wasmtime::Error>(Ok::<(), v31::Error>(()))
                })?;
                Ok::<_, wasmtime::Error>((result.columns, rows, done))
            })
            .map_err(|e| v31::Error::Io(e.to_string()))
    }

    async fn last_insert_rowid_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<SqliteConnection>,
    ) -> i64 {
        accessor.with(|mut access| access.get().sqlite_counters(&conn).0)
    }

    async fn changes_async(accessor: &Accessor<T, Self>, conn: Resource<SqliteConnection>) -> u64 {
        accessor.with(|mut access| access.get().sqlite_counters(&conn).1)
    }
}
