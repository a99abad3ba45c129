//! The Spin host interfaces that unmodified Spin SDK components import,
//! under the exact package names the SDK uses (spin-sdk 5.2:
//! `fermyon:spin/variables@2.0.0`, `fermyon:spin/key-value@2.0.0`). The WIT below restates the interface
//! the SDK's own WIT declares; the implementation is ours.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, Resource};

use crate::app::key_value::{KvAccess, KvError};

use super::state::GuestState;

mod generated {
    wasmtime::component::bindgen!({
        inline: "
            package fermyon:spin@2.0.0;

            interface variables {
                get: func(name: string) -> result<string, error>;

                variant error {
                    invalid-name(string),
                    undefined(string),
                    provider(string),
                    other(string),
                }
            }

            interface key-value {
                resource store {
                    open: static func(label: string) -> result<store, error>;
                    get: func(key: string) -> result<option<list<u8>>, error>;
                    set: func(key: string, value: list<u8>) -> result<_, error>;
                    delete: func(key: string) -> result<_, error>;
                    exists: func(key: string) -> result<bool, error>;
                    get-keys: func() -> result<list<string>, error>;
                }

                variant error {
                    store-table-full,
                    no-such-store,
                    access-denied,
                    other(string),
                }
            }

            world host {
                import variables;
                import key-value;
            }
        ",
        world: "fermyon:spin/host",
        with: {
            "fermyon:spin/key-value.store": super::KvStore,
        },
    });
}

use generated::fermyon::spin::{key_value, variables};

/// An open key-value store: the label the guest opened.
pub struct KvStore {
    label: String,
}

/// A component's variables, rendered at start-up: what
/// `variables::get(name)` answers.
pub type Variables = Arc<BTreeMap<String, String>>;

/// Adds the Spin interfaces to `linker`.
pub fn add_to_linker(linker: &mut Linker<GuestState>) -> anyhow::Result<()> {
    variables::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    key_value::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    Ok(())
}

impl variables::Host for GuestState {
    fn get(&mut self, name: String) -> Result<String, variables::Error> {
        if !crate::app::variables::is_valid_name(&name) {
            return Err(variables::Error::InvalidName(format!(
                "`{name}` is not a variable name: use lowercase letters, digits and `_`, starting with a letter"
            )));
        }
        self.variables().get(&name).cloned().ok_or_else(|| {
            variables::Error::Undefined(format!("no variable `{name}` for this component"))
        })
    }
}

fn kv_error(e: KvError) -> key_value::Error {
    match e {
        KvError::AccessDenied => key_value::Error::AccessDenied,
        KvError::NoSuchStore => key_value::Error::NoSuchStore,
        KvError::Other(why) => key_value::Error::Other(why),
    }
}

impl GuestState {
    fn store_label(&self, store: &Resource<KvStore>) -> Result<String, key_value::Error> {
        self.table()
            .get(store)
            .map(|s| s.label.clone())
            .map_err(|e| key_value::Error::Other(e.to_string()))
    }

    fn kv(&self) -> Result<&KvAccess, key_value::Error> {
        self.key_value().ok_or(key_value::Error::AccessDenied)
    }
}

impl key_value::Host for GuestState {}

impl key_value::HostStore for GuestState {
    fn open(&mut self, label: String) -> Result<Resource<KvStore>, key_value::Error> {
        let access = self.kv()?;
        if !access.allowed.contains(&label) {
            return Err(key_value::Error::AccessDenied);
        }
        self.table_mut()
            .push(KvStore { label })
            .map_err(|e| key_value::Error::Other(e.to_string()))
    }

    fn get(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, key_value::Error> {
        let label = self.store_label(&store)?;
        self.kv()?.db.get(&label, &key).map_err(kv_error)
    }

    fn set(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), key_value::Error> {
        let label = self.store_label(&store)?;
        self.kv()?.db.set(&label, &key, &value).map_err(kv_error)
    }

    fn delete(&mut self, store: Resource<KvStore>, key: String) -> Result<(), key_value::Error> {
        let label = self.store_label(&store)?;
        self.kv()?.db.delete(&label, &key).map_err(kv_error)
    }

    fn exists(&mut self, store: Resource<KvStore>, key: String) -> Result<bool, key_value::Error> {
        let label = self.store_label(&store)?;
        Ok(self.kv()?.db.get(&label, &key).map_err(kv_error)?.is_some())
    }

    fn get_keys(&mut self, store: Resource<KvStore>) -> Result<Vec<String>, key_value::Error> {
        let label = self.store_label(&store)?;
        self.kv()?.db.keys(&label).map_err(kv_error)
    }

    fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table_mut().delete(store)?;
        Ok(())
    }
}
