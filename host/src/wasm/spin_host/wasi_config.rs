//! `wasi:config/store@0.2.0-draft-2024-09-27` over the component's Spin
//! variables: the same names, the same values (as Spin serves it).

use super::bindings::wasi::config::store;
use crate::wasm::state::GuestState;

impl store::Host for GuestState {
    /// A name that is not a variable name is simply not there (`none`), as
    /// Spin answers (the guidance of wasi-runtime-config#19).
    fn get(&mut self, key: String) -> Result<Option<String>, store::Error> {
        Ok(self.variables().get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, store::Error> {
        Ok(self
            .variables()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
