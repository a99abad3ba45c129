//! Spin's registry format for whole apps, both ways.
//!
//! What `spin registry push` writes (and so what `spin up --from-registry`
//! reads): one `application/vnd.wasm.content.layer.v1+wasm` layer per
//! distinct component, one `…+data` layer per distinct file larger than 128
//! bytes (smaller ones are inlined, base64 without padding), and last the
//! locked app JSON as a `application/vnd.fermyon.spin.application.v1+config`
//! layer, named by the image config's `com.fermyon.spin.lockedAppDigest`
//! label. Before Spin 2 the locked app was the config itself; pulls accept
//! both, and Spin's archive mode (a component's files as one
//! `application/vnd.wasm.content.bundle.v1.tar+gzip` layer) too.
//!
//! A pulled app is materialised as a plain directory — a generated
//! `spin.toml`, its files, and component sources pointing into the content
//! store — so it loads through exactly the same code as a local app.

use std::collections::BTreeMap;
use std::path::{Component as PathPart, Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::media::{self, Descriptor};
use super::store::ContentStore;

/// Files up to this size are inlined in the locked app (Spin's rule, which
/// also spares registries that refuse tiny blobs).
pub const INLINE_MAX: usize = 128;

/// The locked app, as far as wasmhost reads and writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedApp {
    /// 0 unless `must_understand` says more.
    pub spin_lock_version: u32,
    /// Features a host must support to run the app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_understand: Vec<String>,
    /// `name`, `version`, `description`, `trigger`, …
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, Value>,
    /// Application variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, LockedVariable>,
    /// Triggers.
    pub triggers: Vec<LockedTrigger>,
    /// Components.
    pub components: Vec<LockedComponent>,
}

/// `variables.<name>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LockedVariable {
    /// `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `default`; none means required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

/// One trigger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedTrigger {
    /// `id`.
    pub id: String,
    /// `http` is the only type wasmhost serves.
    pub trigger_type: String,
    /// The `[[trigger.http]]` table plus `component`.
    pub trigger_config: Value,
}

/// One component.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedComponent {
    /// `id`.
    pub id: String,
    /// `allowed_outbound_hosts`, `key_value_stores`, `description`, …
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, Value>,
    /// The Wasm.
    pub source: LockedSource,
    /// `environment`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Files, each at a path relative to the guest's `/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ContentPath>,
    /// Component variables (templates over app variables).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// `source`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedSource {
    /// `application/wasm`.
    pub content_type: String,
    /// Where the bytes are.
    #[serde(flatten)]
    pub content: ContentRef,
}

/// Bytes by digest, inline, or (in a local lock file) by URI.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContentRef {
    /// A `file://` URI; never pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Base64 (standard alphabet, no padding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// `sha256:<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// A file of a component.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContentPath {
    /// Where the bytes are.
    #[serde(flatten)]
    pub content: ContentRef,
    /// Relative to the guest's `/`, forward slashes.
    pub path: String,
}

