//! Compiled code that travels with a component or a Spin app: an OCI
//! referrer of its manifest, holding the native code one engine
//! configuration compiled from its Wasm, so a node that has never seen it
//! loads instead of compiling.
//!
//! The referrer is an artifact manifest (`artifactType` [`ARTIFACT_TYPE`],
//! the empty config, one [`CODE_LAYER`] layer per component) whose
//! `subject` is the component's (or app's) manifest, annotated with the
//! engine key it is for. Each code layer is tied to the component layer it
//! was compiled from and to the digest of the exact bytes compiled
//! (wasmhost compiles what it prepared from the layer: a wasip1 module
//! wrapped as a component, say): by annotations on the layer, or, for a
//! referrer with one code layer (what a component gets, and all earlier
//! versions wrote), on the manifest. Referrers are listed under the OCI 1.1
//! referrers tag schema (`<repo>:sha256-<hex of the subject>`, an index),
//! which every registry accepts, with or without the referrers API.
//!
//! Loading it is loading native code: [`find`] only says what the
//! registry offers and checks that each code layer is tied, by digests, to
//! a component layer being served and made for this engine, and, when the
//! caller names signers, that the referrer manifest is signed by one of
//! them ([`super::signature`]). Whether to look at all (which registries
//! are trusted, which signers) is the caller's decision; the
//! code's bytes are checked against their digest by the content store, and
//! wasmtime checks its header against the engine when it is loaded.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _, Result};
use oci_client::Reference;
use serde::{Deserialize, Serialize};

use super::media::{Descriptor, OCI_INDEX, OCI_MANIFEST};
use super::progress::Progress;
use super::pull::Pulled;
use super::registry::{NotFound, Registry, RegistryOptions};
use super::signature::{self, PublicKey};
use super::store::{digest_of, ContentStore};

/// The referrer's `artifactType`.
pub const ARTIFACT_TYPE: &str = "application/vnd.wasmhost.precompiled.v1";
/// The layer holding the compiled code (wasmtime's `.cwasm`).
pub const CODE_LAYER: &str = "application/vnd.wasmhost.cwasm.v1";
/// The OCI empty config (`{}`), for artifacts that need none.
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// Annotation: the engine key (`wasm/engine_key.rs`) the code is for.
pub const ENGINE_KEY: &str = "dev.wasmhost.precompiled.engine-key";
/// Annotation: the digest of the component layer the code was compiled from.
pub const COMPONENT_DIGEST: &str = "dev.wasmhost.precompiled.component-digest";
/// Annotation: the digest of the bytes compiled (the layer as wasmhost
/// prepares it for loading).
pub const COMPILED_FROM: &str = "dev.wasmhost.precompiled.compiled-from";
/// Annotation: the wasmtime version that compiled it, for people.
pub const WASMTIME: &str = "dev.wasmhost.precompiled.wasmtime";

/// The compiled code of one component layer.
pub struct Code {
    /// wasmtime's serialized component.
    pub bytes: Vec<u8>,
    /// The digest of the component layer it was compiled from.
    pub component_digest: String,
    /// The digest of the bytes compiled (the layer as prepared for loading).
    pub compiled_from: String,
}

/// Everything one engine compiled from a pushed component or app: one
/// referrer.
pub struct Compiled<'a> {
    /// One entry per component layer.
    pub code: Vec<Code>,
    /// The engine key it is for.
    pub engine_key: &'a str,
    /// wasmtime's version.
    pub wasmtime: &'a str,
}

/// The component or app manifest the code is attached to.
pub struct Subject<'a> {
    /// Its digest.
    pub digest: &'a str,
    /// Its size in bytes.
    pub size: u64,
}

/// What the code must match to be used on this node.
pub struct Wanted<'a> {
    /// This node's engine key.
    pub engine_key: &'a str,
    /// For each component layer being served (by digest), the digest of
    /// the bytes this node would compile from it.
    pub compiled_from: BTreeMap<String, String>,
    /// Keys one of which must have signed the referrer manifest (cosign's
    /// format, [`super::signature`]); none: no signature is needed.
    pub signers: &'a [PublicKey],
}

/// What [`find`] found.
pub enum Found {
    /// The referrer for this engine, tied to the manifest (and signed,
    /// when signers are wanted).
    Code {
        /// For each wanted component layer (by digest), its code, or why
        /// none of the referrer's code is used for it.
        code: BTreeMap<String, Result<Vec<u8>>>,
        /// The named signer whose signature was checked, if any was wanted.
        signer: Option<String>,
    },
    /// Nothing usable was offered, and why (not an error: then compile).
    Nothing(String),
}

