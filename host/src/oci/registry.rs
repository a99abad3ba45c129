//! Talking to a registry: references, credentials, manifests and blobs
//! (pulling them into the store is [`super::pull`]'s).
//!
//! Built on `oci-client`, which does the distribution protocol and the
//! token dance; this module decides what to trust: every manifest and blob
//! is checked against its digest before it is stored.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::media::{Descriptor, ACCEPTED_MANIFESTS};
use super::progress::Progress;
use super::store::{ContentStore, MAX_BLOB_BYTES};

/// Largest manifest accepted (the distribution spec suggests 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Plain HTTP and unverified TLS for every registry, not only loopback
    /// ones.
    pub insecure: bool,
    /// Credentials to use instead of Docker's `config.json`.
    pub credentials: Option<(String, String)>,
}

/// Parses a reference (`registry/repo:tag`, `registry/repo@sha256:…`).
/// See [`super::reference`] for why not `Reference::from_str`.
pub fn parse_reference(text: &str) -> Result<Reference> {
    super::reference::parse(text)
}

/// Whether `text` should be read as a registry reference rather than a
/// file: it names a registry host (a dot, a port or `localhost` before the
/// first `/`) and parses as a reference.
pub fn looks_like_reference(text: &str) -> bool {
    let Some((host, _)) = text.split_once('/') else {
        return false;
    };
    // Deliberately cheap: a start from a file should not even build the
    // reference grammar. A string that passes here but is no valid
    // reference fails in `parse_reference`.
    (host.contains('.') || host.contains(':') || host == "localhost")
        && !text.ends_with(".wasm")
        && !text.ends_with(".toml")
        && !text.contains(char::is_whitespace)
}

/// A registry host on this machine: plain HTTP is fine there.
pub fn is_loopback(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(registry, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The registry as Docker's `config.json` names it.
pub fn credential_key(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    }
}

/// A client for the registry of one reference, with its credentials.
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
}

impl Registry {
    /// A client for `reference`'s registry.
    pub fn for_reference(reference: &Reference, options: &RegistryOptions) -> Self {
        let registry = reference.resolve_registry().to_owned();
        let protocol = if options.insecure {
            ClientProtocol::Http
        } else if is_loopback(&registry) {
            ClientProtocol::HttpsExcept(vec![registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            accept_invalid_certificates: options.insecure,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        let auth = match &options.credentials {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => stored_auth(reference.registry()),
        };
        Self {
            client: Client::new(config),
            auth,
        }
    }

    /// The raw manifest and its digest (verified against the reference's
    /// digest when it has one).
    pub async fn manifest(&self, reference: &Reference) -> Result<(Vec<u8>, String)> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(reference, &self.auth, ACCEPTED_MANIFESTS)
            .await
            .map_err(explain)?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            bail!("the manifest is larger than {MAX_MANIFEST_BYTES} bytes");
        }
        Ok((bytes, digest))
    }

    /// Streams the blob `descriptor` names into `store`, verified; returns
    /// whether it was new.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        store: &ContentStore,
        progress: &Progress,
    ) -> Result<bool> {
        if store.has(&descriptor.digest) {
            return Ok(false);
        }
        if descriptor.size > MAX_BLOB_BYTES {
            bail!(
                "blob {} is {} bytes, more than the {MAX_BLOB_BYTES}-byte limit",
                descriptor.digest,
                descriptor.size
            );
        }
        let layer = oci_client::manifest::OciDescriptor {
            media_type: descriptor.media_type.clone(),
            digest: descriptor.digest.clone(),
            size: descriptor.size as i64,
            ..Default::default()
        };
        let stream = self
            .client
            .pull_blob_stream(reference, &layer)
            .await
            .map_err(explain)
            .with_context(|| format!("cannot fetch blob {}", descriptor.digest))?;
        let bar = progress.blob(&descriptor.digest, descriptor.size);
        store
            .put_stream(
                &descriptor.digest,
                Some(descriptor.size),
                MAX_BLOB_BYTES,
                stream.stream,
                |n| bar.inc(n),
            )
            .await
            .with_context(|| format!("blob {}", descriptor.digest))?;
        bar.finish();
        Ok(true)
    }

    /// Pushes `bytes` as a blob (skipped when the registry has it).
    pub async fn push_blob(&self, reference: &Reference, bytes: &[u8], digest: &str) -> Result<()> {
        self.client
            .push_blob(reference, bytes, digest)
            .await
            .map_err(explain)
            .with_context(|| format!("cannot push blob {digest}"))?;
        Ok(())
    }

    /// Pushes a manifest; returns nothing the caller does not know already
    /// (its digest is the SHA-256 of `bytes`).
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<()> {
        let content_type = media_type.parse().context("invalid manifest media type")?;
        self.client
            .push_manifest_raw(reference, bytes, content_type)
            .await
            .map_err(explain)
            .context("cannot push the manifest")?;
        Ok(())
    }

