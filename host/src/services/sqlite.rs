//! Spin's SQLite databases, embedded (rusqlite with SQLite bundled): the
//! `default` database in the app's state directory (`sqlite_db.db`, as
//! Spin names it), others defined in the runtime config
//! (`[sqlite_database.<label>] type = "spin"`, optional `path`).
//!
//! A component opens only the databases its `sqlite_databases` names
//! (others: `access-denied`). Every connection runs in WAL mode with
//! `synchronous = FULL`, so a statement the guest saw succeed is on disk
//! before the guest hears so: it survives a SIGKILL of the host (and a
//! power cut). Writers from concurrent requests wait for each other
//! ([`BUSY_TIMEOUT`]) instead of failing with `database is locked`.
//!
//! The calls here block (disk I/O, lock waits); the host interfaces run
//! them on tokio's blocking pool so the threads serving requests never
//! wait on a database.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use rusqlite::types::{Value as SqlValue, ValueRef};

/// The database every app has without configuration.
pub const DEFAULT_DATABASE: &str = "default";

/// The `default` database's file in the app's state directory (Spin's name).
pub const DEFAULT_FILE: &str = "sqlite_db.db";

/// How long a statement waits for another connection's write lock before
/// failing with `database is locked`: long enough for any burst of short
/// transactions from concurrent requests, well inside the default 30 s
/// request deadline.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections kept open per database between requests; more are opened
/// under load and closed when given back to a full pool.
const MAX_IDLE_CONNECTIONS: usize = 16;

/// The most a query result may hold (Spin caps results the same way, so a
/// `SELECT *` on a large table fails cleanly instead of exhausting the
/// host's memory).
pub const MAX_RESULT_BYTES: usize = 32 << 20;

/// A database value, as both versions of Spin's interface carry it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `integer(s64)`.
    Integer(i64),
    /// `real(f64)`.
    Real(f64),
    /// `text(string)`.
    Text(String),
    /// `blob(list<u8>)`.
    Blob(Vec<u8>),
    /// `null`.
    Null,
}

/// The result of one statement.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryResult {
    /// Column names (empty for statements that return no rows).
    pub columns: Vec<String>,
    /// Every row's values, in column order.
    pub rows: Vec<Vec<Value>>,
}

/// Why a database call failed, in Spin's terms.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The database is not one the component may open.
    #[error("access denied")]
    AccessDenied,
    /// No database has that label.
    #[error("no such database")]
    NoSuchDatabase,
    /// SQLite failed (syntax, constraint, I/O, a result too large).
    #[error("{0}")]
    Io(String),
}

fn io(e: impl std::fmt::Display) -> SqlError {
    SqlError::Io(e.to_string())
}

/// One database file and its idle connections.
pub struct Database {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .finish()
    }
}

impl Database {
    /// Opens (or creates) the database file `path`, its directory included,
    /// and checks it can be used, so a bad path stops the start.
    pub fn open(path: &Path) -> Result<Arc<Self>> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create the directory `{}`", parent.display()))?;
        }
        let db = Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        };
        let first = db
            .connect()
            .with_context(|| format!("cannot open the SQLite database `{}`", path.display()))?;
        db.give_back(first);
        Ok(Arc::new(db))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connect(&self) -> Result<rusqlite::Connection, SqlError> {
        let conn = rusqlite::Connection::open(&self.path).map_err(io)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(io)?;
        // WAL: readers never wait for the writer; FULL: the WAL is synced
        // at every commit, so a committed statement survives a crash.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(io)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(io)?;
        // A guest may not reach other files through ATTACH (as in Spin);
        // in-memory and temporary databases are fine.
        conn.authorizer(Some(|ctx: rusqlite::hooks::AuthContext<'_>| {
            use rusqlite::hooks::{AuthAction, Authorization};
            match ctx.action {
                AuthAction::Attach { filename } if !matches!(filename, "" | ":memory:") => {
                    Authorization::Deny
                }
                _ => Authorization::Allow,
            }
        }));
        Ok(conn)
    }

    /// A connection for one guest connection: an idle one, else a new one.
    /// Blocks (opening a file).
    pub fn connection(&self) -> Result<rusqlite::Connection, SqlError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    /// Returns a connection for reuse (closed if the pool is full).
    pub fn give_back(&self, conn: rusqlite::Connection) {
        if conn.is_autocommit() {
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < MAX_IDLE_CONNECTIONS {
                    idle.push(conn);
                }
            }
        }
        // A connection left inside a transaction the guest began is
        // dropped, which rolls that transaction back.
    }

    /// Runs `sql` (any number of statements) as `spin up --sqlite` does.
    pub fn execute_batch(&self, sql: &str) -> Result<(), SqlError> {
        let conn = self.connection()?;
        conn.execute_batch(sql).map_err(io)?;
        self.give_back(conn);
        Ok(())
    }
}

