//! Spin's key-value stores, kept in one embedded database file per app
//! (`<manifest dir>/.wasmhost/key_value.redb`), so the `default` store
//! survives restarts as it does under `spin up`.
//!
//! A component may open only the stores its manifest names in
//! `key_value_stores`; opening any other fails with Spin's
//! `access-denied`. Only the `default` store exists without runtime
//! configuration, as in Spin; `--runtime-config-file` defines others (a
//! table in the app's file, a file of their own, or a Redis server:
//! [`super::key_value_redis`]).

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

/// `call` inside a span for one key-value operation on store `label`,
/// whichever backend serves it (exported when OpenTelemetry is on).
fn traced<F: std::future::Future>(
    operation: &'static str,
    label: &str,
    call: F,
) -> tracing::instrument::Instrumented<F> {
    use tracing::Instrument as _;
    call.instrument(tracing::info_span!(
        target: crate::telemetry::TARGET,
        "key_value",
        otel.name = %format_args!("key_value.{operation}"),
        otel.kind = "client",
        db.operation.name = operation,
        db.namespace = label,
    ))
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
        let tx = self.db.begin_write().map_err(other)?;
        tx.open_table(table(label))
            .map_err(other)?
            .insert(key, value)
            .map_err(other)?;
        tx.commit().map_err(other)
    }

    /// Removes `key` from store `label`.
    pub fn delete(&self, label: &str, key: &str) -> Result<(), KvError> {
        let tx = self.db.begin_write().map_err(other)?;
        tx.open_table(table(label))
            .map_err(other)?
            .remove(key)
            .map_err(other)?;
        tx.commit().map_err(other)
    }

    /// Adds `delta` to the number stored at `key` (8 bytes, little-endian,
    /// as Spin stores it; a missing key counts as 0), in one transaction.
    pub fn increment(&self, label: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        let tx = self.db.begin_write().map_err(other)?;
        let value = {
            let mut table = tx.open_table(table(label)).map_err(other)?;
            let current = match table.get(key).map_err(other)? {
                None => 0,
                Some(bytes) => {
                    let bytes: [u8; 8] = bytes.value().try_into().map_err(|_| {
                        KvError::Other(format!(
                            "the value of `{key}` is not a number stored by increment (8 bytes)"
                        ))
                    })?;
                    i64::from_le_bytes(bytes)
                }
            };
            let value = current.checked_add(delta).ok_or_else(|| {
                KvError::Other(format!("incrementing `{key}` by {delta} overflows"))
            })?;
            table
                .insert(key, value.to_le_bytes().as_slice())
                .map_err(other)?;
            value
        };
        tx.commit().map_err(other)?;
        Ok(value)
    }

    /// Sets `key` to `value` if it still holds `expected` (`None`: absent),
    /// in one transaction; `Err(current)` if it does not.
    pub fn compare_and_swap(
        &self,
        label: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Result<(), Option<Vec<u8>>>, KvError> {
        let tx = self.db.begin_write().map_err(other)?;
        {
            let mut table = tx.open_table(table(label)).map_err(other)?;
            let current = table.get(key).map_err(other)?.map(|v| v.value().to_vec());
            if current.as_deref() != expected {
                return Ok(Err(current));
            }
            table.insert(key, value).map_err(other)?;
        }
        tx.commit().map_err(other)?;
        Ok(Ok(()))
    }

    /// Every key in store `label`.
    pub fn keys(&self, label: &str) -> Result<Vec<String>, KvError> {
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

/// Where one store's data lives.
#[derive(Debug)]
pub enum KvBackend {
    /// A table in a local database file.
    Local(Arc<KeyValue>),
    /// A Redis server, shared with other processes.
    Redis(super::key_value_redis::RedisStore),
}

impl std::fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValue").finish_non_exhaustive()
    }
}

/// The operations every key-value interface needs, on either backend; a
/// local store's are short redb transactions run in place.
impl KvBackend {
    /// The value of `key` in store `label`.
    pub async fn get(&self, label: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        traced("get", label, async {
            match self {
                KvBackend::Local(db) => db.get(label, key),
                KvBackend::Redis(r) => r.get(key).await,
            }
        })
        .await
    }

    /// Sets `key`.
    pub async fn set(&self, label: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        traced("set", label, async {
            match self {
                KvBackend::Local(db) => db.set(label, key, value),
                KvBackend::Redis(r) => r.set(key, value).await,
            }
        })
        .await
    }

    /// Removes `key`.
    pub async fn delete(&self, label: &str, key: &str) -> Result<(), KvError> {
        traced("delete", label, async {
            match self {
                KvBackend::Local(db) => db.delete(label, key),
                KvBackend::Redis(r) => r.delete(key).await,
            }
        })
        .await
    }

    /// Every key.
    pub async fn keys(&self, label: &str) -> Result<Vec<String>, KvError> {
        traced("keys", label, async {
            match self {
                KvBackend::Local(db) => db.keys(label),
                KvBackend::Redis(r) => r.keys().await,
            }
        })
        .await
    }

    /// Adds `delta` to the number at `key`.
    pub async fn increment(&self, label: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        traced("increment", label, async {
            match self {
                KvBackend::Local(db) => db.increment(label, key, delta),
                KvBackend::Redis(r) => r.increment(key, delta).await,
            }
        })
        .await
    }

    /// Sets `key` to `value` if it still holds `expected`.
    pub async fn compare_and_swap(
        &self,
        label: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Result<(), Option<Vec<u8>>>, KvError> {
        traced("compare_and_swap", label, async {
            match self {
                KvBackend::Local(db) => db.compare_and_swap(label, key, expected, value),
                KvBackend::Redis(r) => r.compare_and_swap(key, expected, value).await,
            }
        })
        .await
    }
}

/// The stores one component may open, and the backend behind each.
#[derive(Clone)]
pub struct KvAccess {
    /// The backend of every store the component may open, by label.
    pub stores: Arc<std::collections::BTreeMap<String, Arc<KvBackend>>>,
    /// The component's `key_value_stores`.
    pub allowed: Arc<Vec<String>>,
}

impl KvAccess {
    /// The backend behind store `label`.
    pub fn db(&self, label: &str) -> Result<&Arc<KvBackend>, KvError> {
        self.stores.get(label).ok_or(KvError::NoSuchStore)
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

    #[test]
    fn increment_counts_from_zero_and_swap_checks_the_value_it_saw() {
        let dir = tempfile::tempdir().unwrap();
        let kv = KeyValue::open(dir.path()).unwrap();
        assert_eq!(kv.increment("s", "n", 2).unwrap(), 2);
        assert_eq!(kv.increment("s", "n", -5).unwrap(), -3);
        kv.set("s", "text", b"abc").unwrap();
        assert!(matches!(
            kv.increment("s", "text", 1),
            Err(KvError::Other(_))
        ));
        assert_eq!(kv.compare_and_swap("s", "k", None, b"1").unwrap(), Ok(()));
        assert_eq!(
            kv.compare_and_swap("s", "k", None, b"2").unwrap(),
            Err(Some(b"1".to_vec()))
        );
        assert_eq!(
            kv.compare_and_swap("s", "k", Some(b"1"), b"2").unwrap(),
            Ok(())
        );
        assert_eq!(kv.get("s", "k").unwrap(), Some(b"2".to_vec()));
    }
}
