//! `fermyon:spin/variables@2.0.0`: a component's variables, rendered at
//! start-up.

use super::bindings::fermyon::spin::variables;
use crate::wasm::state::GuestState;

impl variables::Host for GuestState {
    fn get(&mut self, name: String) -> Result<String, variables::Error> {
        if !crate::services::variables::is_valid_name(&name) {
            return Err(variables::Error::InvalidName(format!(
                "`{name}` is not a variable name: use lowercase letters, digits and `_`, starting with a letter"
            )));
        }
        self.variables().get(&name).cloned().ok_or_else(|| {
            variables::Error::Undefined(format!("no variable `{name}` for this component"))
        })
    }
}