/// Runs one statement with its parameters on `conn`, collecting the rows
/// it returns (none for most writes).
pub fn execute(
    conn: &rusqlite::Connection,
    statement: &str,
    parameters: Vec<Value>,
) -> Result<QueryResult, SqlError> {
    let mut stmt = conn.prepare_cached(statement).map_err(io)?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let params = parameters.into_iter().map(|v| match v {
        Value::Integer(i) => SqlValue::Integer(i),
        Value::Real(r) => SqlValue::Real(r),
        Value::Text(t) => SqlValue::Text(t),
        Value::Blob(b) => SqlValue::Blob(b),
        Value::Null => SqlValue::Null,
    });
    let mut rows = stmt.query(rusqlite::params_from_iter(params)).map_err(io)?;
    let mut result = QueryResult {
        columns,
        rows: Vec::new(),
    };
    let mut bytes = 0usize;
    while let Some(row) = rows.next().map_err(io)? {
        let mut values = Vec::with_capacity(result.columns.len());
        for i in 0..result.columns.len() {
            let value = match row.get_ref(i).map_err(io)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Integer(i),
                ValueRef::Real(r) => Value::Real(r),
                // SQLite does not check that text is UTF-8; the WIT string
                // must be.
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            };
            bytes += size_of(&value);
            values.push(value);
        }
        if bytes > MAX_RESULT_BYTES {
            return Err(SqlError::Io(format!(
                "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
            )));
        }
        result.rows.push(values);
    }
    Ok(result)
}

fn size_of(value: &Value) -> usize {
    std::mem::size_of::<Value>()
        + match value {
            Value::Text(t) => t.len(),
            Value::Blob(b) => b.len(),
            _ => 0,
        }
}

/// The databases one component may open, and the database behind each.
#[derive(Clone, Debug)]
pub struct SqliteAccess {
    /// Every database the component may open, by label.
    pub databases: Arc<std::collections::BTreeMap<String, Arc<Database>>>,
}

impl SqliteAccess {
    /// The database behind `label`, if the component may open it.
    pub fn database(&self, label: &str) -> Result<&Arc<Database>, SqlError> {
        self.databases.get(label).ok_or(SqlError::AccessDenied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_type_round_trips_through_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("t.db")).unwrap();
        db.execute_batch("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)")
            .unwrap();
        let conn = db.connection().unwrap();
        let row = vec![
            Value::Integer(-7),
            Value::Real(2.5),
            Value::Text("héllo".into()),
            Value::Blob(vec![0, 255]),
            Value::Null,
        ];
        let inserted = execute(&conn, "INSERT INTO t VALUES (?, ?, ?, ?, ?)", row.clone()).unwrap();
        assert_eq!(inserted.rows.len(), 0);
        assert_eq!(conn.changes(), 1);
        let selected = execute(
            &conn,
            "SELECT * FROM t WHERE i = ?",
            vec![Value::Integer(-7)],
        )
        .unwrap();
        assert_eq!(selected.columns, ["i", "r", "s", "b", "n"]);
        assert_eq!(selected.rows, vec![row]);
    }

    #[test]
    fn a_bad_statement_is_an_io_error_quoting_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("t.db")).unwrap();
        let conn = db.connection().unwrap();
        let err = execute(&conn, "SELEKT 1", vec![]).unwrap_err();
        assert!(
            matches!(&err, SqlError::Io(m) if m.contains("syntax error")),
            "{err:?}"
        );
    }

    #[test]
    fn attaching_another_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("t.db")).unwrap();
        let conn = db.connection().unwrap();
        let other = dir.path().join("other.db");
        let err =
            execute(&conn, &format!("ATTACH '{}' AS o", other.display()), vec![]).unwrap_err();
        assert!(matches!(err, SqlError::Io(_)));
        assert!(!other.exists());
    }
}
