//! The component's Spin variables: `[component.<id>.variables]` in the
//! manifest, rendered over the application's `[variables]` (which the user
//! may override with `--variable` or `SPIN_VARIABLE_<NAME>`).
//!
//! ```ignore
//! let upstream = wasmhost_sdk::variables::get("upstream_url")?;
//! ```

use std::fmt;

use crate::spin::fermyon::spin::variables as raw;

/// Why a variable could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableError {
    /// Not a valid name (lowercase letters, digits and `_`).
    InvalidName(String),
    /// The component declares no such variable.
    Undefined(String),
    /// The value's provider failed.
    Provider(String),
    /// Anything else.
    Other(String),
}

impl fmt::Display for VariableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VariableError::InvalidName(m) => write!(f, "invalid variable name: {m}"),
            VariableError::Undefined(m) => write!(f, "undefined variable: {m}"),
            VariableError::Provider(m) => write!(f, "variable provider error: {m}"),
            VariableError::Other(m) => write!(f, "variable error: {m}"),
        }
    }
}

impl std::error::Error for VariableError {}

/// The value of the component variable `name`.
pub fn get(name: &str) -> Result<String, VariableError> {
    raw::get(name).map_err(|e| match e {
        raw::Error::InvalidName(m) => VariableError::InvalidName(m),
        raw::Error::Undefined(m) => VariableError::Undefined(m),
        raw::Error::Provider(m) => VariableError::Provider(m),
        raw::Error::Other(m) => VariableError::Other(m),
    })
}
