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
//!
//! [[client_tls]]                # outbound TLS (HTTPS, PostgreSQL)
//! component_ids = ["api"]       # of these components
//! hosts = ["db.internal"]       # to these hosts (any port)
//! ca_roots_file = "ca.pem"      # trusts these roots
//! ca_use_webpki_roots = false   # (default: true unless ca_roots_file)
//! client_cert_file = "client.pem"          # presents this certificate
//! client_private_key_file = "client.key"
//! ```
//!
//! Stores and databases: only `type = "spin"` (a local file); paths are
//! relative to the file. `[[client_tls]]` has Spin's keys and defaults
//! (Spin 3's `factor-outbound-networking`): hosts without ports, the first
//! entry naming a component and host wins; every file is read and checked
//! here, and every component id is checked against the app when it is
//! assembled. Other sections (`[variables_provider]`, ...) are warned
//! about and ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::services::client_tls::{ClientCert, TlsConfig, TlsSettings};
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
    /// `[[client_tls]]`, in file order (the first entry naming a
    /// component and host wins).
    pub client_tls: Vec<ClientTlsEntry>,
    /// The file, for messages about it (`None`: no file was given).
    pub path: Option<PathBuf>,
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

/// One `[[client_tls]]` entry: the TLS configuration `component_ids`
/// use for connections to `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsEntry {
    /// Where it is in the file, for messages: `client_tls[0]`.
    pub key: String,
    /// `component_ids`.
    pub component_ids: Vec<String>,
    /// `hosts`: names or IP addresses, without ports.
    pub hosts: Vec<String>,
    /// The roots and client certificate, read and built.
    pub config: Arc<TlsConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientTls {
    component_ids: Vec<String>,
    hosts: Vec<String>,
    ca_use_webpki_roots: Option<bool>,
    ca_roots_file: Option<PathBuf>,
    client_cert_file: Option<PathBuf>,
    client_private_key_file: Option<PathBuf>,
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
        let mut config = Self::parse(&text, dir)
            .with_context(|| format!("runtime config `{}`", path.display()))?;
        config.path = Some(path.to_owned());
        Ok(config)
    }

    /// What names the file in messages.
    pub fn describe(&self) -> String {
        match &self.path {
            Some(path) => format!("runtime config `{}`", path.display()),
            None => "runtime config".to_owned(),
        }
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
                "client_tls" => config.client_tls = client_tls(value, dir)?,
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

/// The `[[client_tls]]` entries, their files read (relative to `dir`) and
/// checked, their TLS configurations built.
fn client_tls(value: toml::Value, dir: &Path) -> Result<Vec<ClientTlsEntry>> {
    let toml::Value::Array(entries) = value else {
        bail!("`client_tls` must be an array of tables: `[[client_tls]]`");
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| client_tls_entry(format!("client_tls[{i}]"), entry, dir))
        .collect()
}

fn client_tls_entry(key: String, entry: toml::Value, dir: &Path) -> Result<ClientTlsEntry> {
    let raw: RawClientTls = entry.try_into().with_context(|| {
        format!(
            "`{key}`: expected `component_ids`, `hosts` and optionally `ca_use_webpki_roots`, \
             `ca_roots_file`, `client_cert_file`, `client_private_key_file`"
        )
    })?;
    if raw.component_ids.is_empty() {
        bail!("`{key}.component_ids` may not be empty");
    }
    if raw.hosts.is_empty() {
        bail!("`{key}.hosts` may not be empty");
    }
    for host in &raw.hosts {
        check_host(host).with_context(|| format!("`{key}.hosts`"))?;
    }
    // Spin's default: webpki's roots unless roots of one's own are given.
    let use_webpki_roots = raw
        .ca_use_webpki_roots
        .unwrap_or(raw.ca_roots_file.is_none());
    let roots = match &raw.ca_roots_file {
        Some(file) => certificates(&dir.join(file))
            .with_context(|| format!("`{key}.ca_roots_file`"))?,
        None => Vec::new(),
    };
    let client_cert = match (&raw.client_cert_file, &raw.client_private_key_file) {
        (None, None) => None,
        (Some(_), None) => bail!("`{key}`: `client_cert_file` needs `client_private_key_file`"),
        (None, Some(_)) => bail!("`{key}`: `client_private_key_file` needs `client_cert_file`"),
        (Some(cert), Some(private_key)) => Some(ClientCert {
            chain: certificates(&dir.join(cert))
                .with_context(|| format!("`{key}.client_cert_file`"))?,
            key: private_key_file(&dir.join(private_key))
                .with_context(|| format!("`{key}.client_private_key_file`"))?,
        }),
    };
    let config = TlsConfig::new(TlsSettings {
        use_webpki_roots,
        roots,
        client_cert,
    })
    .with_context(|| format!("`{key}`"))?;
    Ok(ClientTlsEntry {
        key,
        component_ids: raw.component_ids,
        hosts: raw.hosts,
        config: Arc::new(config),
    })
}

/// A host as Spin takes it: an authority without a port (a name or an IP
/// address; IPv6 in brackets).
fn check_host(host: &str) -> Result<()> {
    let authority: http::uri::Authority = host
        .parse()
        .ok()
        .filter(|a: &http::uri::Authority| a.as_str() == host && !host.contains('@'))
        .with_context(|| format!("`{host}` is not a host name or IP address"))?;
    if authority.port().is_some() {
        bail!(
            "`{host}` has a port: hosts are names or IP addresses without one, and an entry \
             applies to every port of its hosts (as in Spin)"
        );
    }
    Ok(())
}

/// The PEM certificates in `path`, at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        bail!(
            "`{}` holds no certificate: expected PEM blocks `-----BEGIN CERTIFICATE-----`",
            path.display()
        );
    }
    Ok(certs)
}

