//! Spin's runtime configuration file (`--runtime-config-file`): where the
//! app's key-value stores live. What an operator decides per deployment,
//! kept out of the manifest as in Spin.
//!
//! ```toml
//! [key_value_store.default]     # optional: the default store's file
//! type = "spin"
//! path = "data/default.redb"
//!
//! [key_value_store.cache]       # a store components may name
//! type = "spin"                 # no path: a table in the app's own file
//! ```
//!
//! Only `type = "spin"` (a local database file) is supported; paths are
//! relative to the file. Other sections (`[sqlite_database.*]`,
//! `[variables_provider]`, ...) are warned about and ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

/// The parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `[key_value_store.<label>]`, by label.
    pub key_value_stores: BTreeMap<String, KvStoreConfig>,
    /// Sections that were ignored, for warnings.
    pub ignored: Vec<String>,
    /// `--state-dir`: where the app's own key-value file goes instead of
    /// `.wasmhost/` beside the manifest (not part of the file).
    pub state_dir: Option<PathBuf>,
}

/// One `[key_value_store.<label>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvStoreConfig {
    /// The database file (absolute); `None` means the app's own file.
    pub path: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RawStore {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
}

impl RuntimeConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the runtime config `{}`", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, dir).with_context(|| format!("runtime config `{}`", path.display()))
    }

    fn parse(text: &str, dir: &Path) -> Result<Self> {
        let table: toml::Table = toml::from_str(text)?;
        let mut config = RuntimeConfig::default();
        for (key, value) in table {
            if key != "key_value_store" {
                config.ignored.push(key);
                continue;
            }
            let toml::Value::Table(stores) = value else {
                bail!("`key_value_store` must be a table of stores");
            };
            for (label, store) in stores {
                let raw: RawStore = store.try_into().with_context(|| {
                    format!("`key_value_store.{label}`: expected `type` and an optional `path`")
                })?;
                if raw.kind != "spin" {
                    bail!(
                        "`key_value_store.{label}`: type `{}` is not supported; wasmhost supports `spin` (a local database file)",
                        raw.kind
                    );
                }
                let path = raw.path.map(|p| dir.join(p));
                config
                    .key_value_stores
                    .insert(label, KvStoreConfig { path });
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_paths_and_ignored_sections() {
        let config = RuntimeConfig::parse(
            r#"
[key_value_store.cache]
type = "spin"
path = "data/cache.redb"
[key_value_store.default]
type = "spin"
[sqlite_database.default]
type = "spin"
"#,
            Path::new("/etc/app"),
        )
        .unwrap();
        assert_eq!(
            config.key_value_stores["cache"].path.as_deref(),
            Some(Path::new("/etc/app/data/cache.redb"))
        );
        assert_eq!(config.key_value_stores["default"].path, None);
        assert_eq!(config.ignored, vec!["sqlite_database".to_owned()]);
    }

    #[test]
    fn other_store_types_are_refused_by_name() {
        let err = RuntimeConfig::parse(
            "[key_value_store.x]\ntype = \"redis\"\nurl = \"redis://h\"\n",
            Path::new("/"),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("`key_value_store.x`: type `redis` is not supported"),
            "{err:#}"
        );
    }
}
