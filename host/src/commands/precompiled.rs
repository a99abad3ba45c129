//! `serve REF`'s use of precompiled code from a registry: whether the
//! operator trusts the registry (`--trust-precompiled`), and, when the
//! compile cache has nothing for the component, finding code for this
//! engine ([`crate::oci::precompiled::find`]) and adopting it into the
//! cache, where loading then picks it up. Anything short of that is a log
//! line saying why, and the component is compiled as usual.
//!
//! Here because it is the one place that knows both the registry side
//! (`oci/`) and the engine side (`wasm/`).

use oci_client::Reference;

use crate::oci::precompiled::{self, Found, Wanted};
use crate::oci::pull::Pulled;
use crate::oci::registry::RegistryOptions;
use crate::oci::store::{digest_of, ContentStore};
use crate::wasm::cache::CompileCache;
use crate::wasm::engine::Runtime;
use crate::wasm::engine_key::EngineKey;
use crate::wasm::load::ComponentBytes;

/// The registries (or repositories) whose precompiled code the operator
/// trusts: `REGISTRY` (`ghcr.io`, `127.0.0.1:5000`) or
/// `REGISTRY/REPOSITORY-PREFIX` (`ghcr.io/team`).
#[derive(Debug, Clone, Default)]
pub struct Trusted(pub Vec<String>);

impl Trusted {
    /// Whether `reference` lies under one of the trusted names.
    pub fn covers(&self, reference: &Reference) -> bool {
        let path = format!("{}/{}", reference.registry(), reference.repository());
        self.0.iter().any(|name| {
            let name = name.trim_end_matches('/');
            name == reference.registry()
                || path == name
                || path
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// Where a pulled component came from, for [`adopt`].
pub struct Origin<'a> {
    /// The reference as pulled.
    pub reference: &'a Reference,
    /// What the pull found.
    pub pulled: &'a Pulled,
    /// The content store the code's blob goes to.
    pub store: &'a ContentStore,
    /// How to reach the registry.
    pub options: &'a RegistryOptions,
}

/// Puts the registry's precompiled code for `prepared` into `cache` when
/// the registry is trusted, the cache has no entry yet, and the code is
/// tied to the component and made for `runtime`'s engine. Never fails:
/// every reason not to use it is logged, and the caller compiles.
pub async fn adopt(
    origin: &Origin<'_>,
    trusted: &Trusted,
    runtime: &Runtime,
    prepared: &ComponentBytes,
    cache: &CompileCache,
) {
    let name = origin.reference.whole();
    if cache.contains(&runtime.engine, &prepared.bytes) {
        return;
    }
    if !trusted.covers(origin.reference) {
        // Quiet for the operator who never asked for precompiled code.
        let why = format!(
            "precompiled code for `{name}` not looked for: `{}` is not named by \
             --trust-precompiled; compiling",
            origin.reference.registry()
        );
        if trusted.0.is_empty() {
            tracing::debug!("{why}");
        } else {
            tracing::info!("{why}");
        }
        return;
    }
    let key = EngineKey::of(&runtime.engine);
    let compiled_from = digest_of(&prepared.bytes);
    let wanted = Wanted {
        engine_key: key.as_str(),
        compiled_from: &compiled_from,
    };
    let found = precompiled::find(
        origin.reference,
        origin.pulled,
        &wanted,
        origin.store,
        origin.options,
    )
    .await;
    match found {
        Ok(Found::Code(code)) => match cache.adopt(&runtime.engine, &prepared.bytes, &code) {
            Ok(()) => tracing::info!(
                "using precompiled code for `{name}` from its registry (engine key {key})"
            ),
            Err(e) => tracing::warn!("precompiled code for `{name}` not used ({e:#}); compiling"),
        },
        Ok(Found::Nothing(why)) => {
            tracing::info!("precompiled code for `{name}` not used: {why}; compiling")
        }
        Err(e) => tracing::warn!("precompiled code for `{name}` refused: {e:#}; compiling"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_covers_a_registry_or_a_repository_prefix_and_nothing_else() {
        let trusted = Trusted(vec!["127.0.0.1:5000".into(), "ghcr.io/team/".into()]);
        let covered = |text: &str| trusted.covers(&text.parse().unwrap());
        assert!(covered("127.0.0.1:5000/hello:1"));
        assert!(covered("ghcr.io/team/hello:1"));
        assert!(covered("ghcr.io/team/sub/hello:1"));
        assert!(!covered("ghcr.io/teammate/hello:1"));
        assert!(!covered("ghcr.io/other/hello:1"));
        assert!(!covered("127.0.0.1:5001/hello:1"));
    }
}
