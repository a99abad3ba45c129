//! Spin's runtime configuration file (`--runtime-config-file`): where the
//! app's key-value stores and SQLite databases live, which LLM serves it.
//! What an operator decides per deployment, kept out of the manifest as in
//! Spin.
//!
//! ```toml
//! [key_value_store.default]     # optional: the default store's file
//! type = "spin"
//! path = "data/default.redb"
//!
//! [key_value_store.cache]       # a store components may name
//! type = "spin"                 # no path: a table in the app's own file
//!
//! [sqlite_database.default]     # optional: the default database's file
//! type = "spin"
//! path = "data/app.db"          # no path: `sqlite_db.db` in the state dir
//!
//! [llm_compute]                 # Spin's remote LLM protocol
//! type = "remote_http"
//! url = "https://llm.example.com"
//! auth_token = "..."
//! ```
//!
//! Stores and databases: only `type = "spin"` (a local file); paths are
//! relative to the file. Other sections (`[variables_provider]`, ...) are
//! warned about and ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

use crate::services::llm::LlmConfig;

/// The parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `[key_value_store.<label>]`, by label.
    pub key_value_stores: BTreeMap<String, KvStoreConfig>,
    /// `[sqlite_database.<label>]`, by label.
    pub sqlite_databases: BTreeMap<String, SqliteConfig>,
    /// `[llm_compute]`.
    pub llm: Option<LlmConfig>,
    /// Sections that were ignored, for warnings.
    pub ignored: Vec<String>,
    /// `--state-dir`: where the app's own key-value file goes instead of
    /// `.wasmhost/` beside the manifest (not part of the file).
    pub state_dir: Option<PathBuf>,
    /// `--sqlite`: statements run against the `default` database before
    /// serving (not part of the file).
    pub sqlite_statements: Vec<String>,
    /// `--key-value`: keys set in the `default` store before serving (not
    /// part of the file).
    pub key_value_seeds: Vec<(String, String)>,
}

/// One `[sqlite_database.<label>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The database file (absolute); `None` means the state directory's
    /// `sqlite_db.db` for `default`, `<label>.db` beside it for others.
    pub path: Option<PathBuf>,
}

/// One `[key_value_store.<label>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvStoreConfig {
    /// `type = "spin"`: a local database file (absolute); `None` means the
    /// app's own file.
    Spin {
        /// `path`, resolved.
        path: Option<PathBuf>,
    },
    /// `type = "redis"`: a Redis server, shared by every process using it.
    Redis {
        /// `url`.
        url: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLlm {
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    auth_token: Option<String>,
}

#[derive(Deserialize)]
struct RawStore {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
    url: Option<String>,
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
            match key.as_str() {
                "key_value_store" => {
                    for (label, store) in stores(&key, value, dir, true)? {
                        config.key_value_stores.insert(label, store);
                    }
                }
                "sqlite_database" => {
                    for (label, store) in stores(&key, value, dir, false)? {
                        if let KvStoreConfig::Spin { path } = store {
                            config.sqlite_databases.insert(label, SqliteConfig { path });
                        }
                    }
                }
                "llm_compute" => config.llm = Some(llm(value)?),
                _ => config.ignored.push(key),
            }
        }
        Ok(config)
    }
}

/// The `[<section>.<label>]` tables: `type = "spin"` with an optional
/// `path` (resolved against `dir`), or, where `redis` allows it, `type =
/// "redis"` with a `url`.
fn stores(
    section: &str,
    value: toml::Value,
    dir: &Path,
    redis: bool,
) -> Result<Vec<(String, KvStoreConfig)>> {
    let toml::Value::Table(entries) = value else {
        bail!("`{section}` must be a table of labels, e.g. `[{section}.default]`");
    };
    let supported = if redis {
        "`spin` (a local database file) and `redis` (with `url`)"
    } else {
        "`spin` (a local database file)"
    };
    let mut stores = Vec::new();
    for (label, entry) in entries {
        let raw: RawStore = entry.try_into().with_context(|| {
            format!("`{section}.{label}`: expected `type` and an optional `path`")
        })?;
        let store = match raw.kind.as_str() {
            "spin" => KvStoreConfig::Spin {
                path: raw.path.map(|p| dir.join(p)),
            },
            "redis" if redis => KvStoreConfig::Redis {
                url: raw.url.with_context(|| {
                    format!("`{section}.{label}`: `type = \"redis\"` needs `url`")
                })?,
            },
            other => bail!(
                "`{section}.{label}`: type `{other}` is not supported; wasmhost supports {supported}"
            ),
        };
        stores.push((label, store));
    }
    Ok(stores)
}

