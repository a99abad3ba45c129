//! Spin's key-value stores, kept in one embedded database file per app
//! (`<manifest dir>/.wasmhost/key_value.redb`), so the `default` store
//! survives restarts as it does under `spin up`.
//!
//! A component may open only the stores its manifest names in
//! `key_value_stores`; opening any other fails with Spin's
//! `access-denied`. Only the `default` store exists without runtime
//! configuration, as in Spin; `--runtime-config-file` defines others (a
//! table in the app's file, or a file of their own).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// The store every app has without configuration.
pub const DEFAULT_STORE: &str = "default";

/// Where an app keeps its state, relative to its manifest, as Spin's
/// `.spin/`.
pub const STATE_DIR: &str = ".wasmhost";

/// The app's key-value database.
pub struct KeyValue {
    db: Database,
}

/// Why a key-value operation failed, in Spin's terms.
#[derive(Debug)]
pub enum KvError {
    /// The store is not one the component may open.
    AccessDenied,
    /// The store does not exist.
    NoSuchStore,
    /// The database failed.
    Other(String),
}

/// A span for one key-value call (exported when OpenTelemetry is on).
fn kv_span(operation: &'static str, label: &str) -> tracing::span::EnteredSpan {
    tracing::info_span!(
        target: crate::telemetry::TARGET,
        "key_value",
        otel.name = %format_args!("key_value.{operation}"),
        otel.kind = "client",
        db.operation.name = operation,
        db.namespace = label,
    )
    .entered()
}

fn other(e: impl std::fmt::Display) -> KvError {
    KvError::Other(e.to_string())
}

fn table(label: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(label)
}

impl KeyValue {
    /// Opens (or creates) the database of the app whose manifest is in
    /// `dir`.
    pub fn open(dir: &Path) -> Result<Arc<Self>> {
        Self::open_file(&dir.join(STATE_DIR).join("key_value.redb"))
    }

    /// Opens (or creates) the database file `path`.
    ///
    /// A file is opened once per process and shared: a reloaded app gets
    /// the database the running one has open (the file is locked).
    pub fn open_file(path: &Path) -> Result<Arc<Self>> {
        static OPEN: std::sync::Mutex<Vec<(std::path::PathBuf, std::sync::Weak<KeyValue>)>> =
            std::sync::Mutex::new(Vec::new());
        let mut open = OPEN
            .lock()
            .map_err(|_| anyhow::anyhow!("key-value registry lock poisoned"))?;
        open.retain(|(_, db)| db.strong_count() > 0);
        if let Some(db) = open
            .iter()
            .find(|(p, _)| p == path)
            .and_then(|(_, db)| db.upgrade())
        {
            return Ok(db);
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create the directory `{}`", parent.display()))?;
        }
        let db = Database::create(path)
            .with_context(|| format!("cannot open the key-value database `{}`", path.display()))?;
        let db = Arc::new(Self { db });
        open.push((path.to_owned(), Arc::downgrade(&db)));
        Ok(db)
    }

    /// The value of `key` in store `label`.
    pub fn get(&self, label: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let _span = kv_span("get", label);
        let tx = self.db.begin_read().map_err(other)?;
        let table = match tx.open_table(table(label)) {
            Ok(table) => table,
            // A store nothing was ever written to.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(other(e)),
        };
        Ok(table.get(key).map_err(other)?.map(|v| v.value().to_vec()))
    }

    /// Sets `key` in store `label`, durably.
    pub fn set(&self, label: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        let _span = kv_span("set", label);
        let tx = self.db.begin_write().map_err(other)?;
        tx.open_table(table(label))
            .map_err(other)?
            .insert(key, value)
            .map_err(other)?;
        tx.commit().map_err(other)
    }

    /// Removes `key` from store `label`.
    pub fn delete(&self, label: &str, key: &str) -> Result<(), KvError> {
        let _span = kv_span("delete", label);
        let tx = self.db.begin_write().map_err(other)?;
        tx.open_table(table(label))
            .map_err(other)?
            .remove(key)
            .map_err(other)?;
        tx.commit().map_err(other)
    }

    /// Every key in store `label`.
    pub fn keys(&self, label: &str) -> Result<Vec<String>, KvError> {
        let _span = kv_span("keys", label);
        let tx = self.db.begin_read().map_err(other)?;
        let table = match tx.open_table(table(label)) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(other(e)),
        };
        table
            .iter()
            .map_err(other)?
            .map(|entry| entry.map(|(k, _)| k.value().to_owned()).map_err(other))
            .collect()
    }
}

/// The stores one component may open, and the database behind each.
#[derive(Clone)]
pub struct KvAccess {
    /// The database of every store the component may open, by label.
    pub stores: Arc<std::collections::BTreeMap<String, Arc<KeyValue>>>,
    /// The component's `key_value_stores`.
    pub allowed: Arc<Vec<String>>,
}

impl KvAccess {
    /// The database behind store `label`.
    pub fn db(&self, label: &str) -> Result<&KeyValue, KvError> {
        self.stores
            .get(label)
            .map(|db| &**db)
            .ok_or(KvError::NoSuchStore)
    }
}

impl std::fmt::Debug for KvAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvAccess")
            .field("allowed", &self.allowed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = KeyValue::open(dir.path()).unwrap();
            assert_eq!(kv.get("default", "k").unwrap(), None);
            kv.set("default", "k", b"v1").unwrap();
            kv.set("default", "j", b"v2").unwrap();
            kv.delete("default", "j").unwrap();
        }
        let kv = KeyValue::open(dir.path()).unwrap();
        assert_eq!(kv.get("default", "k").unwrap(), Some(b"v1".to_vec()));
        assert_eq!(kv.keys("default").unwrap(), vec!["k".to_string()]);
        assert_eq!(kv.keys("other").unwrap(), Vec::<String>::new());
    }
}
