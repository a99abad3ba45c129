//! One Wasm component as an OCI artifact (the CNCF Wasm format: config
//! `application/vnd.wasm.config.v0+json`, one `application/wasm` layer),
//! which `wkg`, `oras` and runwasi read too.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::Serialize;

use super::media::{self, Descriptor};
use super::store::ContentStore;

/// The config blob of the CNCF Wasm artifact.
#[derive(Debug, Serialize)]
pub struct WasmConfig {
    /// RFC 3339.
    pub created: String,
    /// Always `wasm`.
    pub architecture: &'static str,
    /// `wasip2` for components, `wasip1` for core modules.
    pub os: &'static str,
    /// The layer's digest.
    #[serde(rename = "layerDigests")]
    pub layer_digests: Vec<String>,
    /// A component's top-level imports and exports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentInterfaces>,
}

/// What a component imports and exports, by name.
#[derive(Debug, Serialize)]
pub struct ComponentInterfaces {
    /// Top-level export names.
    pub exports: Vec<String>,
    /// Top-level import names.
    pub imports: Vec<String>,
    /// The world it targets, when known (never, here).
    pub target: Option<String>,
}

/// The config for `wasm`; refuses anything that is not Wasm.
pub fn config_for(wasm: &[u8], layer_digest: &str) -> Result<WasmConfig> {
    if !wasm.starts_with(b"\0asm") {
        bail!("not a WebAssembly binary (no `\\0asm` header)");
    }
    let is_component = wasmparser::Parser::is_component(wasm);
    let component = if is_component {
        Some(interfaces(wasm)?)
    } else {
        None
    };
    Ok(WasmConfig {
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        architecture: "wasm",
        os: if is_component { "wasip2" } else { "wasip1" },
        layer_digests: vec![layer_digest.to_owned()],
        component,
    })
}

fn interfaces(wasm: &[u8]) -> Result<ComponentInterfaces> {
    use wasmparser::Payload;
    let mut exports = Vec::new();
    let mut imports = Vec::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.push(import?.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    exports.push(export?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(ComponentInterfaces {
        exports,
        imports,
        target: None,
    })
}

/// The image manifest of a component artifact.
pub fn manifest(config: &Descriptor, layer: &Descriptor, created: &str) -> Vec<u8> {
    let annotations: BTreeMap<&str, &str> =
        BTreeMap::from([("org.opencontainers.image.created", created)]);
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": config,
        "layers": [layer],
        "annotations": annotations,
    }))
    .unwrap_or_default()
}

/// The Wasm layer of a pulled component artifact, in the store.
pub fn wasm_layer(layers: &[Descriptor]) -> Result<&Descriptor> {
    layers
        .iter()
        .find(|l| {
            [
                media::WASM_LAYER,
                media::RUNWASI_COMPONENT_LAYER,
                media::SPIN_WASM_LAYER,
            ]
            .contains(&l.media_type.as_str())
        })
        .ok_or_else(|| anyhow::anyhow!("no Wasm layer in the manifest"))
}

/// The path of a pulled component's Wasm in `store`.
pub fn wasm_path(store: &ContentStore, layers: &[Descriptor]) -> Result<std::path::PathBuf> {
    Ok(store.blob_path(&wasm_layer(layers)?.digest)?)
}
