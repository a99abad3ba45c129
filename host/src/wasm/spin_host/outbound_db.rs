//! Outbound MySQL: linked so every Spin
//! component instantiates, checked against `allowed_outbound_hosts` with
//! Spin's errors, and (for now) refused with an error naming what is
//! missing once allowed: wasmhost does not yet speak these protocols. A
//! guest gets an error value, never a trap.

use wasmtime::component::Resource;

use super::bindings::fermyon::spin::{mysql, rdbms_types};
use crate::wasm::state::GuestState;

/// A connection that can never be opened (see the module doc); the
/// resource type the bindings need.
pub struct Unconnected;

fn unsupported(protocol: &str) -> String {
    format!("wasmhost does not support outbound {protocol} connections yet")
}

fn never() -> String {
    "no such connection".to_owned()
}

/// Whether `address` (`scheme://[user[:password]@]host[:port][/...]`) is
/// allowed, with the scheme's default port when it gives none.
fn allowed(state: &GuestState, address: &str) -> bool {
    state.outbound_allows_address(address)
}

impl rdbms_types::Host for GuestState {}

/// MySQL's interface (its body kept generic for the `spin:mysql@3.0.0`
/// that Spin SDK 7 imports).
macro_rules! rdbms {
    ($m:ident, $error:path, $protocol:literal, $execute:ty) => {
        impl $m::HostConnection for GuestState {
            async fn open(&mut self, address: String) -> Result<Resource<Unconnected>, $error> {
                use $error as E;
                if !allowed(self, &address) {
                    return Err(E::ConnectionFailed(format!(
                        "address {address} is not permitted"
                    )));
                }
                Err(E::ConnectionFailed(unsupported($protocol)))
            }
            async fn query(
                &mut self,
                _: Resource<Unconnected>,
                _: String,
                _: Vec<$m::ParameterValue>,
            ) -> Result<$m::RowSet, $error> {
                use $error as E;
                Err(E::Other(never()))
            }
            async fn execute(
                &mut self,
                _: Resource<Unconnected>,
                _: String,
                _: Vec<$m::ParameterValue>,
            ) -> Result<$execute, $error> {
                use $error as E;
                Err(E::Other(never()))
            }
            async fn drop(&mut self, _: Resource<Unconnected>) -> wasmtime::Result<()> {
                Ok(())
            }
        }
    };
}

impl mysql::Host for GuestState {}
rdbms!(mysql, rdbms_types::Error, "MySQL", ());
