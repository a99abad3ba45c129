//! `serve REF`'s use of precompiled code from a registry: whether the
//! operator trusts the registry (`--trust-precompiled`), and, for each
//! component (of a lone component or of a Spin app) the compile cache has
//! nothing for, finding code for this engine
//! ([`crate::oci::precompiled::find`]) and adopting it into the cache,
//! where loading then picks it up; with `--precompiled-signer`, only code
//! whose referrer a named key signed. Anything short of that is a log line
//! saying why, and that component is compiled as usual.
//!
//! Here because it is the one place that knows both the registry side
//! (`oci/`) and the engine side (`wasm/`).

use std::collections::BTreeMap;

use oci_client::Reference;

use crate::oci::component;
use crate::oci::precompiled::{self, Found, Wanted};
use crate::oci::pull::Pulled;
use crate::oci::registry::RegistryOptions;
use crate::oci::signature::PublicKey;
use crate::oci::spin_app;
use crate::oci::store::{digest_of, ContentStore};
use crate::wasm::cache::CompileCache;
use crate::wasm::engine::Runtime;
use crate::wasm::engine_key::EngineKey;
use crate::wasm::load::{self, ComponentBytes, HandlerKind};
use crate::wasm::ComponentOptions;

/// Whose precompiled code the operator trusts.
#[derive(Debug, Clone, Default)]
pub struct Trusted {
    /// The registries (or repositories) it may come from: `REGISTRY`
    /// (`ghcr.io`, `127.0.0.1:5000`) or `REGISTRY/REPOSITORY-PREFIX`
    /// (`ghcr.io/team`). Alone, trust in everyone who can push there.
    pub registries: Vec<String>,
    /// Keys one of which must have signed it (`--precompiled-signer`),
    /// narrowing that trust to the holders of these keys; none: unsigned
    /// code from a trusted registry is used.
    pub signers: Vec<PublicKey>,
}

