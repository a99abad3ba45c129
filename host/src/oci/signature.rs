//! Signatures of a manifest in cosign's key-based format, so that the
//! tool operators already know (`cosign sign --key`, `cosign verify
//! --key`) reads and writes what wasmhost does.
//!
//! The format (cosign's `specs/SIGNATURE_SPEC.md`, tag-based discovery):
//! the signatures of manifest `sha256:<hex>` are the layers of one image
//! manifest tagged `sha256-<hex>.sig` in the same repository. Each layer
//! is a simple-signing payload ([`SIMPLE_SIGNING`]: JSON naming the signed
//! manifest's digest) with the base64 of an ECDSA P-256 / SHA-256 DER
//! signature over the payload's bytes in its [`SIGNATURE`] annotation.
//! Signing again appends a layer, as cosign does, so several signers can
//! sign one manifest. cosign's Rekor bundles and certificates are neither
//! written nor read: trust is in the keys the operator names, nothing else.
//!
//! Keys are PEM: a PKCS#8 private key (`openssl genpkey -algorithm EC
//! -pkeyopt ec_paramgen_curve:P-256`) to sign, an SPKI public key
//! (`openssl pkey -pubout`, `cosign public-key`) to verify. cosign's own
//! encrypted private key file (`cosign.key`) is not read. The arithmetic is
//! `ring`'s; only the files' framing is parsed here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;
use oci_client::Reference;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde::{Deserialize, Serialize};

use super::media::{Descriptor, OCI_MANIFEST};
use super::progress::Progress;
use super::registry::{NotFound, Registry, RegistryOptions};
use super::store::ContentStore;
use crate::limits::{MAX_SIGNATURES_CHECKED, MAX_SIGNATURE_PAYLOAD_BYTES};

/// The media type of a signature layer: a simple-signing payload.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature over the payload.
pub const SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of a cosign payload.
const COSIGN_TYPE: &str = "cosign container image signature";
/// The image config cosign's signature manifests carry.
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A private key that signs, read from a PKCS#8 PEM file.
pub struct SigningKey {
    /// The file, for messages.
    path: PathBuf,
    pair: EcdsaKeyPair,
}

/// Names the file only: a key's material has no business in a log line.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.path.display())
    }
}

impl SigningKey {
    /// Reads the ECDSA P-256 private key in `path`.
    pub fn load(path: &Path) -> Result<SigningKey> {
        let pem = read(path)?;
        let context = || {
            format!(
                "`{}` is not an unencrypted PKCS#8 ECDSA P-256 private key \
                 (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` \
                 writes one{})",
                path.display(),
                encrypted_hint(&pem)
            )
        };
        let der = PrivatePkcs8KeyDer::from_pem_slice(&pem)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(context)?;
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            der.secret_pkcs8_der(),
            &SystemRandom::new(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(context)?;
        Ok(SigningKey {
            path: path.to_owned(),
            pair,
        })
    }

    /// The DER signature over `payload`.
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>> {
        let signature = self
            .pair
            .sign(&SystemRandom::new(), payload)
            .map_err(|_| anyhow::anyhow!("signing with `{}` failed", self.path.display()))?;
        Ok(signature.as_ref().to_vec())
    }
}

/// A public key that signatures are checked against, read from an SPKI
/// PEM file.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The file, as log lines name the signer.
    pub name: String,
    /// The uncompressed P-256 point.
    point: Vec<u8>,
}

impl PublicKey {
    /// Reads the ECDSA P-256 public key in `path`.
    pub fn load(path: &Path) -> Result<PublicKey> {
        let pem = read(path)?;
        let point = point_of(&pem).with_context(|| {
            format!(
                "`{}` is not an ECDSA P-256 public key in PEM (`-----BEGIN PUBLIC KEY-----`, \
                 as `openssl pkey -pubout` and `cosign public-key` write it)",
                path.display()
            )
        })?;
        Ok(PublicKey {
            name: path.display().to_string(),
            point,
        })
    }

    /// Whether `signature` (DER) over `payload` is this key's.
    fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(payload, signature)
            .is_ok()
    }
}

