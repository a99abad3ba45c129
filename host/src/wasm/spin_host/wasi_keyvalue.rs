//! `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` over the same stores
//! as Spin key-value (a bucket is a store: the same labels, the same
//! `key_value_stores` grants, the same data). `increment` and the CAS
//! `swap` each run in one database transaction.

use wasmtime::component::Resource;

use super::bindings::wasi::keyvalue::{atomics, batch, store};
use super::KvStore;
use crate::services::key_value::KvError;
use crate::wasm::state::GuestState;

/// The most one `get-many` may return: half the default per-instance
/// memory cap (the guest needs room to receive it), under Spin's 128 MB, so
/// a batch too large for the guest fails with Spin's error instead of
/// trapping the instance.
const MAX_BATCH_RESULT_BYTES: usize = 64 << 20;

/// A compare-and-swap in progress: the value seen when it began.
pub struct Cas {
    label: String,
    key: String,
    seen: Option<Vec<u8>>,
}

impl From<KvError> for store::Error {
    fn from(e: KvError) -> Self {
        match e {
            KvError::AccessDenied => store::Error::AccessDenied,
            KvError::NoSuchStore => store::Error::NoSuchStore,
            KvError::Other(why) => store::Error::Other(why),
        }
    }
}

impl store::Host for GuestState {
    async fn open(&mut self, identifier: String) -> Result<Resource<KvStore>, store::Error> {
        Ok(self.kv_open(identifier)?)
    }
}

impl store::HostBucket for GuestState {
    async fn get(
        &mut self,
        bucket: Resource<KvStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, store::Error> {
        let (db, label) = self.kv_store(&bucket)?;
        Ok(db.get(&label, &key).await?)
    }

    async fn set(
        &mut self,
        bucket: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), store::Error> {
        let (db, label) = self.kv_store(&bucket)?;
        Ok(db.set(&label, &key, &value).await?)
    }

    async fn delete(&mut self, bucket: Resource<KvStore>, key: String) -> Result<(), store::Error> {
        let (db, label) = self.kv_store(&bucket)?;
        Ok(db.delete(&label, &key).await?)
    }

    async fn exists(
        &mut self,
        bucket: Resource<KvStore>,
        key: String,
    ) -> Result<bool, store::Error> {
        let (db, label) = self.kv_store(&bucket)?;
        Ok(db.get(&label, &key).await?.is_some())
    }

    /// Every key in one page, as Spin answers: a cursor (for a next page
    /// there never is) is refused with Spin's text.
    async fn list_keys(
        &mut self,
        bucket: Resource<KvStore>,
        cursor: Option<String>,
    ) -> Result<store::KeyResponse, store::Error> {
        if cursor.is_some() {
            return Err(store::Error::Other(
                "list_keys: cursor not supported".to_owned(),
            ));
        }
        let (db, label) = self.kv_store(&bucket)?;
        Ok(store::KeyResponse {
            keys: db.keys(&label).await?,
            cursor: None,
        })
    }

    async fn drop(&mut self, bucket: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table_mut().delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for GuestState {
    async fn increment(
        &mut self,
        bucket: Resource<KvStore>,
        key: String,
        delta: i64,
    ) -> Result<i64, store::Error> {
        let (db, label) = self.kv_store(&bucket)?;
        Ok(db.increment(&label, &key, delta).await?)
    }

    async fn swap(&mut self, cas: Resource<Cas>, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let store_error = |e: KvError| atomics::CasError::StoreError(e.into());
        let cas = self
            .table_mut()
            .delete(cas)
            .map_err(|e| store_error(KvError::Other(e.to_string())))?;
        let db = self
            .key_value()
            .ok_or(KvError::AccessDenied)
            .and_then(|access| access.db(&cas.label).cloned())
            .map_err(store_error)?;
        match db
            .compare_and_swap(&cas.label, &cas.key, cas.seen.as_deref(), &value)
            .await
            .map_err(store_error)?
        {
            Ok(()) => Ok(()),
            Err(current) => {
                let retry = Cas {
                    seen: current,
                    ..cas
                };
                let retry = self
                    .table_mut()
                    .push(retry)
                    .map_err(|e| store_error(KvError::Other(e.to_string())))?;
                Err(atomics::CasError::CasFailed(retry))
            }
        }
    }
}

impl atomics::HostCas for GuestState {
    async fn new(
        &mut self,
        bucket: Resource<KvStore>,
        key: String,
    ) -> Result<Resource<Cas>, store::Error> {
        let (db, label) = self.kv_store(&bucket)?;
        let seen = db.get(&label, &key).await?;
        self.table_mut()
            .push(Cas { label, key, seen })
            .map_err(|e| store::Error::Other(e.to_string()))
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>, store::Error> {
        self.table()
            .get(&cas)
            .map(|c| c.seen.clone())
            .map_err(|e| store::Error::Other(e.to_string()))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table_mut().delete(cas)?;
        Ok(())
    }
}

impl batch::Host for GuestState {
    async fn get_many(
        &mut self,
        bucket: Resource<KvStore>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, store::Error> {
        let (db, label) = self.kv_store(&bucket)?;
        let mut values = Vec::with_capacity(keys.len());
        let mut bytes = 0;
        for key in keys {
            let value = db.get(&label, &key).await?;
            bytes += key.len() + value.as_ref().map_or(0, Vec::len);
            if bytes > MAX_BATCH_RESULT_BYTES {
                return Err(store::Error::Other(format!(
                    "query result exceeds limit of {MAX_BATCH_RESULT_BYTES} bytes"
                )));
            }
            values.push((key, value));
        }
        Ok(values)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<KvStore>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), store::Error> {
        let (db, label) = self.kv_store(&bucket)?;
        for (key, value) in key_values {
            db.set(&label, &key, &value).await?;
        }
        Ok(())
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<KvStore>,
        keys: Vec<String>,
    ) -> Result<(), store::Error> {
        let (db, label) = self.kv_store(&bucket)?;
        for key in keys {
            db.delete(&label, &key).await?;
        }
        Ok(())
    }
}
