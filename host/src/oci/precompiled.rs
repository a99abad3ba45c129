//! Compiled code that travels with a component: an OCI referrer of the
//! component's manifest, holding the native code one engine configuration
//! compiled from it, so a node that has never seen the component loads
//! instead of compiling.
//!
//! The referrer is an artifact manifest (`artifactType` [`ARTIFACT_TYPE`],
//! the empty config, one [`CODE_LAYER`] layer) whose `subject` is the
//! component's manifest, annotated with the engine key it is for, the
//! digest of the component layer it was compiled from and the digest of the
//! exact bytes compiled (wasmhost compiles what it prepared from the layer:
//! a wasip1 module wrapped as a component, say). Referrers are listed
//! under the OCI 1.1 referrers tag schema (`<repo>:sha256-<hex of the
//! subject>`, an index), which every registry accepts, with or without the
//! referrers API.
//!
//! Loading it is loading native code: [`find`] only says what the
//! registry offers and checks that it is tied, by digests, to the
//! component being served and made for this engine. Whether to look at all
//! (which registries are trusted) is the caller's decision; the code's
//! bytes are checked against their digest by the content store, and
//! wasmtime checks its header against the engine when it is loaded.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _, Result};
use oci_client::Reference;
use serde::{Deserialize, Serialize};

use super::component;
use super::media::{Descriptor, OCI_INDEX, OCI_MANIFEST};
use super::progress::Progress;
use super::pull::Pulled;
use super::registry::{NotFound, Registry, RegistryOptions};
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

/// Compiled code to attach to a pushed component.
pub struct Code<'a> {
    /// wasmtime's serialized component.
    pub bytes: &'a [u8],
    /// The engine key it is for.
    pub engine_key: &'a str,
    /// The digest of the bytes compiled.
    pub compiled_from: String,
    /// wasmtime's version.
    pub wasmtime: &'a str,
}

/// The component manifest the code is attached to.
pub struct Subject<'a> {
    /// Its digest.
    pub digest: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// The digest of its Wasm layer.
    pub component_digest: &'a str,
}

/// What the code must match to be used on this node.
pub struct Wanted<'a> {
    /// This node's engine key.
    pub engine_key: &'a str,
    /// The digest of the bytes this node would compile.
    pub compiled_from: &'a str,
}

/// What [`find`] found.
pub enum Found {
    /// Code for this engine, tied to the component by digests.
    Code(Vec<u8>),
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

/// Pushes `code` as a referrer of `subject` in `reference`'s repository
/// and lists it under the referrers tag (replacing an earlier entry for
/// the same engine key). Returns the referrer manifest's digest.
pub async fn push(
    reference: &Reference,
    subject: &Subject<'_>,
    code: &Code<'_>,
    options: &RegistryOptions,
    progress: &Progress,
) -> Result<String> {
    let registry = Registry::for_reference(reference, options);
    registry.authenticate_push(reference).await?;
    let layer = Descriptor::of(code.bytes, CODE_LAYER);
    let bar = progress.blob(&layer.digest, layer.size);
    registry
        .push_blob(reference, code.bytes, &layer.digest)
        .await?;
    bar.inc(layer.size);
    bar.finish();
    let config = Descriptor::of(b"{}", EMPTY_CONFIG);
    registry.push_blob(reference, b"{}", &config.digest).await?;
    let annotations = BTreeMap::from([
        (ENGINE_KEY.to_owned(), code.engine_key.to_owned()),
        (
            COMPONENT_DIGEST.to_owned(),
            subject.component_digest.to_owned(),
        ),
        (COMPILED_FROM.to_owned(), code.compiled_from.clone()),
        (WASMTIME.to_owned(), code.wasmtime.to_owned()),
    ]);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": config,
        "layers": [layer],
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

/// Looks for code for `wanted` attached to the pulled component, and
/// checks that it is tied to it: the referrer's subject is the
/// component's manifest, its annotations name the component's layer and
/// the bytes this node would compile, its one layer is compiled code, and
/// the code's bytes match their digest. A referrer that fails a check is
/// an error (a registry offering code it cannot tie is worth a warning);
/// none offered for this engine is [`Found::Nothing`].
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
        return Ok(Found::Nothing(
            "the component was pushed without precompiled code".into(),
        ));
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
    let layer = check(&referrer, pulled, wanted)
        .with_context(|| format!("precompiled code {} refused", entry.digest))?;
    registry
        .fetch_blob(reference, layer, store, &Progress::hidden())
        .await?;
    Ok(Found::Code(store.read(&layer.digest)?))
}

/// Every tie between a referrer and the component; returns its code layer.
fn check<'a>(
    referrer: &'a Referrer,
    pulled: &Pulled,
    wanted: &Wanted<'_>,
) -> Result<&'a Descriptor> {
    if referrer.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        bail!("it is not wasmhost's precompiled code");
    }
    let subject = referrer.subject.as_ref().map(|s| s.digest.as_str());
    if subject != Some(pulled.manifest_digest.as_str()) {
        bail!(
            "it is attached to {}, not to the component's manifest {}",
            subject.unwrap_or("nothing"),
            pulled.manifest_digest
        );
    }
    let component = &component::wasm_layer(&pulled.layers)?.digest;
    let annotation = |key: &str| referrer.annotations.get(key).map(String::as_str);
    if annotation(COMPONENT_DIGEST) != Some(component.as_str()) {
        bail!(
            "it was compiled from component {}, not {component}",
            annotation(COMPONENT_DIGEST).unwrap_or("(unnamed)")
        );
    }
    if annotation(COMPILED_FROM) != Some(wanted.compiled_from) {
        bail!(
            "it was compiled from bytes {}, and this node would compile {}",
            annotation(COMPILED_FROM).unwrap_or("(unnamed)"),
            wanted.compiled_from
        );
    }
    if annotation(ENGINE_KEY) != Some(wanted.engine_key) {
        bail!("its manifest names another engine than its index entry");
    }
    match referrer.layers.as_slice() {
        [layer] if layer.media_type == CODE_LAYER => Ok(layer),
        _ => bail!("it does not hold exactly one `{CODE_LAYER}` layer"),
    }
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
