//! Pushing components and whole apps.

use anyhow::{Context as _, Result};
use oci_client::Reference;

use super::component;
use super::media::{self, Descriptor};
use super::progress::Progress;
use super::registry::{Registry, RegistryOptions};
use super::spin_app::Packed;
use super::store::digest_of;

/// What was pushed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pushed {
    /// The reference pushed to.
    pub reference: String,
    /// The manifest's digest: pull `<repo>@<digest>` for exactly this.
    pub digest: String,
    /// Bytes uploaded across config and layers (including ones the
    /// registry already had).
    pub size: u64,
    /// `Wasm component` or `Spin app`.
    pub kind: &'static str,
    /// The manifest's size in bytes (a referrer's `subject` names it).
    #[serde(skip)]
    pub manifest_size: u64,
    /// The referrer holding the component's compiled code, when pushed
    /// with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precompiled: Option<String>,
    /// The cosign signature tag of that referrer, when signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precompiled_signature: Option<String>,
}

/// Pushes one component (or core module) as a CNCF Wasm artifact.
pub async fn push_component(
    reference: &Reference,
    wasm: &[u8],
    options: &RegistryOptions,
    progress: &Progress,
) -> Result<Pushed> {
    let layer_digest = digest_of(wasm);
    let config = component::config_for(wasm, &layer_digest)?;
    let created = config.created.clone();
    let config = serde_json::to_vec(&config)?;
    let layers = vec![(wasm.to_vec(), media::WASM_LAYER)];
    let (config_d, layer_ds) = descriptors(&config, media::WASM_CONFIG, &layers);
    let mut layer = layer_ds[0].clone();
    layer.annotations = None;
    let manifest = component::manifest(&config_d, &layer, &created);
    upload(
        reference,
        &config_d,
        &config,
        &layers,
        &layer_ds,
        manifest,
        options,
        progress,
        "Wasm component",
    )
    .await
}

/// Pushes a whole app, packed in Spin's registry format; its name,
/// version and description (from the locked app) become the manifest's
/// annotations.
pub async fn push_app(
    reference: &Reference,
    packed: &Packed,
    options: &RegistryOptions,
    progress: &Progress,
) -> Result<Pushed> {
    let (config_d, layer_ds) = descriptors(&packed.config, media::OCI_IMAGE_CONFIG, &packed.layers);
    let app = &packed.locked.metadata;
    let text = |key: &str| {
        app.get(key)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let mut annotations = serde_json::Map::new();
    for (annotation, key) in [
        ("org.opencontainers.image.title", "name"),
        ("org.opencontainers.image.version", "version"),
        ("org.opencontainers.image.description", "description"),
    ] {
        if let Some(value) = text(key) {
            annotations.insert(annotation.into(), value.into());
        }
    }
    annotations.insert(
        "org.opencontainers.image.created".into(),
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .into(),
    );
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": config_d,
        "layers": layer_ds,
        "annotations": annotations,
    }))?;
    upload(
        reference,
        &config_d,
        &packed.config,
        &packed.layers,
        &layer_ds,
        manifest,
        options,
        progress,
        "Spin app",
    )
    .await
}

fn descriptors(
    config: &[u8],
    config_type: &str,
    layers: &[(Vec<u8>, &'static str)],
) -> (Descriptor, Vec<Descriptor>) {
    (
        Descriptor::of(config, config_type),
        layers.iter().map(|(b, t)| Descriptor::of(b, t)).collect(),
    )
}

#[allow(clippy::too_many_arguments)]
async fn upload(
    reference: &Reference,
    config_d: &Descriptor,
    config: &[u8],
    layers: &[(Vec<u8>, &'static str)],
    layer_ds: &[Descriptor],
    manifest: Vec<u8>,
    options: &RegistryOptions,
    progress: &Progress,
    kind: &'static str,
) -> Result<Pushed> {
    let name = reference.whole();
    let registry = Registry::for_reference(reference, options);
    let result: Result<Pushed> = async {
        registry.authenticate_push(reference).await?;
        let mut size = 0;
        for ((bytes, _), descriptor) in layers.iter().zip(layer_ds) {
            let bar = progress.blob(&descriptor.digest, descriptor.size);
            registry
                .push_blob(reference, bytes, &descriptor.digest)
                .await?;
            bar.inc(descriptor.size);
            bar.finish();
            size += descriptor.size;
        }
        registry
            .push_blob(reference, config, &config_d.digest)
            .await?;
        size += config_d.size;
        let digest = digest_of(&manifest);
        let manifest_size = manifest.len() as u64;
        registry
            .push_manifest(reference, manifest, media::OCI_MANIFEST)
            .await?;
        Ok(Pushed {
            reference: name.clone(),
            digest,
            size,
            kind,
            manifest_size,
            precompiled: None,
            precompiled_signature: None,
        })
    }
    .await;
    result.with_context(|| format!("cannot push `{name}`"))
}