/// An app ready to push: the layers (bytes and media type, distinct) and
/// the locked app that names them.
pub struct Packed {
    /// Layer bytes and media types, the locked app last.
    pub layers: Vec<(Vec<u8>, &'static str)>,
    /// The image config.
    pub config: Vec<u8>,
    /// The locked app, as pushed.
    pub locked: LockedApp,
}

/// The locked app of a pulled Spin app: the layer the config's label names
/// (or the only locked-app layer), else the config itself (Spin 1).
pub fn locked_app(
    store: &ContentStore,
    config: &Descriptor,
    layers: &[Descriptor],
) -> Result<LockedApp> {
    let digest = if config.media_type == media::SPIN_LOCKED_APP {
        config.digest.clone()
    } else {
        let config_json: Value = serde_json::from_slice(&store.read(&config.digest)?)
            .context("the image config is not JSON")?;
        let labelled = config_json
            .pointer(&format!(
                "/config/Labels/{}",
                media::SPIN_LOCKED_APP_LABEL.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .map(str::to_owned);
        match labelled {
            Some(digest) if layers.iter().any(|l| l.digest == digest) => digest,
            Some(digest) => bail!("the config names locked app {digest}, which is not a layer"),
            None => match layers
                .iter()
                .find(|l| l.media_type == media::SPIN_LOCKED_APP)
            {
                Some(layer) => layer.digest.clone(),
                None => bail!("no locked app in the manifest"),
            },
        }
    };
    let locked: LockedApp =
        serde_json::from_slice(&store.read(&digest)?).context("the locked app is not valid")?;
    if locked.spin_lock_version > 1 {
        bail!(
            "locked app version {} is newer than wasmhost reads (1)",
            locked.spin_lock_version
        );
    }
    if let Some(feature) = locked
        .must_understand
        .iter()
        .find(|f| f.as_str() != "host_requirements")
    {
        bail!("the app needs `{feature}`, which wasmhost does not support");
    }
    Ok(locked)
}

/// Writes a pulled app as a directory under `<store>/apps/<manifest hex>`
/// (once; later calls reuse it) and returns its `spin.toml`.
pub fn materialize(
    store: &ContentStore,
    manifest_digest: &str,
    locked: &LockedApp,
    layers: &[Descriptor],
) -> Result<PathBuf> {
    let hex = super::store::sha256_hex(manifest_digest)?;
    let apps = store.root().join("apps");
    let dir = apps.join(hex);
    let toml_path = dir.join("spin.toml");
    if toml_path.is_file() {
        return Ok(toml_path);
    }
    std::fs::create_dir_all(&apps)
        .with_context(|| format!("cannot create `{}`", apps.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(&apps)
        .context("cannot stage the app")?;
    unpack_archives(store, layers)?;
    let toml = write_app(store, staging.path(), &dir, locked)?;
    std::fs::write(staging.path().join("spin.toml"), toml)?;
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, &dir) {
        let _ = std::fs::remove_dir_all(&staged);
        if !toml_path.is_file() {
            return Err(e).context("cannot move the app into place");
        }
    }
    Ok(toml_path)
}

/// Spin's archive mode (used past 500 layers, or when asked): a
/// component's files as one tar+gzip layer. Each regular file in it goes
/// into the store under the digest of its own bytes, which is how the
/// locked app names it. Nothing in an archive is written by its path, so a
/// hostile entry name cannot reach outside the store.
fn unpack_archives(store: &ContentStore, layers: &[Descriptor]) -> Result<()> {
    for layer in layers
        .iter()
        .filter(|l| l.media_type == media::SPIN_ARCHIVE_LAYER)
    {
        let file = std::fs::File::open(store.blob_path(&layer.digest)?)
            .with_context(|| format!("archive layer {} is not in the store", layer.digest))?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let entries = archive
            .entries()
            .with_context(|| format!("archive layer {} is not a tar+gzip", layer.digest))?;
        for entry in entries {
            let mut entry = entry.with_context(|| format!("archive layer {}", layer.digest))?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes)
                .with_context(|| format!("archive layer {}", layer.digest))?;
            store.put(&bytes)?;
        }
    }
    Ok(())
}

/// Writes files under `staging` (which will become `dir`) and returns the
/// generated manifest.
fn write_app(
    store: &ContentStore,
    staging: &Path,
    dir: &Path,
    locked: &LockedApp,
) -> Result<String> {
    let mut doc = toml::Table::new();
    doc.insert("spin_manifest_version".into(), 2.into());
    let mut application = toml::Table::new();
    for key in ["name", "version", "description"] {
        if let Some(value) = locked.metadata.get(key).and_then(Value::as_str) {
            application.insert(key.into(), value.into());
        }
    }
    if !application.contains_key("name") {
        application.insert("name".into(), "app".into());
    }
    doc.insert("application".into(), application.into());

    let mut variables = toml::Table::new();
    for (name, v) in &locked.variables {
        let mut t = toml::Table::new();
        match &v.default {
            Some(default) => t.insert("default".into(), default.clone().into()),
            None => t.insert("required".into(), true.into()),
        };
        if v.secret {
            t.insert("secret".into(), true.into());
        }
        variables.insert(name.clone(), t.into());
    }
    if !variables.is_empty() {
        doc.insert("variables".into(), variables.into());
    }

    let mut http = Vec::new();
    for trigger in &locked.triggers {
        if trigger.trigger_type != "http" {
            bail!(
                "trigger `{}` is of type `{}`; wasmhost serves only `http`",
                trigger.id,
                trigger.trigger_type
            );
        }
        let config: toml::Value = serde_json::from_value(trigger.trigger_config.clone())
            .with_context(|| format!("trigger `{}` is not valid", trigger.id))?;
        let toml::Value::Table(mut table) = config else {
            bail!("trigger `{}` is not a table", trigger.id);
        };
        table.insert("id".into(), trigger.id.clone().into());
        http.push(toml::Value::Table(table));
    }
    let mut trigger = toml::Table::new();
    trigger.insert("http".into(), http.into());
    doc.insert("trigger".into(), trigger.into());

    let mut components = toml::Table::new();
    for component in &locked.components {
        let id = &component.id;
        let mut t = toml::Table::new();
        let source = match (
            &component.source.content.digest,
            &component.source.content.inline,
        ) {
            (_, Some(inline)) => {
                let path = staging.join(format!("{}.wasm", safe_name(id)));
                std::fs::write(&path, decode_inline(inline)?)?;
                dir.join(path.file_name().unwrap_or_default())
            }
            (Some(digest), None) if store.has(digest) => store.blob_path(digest)?,
            (Some(digest), None) => {
                bail!("component `{id}`: source {digest} is not among the layers")
            }
            (None, None) => {
                bail!("component `{id}`: the source has neither a digest nor inline bytes")
            }
        };
        t.insert(
            "source".into(),
            source.to_string_lossy().into_owned().into(),
        );
        if !component.files.is_empty() {
            let root = Path::new("files").join(safe_name(id));
            for file in &component.files {
                let relative = relative_path(&file.path)
                    .with_context(|| format!("component `{id}`: file `{}`", file.path))?;
                let target = staging.join(&root).join(relative);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let bytes = match (&file.content.inline, &file.content.digest) {
                    (Some(inline), _) => decode_inline(inline)?,
                    (None, Some(digest)) if store.has(digest) => store.read(digest)?,
                    (None, Some(digest)) => bail!(
                        "component `{id}`: file `{}` ({digest}) is in no layer",
                        file.path
                    ),
                    (None, None) => bail!("component `{id}`: file `{}` has no content", file.path),
                };
                std::fs::write(&target, bytes)?;
            }
            let mut mount = toml::Table::new();
            mount.insert("source".into(), root.to_string_lossy().into_owned().into());
            mount.insert("destination".into(), "/".into());
            t.insert("files".into(), vec![toml::Value::Table(mount)].into());
        }
        if !component.env.is_empty() {
            t.insert("environment".into(), to_table(&component.env).into());
        }
        if !component.config.is_empty() {
            t.insert("variables".into(), to_table(&component.config).into());
        }
        for key in [
            "allowed_outbound_hosts",
            "key_value_stores",
            "sqlite_databases",
            "ai_models",
            "description",
        ] {
            if let Some(value) = component.metadata.get(key) {
                let value: toml::Value = serde_json::from_value(value.clone())
                    .with_context(|| format!("component `{id}`: `{key}` is not valid"))?;
                t.insert(key.into(), value);
            }
        }
        components.insert(id.clone(), t.into());
    }
    doc.insert("component".into(), components.into());
    Ok(format!(
        "# Generated by wasmhost from a Spin app pulled from a registry.\n{}",
        toml::to_string(&doc)?
    ))
}

fn to_table(map: &BTreeMap<String, String>) -> toml::Table {
    map.iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect()
}

fn decode_inline(inline: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(inline.trim_end_matches('='))
        .context("inline content is not base64")
}

/// A file path from a locked app: relative, only plain components.
fn relative_path(path: &str) -> Result<PathBuf> {
    let candidate = Path::new(path);
    if path.is_empty()
        || !candidate
            .components()
            .all(|c| matches!(c, PathPart::Normal(_)))
    {
        bail!("path `{path}` must be relative with no `..`");
    }
    Ok(candidate.to_path_buf())
}

/// A component id as a file name (ids are kebab-case, but this is input).
fn safe_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_must_stay_inside() {
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", ""] {
            assert!(relative_path(bad).is_err(), "{bad}");
        }
        assert_eq!(
            relative_path("static/index.html").unwrap(),
            Path::new("static/index.html")
        );
    }

    #[test]
    fn spins_locked_app_parses() {
        // Shape of what `spin registry push` writes (Spin 3).
        let text = r#"{"spin_lock_version":0,
 "metadata":{"name":"hello","trigger":{"type":"http"},"triggers":{},"version":"0.1.0"},
 "variables":{"greeting":{"default":"hi"},"token":{"secret":true}},
 "triggers":[{"id":"hello-http-trigger","trigger_type":"http",
   "trigger_config":{"component":"hello","route":"/hello/..."}}],
 "components":[{"id":"hello",
   "metadata":{"allowed_outbound_hosts":["https://example.com"],"key_value_stores":["default"]},
   "source":{"content_type":"application/wasm","digest":"sha256:00"},
   "files":[{"digest":"sha256:11","inline":"aGk","path":"static/index.html"}],
   "config":{"greeting":"{{ greeting }}"}}]}"#;
        let locked: LockedApp = serde_json::from_str(text).unwrap();
        assert_eq!(
            locked.components[0].files[0].content.inline.as_deref(),
            Some("aGk")
        );
        assert_eq!(decode_inline("aGk").unwrap(), b"hi");
        assert!(locked.variables["token"].secret && locked.variables["token"].default.is_none());
        assert_eq!(locked.triggers[0].trigger_config["route"], "/hello/...");
    }
}
