//! Client TLS for outbound connections, as Spin's `[[client_tls]]`
//! runtime config has it: per component and per host, which CA roots are
//! trusted and which client certificate is presented, for outbound HTTPS
//! (wasi:http, Spin 1's `fermyon:spin/http`) and PostgreSQL alike.
//!
//! A host no entry names gets [`TlsConfig::default_config`]: webpki's
//! roots (Mozilla's), no client certificate, which is what wasmtime's own
//! outgoing client trusts. `app::runtime_config` reads the entries;
//! `app::assemble` gives each component its [`ComponentTls`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use anyhow::{Context as _, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What one `[[client_tls]]` entry asks for, its files read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ca_use_webpki_roots`: trust webpki's (Mozilla's) roots too.
    pub use_webpki_roots: bool,
    /// `ca_roots_file`'s certificates.
    pub roots: Vec<CertificateDer<'static>>,
    /// `client_cert_file` and `client_private_key_file`.
    pub client_cert: Option<ClientCert>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            use_webpki_roots: true,
            roots: Vec::new(),
            client_cert: None,
        }
    }
}

/// A client certificate chain (leaf first) and its private key.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

// Not derived: a private key is cloned on purpose only.
impl Clone for ClientCert {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsSettings {
    /// A rustls client configuration trusting these roots (and `extra`,
    /// a root the guest gave, PostgreSQL's `set-ca-root`), presenting the
    /// client certificate if any. Errors say which part is unusable.
    pub fn client_config(&self, extra: Option<&CertificateDer<'static>>) -> Result<ClientConfig> {
        let mut roots = RootCertStore::empty();
        if self.use_webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for (i, cert) in self.roots.iter().enumerate() {
            roots.add(cert.clone()).with_context(|| {
                format!(
                    "certificate {} of `ca_roots_file` cannot be used as a CA root",
                    i + 1
                )
            })?;
        }
        if let Some(cert) = extra {
            roots
                .add(cert.clone())
                .context("the CA root given cannot be used as one")?;
        }
        anyhow::ensure!(
            !roots.is_empty(),
            "no root certificate would be trusted: give `ca_roots_file`, or leave \
             `ca_use_webpki_roots` at its default (true)"
        );
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("cannot configure TLS 1.2 and 1.3")?
            .with_root_certificates(roots);
        Ok(match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some(cert) => builder
                .with_client_auth_cert(cert.chain.clone(), cert.key.clone_key())
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => anyhow::anyhow!(
                        "the key in `client_private_key_file` does not belong to the \
                         certificate in `client_cert_file`"
                    ),
                    other => anyhow::anyhow!(
                        "`client_cert_file` and `client_private_key_file` cannot be used \
                         together: {other}"
                    ),
                })?,
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: LazyLock<Arc<rustls::crypto::CryptoProvider>> =
        LazyLock::new(|| Arc::new(rustls::crypto::ring::default_provider()));
    PROVIDER.clone()
}

/// One TLS client configuration, built once and shared by every
/// connection that uses it, in the forms each client wants.
pub struct TlsConfig {
    /// Tells configurations apart (PostgreSQL clients are shared per
    /// address and configuration); 0 is the default one.
    id: u64,
    settings: TlsSettings,
    rustls: Arc<ClientConfig>,
    postgres: MakeRustlsConnect,
    reqwest: reqwest::Client,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("id", &self.id)
            .field("use_webpki_roots", &self.settings.use_webpki_roots)
            .field("roots", &self.settings.roots.len())
            .field("client_cert", &self.settings.client_cert.is_some())
            .finish()
    }
}

impl PartialEq for TlsConfig {
    fn eq(&self, other: &Self) -> bool {
        self.settings == other.settings
    }
}

impl Eq for TlsConfig {}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What the reqwest client offers by ALPN, preferred first.
const HTTP_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

impl TlsConfig {
    /// Builds the configuration `settings` describe.
    pub fn new(settings: TlsSettings) -> Result<Self> {
        Self::with_id(NEXT_ID.fetch_add(1, Ordering::Relaxed), settings)
    }

    fn with_id(id: u64, settings: TlsSettings) -> Result<Self> {
        let config = settings.client_config(None)?;
        // reqwest speaks HTTP/2 where the server agrees, as its own TLS
        // setup would offer it.
        let mut with_alpn = config.clone();
        with_alpn.alpn_protocols = HTTP_ALPN.iter().map(|p| p.to_vec()).collect();
        let reqwest = reqwest::Client::builder()
            .use_preconfigured_tls(with_alpn)
            .build()
            .context("cannot build an HTTP client with this TLS configuration")?;
        Ok(Self {
            id,
            rustls: Arc::new(config.clone()),
            postgres: MakeRustlsConnect::new(config),
            settings,
            reqwest,
        })
    }

