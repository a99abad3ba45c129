//! A loaded app in Spin's registry format ([`crate::oci::spin_app`]): its
//! manifest as a locked app, its components and files as layers. The one
//! place that knows both the manifest and that format; pushing and
//! `compare`'s sizes use it.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;
use serde_json::json;

use super::manifest::{Executor, LoadedManifest, Source};
use crate::oci::media;
use crate::oci::spin_app::{
    ContentPath, ContentRef, LockedApp, LockedComponent, LockedSource, LockedTrigger,
    LockedVariable, Packed, INLINE_MAX,
};
use crate::oci::store::digest_of;
use crate::router::Route;

/// Packs a loaded (and source-resolved) manifest in Spin's format.
pub fn pack(loaded: &LoadedManifest) -> Result<Packed> {
    let manifest = &loaded.manifest;
    let mut layers: Vec<(Vec<u8>, &'static str)> = Vec::new();
    let mut add_layer = |bytes: Vec<u8>, media_type: &'static str| -> String {
        let digest = digest_of(&bytes);
        if !layers
            .iter()
            .any(|(b, t)| *t == media_type && digest_of(b) == digest)
        {
            layers.push((bytes, media_type));
        }
        digest
    };

    let mut components = Vec::new();
    for (id, component) in &manifest.components {
        let Source::Local(path) = &component.source else {
            bail!("component `{id}`: its source was not resolved to a file before packing");
        };
        let wasm = std::fs::read(path)
            .with_context(|| format!("component `{id}`: cannot read `{}`", path.display()))?;
        let source = LockedSource {
            content_type: "application/wasm".into(),
            content: ContentRef {
                digest: Some(add_layer(wasm, media::SPIN_WASM_LAYER)),
                ..ContentRef::default()
            },
        };
        let staging = tempfile::tempdir().context("cannot create a staging directory")?;
        super::files::stage(
            id,
            &loaded.dir,
            &component.files,
            &component.exclude_files,
            staging.path(),
        )?;
        let mut files = Vec::new();
        for (relative, bytes) in walk(staging.path())? {
            let mut content = ContentRef {
                digest: Some(digest_of(&bytes)),
                ..ContentRef::default()
            };
            if bytes.len() <= INLINE_MAX {
                content.inline =
                    Some(base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes));
            } else {
                add_layer(bytes, media::SPIN_DATA_LAYER);
            }
            files.push(ContentPath {
                content,
                path: relative,
            });
        }
        let mut metadata = serde_json::Map::new();
        if let Some(description) = &component.description {
            metadata.insert("description".into(), json!(description));
        }
        if !component.allowed_outbound_hosts.is_empty() {
            metadata.insert(
                "allowed_outbound_hosts".into(),
                json!(component.allowed_outbound_hosts),
            );
        }
        for (key, labels) in [
            ("key_value_stores", &component.key_value_stores),
            ("sqlite_databases", &component.sqlite_databases),
            ("ai_models", &component.ai_models),
        ] {
            if !labels.is_empty() {
                metadata.insert(key.into(), json!(labels));
            }
        }
        components.push(LockedComponent {
            id: id.clone(),
            metadata,
            source,
            env: component.environment.clone(),
            files,
            config: component.variables.clone(),
        });
    }

    let triggers = manifest
        .http_triggers
        .iter()
        .map(|trigger| {
            let route = match &trigger.route {
                Route::Pattern(pattern) => json!(pattern.to_string()),
                Route::Private => json!({ "private": true }),
            };
            let mut config = json!({ "component": trigger.component, "route": route });
            if let Executor::Wagi { argv, entrypoint } = &trigger.executor {
                let mut executor = json!({ "type": "wagi" });
                if let Some(argv) = argv {
                    executor["argv"] = json!(argv);
                }
                if let Some(entrypoint) = entrypoint {
                    executor["entrypoint"] = json!(entrypoint);
                }
                config["executor"] = executor;
            }
            LockedTrigger {
                id: trigger.id.clone(),
                trigger_type: "http".into(),
                trigger_config: config,
            }
        })
        .collect();

    let mut metadata = serde_json::Map::new();
    metadata.insert("name".into(), json!(manifest.application.name));
    if let Some(version) = &manifest.application.version {
        metadata.insert("version".into(), json!(version));
    }
    if let Some(description) = &manifest.application.description {
        metadata.insert("description".into(), json!(description));
    }
    metadata.insert("trigger".into(), json!({ "type": "http" }));
    metadata.insert("triggers".into(), json!({}));

    let variables = manifest
        .variables
        .iter()
        .map(|(name, v)| {
            let locked = LockedVariable {
                description: v.description.clone(),
                default: if v.required { None } else { v.default.clone() },
                secret: v.secret,
            };
            (name.clone(), locked)
        })
        .collect();

    let locked = LockedApp {
        spin_lock_version: 0,
        must_understand: Vec::new(),
        metadata,
        variables,
        triggers,
        components,
    };
    let locked_bytes = serde_json::to_vec(&locked)?;
    let locked_digest = digest_of(&locked_bytes);
    layers.push((locked_bytes, media::SPIN_LOCKED_APP));
    let config = serde_json::to_vec(&json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": { "Labels": { media::SPIN_LOCKED_APP_LABEL: locked_digest } },
        "rootfs": { "type": "layers", "diff_ids": [] },
    }))?;
    Ok(Packed {
        layers,
        config,
        locked,
    })
}

/// Every regular file under `root`: (path relative to it with `/`, bytes),
/// sorted by path (so an image's layer is the same for the same files).
pub(super) fn walk(root: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                let path = entry.path();
                let relative = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                found.push((relative, std::fs::read(&path)?));
            }
        }
    }
    found.sort();
    Ok(found)
}
