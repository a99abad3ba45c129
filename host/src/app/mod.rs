//! A Spin application as the host sees it before anything runs: the
//! manifest, read and checked once, so every later stage can trust it.
//!
//! - [`manifest`]: `spin.toml` (Spin manifest v2) into plain values, with
//!   errors that name the file and the key the user wrote.
//! - [`assemble`]: from the manifest to the backend that serves it.
//! - [`files`]: a component's `files`, staged for read-only mounting.
//! - [`image`]: an app as a container image's files, for the containerd shim.
//! - [`manifest_v1`]: Spin manifest v1, converted to v2 as Spin does.
//! - [`pack`]: the app in Spin's registry format, to push.
//! - [`runtime_config`]: `--runtime-config-file` (where key-value stores live).
//! - [`sources`]: `{ url, digest }` sources, downloaded and verified once.
//! - [`variables`]: application variables and component templates.

pub mod assemble;
pub mod files;
pub mod image;
pub mod manifest;
pub mod manifest_v1;
pub mod pack;
pub mod runtime_config;
pub mod sources;
pub mod variables;