fn llm(value: toml::Value) -> Result<LlmConfig> {
    let raw: RawLlm = value
        .try_into()
        .context("`llm_compute`: expected `type`, `url` and `auth_token`")?;
    match raw.kind.as_str() {
        "remote_http" => {}
        "spin" => bail!(
            "`llm_compute`: type `spin` (a local model) is not supported; use `remote_http` with `url` and `auth_token`"
        ),
        other => bail!("`llm_compute`: type `{other}` is unknown; use `remote_http`"),
    }
    let url = raw
        .url
        .context("`llm_compute`: `type = \"remote_http\"` needs `url`")?;
    url.parse::<http::Uri>()
        .ok()
        .filter(|u| u.scheme().is_some() && u.host().is_some())
        .with_context(|| format!("`llm_compute`: `url` `{url}` is not an absolute http(s) URL"))?;
    let auth_token = raw
        .auth_token
        .context("`llm_compute`: `type = \"remote_http\"` needs `auth_token`")?;
    Ok(LlmConfig {
        url: url.trim_end_matches('/').to_owned(),
        auth_token,
    })
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
[sqlite_database.other]
type = "spin"
path = "other.db"
[variables_provider]
type = "vault"
"#,
            Path::new("/etc/app"),
        )
        .unwrap();
        assert_eq!(
            config.key_value_stores["cache"],
            KvStoreConfig::Spin {
                path: Some(PathBuf::from("/etc/app/data/cache.redb"))
            }
        );
        assert_eq!(
            config.key_value_stores["default"],
            KvStoreConfig::Spin { path: None }
        );
        assert_eq!(config.sqlite_databases["default"].path, None);
        assert_eq!(
            config.sqlite_databases["other"].path.as_deref(),
            Some(Path::new("/etc/app/other.db"))
        );
        assert_eq!(config.ignored, vec!["variables_provider".to_owned()]);
    }

    #[test]
    fn redis_stores_need_a_url_and_other_types_are_refused_by_name() {
        let config = RuntimeConfig::parse(
            "[key_value_store.x]\ntype = \"redis\"\nurl = \"redis://h\"\n",
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(
            config.key_value_stores["x"],
            KvStoreConfig::Redis {
                url: "redis://h".into()
            }
        );
        let cases = [
            (
                "[key_value_store.x]\ntype = \"redis\"\n",
                "`key_value_store.x`: `type = \"redis\"` needs `url`",
            ),
            (
                "[key_value_store.x]\ntype = \"azure_cosmos\"\n",
                "`key_value_store.x`: type `azure_cosmos` is not supported",
            ),
            (
                "[sqlite_database.x]\ntype = \"libsql\"\n",
                "`sqlite_database.x`: type `libsql` is not supported",
            ),
        ];
        for (text, expected) in cases {
            let err = RuntimeConfig::parse(text, Path::new("/")).unwrap_err();
            assert!(format!("{err:#}").contains(expected), "{err:#}");
        }
    }

    #[test]
    fn llm_compute_needs_remote_http_with_url_and_token() {
        let config = RuntimeConfig::parse(
            "[llm_compute]\ntype = \"remote_http\"\nurl = \"http://127.0.0.1:9/\"\nauth_token = \"t\"\n",
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(
            config.llm,
            Some(LlmConfig {
                url: "http://127.0.0.1:9".into(),
                auth_token: "t".into()
            })
        );
        let cases = [
            (
                "type = \"spin\"",
                "type `spin` (a local model) is not supported",
            ),
            ("type = \"remote_http\"\nauth_token = \"t\"", "needs `url`"),
            (
                "type = \"remote_http\"\nurl = \"nope\"\nauth_token = \"t\"",
                "`url` `nope` is not an absolute",
            ),
        ];
        for (body, expected) in cases {
            let err = RuntimeConfig::parse(&format!("[llm_compute]\n{body}\n"), Path::new("/"))
                .unwrap_err();
            assert!(format!("{err:#}").contains(expected), "{body}: {err:#}");
        }
    }
}