/// A manifest or index entry as referrers need it: `artifactType` and the
/// annotations, which [`Descriptor`] does not carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The parts of a referrer manifest that are checked.
#[derive(Debug, Deserialize)]
struct Referrer {
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    subject: Option<Descriptor>,
    layers: Vec<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Pushes `compiled` as a referrer of `subject` in `reference`'s
/// repository and lists it under the referrers tag (replacing an earlier
/// entry for the same engine key). Returns the referrer manifest's digest.
pub async fn push(
    reference: &Reference,
    subject: &Subject<'_>,
    compiled: &Compiled<'_>,
    options: &RegistryOptions,
    progress: &Progress,
) -> Result<String> {
    if compiled.code.is_empty() {
        bail!("there is no compiled code to push");
    }
    let registry = Registry::for_reference(reference, options);
    registry.authenticate_push(reference).await?;
    let mut annotations = BTreeMap::from([
        (ENGINE_KEY.to_owned(), compiled.engine_key.to_owned()),
        (WASMTIME.to_owned(), compiled.wasmtime.to_owned()),
    ]);
    let mut layers = Vec::new();
    for code in &compiled.code {
        let mut layer = Descriptor::of(&code.bytes, CODE_LAYER);
        let bar = progress.blob(&layer.digest, layer.size);
        registry
            .push_blob(reference, &code.bytes, &layer.digest)
            .await?;
        bar.inc(layer.size);
        bar.finish();
        let ties = [
            (COMPONENT_DIGEST.to_owned(), code.component_digest.clone()),
            (COMPILED_FROM.to_owned(), code.compiled_from.clone()),
        ];
        // One code layer: tied on the manifest, as a component's always
        // was, so referrers pushed before apps had them read the same.
        if compiled.code.len() == 1 {
            annotations.extend(ties);
        } else {
            layer.annotations = Some(BTreeMap::from(ties));
        }
        layers.push(layer);
    }
    let config = Descriptor::of(b"{}", EMPTY_CONFIG);
    registry.push_blob(reference, b"{}", &config.digest).await?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": config,
        "layers": layers,
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.size },
        "annotations": annotations,
    }))?;
    let digest = digest_of(&manifest);
    let entry = Entry {
        media_type: OCI_MANIFEST.to_owned(),
        digest: digest.clone(),
        size: manifest.len() as u64,
        artifact_type: Some(ARTIFACT_TYPE.to_owned()),
        annotations,
    };
    registry
        .push_manifest(
            &reference.clone_with_digest(digest.clone()),
            manifest,
            OCI_MANIFEST,
        )
        .await
        .context("cannot push the precompiled code's manifest")?;
    let tag = referrers_tag(reference, subject.digest)?;
    let mut listed = listed(&registry, &tag).await?;
    listed.retain(|e| e.annotations.get(ENGINE_KEY) != Some(&entry.annotations[ENGINE_KEY]));
    listed.push(entry);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": listed,
    }))?;
    registry
        .push_manifest(&tag, index, OCI_INDEX)
        .await
        .context("cannot update the referrers tag")?;
    Ok(digest)
}

