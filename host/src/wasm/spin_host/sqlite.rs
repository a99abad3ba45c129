//! `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.0.0` (the same
//! interface plus `last-insert-rowid` and `changes`) over the app's SQLite
//! databases ([`crate::services::sqlite`]).
//!
//! Every call that touches the database runs on tokio's blocking pool:
//! the guest waits (its fiber is suspended), the thread that serves other
//! requests does not.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::bindings::fermyon::spin::sqlite as v2;
use super::bindings::spin::sqlite::sqlite as v3;
use crate::services::sqlite::{self, Database, QueryResult, SqlError, Value};
use crate::wasm::state::GuestState;

/// A guest's open connection: one SQLite connection of its own, so
/// `last-insert-rowid` and `changes` answer for its statements only.
pub struct SqliteConnection {
    db: Arc<Database>,
    /// `None` while a statement runs on the blocking pool.
    conn: Option<rusqlite::Connection>,
    last_insert_rowid: i64,
    changes: u64,
}

impl Drop for SqliteConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.db.give_back(conn);
        }
    }
}

/// A blocking-pool task that died (a panic in SQLite's wrapper): the host's
/// fault, reported to the guest as an I/O error rather than a trap.
fn joined<T>(result: Result<Result<T, SqlError>, tokio::task::JoinError>) -> Result<T, SqlError> {
    result.unwrap_or_else(|e| Err(SqlError::Io(format!("database task failed: {e}"))))
}

impl GuestState {
    async fn sqlite_open(&mut self, label: String) -> Result<Resource<SqliteConnection>, SqlError> {
        let db = self
            .sqlite()
            .ok_or(SqlError::AccessDenied)?
            .database(&label)?
            .clone();
        let opened = db.clone();
        let conn = joined(tokio::task::spawn_blocking(move || opened.connection()).await)?;
        self.table_mut()
            .push(SqliteConnection {
                db,
                conn: Some(conn),
                last_insert_rowid: 0,
                changes: 0,
            })
            .map_err(|e| SqlError::Io(e.to_string()))
    }

    async fn sqlite_execute(
        &mut self,
        handle: &Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, SqlError> {
        let invalid = || SqlError::Io("invalid connection".into());
        let conn = self
            .table_mut()
            .get_mut(handle)
            .map_err(|_| invalid())?
            .conn
            .take()
            .ok_or_else(invalid)?;
        let (conn, result, rowid, changes) = tokio::task::spawn_blocking(move || {
            let result = sqlite::execute(&conn, &statement, parameters);
            let (rowid, changes) = (conn.last_insert_rowid(), conn.changes());
            (conn, result, rowid, changes)
        })
        .await
        .map_err(|e| SqlError::Io(format!("database task failed: {e}")))?;
        let entry = self.table_mut().get_mut(handle).map_err(|_| invalid())?;
        entry.conn = Some(conn);
        if result.is_ok() {
            entry.last_insert_rowid = rowid;
            entry.changes = changes;
        }
        result
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

impl v3::HostConnection for GuestState {
    async fn open(&mut self, database: String) -> Result<Resource<SqliteConnection>, v3::Error> {
        Ok(self.sqlite_open(database).await?)
    }

    async fn execute(
        &mut self,
        conn: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> Result<v3::QueryResult, v3::Error> {
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
