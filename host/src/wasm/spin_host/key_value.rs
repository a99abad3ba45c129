//! `fermyon:spin/key-value@2.0.0` over the app's key-value stores, and the
//! two helpers every key-value interface (Spin 2, Spin 3, wasi:keyvalue)
//! goes through: open a store the component may open, find the database
//! behind an open one.

use wasmtime::component::Resource;

use super::bindings::fermyon::spin::key_value;
use super::KvStore;
use crate::app::key_value::{KeyValue, KvError};
use crate::wasm::state::GuestState;

impl GuestState {
    /// Opens store `label` if the component's `key_value_stores` names it.
    pub(super) fn kv_open(&mut self, label: String) -> Result<Resource<KvStore>, KvError> {
        let access = self.key_value().ok_or(KvError::AccessDenied)?;
        if !access.allowed.contains(&label) {
            return Err(KvError::AccessDenied);
        }
        access.db(&label)?;
        self.table_mut()
            .push(KvStore { label })
            .map_err(|e| KvError::Other(e.to_string()))
    }

    /// The database and label behind an open store.
    pub(super) fn kv_store(
        &self,
        store: &Resource<KvStore>,
    ) -> Result<(&KeyValue, String), KvError> {
        let label = self
            .table()
            .get(store)
            .map(|s| s.label.clone())
            .map_err(|e| KvError::Other(e.to_string()))?;
        let db = self.key_value().ok_or(KvError::AccessDenied)?.db(&label)?;
        Ok((db, label))
    }
}

impl From<KvError> for key_value::Error {
    fn from(e: KvError) -> Self {
        match e {
            KvError::AccessDenied => key_value::Error::AccessDenied,
            KvError::NoSuchStore => key_value::Error::NoSuchStore,
            KvError::Other(why) => key_value::Error::Other(why),
        }
    }
}

impl key_value::Host for GuestState {}

impl key_value::HostStore for GuestState {
    fn open(&mut self, label: String) -> Result<Resource<KvStore>, key_value::Error> {
        Ok(self.kv_open(label)?)
    }

    fn get(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, key_value::Error> {
        let (db, label) = self.kv_store(&store)?;
        Ok(db.get(&label, &key)?)
    }

    fn set(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), key_value::Error> {
        let (db, label) = self.kv_store(&store)?;
        Ok(db.set(&label, &key, &value)?)
    }

    fn delete(&mut self, store: Resource<KvStore>, key: String) -> Result<(), key_value::Error> {
        let (db, label) = self.kv_store(&store)?;
        Ok(db.delete(&label, &key)?)
    }

    fn exists(&mut self, store: Resource<KvStore>, key: String) -> Result<bool, key_value::Error> {
        let (db, label) = self.kv_store(&store)?;
        Ok(db.get(&label, &key)?.is_some())
    }

    fn get_keys(&mut self, store: Resource<KvStore>) -> Result<Vec<String>, key_value::Error> {
        let (db, label) = self.kv_store(&store)?;
        Ok(db.keys(&label)?)
    }

    fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table_mut().delete(store)?;
        Ok(())
    }
}
