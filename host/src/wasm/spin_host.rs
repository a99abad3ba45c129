//! The Spin host interfaces that unmodified Spin SDK components import,
//! under the exact package names the SDK uses (spin-sdk 5.2:
//! `fermyon:spin/variables@2.0.0`). The WIT below restates the interface
//! the SDK's own WIT declares; the implementation is ours.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::state::GuestState;

mod generated {
    wasmtime::component::bindgen!({
        inline: "
            package fermyon:spin@2.0.0;

            interface variables {
                get: func(name: string) -> result<string, error>;

                variant error {
                    invalid-name(string),
                    undefined(string),
                    provider(string),
                    other(string),
                }
            }

            world host {
                import variables;
            }
        ",
        world: "fermyon:spin/host",
    });
}

use generated::fermyon::spin::variables;

/// A component's variables, rendered at start-up: what
/// `variables::get(name)` answers.
pub type Variables = Arc<BTreeMap<String, String>>;

/// Adds the Spin interfaces to `linker`.
pub fn add_to_linker(linker: &mut Linker<GuestState>) -> anyhow::Result<()> {
    variables::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    Ok(())
}

impl variables::Host for GuestState {
    fn get(&mut self, name: String) -> Result<String, variables::Error> {
        if !crate::app::variables::is_valid_name(&name) {
            return Err(variables::Error::InvalidName(format!(
                "`{name}` is not a variable name: use lowercase letters, digits and `_`, starting with a letter"
            )));
        }
        self.variables().get(&name).cloned().ok_or_else(|| {
            variables::Error::Undefined(format!("no variable `{name}` for this component"))
        })
    }
}
