//! What the host gives guests beyond WASI, independent of the engine that
//! runs them: `app/` configures these from the manifest, `wasm/` binds
//! them to the guest's interfaces.
//!
//! - [`key_value`]: the app's key-value stores, in one database file or
//!   in Redis ([`key_value_redis`], shared by replicas).
//! - [`sqlite`]: the app's SQLite databases (embedded).
//! - [`postgres`]: outbound PostgreSQL clients and value conversions;
//!   [`postgres_types`] the types tokio-postgres does not convert itself
//!   (numeric, ranges, interval).
//! - [`mysql`]: outbound MySQL connection pools and value conversions.
//! - [`rdbms`]: the result and error shape both share.
//! - [`llm`]: which models a component may use, and the remote backend.
//! - [`outbound`]: a component's `allowed_outbound_hosts`.
//! - [`client_tls`]: the CA roots and client certificates of outbound TLS
//!   (HTTPS, PostgreSQL), per component and host (`[[client_tls]]`).
//! - [`variables`]: Spin's variable names.
//! - [`chaining`]: a component's way back into its own app
//!   (`http://self`, `<id>.spin.internal`).

pub mod chaining;
pub mod client_tls;
pub mod key_value;
pub mod key_value_redis;
pub mod llm;
pub mod mysql;
pub mod outbound;
pub mod postgres;
pub mod postgres_types;
pub mod rdbms;
pub mod sqlite;
pub mod variables;