/// The P-256 point of the SPKI public key in `pem`, its algorithm checked.
fn point_of(pem: &[u8]) -> Result<Vec<u8>> {
    use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
    use x509_parser::prelude::FromDer as _;
    use x509_parser::x509::SubjectPublicKeyInfo;
    let der = SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (_, spki) = SubjectPublicKeyInfo::from_der(der.as_ref())
        .map_err(|e| anyhow::anyhow!("its DER does not parse: {e}"))?;
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        bail!("its algorithm is {}, not ECDSA", spki.algorithm.algorithm);
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    if curve.as_ref() != Some(&OID_EC_P256) {
        bail!("its curve is not P-256");
    }
    let point = spki.subject_public_key.data.to_vec();
    // SEC 1 uncompressed form: 0x04, then x and y of 32 bytes each.
    if point.len() != 65 || point[0] != 4 {
        bail!("its point is not an uncompressed P-256 point");
    }
    Ok(point)
}

/// The file's bytes.
fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read key file `{}`", path.display()))
}

/// A hint for a key file cosign encrypted.
fn encrypted_hint(pem: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(pem);
    if text.contains("ENCRYPTED") {
        "; an encrypted key, such as cosign's own `cosign.key`, is not read: keep the \
         openssl key and give cosign the same one with `cosign import-key-pair --key`"
    } else {
        ""
    }
}

/// cosign's simple-signing payload (field order as cosign's Go structs
/// marshal it; `optional` null when no annotations are signed).
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    critical: Critical,
    optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The payload signing manifest `digest` of `repository` (`registry/repo`).
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    let payload = Payload {
        critical: Critical {
            identity: Identity {
                docker_reference: repository.to_owned(),
            },
            image: Image {
                docker_manifest_digest: digest.to_owned(),
            },
            kind: COSIGN_TYPE.to_owned(),
        },
        optional: None,
    };
    serde_json::to_vec(&payload).expect("a payload of strings serializes")
}

/// Checks that `payload` is a cosign payload naming exactly `digest`. Its
/// `docker-reference` is not checked, as cosign does not: a signed
/// manifest may be copied to another repository and stay signed.
fn names(payload: &[u8], digest: &str) -> Result<()> {
    let payload: Payload =
        serde_json::from_slice(payload).context("its payload is not a simple-signing payload")?;
    if payload.critical.kind != COSIGN_TYPE {
        bail!(
            "its payload is of type `{}`, not `{COSIGN_TYPE}`",
            payload.critical.kind
        );
    }
    let named = payload.critical.image.docker_manifest_digest;
    if named != digest {
        bail!("its payload signs {named}, not {digest}");
    }
    Ok(())
}

/// Checks `signature` (base64 of DER, as the annotation holds it) over
/// `payload` against `signers`; returns the signer whose key verifies.
fn signed_by<'a>(
    payload: &[u8],
    signature: &str,
    signers: &'a [PublicKey],
) -> Result<&'a PublicKey> {
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .context("its signature is not base64")?;
    signers
        .iter()
        .find(|key| key.verifies(payload, &signature))
        .context("its signature verifies with none of the named keys")
}

/// The tag holding the signatures of manifest `digest` in `reference`'s
/// repository: `sha256-<hex>.sig`.
pub fn signature_tag(reference: &Reference, digest: &str) -> Result<Reference> {
    let hex = super::store::sha256_hex(digest)?;
    Ok(Reference::with_tag(
        reference.registry().to_owned(),
        reference.repository().to_owned(),
        format!("sha256-{hex}.sig"),
    ))
}

/// The repository as cosign names it in a payload's `docker-reference`.
fn docker_reference(reference: &Reference) -> String {
    format!(
        "{}/{}",
        reference.resolve_registry(),
        reference.repository()
    )
}

/// The parts of a signature manifest read here; other layers' fields are
/// kept as they are when a signature is added.
#[derive(Debug, Deserialize)]
struct SignatureManifest {
    #[serde(default)]
    layers: Vec<serde_json::Value>,
}

