//! A Spin application as the host sees it before anything runs: the
//! manifest, read and checked once, so every later stage can trust it.
//!
//! - [`manifest`]: `spin.toml` (Spin manifest v2) into plain values, with
//!   errors that name the file and the key the user wrote.
//! - [`assemble`]: from the manifest to the backend that serves it.
//! - [`files`]: a component's `files`, staged for read-only mounting.
//! - [`key_value`]: the app's key-value stores, in one database file.
//! - [`key_value_redis`]: a key-value store in Redis, shared by replicas.
//! - [`llm`]: which models a component may use, and the remote backend.
//! - [`manifest_v1`]: Spin manifest v1, converted to v2 as Spin does.
//! - [`outbound`]: a component's `allowed_outbound_hosts`.
//! - [`postgres`]: outbound PostgreSQL clients and value conversions.
//! - [`runtime_config`]: `--runtime-config-file` (where key-value stores live).
//! - [`sqlite`]: the app's SQLite databases (embedded).
//! - [`sources`]: `{ url, digest }` sources, downloaded and verified once.
//! - [`variables`]: application variables and component templates.

pub mod assemble;
pub mod files;
pub mod key_value;
pub mod key_value_redis;
pub mod llm;
pub mod manifest;
pub mod manifest_v1;
pub mod outbound;
pub mod postgres;
pub mod runtime_config;
pub mod sources;
pub mod sqlite;
pub mod variables;
