//! The Spin host interfaces that unmodified Spin SDK components import,
//! under the exact package names the SDKs use: spin-sdk 5.2 imports
//! `fermyon:spin/variables@2.0.0` and `fermyon:spin/key-value@2.0.0`;
//! spin-sdk 7 (WASIp3) imports the same capabilities as `async func`s,
//! `spin:variables/variables@3.0.0` and `spin:key-value/key-value@3.0.0`.
//! The WIT below restates the interfaces the SDKs' own WIT declares; the
//! implementation is ours, one for both versions.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Accessor, FutureReader, HasSelf, Linker, Resource, StreamReader};

use crate::services::key_value::{KvAccess, KvError};

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
        if !crate::services::variables::is_valid_name(&name) {
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
        self.kv()?
            .db(&label)
            .map_err(kv_error)?
            .get(&label, &key)
            .map_err(kv_error)
    }

    fn set(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), key_value::Error> {
        let label = self.store_label(&store)?;
        self.kv()?
            .db(&label)
            .map_err(kv_error)?
            .set(&label, &key, &value)
            .map_err(kv_error)
    }

    fn delete(&mut self, store: Resource<KvStore>, key: String) -> Result<(), key_value::Error> {
        let label = self.store_label(&store)?;
        self.kv()?
            .db(&label)
            .map_err(kv_error)?
            .delete(&label, &key)
            .map_err(kv_error)
    }

    fn exists(&mut self, store: Resource<KvStore>, key: String) -> Result<bool, key_value::Error> {
        let label = self.store_label(&store)?;
        Ok(self
            .kv()?
            .db(&label)
            .map_err(kv_error)?
            .get(&label, &key)
            .map_err(kv_error)?
            .is_some())
    }

    fn get_keys(&mut self, store: Resource<KvStore>) -> Result<Vec<String>, key_value::Error> {
        let label = self.store_label(&store)?;
        self.kv()?
            .db(&label)
            .map_err(kv_error)?
            .keys(&label)
            .map_err(kv_error)
    }

    fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table_mut().delete(store)?;
        Ok(())
    }
}

// Spin SDK 7 (WASIp3) imports the same capabilities as `async func`s
// under new package names: `spin:variables/variables@3.0.0` and
// `spin:key-value/key-value@3.0.0`. Restated here from their published
// shape; the engine must have concurrency support (p3 components only).
mod generated_v3_variables {
    wasmtime::component::bindgen!({
        inline: "
            package spin:variables@3.0.0;

            interface variables {
                get: async func(name: string) -> result<string, error>;

                variant error {
                    invalid-name(string),
                    undefined(string),
                    provider(string),
                    other(string),
                }
            }

            world host {
                import variables;
            }
        ",
        world: "spin:variables/host",
        imports: { default: trappable },
    });
}

mod generated_v3_key_value {
    wasmtime::component::bindgen!({
        inline: "
            package spin:key-value@3.0.0;

            interface key-value {
                resource store {
                    open: static async func(label: string) -> result<store, error>;
                    get: async func(key: string) -> result<option<list<u8>>, error>;
                    set: async func(key: string, value: list<u8>) -> result<_, error>;
                    delete: async func(key: string) -> result<_, error>;
                    exists: async func(key: string) -> result<bool, error>;
                    get-keys: async func() -> tuple<stream<string>, future<result<_, error>>>;
                }

                variant error {
                    store-table-full,
                    no-such-store,
                    access-denied,
                    other(string),
                }
            }

            world host {
                import key-value;
            }
        ",
        world: "spin:key-value/host",
        imports: { default: trappable },
        with: {
            "spin:key-value/key-value.store": super::KvStore,
        },
    });
}

use generated_v3_key_value::spin::key_value::key_value as key_value_v3;
use generated_v3_variables::spin::variables::variables as variables_v3;

/// Adds Spin SDK 7's interfaces (`spin:variables@3.0.0`,
/// `spin:key-value@3.0.0`) to `linker`, whose engine supports concurrency.
pub fn add_p3_to_linker(linker: &mut Linker<GuestState>) -> anyhow::Result<()> {
    variables_v3::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    key_value_v3::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    Ok(())
}

fn v3_kv_error(e: key_value::Error) -> key_value_v3::Error {
    match e {
        key_value::Error::StoreTableFull => key_value_v3::Error::StoreTableFull,
        key_value::Error::NoSuchStore => key_value_v3::Error::NoSuchStore,
        key_value::Error::AccessDenied => key_value_v3::Error::AccessDenied,
        key_value::Error::Other(why) => key_value_v3::Error::Other(why),
    }
}

impl variables_v3::Host for GuestState {}

impl<T> variables_v3::HostWithStore<T> for HasSelf<GuestState> {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, variables_v3::Error>> {
        let answer = accessor.with(|mut access| variables::Host::get(access.get(), name));
        Ok(answer.map_err(|e| match e {
            variables::Error::InvalidName(m) => variables_v3::Error::InvalidName(m),
            variables::Error::Undefined(m) => variables_v3::Error::Undefined(m),
            variables::Error::Provider(m) => variables_v3::Error::Provider(m),
            variables::Error::Other(m) => variables_v3::Error::Other(m),
        }))
    }
}

impl key_value_v3::Host for GuestState {}

impl key_value_v3::HostStore for GuestState {
    fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table_mut().delete(store)?;
        Ok(())
    }
}

// The database calls are short synchronous redb transactions, as for the
// 2.0.0 interface; each runs inside `with` so nothing is held across an
// await.
impl<T> key_value_v3::HostStoreWithStore<T> for HasSelf<GuestState> {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KvStore>, key_value_v3::Error>> {
        Ok(accessor.with(|mut access| {
            key_value::HostStore::open(access.get(), label).map_err(v3_kv_error)
        }))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, key_value_v3::Error>> {
        Ok(accessor.with(|mut access| {
            key_value::HostStore::get(access.get(), store, key).map_err(v3_kv_error)
        }))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), key_value_v3::Error>> {
        Ok(accessor.with(|mut access| {
            key_value::HostStore::set(access.get(), store, key, value).map_err(v3_kv_error)
        }))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), key_value_v3::Error>> {
        Ok(accessor.with(|mut access| {
            key_value::HostStore::delete(access.get(), store, key).map_err(v3_kv_error)
        }))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, key_value_v3::Error>> {
        Ok(accessor.with(|mut access| {
            key_value::HostStore::exists(access.get(), store, key).map_err(v3_kv_error)
        }))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
    ) -> wasmtime::Result<(
        StreamReader<String>,
        FutureReader<Result<(), key_value_v3::Error>>,
    )> {
        accessor.with(|mut access| {
            let (keys, result) = match key_value::HostStore::get_keys(access.get(), store) {
                Ok(keys) => (keys, Ok(())),
                Err(e) => (Vec::new(), Err(v3_kv_error(e))),
            };
            let keys = StreamReader::new(&mut access, keys)?;
            let result =
                FutureReader::new(&mut access, async move { Ok::<_, wasmtime::Error>(result) })?;
            Ok((keys, result))
        })
    }
}
