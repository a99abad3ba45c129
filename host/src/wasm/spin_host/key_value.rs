//! `fermyon:spin/key-value@2.0.0` over the app's key-value stores, and the
//! two helpers every key-value interface (Spin 2, Spin 3, wasi:keyvalue)
//! goes through: open a store the component may open, find the database
//! behind an open one.

use wasmtime::component::Resource;

use super::bindings::fermyon::spin::key_value;
use super::KvStore;
use std::sync::Arc;

use crate::services::key_value::{KvBackend, KvError};
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

    /// The backend and label behind an open store (owned, so the call can
    /// be awaited without holding the instance's state).
    pub(super) fn kv_store(
        &self,
        store: &Resource<KvStore>,
    ) -> Result<(Arc<KvBackend>, String), KvError> {
        let label = self
            .table()
            .get(store)
            .map(|s| s.label.clone())
            .map_err(|e| KvError::Other(e.to_string()))?;
        let db = self
            .key_value()
            .ok_or(KvError::AccessDenied)?
            .db(&label)?
            .clone();
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
    async fn open(&mut self, label: String) -> Result<Resource<KvStore>, key_value::Error> {
        Ok(self.kv_open(label)?)
    }

    async fn get(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, key_value::Error> {
        let (db, label) = self.kv_store(&store)?;
        Ok(db.get(&label, &key).await?)
    }

    async fn set(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), key_value::Error> {
        let (db, label) = self.kv_store(&store)?;
        Ok(db.set(&label, &key, &value).await?)
    }

    async fn delete(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> Result<(), key_value::Error> {
        let (db, label) = self.kv_store(&store)?;
        Ok(db.delete(&label, &key).await?)
    }

    async fn exists(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> Result<bool, key_value::Error> {
        let (db, label) = self.kv_store(&store)?;
        Ok(db.get(&label, &key).await?.is_some())
    }

    async fn get_keys(
        &mut self,
        store: Resource<KvStore>,
    ) -> Result<Vec<String>, key_value::Error> {
        let (db, label) = self.kv_store(&store)?;
        Ok(db.keys(&label).await?)
    }

    async fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table_mut().delete(store)?;
        Ok(())
    }
}
