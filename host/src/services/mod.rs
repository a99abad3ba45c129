//! What the host gives guests beyond WASI, independent of the engine that
//! runs them: `app/` configures these from the manifest, `wasm/` binds
//! them to the guest's interfaces.
//!
//! - [`key_value`]: the app's key-value stores, in one database file.
//! - [`outbound`]: a component's `allowed_outbound_hosts`.
//! - [`variables`]: Spin's variable names.
//! - [`chaining`]: a component's way back into its own app
//!   (`http://self`, `<id>.spin.internal`).

pub mod chaining;
pub mod key_value;
pub mod outbound;
pub mod variables;