/// The PEM private key in `path`.
fn private_key_file(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::Io(e) => {
            anyhow::anyhow!("cannot read `{}`: {e}", path.display())
        }
        rustls::pki_types::pem::Error::NoItemsFound => anyhow::anyhow!(
            "`{}` holds no private key: expected a PEM `PRIVATE KEY` (PKCS#8), \
             `RSA PRIVATE KEY` (PKCS#1) or `EC PRIVATE KEY` (SEC1) block",
            path.display()
        ),
        other => anyhow::anyhow!(
            "`{}` is not a PEM private key: {other}",
            path.display()
        ),
    })
}

fn pem_error(path: &Path, e: rustls::pki_types::pem::Error) -> anyhow::Error {
    match e {
        rustls::pki_types::pem::Error::Io(e) => {
            anyhow::anyhow!("cannot read `{}`: {e}", path.display())
        }
        other => anyhow::anyhow!("`{}` is not a PEM file: {other}", path.display()),
    }
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

    /// A CA, a server certificate it signed, and a client certificate
    /// with its key, written as PEM files into `dir` (`ca.pem`,
    /// `client.pem`, `client.key`), plus `other.key` (a key of nothing).
    fn pem_files(dir: &Path) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client = rcgen::CertificateParams::new(vec!["client".to_owned()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
        std::fs::write(dir.join("client.key"), client_key.serialize_pem()).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.join("other.key"), other.serialize_pem()).unwrap();
        std::fs::write(dir.join("text.pem"), "not a certificate\n").unwrap();
        std::fs::write(
            dir.join("broken.pem"),
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
    }

    #[test]
    fn client_tls_entries_read_their_files_relative_to_the_config_with_spins_defaults() {
        let dir = tempfile::tempdir().unwrap();
        pem_files(dir.path());
        let config = RuntimeConfig::parse(
            r#"
[[client_tls]]
component_ids = ["api", "worker"]
hosts = ["db.internal", "127.0.0.1", "[::1]"]
ca_roots_file = "ca.pem"
client_cert_file = "client.pem"
client_private_key_file = "client.key"

[[client_tls]]
component_ids = ["api"]
hosts = ["api.example.com"]

[[client_tls]]
component_ids = ["api"]
hosts = ["both.example.com"]
ca_roots_file = "ca.pem"
ca_use_webpki_roots = true
"#,
            dir.path(),
        )
        .unwrap();
        let [first, second, third] = &config.client_tls[..] else {
            panic!("{:?}", config.client_tls);
        };
        assert_eq!(first.key, "client_tls[0]");
        assert_eq!(first.component_ids, ["api", "worker"]);
        assert_eq!(first.hosts, ["db.internal", "127.0.0.1", "[::1]"]);
        // Roots of one's own replace webpki's unless asked for both.
        let settings = first.config.settings();
        assert!(!settings.use_webpki_roots);
        assert_eq!(settings.roots.len(), 1);
        assert_eq!(
            settings.client_cert.as_ref().map(|c| c.chain.len()),
            Some(1)
        );
        assert!(second.config.settings().use_webpki_roots);
        assert!(second.config.settings().roots.is_empty());
        assert!(second.config.settings().client_cert.is_none());
        assert!(third.config.settings().use_webpki_roots);
        assert_eq!(third.config.settings().roots.len(), 1);
    }

    #[test]
    fn client_tls_mistakes_are_refused_naming_the_entry_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        pem_files(dir.path());
        let path = |name: &str| dir.path().join(name).display().to_string();
        let entry = |body: &str| {
            format!("[[client_tls]]\ncomponent_ids = [\"api\"]\nhosts = [\"h\"]\n{body}\n")
        };
        let cases = [
            (
                entry("ca_roots_file = \"missing.pem\""),
                format!(
                    "`client_tls[0].ca_roots_file`: cannot read `{}`: No such file",
                    path("missing.pem")
                ),
            ),
            (
                entry("ca_roots_file = \"broken.pem\""),
                format!(
                    "`client_tls[0].ca_roots_file`: `{}` is not a PEM file",
                    path("broken.pem")
                ),
            ),
            (
                entry("ca_roots_file = \"text.pem\""),
                format!(
                    "`client_tls[0].ca_roots_file`: `{}` holds no certificate",
                    path("text.pem")
                ),
            ),
            (
                entry("client_cert_file = \"client.pem\"\nclient_private_key_file = \"ca.pem\""),
                format!(
                    "`client_tls[0].client_private_key_file`: `{}` holds no private key",
                    path("ca.pem")
                ),
            ),
            (
                entry("client_cert_file = \"client.pem\"\nclient_private_key_file = \"nokey.pem\""),
                format!(
                    "`client_tls[0].client_private_key_file`: cannot read `{}`",
                    path("nokey.pem")
                ),
            ),
            (
                entry("client_cert_file = \"client.pem\"\nclient_private_key_file = \"other.key\""),
                "`client_tls[0]`: the key in `client_private_key_file` does not belong to the certificate in `client_cert_file`".to_owned(),
            ),
            (
                entry("client_cert_file = \"client.pem\""),
                "`client_tls[0]`: `client_cert_file` needs `client_private_key_file`".to_owned(),
            ),
            (
                entry("client_private_key_file = \"client.key\""),
                "`client_tls[0]`: `client_private_key_file` needs `client_cert_file`".to_owned(),
            ),
            (
                entry("ca_use_webpki_roots = false"),
                "`client_tls[0]`: no root certificate would be trusted".to_owned(),
            ),
            (
                entry("ca_use_platform_roots = true"),
                "`client_tls[0]`: expected `component_ids`, `hosts`".to_owned(),
            ),
            (
                "[[client_tls]]\ncomponent_ids = []\nhosts = [\"h\"]\n".to_owned(),
                "`client_tls[0].component_ids` may not be empty".to_owned(),
            ),
            (
                "[[client_tls]]\ncomponent_ids = [\"api\"]\nhosts = []\n".to_owned(),
                "`client_tls[0].hosts` may not be empty".to_owned(),
            ),
            (
                "[[client_tls]]\ncomponent_ids = [\"api\"]\nhosts = [\"db:5432\"]\n".to_owned(),
                "`client_tls[0].hosts`: `db:5432` has a port".to_owned(),
            ),
            (
                "[[client_tls]]\ncomponent_ids = [\"api\"]\nhosts = [\"https://db/\"]\n".to_owned(),
                "`client_tls[0].hosts`: `https://db/` is not a host name or IP address".to_owned(),
            ),
            (
                "[[client_tls]]\ncomponent_ids = [\"api\"]\n".to_owned(),
                "`client_tls[0]`: expected `component_ids`, `hosts`".to_owned(),
            ),
            (
                "[client_tls]\ncomponent_ids = [\"api\"]\nhosts = [\"h\"]\n".to_owned(),
                "`client_tls` must be an array of tables: `[[client_tls]]`".to_owned(),
            ),
            (
                format!("{}{}", entry(""), entry("ca_roots_file = \"missing.pem\"")),
                "`client_tls[1].ca_roots_file`".to_owned(),
            ),
        ];
        for (text, expected) in cases {
            let err = RuntimeConfig::parse(&text, dir.path()).unwrap_err();
            assert!(format!("{err:#}").contains(&expected), "{text}: {err:#}");
        }
        // Through `load`, the file itself is named first.
        let file = dir.path().join("rc.toml");
        std::fs::write(&file, entry("ca_roots_file = \"missing.pem\"")).unwrap();
        let err = RuntimeConfig::load(&file).unwrap_err();
        assert!(
            format!("{err:#}").starts_with(&format!(
                "runtime config `{}`: `client_tls[0].ca_roots_file`: cannot read `{}`",
                file.display(),
                path("missing.pem")
            )),
            "{err:#}"
        );
    }

}
