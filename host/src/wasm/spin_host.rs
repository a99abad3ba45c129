//! The Spin platform: every host interface unmodified Spin components
//! import, under the exact package names the SDKs use. The WIT in
//! `wit/` beside this file restates the shapes Spin publishes (spin v3.6 `wit/`
//! and the SDKs' WIT); the implementations are ours.
//!
//! WASI 0.2 components (spin-sdk 5.x for Rust, 3.4 for Python, the JS SDK):
//! - `fermyon:spin/variables@2.0.0`, `key-value@2.0.0`, `sqlite@2.0.0`,
//!   `llm@2.0.0`, `redis@2.0.0`, `mqtt@2.0.0`, `postgres@2.0.0`,
//!   `mysql@2.0.0` (Spin 2's platform world);
//! - `spin:sqlite/sqlite@3.0.0`, `spin:postgres/postgres@3.0.0` and
//!   `@4.1.0` (which a component built against 4.0.0 links to: the
//!   linker matches semver-compatible versions);
//! - Spin 1's unversioned `fermyon:spin/http` (see [`http_v1`]);
//! - `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` over the same stores
//!   as Spin key-value, `wasi:config/store@0.2.0-draft-2024-09-27` over the
//!   same values as Spin variables.
//!
//! WASIp3 components (Spin SDK 7) get those and also `spin:variables@3.0.0`,
//! `spin:key-value@3.0.0` (see [`p3`]), `spin:mysql@3.0.0` (see
//! [`mysql`]), `spin:sqlite/sqlite@3.1.0`, `spin:postgres/postgres@4.2.0`,
//! `spin:redis/redis@3.0.0` and `spin:mqtt/mqtt@3.0.0`: the same
//! implementations as the 2.0.0 and 3.0.0 interfaces, each version a thin
//! binding in its capability's file.
//!
//! One file per capability; calls that do I/O (SQLite, LLM, outbound
//! databases) are `async` on the host so a guest waiting on them never
//! holds a thread that serves other requests.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::state::GuestState;

mod http_v1;
mod key_value;
mod llm;
mod mqtt;
mod mysql;
mod p3;
mod postgres;
mod redis;
mod sqlite;
mod variables;
mod wasi_config;
mod wasi_keyvalue;

pub use mqtt::MqttConnection;
pub use mysql::MysqlConnection;
pub use p3::add_p3_to_linker;
pub use postgres::{PgConnection, PgConnectionBuilder};
pub use redis::{RedisConnection, RedisPool};
pub use sqlite::SqliteConnection;

mod bindings {
    wasmtime::component::bindgen!({
        path: "src/wasm/spin_host/wit",
        world: "wasmhost:spin-p2/platform",
        imports: {
            "fermyon:spin/key-value": async,
            "wasi:keyvalue": async,
            "fermyon:spin/sqlite": async,
            "spin:sqlite/sqlite": async,
            "fermyon:spin/llm": async,
            "fermyon:spin/redis": async,
            "fermyon:spin/mqtt": async,
            "fermyon:spin/postgres": async,
            "fermyon:spin/mysql": async,
            "spin:postgres/postgres": async,
            // A constructor cannot answer with an error: a full table traps.
            "spin:postgres/postgres.[constructor]connection-builder": async | trappable,
        },
        with: {
            "fermyon:spin/key-value.store": crate::wasm::spin_host::KvStore,
            "fermyon:spin/sqlite.connection": crate::wasm::spin_host::SqliteConnection,
            "spin:sqlite/sqlite.connection": crate::wasm::spin_host::SqliteConnection,
            "fermyon:spin/redis.connection": crate::wasm::spin_host::RedisConnection,
            "fermyon:spin/mqtt.connection": crate::wasm::spin_host::MqttConnection,
            "fermyon:spin/postgres.connection": crate::wasm::spin_host::PgConnection,
            "fermyon:spin/mysql.connection": crate::wasm::spin_host::MysqlConnection,
            "spin:postgres/postgres.connection": crate::wasm::spin_host::PgConnection,
            "spin:postgres/postgres.connection-builder": crate::wasm::spin_host::PgConnectionBuilder,
            "wasi:keyvalue/store.bucket": crate::wasm::spin_host::KvStore,
            "wasi:keyvalue/atomics.cas": super::wasi_keyvalue::Cas,
        },
    });
}

/// The packages only WASIp3 components import (their functions are
/// `async`, so they link only where the engine has concurrency support):
/// `wit-p3/`, linked by [`add_p3_to_linker`].
mod bindings_p3 {
    wasmtime::component::bindgen!({
        path: "src/wasm/spin_host/wit-p3",
        world: "wasmhost:spin-p3/platform",
        // Their synchronous functions run as the 2.0.0 ones do: `async` on
        // the host, on the guest's fiber.
        imports: {
            default: async,
            "spin:postgres/postgres.[constructor]connection-builder": async | trappable,
        },
        with: {
            "spin:sqlite/sqlite.connection": crate::wasm::spin_host::SqliteConnection,
            "spin:postgres/postgres.connection": crate::wasm::spin_host::PgConnection,
            "spin:postgres/postgres.connection-builder": crate::wasm::spin_host::PgConnectionBuilder,
            "spin:redis/redis.connection": crate::wasm::spin_host::RedisConnection,
            "spin:mqtt/mqtt.connection": crate::wasm::spin_host::MqttConnection,
        },
    });
}

/// An open key-value store (Spin's `store`, wasi:keyvalue's `bucket`): the
/// label the guest opened.
pub struct KvStore {
    pub(crate) label: String,
}

/// A component's variables, rendered at start-up: what
/// `variables::get(name)` answers.
pub type Variables = Arc<BTreeMap<String, String>>;

/// Adds the Spin platform's WASI 0.2 interfaces to `linker`.
pub fn add_to_linker(linker: &mut Linker<GuestState>) -> anyhow::Result<()> {
    use bindings::fermyon::spin as v2;
    fn state(state: &mut GuestState) -> &mut GuestState {
        state
    }
    v2::variables::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, state)?;
    v2::key_value::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, state)?;
    v2::sqlite::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, state)?;
    v2::llm::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, state)?;
    v2::redis::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, state)?;
    v2::mqtt::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, state)?;
    v2::rdbms_types::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, state)?;
    v2::postgres::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, state)?;
    v2::mysql::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, state)?;
    bindings::spin::sqlite::sqlite::add_to_linker::<GuestState, HasSelf<GuestState>>(
        linker, state,
    )?;
    bindings::spin::postgres3_0_0::postgres::add_to_linker::<GuestState, HasSelf<GuestState>>(
        linker, state,
    )?;
    bindings::spin::postgres4_1_0::postgres::add_to_linker::<GuestState, HasSelf<GuestState>>(
        linker, state,
    )?;
    bindings::wasi::keyvalue::store::add_to_linker::<GuestState, HasSelf<GuestState>>(
        linker, state,
    )?;
    bindings::wasi::keyvalue::atomics::add_to_linker::<GuestState, HasSelf<GuestState>>(
        linker, state,
    )?;
    bindings::wasi::keyvalue::batch::add_to_linker::<GuestState, HasSelf<GuestState>>(
        linker, state,
    )?;
    bindings::wasi::config::store::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, state)?;
    http_v1::add_to_linker(linker)?;
    Ok(())
}
