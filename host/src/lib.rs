//! wasmhost: serve HTTP from WebAssembly components (and, later, native
//! containers) behind one front door.
//!
//! # Layout
//!
//! - [`commands`]: one struct per CLI subcommand; `main.rs` only parses.
//! - [`frontdoor`]: the listener, HTTP/1.1 + HTTP/2, request limits,
//!   graceful drain.
//! - [`backend`]: the one trait every kind of workload implements.
//! - [`wasm`]: the wasmtime engine, component loading, the compile cache and
//!   the component backend.
//! - [`router`]: Spin's HTTP route table and `spin-*` request headers, pure
//!   and not yet wired into the server.
//! - [`shutdown`]: shutdown as a value handed to the server.
//! - [`limits`]: every default limit, with why.

pub mod backend;
pub mod commands;
pub mod frontdoor;
pub mod limits;
pub mod router;
pub mod shutdown;
pub mod wasm;
