//! Key-value stores: the ones the manifest's `key_value_stores` names.
//! The store `default` persists across restarts of the app.
//!
//! ```ignore
//! use wasmhost_sdk::key_value::Store;
//! let store = Store::open_default()?;
//! let count = store.get("count")?.map_or(0, |v| v[0]) + 1;
//! store.set("count", &[count])?;
//! ```

use std::fmt;

use crate::spin::fermyon::spin::key_value as raw;

/// Why a key-value call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// Too many stores open at once.
    StoreTableFull,
    /// The host has no store of that name.
    NoSuchStore,
    /// The component may not open that store (it is not in its
    /// `key_value_stores`).
    AccessDenied,
    /// Anything else, with the host's explanation.
    Other(String),
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::StoreTableFull => f.write_str("too many key-value stores open"),
            KvError::NoSuchStore => f.write_str("no such key-value store"),
            KvError::AccessDenied => {
                f.write_str("access denied: the store is not in the component's key_value_stores")
            }
            KvError::Other(m) => write!(f, "key-value error: {m}"),
        }
    }
}

impl std::error::Error for KvError {}

impl From<raw::Error> for KvError {
    fn from(e: raw::Error) -> Self {
        match e {
            raw::Error::StoreTableFull => KvError::StoreTableFull,
            raw::Error::NoSuchStore => KvError::NoSuchStore,
            raw::Error::AccessDenied => KvError::AccessDenied,
            raw::Error::Other(m) => KvError::Other(m),
        }
    }
}

/// An open store.
pub struct Store(raw::Store);

impl Store {
    /// Opens the store `label`.
    pub fn open(label: &str) -> Result<Self, KvError> {
        Ok(Self(raw::Store::open(label)?))
    }

    /// Opens the store `default`.
    pub fn open_default() -> Result<Self, KvError> {
        Self::open("default")
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.0.get(key)?)
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        Ok(self.0.set(key, value)?)
    }

    /// Removes `key` (not an error if it was not set).
    pub fn delete(&self, key: &str) -> Result<(), KvError> {
        Ok(self.0.delete(key)?)
    }

    /// Whether `key` is set.
    pub fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.0.exists(key)?)
    }

    /// Every key in the store.
    pub fn get_keys(&self) -> Result<Vec<String>, KvError> {
        Ok(self.0.get_keys()?)
    }
}
