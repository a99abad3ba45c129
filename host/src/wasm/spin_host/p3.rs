//! Spin SDK 7 (WASIp3) imports the same capabilities as `async func`s
//! under new package names: `spin:variables/variables@3.0.0` and
//! `spin:key-value/key-value@3.0.0`, restated here from their published
//! shape and implemented over the 2.0.0 host; the engine must have
//! concurrency support (p3 components only).

use wasmtime::component::{Accessor, FutureReader, HasSelf, Linker, Resource, StreamReader};

use super::bindings::fermyon::spin::{key_value, variables};
use super::KvStore;
use crate::services::key_value::KvBackend;
use crate::wasm::state::GuestState;

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
            "spin:key-value/key-value.store": crate::wasm::spin_host::KvStore,
        },
    });
}

use generated_v3_key_value::spin::key_value::key_value as key_value_v3;
use generated_v3_variables::spin::variables::variables as variables_v3;

/// Adds Spin SDK 7's interfaces (`spin:variables@3.0.0`,
/// `spin:key-value@3.0.0`, `spin:mysql@3.0.0`, `spin:sqlite@3.1.0`,
/// `spin:postgres@4.2.0`, `spin:redis@3.0.0`, `spin:mqtt@3.0.0`) to
/// `linker`, whose engine supports concurrency.
pub fn add_p3_to_linker(linker: &mut Linker<GuestState>) -> anyhow::Result<()> {
    variables_v3::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    key_value_v3::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    super::mysql::add_v3_to_linker(linker)?;
    use super::bindings_p3::spin::{mqtt::mqtt, postgres::postgres, redis::redis, sqlite::sqlite};
    sqlite::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    postgres::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    redis::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    mqtt::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    Ok(())
}

/// A backend's (or 2.0.0's) error as 3.0.0's.
fn kv_error(e: impl Into<key_value::Error>) -> key_value_v3::Error {
    match e.into() {
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

// The backend is taken out of the instance's state inside `with`, and the
// call awaited outside it, so nothing is held across an await.
type Kv = (std::sync::Arc<KvBackend>, String);

fn backend<T>(
    accessor: &Accessor<T, HasSelf<GuestState>>,
    store: &Resource<KvStore>,
) -> Result<Kv, key_value_v3::Error> {
    accessor
        .with(|mut access| access.get().kv_store(store))
        .map_err(kv_error)
}

impl<T> key_value_v3::HostStoreWithStore<T> for HasSelf<GuestState> {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KvStore>, key_value_v3::Error>> {
        Ok(accessor.with(|mut access| access.get().kv_open(label).map_err(kv_error)))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, key_value_v3::Error>> {
        Ok(async {
            let (db, label) = backend(accessor, &store)?;
            db.get(&label, &key).await.map_err(kv_error)
        }
        .await)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), key_value_v3::Error>> {
        Ok(async {
            let (db, label) = backend(accessor, &store)?;
            db.set(&label, &key, &value).await.map_err(kv_error)
        }
        .await)
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), key_value_v3::Error>> {
        Ok(async {
            let (db, label) = backend(accessor, &store)?;
            db.delete(&label, &key).await.map_err(kv_error)
        }
        .await)
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, key_value_v3::Error>> {
        Ok(async {
            let (db, label) = backend(accessor, &store)?;
            db.get(&label, &key)
                .await
                .map(|v| v.is_some())
                .map_err(kv_error)
        }
        .await)
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<KvStore>,
    ) -> wasmtime::Result<(
        StreamReader<String>,
        FutureReader<Result<(), key_value_v3::Error>>,
    )> {
        let listed = match backend(accessor, &store) {
            Ok((db, label)) => db.keys(&label).await.map_err(kv_error),
            Err(e) => Err(e),
        };
        let (keys, result) = match listed {
            Ok(keys) => (keys, Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        };
        accessor.with(|mut access| {
            let keys = StreamReader::new(&mut access, keys)?;
            let result =
                FutureReader::new(&mut access, async move { Ok::<_, wasmtime::Error>(result) })?;
            Ok((keys, result))
        })
    }
}
