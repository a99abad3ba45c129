//! Media types, and what a manifest holds judging by them.

use anyhow::{bail, Result};
use serde::Deserialize;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker v2 schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker v2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Sent as `Accept` with every manifest request: without it the Debian
/// registry answers 404 for OCI manifests and converts Docker v2 ones to
/// schema 1 (another digest).
pub const ACCEPTED_MANIFESTS: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// CNCF Wasm artifact: config.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// CNCF Wasm artifact: the one layer.
pub const WASM_LAYER: &str = "application/wasm";
/// Spin (and oci-client's wasm helpers): a component layer.
pub const SPIN_WASM_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// Spin: a file layer.
pub const SPIN_DATA_LAYER: &str = "application/vnd.wasm.content.layer.v1+data";
/// Spin: a tar+gzip of a component's files (archive mode).
pub const SPIN_ARCHIVE_LAYER: &str = "application/vnd.wasm.content.bundle.v1.tar+gzip";
/// Spin: the locked app (a layer since Spin 2, the config before).
pub const SPIN_LOCKED_APP: &str = "application/vnd.fermyon.spin.application.v1+config";
/// Spin's config label naming the locked-app layer.
pub const SPIN_LOCKED_APP_LABEL: &str = "com.fermyon.spin.lockedAppDigest";
/// runwasi: a component layer.
pub const RUNWASI_COMPONENT_LAYER: &str =
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";
/// An older wasm config some tools push with [`SPIN_WASM_LAYER`].
pub const WASM_CONFIG_V1: &str = "application/vnd.wasm.config.v1+json";

/// OCI image config.
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const DOCKER_IMAGE_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Image layers, every compression we unpack.
pub const IMAGE_LAYERS: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// A descriptor, as manifests and indexes list them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Descriptor {
    /// Media type; required by the spec, checked by [`Manifest::parse`].
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// Index entries only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl Descriptor {
    /// The descriptor of `bytes` as a blob of `media_type`.
    pub fn of(bytes: &[u8], media_type: &str) -> Self {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: super::store::digest_of(bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: None,
        }
    }
}

/// An index entry's platform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Platform {
    /// `linux`, `wasip1`, `wasip2`, …
    pub os: String,
    /// `amd64`, `wasm`, …
    pub architecture: String,
    /// `v8` and the like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A manifest or an index, parsed only as far as routing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// An image (or artifact) manifest.
    Image {
        /// Its media type.
        media_type: String,
        /// `config`.
        config: Descriptor,
        /// `layers`.
        layers: Vec<Descriptor>,
    },
    /// An index or manifest list.
    Index {
        /// Its media type.
        media_type: String,
        /// `manifests`.
        manifests: Vec<Descriptor>,
    },
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
}

impl Manifest {
    /// Parses `bytes`, served with `content_type` (when known). Refuses
    /// schema 1, a document that is both a manifest and an index
    /// (CVE-2021-41190), a `mediaType` that contradicts the content type,
    /// and descriptors without a media type.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self> {
        let raw: Raw = serde_json::from_slice(bytes)
            .map_err(|e| anyhow::anyhow!("the manifest is not valid JSON: {e}"))?;
        if raw.schema_version != Some(2) {
            bail!(
                "unsupported manifest schema version {:?} (only 2 is supported)",
                raw.schema_version
            );
        }
        if raw.layers.is_some() && raw.manifests.is_some() {
            bail!("the manifest has both `layers` and `manifests`: refusing an ambiguous document (CVE-2021-41190)");
        }
        let content_type = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim())
            .filter(|c| ACCEPTED_MANIFESTS.contains(c));
        let media_type = match (&raw.media_type, content_type) {
            (Some(field), Some(header)) if field != header => {
                bail!("the manifest says its media type is `{field}` but was served as `{header}`")
            }
            (Some(field), _) => field.clone(),
            (None, Some(header)) => header.to_owned(),
            (None, None) if raw.manifests.is_some() => OCI_INDEX.to_owned(),
            (None, None) => OCI_MANIFEST.to_owned(),
        };
        if let Some(manifests) = raw.manifests {
            if media_type != OCI_INDEX && media_type != DOCKER_MANIFEST_LIST {
                bail!("a `manifests` list in a document of media type `{media_type}`");
            }
            check_media_types(&manifests)?;
            return Ok(Manifest::Index {
                media_type,
                manifests,
            });
        }
        if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
            bail!("unsupported manifest media type `{media_type}`");
        }
        let Some(config) = raw.config else {
            bail!("the manifest has no `config`");
        };
        let layers = raw.layers.unwrap_or_default();
        check_media_types(std::slice::from_ref(&config))?;
        check_media_types(&layers)?;
        for descriptor in std::iter::once(&config).chain(&layers) {
            super::store::sha256_hex(&descriptor.digest)?;
        }
        Ok(Manifest::Image {
            media_type,
            config,
            layers,
        })
    }

    /// The media type of the document.
    pub fn media_type(&self) -> &str {
        match self {
            Manifest::Image { media_type, .. } | Manifest::Index { media_type, .. } => media_type,
        }
    }
}