    /// The configuration of hosts no `[[client_tls]]` entry names:
    /// webpki's roots, no client certificate.
    pub fn default_config() -> &'static Arc<TlsConfig> {
        static DEFAULT: LazyLock<Arc<TlsConfig>> = LazyLock::new(|| {
            Arc::new(
                TlsConfig::with_id(0, TlsSettings::default())
                    .expect("webpki's roots make a valid TLS configuration"),
            )
        });
        &DEFAULT
    }

    /// What tells this configuration apart from others.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// What it was built from.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// For rustls connectors (outgoing wasi:http requests).
    pub fn rustls(&self) -> &Arc<ClientConfig> {
        &self.rustls
    }

    /// For tokio-postgres (`sslmode` other than `disable`).
    pub fn postgres(&self) -> &MakeRustlsConnect {
        &self.postgres
    }

    /// An HTTP client using it (Spin 1's `fermyon:spin/http`); its
    /// connections are pooled across requests.
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.reqwest
    }
}

/// The TLS configurations one component uses, by host.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ComponentTls {
    hosts: Option<Arc<HashMap<String, Arc<TlsConfig>>>>,
}

impl std::fmt::Debug for ComponentTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut hosts: Vec<_> = self.hosts.iter().flat_map(|h| h.keys()).collect();
        hosts.sort();
        f.debug_struct("ComponentTls").field("hosts", &hosts).finish()
    }
}

/// How hosts are compared: without IPv6 brackets, in lower case.
pub fn host_key(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

impl ComponentTls {
    /// The configurations for the hosts named (keys as [`host_key`]
    /// makes them).
    pub fn new(hosts: HashMap<String, Arc<TlsConfig>>) -> Self {
        Self {
            hosts: (!hosts.is_empty()).then(|| Arc::new(hosts)),
        }
    }

    /// The configuration for connections to `host` (a name or an IP
    /// address, any port).
    pub fn for_host(&self, host: &str) -> &Arc<TlsConfig> {
        self.hosts
            .as_ref()
            .and_then(|hosts| hosts.get(&host_key(host)))
            .unwrap_or_else(|| TlsConfig::default_config())
    }
}

/// If `error` (or what caused it) is a server certificate rustls did not
/// trust, what to do about it; for error messages.
pub fn untrusted_hint(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut next = Some(error);
    while let Some(e) = next {
        // io::Error's `source` skips the error it wraps: look inside.
        let e = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map_or(e, |inner| inner as &(dyn std::error::Error + 'static));
        if let Some(rustls::Error::InvalidCertificate(cert)) = e.downcast_ref::<rustls::Error>() {
            return Some(match cert {
                rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature => {
                    "the server's certificate is not trusted: name its CA in `ca_roots_file` of a \
                     `[[client_tls]]` entry for this component and host (runtime config)"
                }
                _ => "the server's certificate was refused",
            });
        }
        next = e.source();
    }
    None
}

/// `error` and its causes, one after another (`a: b: c`), looking inside
/// the I/O errors that wrap TLS errors.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let e = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map_or(e, |inner| inner as &(dyn std::error::Error + 'static));
        let part = e.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_not_named_get_the_default_and_names_match_without_case_or_brackets() {
        let config = Arc::new(
            TlsConfig::new(TlsSettings {
                use_webpki_roots: false,
                roots: vec![self_signed()],
                client_cert: None,
            })
            .unwrap(),
        );
        let tls = ComponentTls::new(HashMap::from([
            (host_key("DB.example.com"), config.clone()),
            (host_key("[::1]"), config.clone()),
        ]));
        assert_eq!(tls.for_host("db.EXAMPLE.com").id(), config.id());
        assert_eq!(tls.for_host("::1").id(), config.id());
        assert_eq!(tls.for_host("[::1]").id(), config.id());
        assert_eq!(tls.for_host("other.example.com").id(), 0);
        assert_eq!(ComponentTls::default().for_host("db.example.com").id(), 0);
    }

    #[test]
    fn no_roots_at_all_and_a_key_of_another_certificate_are_refused() {
        let none = TlsSettings {
            use_webpki_roots: false,
            roots: Vec::new(),
            client_cert: None,
        };
        let err = TlsConfig::new(none).unwrap_err();
        assert!(
            format!("{err:#}").contains("no root certificate would be trusted"),
            "{err:#}"
        );
        let cert = rcgen::generate_simple_self_signed(vec!["a".to_owned()]).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let mismatched = TlsSettings {
            client_cert: Some(ClientCert {
                chain: vec![cert.cert.der().clone()],
                key: PrivateKeyDer::try_from(other.serialize_der()).unwrap(),
            }),
            ..TlsSettings::default()
        };
        let err = TlsConfig::new(mismatched).unwrap_err();
        assert!(
            format!("{err:#}").contains("does not belong to the certificate"),
            "{err:#}"
        );
    }

    fn self_signed() -> CertificateDer<'static> {
        let cert = rcgen::generate_simple_self_signed(vec!["a".to_owned()]).unwrap();
        cert.cert.der().clone()
    }
}
