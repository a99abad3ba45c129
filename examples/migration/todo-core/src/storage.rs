//! Where todos live: a small key-value interface, implemented by a
//! directory of files ([`crate::dir_storage`]) for both forms and in memory
//! for tests.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;

/// A key-value store of byte values.
///
/// Keys that [`crate::handle`] uses are ASCII letters, digits, `_` and `:`,
/// so an implementation may map them to file names as they are.
pub trait Storage {
    /// Why a call failed. It is logged, not shown to clients, so it may
    /// carry details such as file paths.
    type Error: fmt::Display;

    /// The value of `key`, or `None` if it is not set.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Self::Error>;

    /// Sets `key` to `value`, replacing any previous value.
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), Self::Error>;

    /// Sets `key` to `value` only if it is not set, atomically even when
    /// several processes share the store; `false` if it was set already.
    fn create(&mut self, key: &str, value: &[u8]) -> Result<bool, Self::Error>;

    /// Removes `key`; removing a key that is not set is not an error.
    fn delete(&mut self, key: &str) -> Result<(), Self::Error>;

    /// Every key that is set, in any order.
    fn keys(&self) -> Result<Vec<String>, Self::Error>;
}

/// A [`Storage`] in memory, for tests and for trying the API out; it forgets
/// everything when dropped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryStorage {
    entries: BTreeMap<String, Vec<u8>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Storage for MemoryStorage {
    type Error = Infallible;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(self.entries.get(key).cloned())
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), Infallible> {
        self.entries.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn create(&mut self, key: &str, value: &[u8]) -> Result<bool, Infallible> {
        if self.entries.contains_key(key) {
            return Ok(false);
        }
        self.entries.insert(key.to_owned(), value.to_vec());
        Ok(true)
    }

    fn delete(&mut self, key: &str) -> Result<(), Infallible> {
        self.entries.remove(key);
        Ok(())
    }

    fn keys(&self) -> Result<Vec<String>, Infallible> {
        Ok(self.entries.keys().cloned().collect())
    }
}
