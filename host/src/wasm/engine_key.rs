//! [`EngineKey`]: which engine configuration compiled code is for, stable
//! across builds and machines, so it can name compile-cache entries and
//! label compiled code pushed to a registry.
//!
//! wasmtime's `Engine::precompile_compatibility_hash` covers everything that
//! changes generated code: wasmtime's version, the target triple, the CPU
//! features detected (or configured), the compiler flags, the tunables and
//! the wasm features. It is a `Hash` impl, not a number: fed to
//! `DefaultHasher` its value may change with the Rust release that built
//! wasmhost. Fed to SHA-256 it is a name two builds (and two machines with
//! the same CPU features) agree on.

use std::fmt;
use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};
use wasmtime::Engine;

/// A SHA-256 over the engine's compatibility hash, in hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EngineKey(String);

impl EngineKey {
    /// The key of code `engine` compiles.
    pub fn of(engine: &Engine) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self(hex::encode(hasher.0.finalize()))
    }

    /// The key as written (64 hex digits).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EngineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `Hasher` that feeds SHA-256: the bytes a `Hash` impl writes, in order.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Unused: the digest is read from the SHA-256 state itself.
    fn finish(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_engines_with_the_same_settings_have_the_same_key() {
        let a = Engine::new(&wasmtime::Config::new()).unwrap();
        let b = Engine::new(&wasmtime::Config::new()).unwrap();
        assert_eq!(EngineKey::of(&a), EngineKey::of(&b));
        assert_eq!(EngineKey::of(&a).as_str().len(), 64);
    }

    #[test]
    fn a_setting_that_changes_code_changes_the_key() {
        let plain = Engine::new(&wasmtime::Config::new()).unwrap();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let with_epochs = Engine::new(&config).unwrap();
        assert_ne!(EngineKey::of(&plain), EngineKey::of(&with_epochs));
    }
}