    /// Authenticates for pull (a token request where the registry uses
    /// them), so bad credentials fail with a clear error.
    pub async fn authenticate_pull(&self, reference: &Reference) -> Result<()> {
        self.client
            .auth(reference, &self.auth, oci_client::RegistryOperation::Pull)
            .await
            .map_err(explain)
            .context("cannot authenticate")?;
        Ok(())
    }

    /// Authenticates for push: fetches a token where the registry uses
    /// them, so a bad password fails before any upload.
    pub async fn authenticate_push(&self, reference: &Reference) -> Result<()> {
        self.client
            .auth(reference, &self.auth, oci_client::RegistryOperation::Push)
            .await
            .map_err(explain)
            .context("cannot authenticate")?;
        Ok(())
    }
}

/// Credentials from Docker's `config.json` (`$DOCKER_CONFIG`, else
/// `~/.docker`), including credential helpers; anonymous when none.
fn stored_auth(registry: &str) -> RegistryAuth {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    let config = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")))
        .map(|dir| dir.join("config.json"));
    if !config.is_some_and(|path| path.is_file()) {
        return RegistryAuth::Anonymous;
    }
    match docker_credential::get_credential(credential_key(registry)) {
        Ok(DockerCredential::UsernamePassword(user, password)) => {
            RegistryAuth::Basic(user, password)
        }
        Ok(DockerCredential::IdentityToken(token)) => RegistryAuth::Bearer(token),
        Err(E::ConfigNotFound | E::NoCredentialConfigured) => RegistryAuth::Anonymous,
        Err(e) => {
            tracing::warn!("ignoring the Docker credentials for `{registry}`: {e:?}");
            RegistryAuth::Anonymous
        }
    }
}

/// Turns `oci-client` errors into what a user can act on.
fn explain(error: OciDistributionError) -> anyhow::Error {
    match &error {
        OciDistributionError::UnauthorizedError { .. } => {
            anyhow!("the registry refused the credentials (401): {error}; log in with `wasmhost registry login`")
        }
        // The token service said no; its status is not kept by oci-client.
        OciDistributionError::AuthenticationFailure(_) => {
            anyhow!("the registry's token service refused the credentials (401/403): {error}; log in with `wasmhost registry login`")
        }
        OciDistributionError::ServerError { code: 401, .. } => {
            anyhow!("the registry refused the credentials (401): {error}; log in with `wasmhost registry login`")
        }
        OciDistributionError::ServerError { code: 403, .. } => {
            anyhow!("access denied (403): {error}")
        }
        OciDistributionError::ImageManifestNotFoundError(_)
        | OciDistributionError::ServerError { code: 404, .. } => {
            anyhow::Error::new(NotFound(error.to_string()))
        }
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    oci_client::errors::OciErrorCode::ManifestUnknown
                        | oci_client::errors::OciErrorCode::NameUnknown
                        | oci_client::errors::OciErrorCode::BlobUnknown
                )
            }) =>
        {
            anyhow::Error::new(NotFound(error.to_string()))
        }
        OciDistributionError::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, oci_client::errors::OciErrorCode::Unauthorized)) =>
        {
            anyhow!("the registry refused the credentials (401): {error}; log in with `wasmhost registry login`")
        }
        OciDistributionError::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, oci_client::errors::OciErrorCode::Denied)) =>
        {
            anyhow!("access denied (403): {error}")
        }
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            anyhow::Error::new(Unreachable(e.to_string()))
        }
        _ => anyhow::Error::new(error),
    }
}

/// The registry could not be reached at all (as opposed to answering no).
#[derive(Debug, thiserror::Error)]
#[error("the registry is unreachable: {0}")]
pub struct Unreachable(String);

/// The registry has no such manifest, blob or repository (as opposed to
/// failing to answer).
#[derive(Debug, thiserror::Error)]
#[error("not found (404): {0}")]
pub struct NotFound(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_files_are_told_apart() {
        assert!(looks_like_reference("127.0.0.1:5000/hello:1"));
        assert!(looks_like_reference(&format!(
            "localhost/team/app@sha256:{}",
            "0".repeat(64)
        )));
        assert!(looks_like_reference("ghcr.io/team/hello:1.0"));
        assert!(!looks_like_reference("app.wasm"));
        assert!(!looks_like_reference("examples/hello/spin.toml"));
        assert!(!looks_like_reference("target/guest/hello.wasm"));
        assert!(!looks_like_reference("hello:1"));
    }

    #[test]
    fn loopback_registries() {
        for yes in [
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "localhost",
            "127.0.0.2",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["example.com", "10.0.0.1:5000", "localhost.example.com:5000"] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
