//! TLS on the front door: rustls, TLS 1.2 and 1.3, ALPN `h2` and
//! `http/1.1` (HTTP/2 over TLS on the same port), and a certificate that
//! can be replaced while serving.
//!
//! The certificate chain and key are read from PEM files (the key in
//! PKCS#8, PKCS#1 or SEC1 form) and checked against each other before
//! anything listens. [`Tls::watch`] reloads them on SIGHUP and when either
//! file changes (cert-manager and the kubelet rewrite mounted secrets in
//! place): new handshakes get the new pair, open connections carry on with
//! theirs, and a bad new pair is logged while the old one keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// How often the certificate and key files are checked for changes. A
/// renewed certificate usually lands days before the old one expires, so
/// seconds of delay cost nothing; checking is two `stat` calls.
pub const RELOAD_POLL: Duration = Duration::from_secs(1);

/// The protocols offered by ALPN, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Where the certificate chain and its key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
}

/// A TLS acceptor whose certificate can be swapped while it serves.
pub struct Tls {
    acceptor: TlsAcceptor,
    current: Arc<Current>,
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
}

/// The pair new handshakes get.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

impl Tls {
    /// Reads and checks the pair, and builds the acceptor. Errors name the
    /// file and say what was expected.
    pub fn load(files: TlsFiles) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = load_pair(&files, &provider)?;
        let current = Arc::new(Current(RwLock::new(pair)));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("cannot configure TLS 1.2 and 1.3")?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
            files,
            provider,
        })
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the files again; on success new handshakes use the new pair,
    /// on failure the old one stays.
    pub fn reload(&self) -> Result<()> {
        let pair = load_pair(&self.files, &self.provider)?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = pair;
        Ok(())
    }

    /// Reloads on SIGHUP and whenever either file changes, until the
    /// process ends.
    pub fn watch(self: Arc<Self>) -> Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup =
            signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
        tokio::spawn(async move {
            let mut seen = self.fingerprint();
            let mut tick = tokio::time::interval(RELOAD_POLL);
            loop {
                let reason = tokio::select! {
                    _ = hangup.recv() => "SIGHUP",
                    _ = tick.tick() => {
                        let now = self.fingerprint();
                        if now == seen {
                            continue;
                        }
                        seen = now;
                        "the files changed"
                    }
                };
                match self.reload() {
                    Ok(()) => tracing::info!(
                        "TLS certificate reloaded from `{}` ({reason})",
                        self.files.cert.display()
                    ),
                    Err(e) => tracing::error!(
                        "TLS certificate reload failed ({reason}); still serving the previous one: {e:#}"
                    ),
                }
            }
        });
        Ok(())
    }

    /// What identifies the files' contents cheaply: size, mtime and inode
    /// of each (a rename over the file changes the inode).
    fn fingerprint(&self) -> [Option<(u64, SystemTime, u64)>; 2] {
        use std::os::unix::fs::MetadataExt;
        let stat = |path: &Path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?, m.ino())))
        };
        [stat(&self.files.cert), stat(&self.files.key)]
    }
}

/// Reads the chain and key, checks that they belong together, and warns
/// about a certificate outside its validity period.
fn load_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>> {
    let cert = &files.cert;
    let key_path = &files.key;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the TLS certificate `{}`", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("`{}` is not a PEM certificate chain", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "`{}` holds no certificate: expected PEM blocks `-----BEGIN CERTIFICATE-----`",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key_path).with_context(|| {
        format!(
            "cannot read a private key from `{}`: expected a PEM `PRIVATE KEY` (PKCS#8), \
             `RSA PRIVATE KEY` (PKCS#1) or `EC PRIVATE KEY` (SEC1) block",
            key_path.display()
        )
    })?;
    let pair = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => anyhow::anyhow!(
            "the key in `{}` does not belong to the certificate in `{}`",
            key_path.display(),
            cert.display()
        ),
        other => anyhow::anyhow!(
            "cannot use the key in `{}` with the certificate in `{}`: {other}",
            key_path.display(),
            cert.display()
        ),
    })?;
    if let Some(leaf) = pair.cert.first() {
        warn_if_outside_validity(cert, leaf);
    }
    Ok(Arc::new(pair))
}

/// A certificate that has expired or is not yet valid still loads (an
/// operator may be fixing the clock, or testing), with a warning: clients
/// will refuse it.
fn warn_if_outside_validity(path: &Path, leaf: &CertificateDer<'_>) {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        tracing::warn!(
            "cannot read the validity period of the certificate in `{}`",
            path.display()
        );
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let validity = parsed.validity();
    if now > validity.not_after.timestamp() {
        tracing::warn!(
            "the certificate in `{}` expired on {}: clients will refuse it",
            path.display(),
            validity.not_after
        );
    } else if now < validity.not_before.timestamp() {
        tracing::warn!(
            "the certificate in `{}` is not valid before {}: clients will refuse it",
            path.display(),
            validity.not_before
        );
    }
}