fn check_media_types(descriptors: &[Descriptor]) -> Result<()> {
    for d in descriptors {
        if d.media_type.is_empty() {
            bail!("descriptor {} has no media type", d.digest);
        }
    }
    Ok(())
}

/// What an image manifest carries, judged by its media types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One Wasm component (CNCF artifact, runwasi or a lone Spin layer).
    Component,
    /// A Spin application.
    SpinApp,
    /// A container image.
    Image,
}

impl Kind {
    /// Classifies an image manifest; anything unrecognised is an error
    /// naming the media types found.
    pub fn of(config: &Descriptor, layers: &[Descriptor]) -> Result<Self> {
        let has = |t: &str| layers.iter().any(|l| l.media_type == t);
        if config.media_type == SPIN_LOCKED_APP || has(SPIN_LOCKED_APP) {
            return Ok(Kind::SpinApp);
        }
        let wasm_layers = layers
            .iter()
            .filter(|l| {
                [WASM_LAYER, RUNWASI_COMPONENT_LAYER, SPIN_WASM_LAYER]
                    .contains(&l.media_type.as_str())
            })
            .count();
        if wasm_layers == 1
            && [
                WASM_CONFIG,
                WASM_CONFIG_V1,
                OCI_IMAGE_CONFIG,
                DOCKER_IMAGE_CONFIG,
            ]
            .contains(&config.media_type.as_str())
        {
            return Ok(Kind::Component);
        }
        let image_config =
            config.media_type == OCI_IMAGE_CONFIG || config.media_type == DOCKER_IMAGE_CONFIG;
        if image_config
            && layers
                .iter()
                .all(|l| IMAGE_LAYERS.contains(&l.media_type.as_str()))
        {
            return Ok(Kind::Image);
        }
        let types: Vec<&str> = layers.iter().map(|l| l.media_type.as_str()).collect();
        bail!(
            "unknown artifact: config `{}`, layers {types:?}; expected a Wasm component \
             (`{WASM_CONFIG}` + one `{WASM_LAYER}`), a Spin app or a container image",
            config.media_type
        )
    }

    /// For messages.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Component => "Wasm component",
            Kind::SpinApp => "Spin app",
            Kind::Image => "container image",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(media_type: &str) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size: 1,
            platform: None,
            annotations: None,
        }
    }

    #[test]
    fn both_layers_and_manifests_is_refused() {
        let doc = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": d(WASM_CONFIG), "layers": [d(WASM_LAYER)], "manifests": [d(OCI_MANIFEST)],
        });
        let err = Manifest::parse(doc.to_string().as_bytes(), None).unwrap_err();
        assert!(err.to_string().contains("CVE-2021-41190"), "{err}");
    }

    #[test]
    fn media_type_must_match_content_type() {
        let doc = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [],
        });
        let err = Manifest::parse(doc.to_string().as_bytes(), Some(OCI_MANIFEST)).unwrap_err();
        assert!(err.to_string().contains("served as"), "{err}");
    }

    #[test]
    fn schema_1_and_missing_media_types_are_refused() {
        let err = Manifest::parse(br#"{"schemaVersion":1}"#, None).unwrap_err();
        assert!(err.to_string().contains("schema version"), "{err}");
        let doc = serde_json::json!({
            "schemaVersion": 2, "config": d(WASM_CONFIG), "layers": [d("")],
        });
        let err = Manifest::parse(doc.to_string().as_bytes(), None).unwrap_err();
        assert!(err.to_string().contains("no media type"), "{err}");
    }

    #[test]
    fn kinds_by_media_type() {
        let k = |c: &str, l: &[&str]| Kind::of(&d(c), &l.iter().map(|t| d(t)).collect::<Vec<_>>());
        assert_eq!(k(WASM_CONFIG, &[WASM_LAYER]).unwrap(), Kind::Component);
        assert_eq!(
            k(OCI_IMAGE_CONFIG, &[RUNWASI_COMPONENT_LAYER]).unwrap(),
            Kind::Component
        );
        assert_eq!(
            k(OCI_IMAGE_CONFIG, &[SPIN_WASM_LAYER, SPIN_LOCKED_APP]).unwrap(),
            Kind::SpinApp
        );
        assert_eq!(
            k(SPIN_LOCKED_APP, &[SPIN_WASM_LAYER]).unwrap(),
            Kind::SpinApp
        );
        assert_eq!(
            k(OCI_IMAGE_CONFIG, &[IMAGE_LAYERS[1], IMAGE_LAYERS[0]]).unwrap(),
            Kind::Image
        );
        assert_eq!(
            k(DOCKER_IMAGE_CONFIG, &[IMAGE_LAYERS[4]]).unwrap(),
            Kind::Image
        );
        let err = k("application/x-unknown", &["application/x-other"]).unwrap_err();
        assert!(err.to_string().contains("unknown artifact"), "{err}");
        assert!(k(WASM_CONFIG, &[WASM_LAYER, WASM_LAYER]).is_err());
    }
}