impl Trusted {
    /// Whether `reference` lies under one of the trusted names.
    pub fn covers(&self, reference: &Reference) -> bool {
        let path = format!("{}/{}", reference.registry(), reference.repository());
        self.registries.iter().any(|name| {
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

/// One component layer about to be loaded, as [`adopt_all`] needs it.
struct Candidate<'a> {
    /// How log lines name it, quoted.
    label: String,
    /// The digest of its layer in the pulled manifest.
    layer_digest: String,
    /// What this node compiles from it.
    prepared: &'a ComponentBytes,
}

/// Puts the registry's precompiled code for the pulled component,
/// `prepared`, into `cache` when the registry is trusted, the cache has no
/// entry yet, and the code is tied to the component and made for
/// `runtime`'s engine. Never fails: every reason not to use it is logged,
/// and the caller compiles.
pub async fn adopt(
    origin: &Origin<'_>,
    trusted: &Trusted,
    runtime: &Runtime,
    prepared: &ComponentBytes,
    cache: &CompileCache,
) {
    if cache.contains(&runtime.engine, &prepared.bytes) || !is_trusted(origin, trusted) {
        return;
    }
    let name = origin.reference.whole();
    let layer_digest = match component::wasm_layer(&origin.pulled.layers) {
        Ok(layer) => layer.digest.clone(),
        Err(e) => {
            tracing::warn!("precompiled code for `{name}` not looked for: {e:#}; compiling");
            return;
        }
    };
    let candidate = Candidate {
        label: format!("`{name}`"),
        layer_digest,
        prepared,
    };
    adopt_all(origin, trusted, runtime, &[candidate], cache).await;
}

/// [`adopt`] for each Wasm component of a pulled Spin app, before the app
/// is assembled: the components are prepared as loading will prepare them
/// and the code is checked against the engine the app will be loaded
/// with (one for the whole app, as `app::assemble` builds it).
pub async fn adopt_app(origin: &Origin<'_>, trusted: &Trusted, options: &ComponentOptions) {
    if !is_trusted(origin, trusted) {
        return;
    }
    let name = origin.reference.whole();
    let pulled = origin.pulled;
    let locked = match spin_app::locked_app(origin.store, &pulled.config, &pulled.layers) {
        Ok(locked) => locked,
        Err(e) => {
            tracing::warn!("precompiled code for `{name}` not looked for: {e:#}; compiling");
            return;
        }
    };
    // Components sharing one layer share its code.
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &locked.components {
        if let Some(digest) = &c.source.content.digest {
            ids.entry(digest.clone()).or_default().push(c.id.clone());
        }
    }
    let mut prepared = Vec::new();
    for (digest, ids) in ids {
        let label = format!("component `{}` of `{name}`", ids.join("`, `"));
        let bytes = origin
            .store
            .blob_path(&digest)
            .map_err(anyhow::Error::from)
            .and_then(|path| load::read_component(&path).map_err(anyhow::Error::from));
        match bytes {
            Ok(bytes) => prepared.push((label, digest, bytes)),
            // WAGI programs are not loaded as components; anything else
            // fails again, with its error, when the app is loaded.
            Err(e) => tracing::debug!("precompiled code for {label} not looked for: {e:#}"),
        }
    }
    let concurrency = prepared
        .iter()
        .any(|(_, _, bytes)| bytes.kind == HandlerKind::P3);
    let runtime = match Runtime::new(&options.engine_settings(concurrency)) {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!("precompiled code for `{name}` not looked for: {e:#}; compiling");
            return;
        }
    };
    let candidates: Vec<Candidate> = prepared
        .iter()
        .map(|(label, digest, bytes)| Candidate {
            label: label.clone(),
            layer_digest: digest.clone(),
            prepared: bytes,
        })
        .collect();
    adopt_all(origin, trusted, &runtime, &candidates, &options.cache).await;
}

/// Whether the operator trusts `origin`'s registry; says why not.
fn is_trusted(origin: &Origin<'_>, trusted: &Trusted) -> bool {
    if trusted.covers(origin.reference) {
        return true;
    }
    // Quiet for the operator who never asked for precompiled code.
    let why = format!(
        "precompiled code for `{}` not looked for: `{}` is not named by \
         --trust-precompiled; compiling",
        origin.reference.whole(),
        origin.reference.registry()
    );
    if trusted.registries.is_empty() {
        tracing::debug!("{why}");
    } else {
        tracing::info!("{why}");
    }
    false
}

/// Finds and adopts the code of every candidate the cache lacks; logs each
/// outcome.
async fn adopt_all(
    origin: &Origin<'_>,
    trusted: &Trusted,
    runtime: &Runtime,
    candidates: &[Candidate<'_>],
    cache: &CompileCache,
) {
    let name = origin.reference.whole();
    let missing: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| !cache.contains(&runtime.engine, &c.prepared.bytes))
        .collect();
    if missing.is_empty() {
        return;
    }
    let key = EngineKey::of(&runtime.engine);
    let wanted = Wanted {
        engine_key: key.as_str(),
        compiled_from: missing
            .iter()
            .map(|c| (c.layer_digest.clone(), digest_of(&c.prepared.bytes)))
            .collect(),
        signers: &trusted.signers,
    };
    let found = precompiled::find(
        origin.reference,
        origin.pulled,
        &wanted,
        origin.store,
        origin.options,
    )
    .await;
    let (mut code, signer) = match found {
        Ok(Found::Code { code, signer }) => (code, signer),
        Ok(Found::Nothing(why)) => {
            tracing::info!("precompiled code for `{name}` not used: {why}; compiling");
            return;
        }
        Err(e) => {
            tracing::warn!("precompiled code for `{name}` refused: {e:#}; compiling");
            return;
        }
    };
    let signed = match &signer {
        Some(signer) => format!(", signed by `{signer}`"),
        None => String::new(),
    };
    for candidate in missing {
        let label = &candidate.label;
        match code.remove(&candidate.layer_digest) {
            Some(Ok(bytes)) => {
                match cache.adopt(&runtime.engine, &candidate.prepared.bytes, &bytes) {
                    Ok(()) => tracing::info!(
                        "using precompiled code for {label} from its registry (engine key \
                         {key}{signed})"
                    ),
                    Err(e) => {
                        tracing::warn!("precompiled code for {label} not used ({e:#}); compiling")
                    }
                }
            }
            Some(Err(e)) => {
                tracing::warn!("precompiled code for {label} refused: {e:#}; compiling")
            }
            // `find` answers for every wanted layer; nothing to adopt.
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_covers_a_registry_or_a_repository_prefix_and_nothing_else() {
        let trusted = Trusted {
            registries: vec!["127.0.0.1:5000".into(), "ghcr.io/team/".into()],
            signers: Vec::new(),
        };
        let covered = |text: &str| trusted.covers(&text.parse().unwrap());
        assert!(covered("127.0.0.1:5000/hello:1"));
        assert!(covered("ghcr.io/team/hello:1"));
        assert!(covered("ghcr.io/team/sub/hello:1"));
        assert!(!covered("ghcr.io/teammate/hello:1"));
        assert!(!covered("ghcr.io/other/hello:1"));
        assert!(!covered("127.0.0.1:5001/hello:1"));
    }
}