/// Looks for code for `wanted` attached to the pulled component or app,
/// and checks that it is tied to it: the referrer's subject is the pulled
/// manifest and it names this engine (else an error: a registry offering
/// code it cannot tie is worth a warning); then, for each wanted component
/// layer, that a code layer names it and the bytes this node would compile,
/// and that the code's bytes match their digest (else that component gets
/// the reason). With `wanted.signers`, the referrer must also carry a
/// cosign signature by one of them (else an error, before any code is
/// fetched). None offered for this engine is [`Found::Nothing`].
pub async fn find(
    reference: &Reference,
    pulled: &Pulled,
    wanted: &Wanted<'_>,
    store: &ContentStore,
    options: &RegistryOptions,
) -> Result<Found> {
    let registry = Registry::for_reference(reference, options);
    let tag = referrers_tag(reference, &pulled.manifest_digest)?;
    let listed = listed(&registry, &tag).await?;
    let ours: Vec<&Entry> = listed
        .iter()
        .filter(|e| e.artifact_type.as_deref() == Some(ARTIFACT_TYPE))
        .collect();
    if ours.is_empty() {
        return Ok(Found::Nothing(format!(
            "the {} was pushed without precompiled code",
            pulled.kind.describe()
        )));
    }
    let Some(entry) = ours
        .iter()
        .find(|e| e.annotations.get(ENGINE_KEY).map(String::as_str) == Some(wanted.engine_key))
    else {
        let keys: Vec<&str> = ours
            .iter()
            .filter_map(|e| e.annotations.get(ENGINE_KEY).map(String::as_str))
            .collect();
        return Ok(Found::Nothing(format!(
            "no precompiled code for this engine (key {}); the registry has it for {}",
            wanted.engine_key,
            keys.join(", ")
        )));
    };
    let (bytes, _) = registry
        .manifest(&reference.clone_with_digest(entry.digest.clone()))
        .await
        .with_context(|| {
            format!(
                "cannot fetch the precompiled code's manifest {}",
                entry.digest
            )
        })?;
    if digest_of(&bytes) != entry.digest {
        bail!(
            "the registry answered {} with other bytes than its digest",
            entry.digest
        );
    }
    let referrer: Referrer = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a manifest", entry.digest))?;
    check(&referrer, pulled, wanted)
        .with_context(|| format!("precompiled code {} refused", entry.digest))?;
    // Signed or not, it is the digest of the bytes just checked that the
    // signature must name.
    let signer = match wanted.signers {
        [] => None,
        signers => {
            let signer = signature::verify(reference, &entry.digest, signers, store, options)
                .await
                .with_context(|| {
                    format!(
                        "precompiled code {} refused: a --precompiled-signer must have signed it",
                        entry.digest
                    )
                })?;
            Some(signer.name.clone())
        }
    };
    let ties = ties(&referrer);
    let mut found = BTreeMap::new();
    for (component, compiled_from) in &wanted.compiled_from {
        let code = match tied_layer(&ties, component, compiled_from) {
            Ok(layer) => fetch_code(&registry, reference, layer, store).await,
            Err(e) => Err(e),
        };
        let code = code.with_context(|| format!("precompiled code {} refused", entry.digest));
        found.insert(component.clone(), code);
    }
    Ok(Found::Code {
        code: found,
        signer,
    })
}

/// The ties between the referrer as a whole and the pulled manifest.
fn check(referrer: &Referrer, pulled: &Pulled, wanted: &Wanted<'_>) -> Result<()> {
    if referrer.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        bail!("it is not wasmhost's precompiled code");
    }
    let subject = referrer.subject.as_ref().map(|s| s.digest.as_str());
    if subject != Some(pulled.manifest_digest.as_str()) {
        bail!(
            "it is attached to {}, not to the {}'s manifest {}",
            subject.unwrap_or("nothing"),
            pulled.kind.describe(),
            pulled.manifest_digest
        );
    }
    if referrer.annotations.get(ENGINE_KEY).map(String::as_str) != Some(wanted.engine_key) {
        bail!("its manifest names another engine than its index entry");
    }
    if referrer.layers.is_empty() {
        bail!("it holds no `{CODE_LAYER}` layer");
    }
    Ok(())
}

/// A code layer and what it says it was compiled from.
struct Tie<'a> {
    layer: &'a Descriptor,
    component: Option<&'a str>,
    compiled_from: Option<&'a str>,
}

/// Every layer of `referrer` with its ties: its own annotations, or the
/// manifest's when it is the only layer and has none.
fn ties(referrer: &Referrer) -> Vec<Tie<'_>> {
    let alone = referrer.layers.len() == 1;
    referrer
        .layers
        .iter()
        .map(|layer| {
            let own = layer
                .annotations
                .as_ref()
                .filter(|a| a.contains_key(COMPONENT_DIGEST));
            let annotations = match own {
                Some(own) => own,
                None if alone => &referrer.annotations,
                None => {
                    return Tie {
                        layer,
                        component: None,
                        compiled_from: None,
                    }
                }
            };
            Tie {
                layer,
                component: annotations.get(COMPONENT_DIGEST).map(String::as_str),
                compiled_from: annotations.get(COMPILED_FROM).map(String::as_str),
            }
        })
        .collect()
}