/// Signs manifest `digest` of `reference`'s repository with `key`: the
/// payload as a blob and a layer added to the manifest at its signature
/// tag (created when missing). Returns the tag.
pub async fn sign(
    reference: &Reference,
    digest: &str,
    key: &SigningKey,
    options: &RegistryOptions,
) -> Result<Reference> {
    let tag = signature_tag(reference, digest)?;
    let registry = Registry::for_reference(reference, options);
    registry.authenticate_push(reference).await?;
    let payload = payload(&docker_reference(reference), digest);
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&payload)?);
    let mut layer = Descriptor::of(&payload, SIMPLE_SIGNING);
    layer.annotations = Some(BTreeMap::from([(SIGNATURE.to_owned(), signature)]));
    registry
        .push_blob(reference, &payload, &layer.digest)
        .await?;
    let mut layers = match registry.manifest(&tag).await {
        Ok((bytes, _)) => {
            serde_json::from_slice::<SignatureManifest>(&bytes)
                .with_context(|| format!("`{}` is not a manifest", tag.whole()))?
                .layers
        }
        Err(e) if e.chain().any(|c| c.is::<NotFound>()) => Vec::new(),
        Err(e) => return Err(e.context(format!("cannot read `{}`", tag.whole()))),
    };
    layers.push(serde_json::to_value(&layer)?);
    // The image config go-containerregistry writes for cosign: one
    // `diff_ids` entry and one empty history entry per layer.
    let diff_ids: Vec<&serde_json::Value> = layers.iter().map(|l| &l["digest"]).collect();
    let history: Vec<serde_json::Value> = layers
        .iter()
        .map(|_| serde_json::json!({ "created": "0001-01-01T00:00:00Z" }))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": history,
        "os": "",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "config": {},
    }))?;
    let config_descriptor = Descriptor::of(&config, OCI_CONFIG);
    registry
        .push_blob(reference, &config, &config_descriptor.digest)
        .await?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_descriptor,
        "layers": layers,
    }))?;
    registry
        .push_manifest(&tag, manifest, OCI_MANIFEST)
        .await
        .with_context(|| format!("cannot push the signature `{}`", tag.whole()))?;
    Ok(tag)
}

/// Checks that manifest `digest` of `reference`'s repository is signed by
/// one of `signers`: a layer of its signature manifest whose payload
/// names exactly `digest` and whose signature verifies with one of the
/// keys. Returns that signer; the error says why none is.
pub async fn verify<'a>(
    reference: &Reference,
    digest: &str,
    signers: &'a [PublicKey],
    store: &ContentStore,
    options: &RegistryOptions,
) -> Result<&'a PublicKey> {
    let tag = signature_tag(reference, digest)?;
    let registry = Registry::for_reference(reference, options);
    let bytes = match registry.manifest(&tag).await {
        Ok((bytes, _)) => bytes,
        Err(e) if e.chain().any(|c| c.is::<NotFound>()) => {
            bail!("it is not signed (no `{}`)", tag.whole())
        }
        Err(e) => return Err(e.context(format!("cannot read `{}`", tag.whole()))),
    };
    #[derive(Deserialize)]
    struct Layers {
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    let manifest: Layers = serde_json::from_slice(&bytes)
        .with_context(|| format!("`{}` is not a manifest", tag.whole()))?;
    let mut reasons = Vec::new();
    let signed = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING)
        .take(MAX_SIGNATURES_CHECKED);
    for layer in signed {
        match check_layer(&registry, reference, layer, digest, signers, store).await {
            Ok(signer) => return Ok(signer),
            Err(e) => reasons.push(format!("{}: {e:#}", layer.digest)),
        }
    }
    if reasons.is_empty() {
        bail!("`{}` holds no `{SIMPLE_SIGNING}` layer", tag.whole());
    }
    bail!(
        "no signature in `{}` is by a named signer ({})",
        tag.whole(),
        reasons.join("; ")
    )
}

