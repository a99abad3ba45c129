//! The todo API of examples/migration, written once and served two ways: by
//! `todo-native` (a static Linux binary for a container) and by `todo-wasm`
//! (a `wasi:http` component). Everything a client can observe — routes,
//! status codes, JSON bytes — is decided here, so the two forms cannot drift
//! apart; the transports only move bytes and supply a [`Storage`].
//!
//! Layout:
//! - [`route`]: which action a method and path ask for (pure, no storage).
//! - [`todo`]: the todo record and the request bodies that create or change one.
//! - [`storage`]: the key-value interface, and an in-memory one for tests.
//! - [`dir_storage`]: the interface as a directory, one file per key, which
//!   both forms use (and may share).
//! - [`reply`]: the transport-neutral response.
//! - [`api`]: [`handle`], which ties them together.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod dir_storage;
pub mod reply;
pub mod route;
pub mod storage;
pub mod todo;

pub use api::{handle, MAX_BODY_BYTES};
pub use dir_storage::DirStorage;
pub use reply::Reply;
pub use storage::{MemoryStorage, Storage};
pub use todo::Todo;