/// The code layer tied to `component`, checked against the bytes this node
/// would compile from it.
fn tied_layer<'a>(
    ties: &[Tie<'a>],
    component: &str,
    compiled_from: &str,
) -> Result<&'a Descriptor> {
    let Some(tie) = ties.iter().find(|t| t.component == Some(component)) else {
        let named: Vec<&str> = ties
            .iter()
            .map(|t| t.component.unwrap_or("(unnamed)"))
            .collect();
        bail!(
            "it was compiled from component{} {}, not {component}",
            if named.len() == 1 { "" } else { "s" },
            named.join(", ")
        );
    };
    if tie.compiled_from != Some(compiled_from) {
        bail!(
            "it was compiled from bytes {}, and this node would compile {compiled_from}",
            tie.compiled_from.unwrap_or("(unnamed)")
        );
    }
    if tie.layer.media_type != CODE_LAYER {
        bail!(
            "its layer {} is `{}`, not `{CODE_LAYER}`",
            tie.layer.digest,
            tie.layer.media_type
        );
    }
    Ok(tie.layer)
}

/// The bytes of code layer `layer`, through the content store (which
/// checks them against its digest).
async fn fetch_code(
    registry: &Registry,
    reference: &Reference,
    layer: &Descriptor,
    store: &ContentStore,
) -> Result<Vec<u8>> {
    registry
        .fetch_blob(reference, layer, store, &Progress::hidden())
        .await?;
    store.read(&layer.digest)
}

/// The referrers tag of `subject` in `reference`'s repository.
fn referrers_tag(reference: &Reference, subject: &str) -> Result<Reference> {
    let hex = super::store::sha256_hex(subject)?;
    Ok(Reference::with_tag(
        reference.registry().to_owned(),
        reference.repository().to_owned(),
        format!("sha256-{hex}"),
    ))
}

/// The entries listed under the referrers tag `tag`; none when the tag
/// does not exist.
async fn listed(registry: &Registry, tag: &Reference) -> Result<Vec<Entry>> {
    #[derive(Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Entry>,
    }
    match registry.manifest(tag).await {
        Ok((bytes, _)) => {
            let index: Index = serde_json::from_slice(&bytes)
                .with_context(|| format!("`{}` is not a referrers index", tag.whole()))?;
            Ok(index.manifests)
        }
        Err(e) if e.chain().any(|c| c.is::<NotFound>()) => Ok(Vec::new()),
        Err(e) => Err(e.context(format!("cannot read the referrers tag `{}`", tag.whole()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(ties: Option<(&str, &str)>) -> serde_json::Value {
        let mut layer = serde_json::json!({
            "mediaType": CODE_LAYER,
            "digest": format!("sha256:{}", "c".repeat(64)),
            "size": 1,
        });
        if let Some((component, compiled_from)) = ties {
            layer["annotations"] = serde_json::json!({
                COMPONENT_DIGEST: component,
                COMPILED_FROM: compiled_from,
            });
        }
        layer
    }

    fn referrer(layers: Vec<serde_json::Value>, annotations: serde_json::Value) -> Referrer {
        serde_json::from_value(serde_json::json!({
            "artifactType": ARTIFACT_TYPE,
            "layers": layers,
            "annotations": annotations,
        }))
        .unwrap()
    }

    #[test]
    fn a_referrer_with_one_code_layer_is_tied_by_its_manifests_annotations() {
        // What every component referrer looks like, before and since apps.
        let referrer = referrer(
            vec![layer(None)],
            serde_json::json!({ COMPONENT_DIGEST: "sha256:a", COMPILED_FROM: "sha256:b" }),
        );
        let ties = ties(&referrer);
        assert!(tied_layer(&ties, "sha256:a", "sha256:b").is_ok());
        let err = tied_layer(&ties, "sha256:a", "sha256:x").unwrap_err();
        assert!(
            err.to_string().contains("compiled from bytes sha256:b"),
            "{err}"
        );
    }

    #[test]
    fn each_code_layer_of_an_app_is_tied_by_its_own_annotations() {
        let referrer = referrer(
            vec![
                layer(Some(("sha256:a", "sha256:1"))),
                layer(Some(("sha256:b", "sha256:2"))),
                layer(None),
            ],
            serde_json::json!({ COMPONENT_DIGEST: "sha256:c", COMPILED_FROM: "sha256:3" }),
        );
        let ties = ties(&referrer);
        assert!(tied_layer(&ties, "sha256:a", "sha256:1").is_ok());
        assert!(tied_layer(&ties, "sha256:b", "sha256:2").is_ok());
        assert!(tied_layer(&ties, "sha256:a", "sha256:2").is_err());
        // The manifest's annotations tie only a lone layer.
        let err = tied_layer(&ties, "sha256:c", "sha256:3").unwrap_err();
        assert!(
            err.to_string().contains(
                "it was compiled from components sha256:a, sha256:b, (unnamed), not sha256:c"
            ),
            "{err}"
        );
    }
}