/// One signature layer: its payload fetched (verified against its
/// digest), checked to name `digest`, and its signature checked.
async fn check_layer<'a>(
    registry: &Registry,
    reference: &Reference,
    layer: &Descriptor,
    digest: &str,
    signers: &'a [PublicKey],
    store: &ContentStore,
) -> Result<&'a PublicKey> {
    let signature = layer
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIGNATURE))
        .with_context(|| format!("it has no `{SIGNATURE}` annotation"))?;
    if layer.size > MAX_SIGNATURE_PAYLOAD_BYTES {
        bail!(
            "its payload is {} bytes, more than the {MAX_SIGNATURE_PAYLOAD_BYTES} a payload needs",
            layer.size
        );
    }
    registry
        .fetch_blob(reference, layer, store, &Progress::hidden())
        .await?;
    let payload = store.read(&layer.digest)?;
    names(&payload, digest)?;
    signed_by(&payload, signature, signers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

    /// A fresh key pair as PEM files in `dir`: (private, public).
    fn key_files(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let private = dir.join(format!("{name}.pem"));
        let public = dir.join(format!("{name}.pub"));
        std::fs::write(&private, pair.serialize_pem()).unwrap();
        std::fs::write(&public, pair.public_key_pem()).unwrap();
        (private, public)
    }

    #[test]
    fn the_payload_is_cosigns_simple_signing_json_byte_for_byte() {
        let payload = payload("127.0.0.1:5000/team/pre", DIGEST);
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/team/pre"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
    }

    #[test]
    fn a_payload_must_name_exactly_the_digest_and_be_cosigns_type() {
        let payload = payload("r/x", DIGEST);
        assert!(names(&payload, DIGEST).is_ok());
        let other = DIGEST.replace('1', "2");
        let err = names(&payload, &other).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("signs {DIGEST}, not {other}")),
            "{err}"
        );
        let attestation = String::from_utf8(payload)
            .unwrap()
            .replace(COSIGN_TYPE, "atomic container signature");
        let err = names(attestation.as_bytes(), DIGEST).unwrap_err();
        assert!(err.to_string().contains("of type"), "{err}");
        assert!(names(b"{}", DIGEST).is_err());
    }

    #[test]
    fn a_signature_verifies_with_its_own_key_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = key_files(dir.path(), "signer");
        let (_, other) = key_files(dir.path(), "other");
        let key = SigningKey::load(&private).unwrap();
        let signer = PublicKey::load(&public).unwrap();
        let other = PublicKey::load(&other).unwrap();
        let payload = payload("r/x", DIGEST);
        let signature =
            base64::engine::general_purpose::STANDARD.encode(key.sign(&payload).unwrap());

        let both = [other.clone(), signer.clone()];
        let found = signed_by(&payload, &signature, &both).unwrap();
        assert_eq!(found.name, signer.name);
        let err = signed_by(&payload, &signature, std::slice::from_ref(&other)).unwrap_err();
        assert!(err.to_string().contains("none of the named keys"), "{err}");
        // The signature is over the payload's exact bytes.
        let mut changed = payload.clone();
        changed.push(b' ');
        assert!(signed_by(&changed, &signature, std::slice::from_ref(&signer)).is_err());
        assert!(signed_by(&payload, "not base64!", &[signer]).is_err());
    }

    #[test]
    fn key_files_of_the_wrong_kind_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = key_files(dir.path(), "signer");
        // A private key where a public one belongs, and the reverse.
        let err = PublicKey::load(&private).unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("`{}`", private.display())),
            "{err:#}"
        );
        assert!(format!("{err:#}").contains("BEGIN PUBLIC KEY"), "{err:#}");
        let err = SigningKey::load(&public).unwrap_err();
        assert!(format!("{err:#}").contains("PKCS#8"), "{err:#}");
        // Another curve.
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let path = dir.path().join("p384.pub");
        std::fs::write(&path, p384.public_key_pem()).unwrap();
        let err = PublicKey::load(&path).unwrap_err();
        assert!(format!("{err:#}").contains("not P-256"), "{err:#}");
        // A file that is not there.
        let err = PublicKey::load(&dir.path().join("missing.pub")).unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot read key file"),
            "{err:#}"
        );
    }
}
