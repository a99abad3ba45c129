//! The todo API of examples/migration as a native Linux server, meant to be
//! built statically (see `../build-native.sh`) and run in a container. The
//! API and its storage (a directory, `todo_core::DirStorage`) are
//! `todo-core`'s; this crate supplies HTTP.
//!
//! Layout:
//! - [`config`]: settings from the environment, checked before anything
//!   binds a port.
//! - [`server`]: the accept loop, connections and requests; it is handed its
//!   listener and its shutdown signal.
//! - [`shutdown`]: the signals that stop a container.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod server;
pub mod shutdown;
