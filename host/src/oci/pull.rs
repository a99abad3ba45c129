//! Pulling: what a reference or an `oci:` layout names, into the content
//! store. An index resolves to a Wasm entry or linux/amd64; a reference by
//! digest whose content is all here needs no network; a tag that cannot be
//! resolved because the registry is unreachable falls back to the digest
//! it resolved to last. Uses the registry client ([`super::registry`]) and
//! the layout reader ([`super::layout`]), which know nothing of each other.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use oci_client::Reference;

use super::layout;
use super::media::{Descriptor, Kind, Manifest};
use super::progress::Progress;
use super::registry::{
    looks_like_reference, parse_reference, Registry, RegistryOptions, Unreachable,
};
use super::store::{ContentStore, RefRecord};

/// A reference pinned by digest (`registry/repo@sha256:…`) whose content
/// is all in `store`: served without the network, and without parsing the
/// reference's full grammar.
pub fn pinned_in_store(text: &str, store: &ContentStore) -> Option<Pulled> {
    let (_, digest) = text.split_once('@')?;
    super::store::sha256_hex(digest).ok()?;
    if !looks_like_reference(text) {
        return None;
    }
    from_store(text, digest, store).ok()
}

/// A pulled reference: everything it needs is in the store.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference, normalised.
    pub reference: String,
    /// What the reference points at (an index, or the manifest).
    pub digest: String,
    /// The image manifest in use (the index's chosen entry, or `digest`).
    pub manifest_digest: String,
    /// Its config.
    pub config: Descriptor,
    /// Its layers.
    pub layers: Vec<Descriptor>,
    /// What it holds.
    pub kind: Kind,
    /// Whether it came from the store without asking the registry.
    pub offline: bool,
}

impl Pulled {
    /// What `serve` would load from it: the component's Wasm or the app's
    /// generated manifest; none for a container image.
    pub fn local_path(&self, store: &ContentStore) -> Result<Option<std::path::PathBuf>> {
        Ok(match self.kind {
            Kind::Component => Some(super::component::wasm_path(store, &self.layers)?),
            Kind::SpinApp => {
                let locked = super::spin_app::locked_app(store, &self.config, &self.layers)?;
                Some(super::spin_app::materialize(
                    store,
                    &self.manifest_digest,
                    &locked,
                    &self.layers,
                )?)
            }
            Kind::Image => None,
        })
    }
}

/// Pulls what `text` names into `store`: a registry reference, or
/// `oci:DIR[:TAG]`, an image in a local OCI layout (copied into the store
/// and verified the same way).
pub async fn pull_named(
    text: &str,
    store: &ContentStore,
    options: &RegistryOptions,
    progress: &Progress,
) -> Result<Pulled> {
    if let Some((dir, tag)) = layout::parse(text) {
        return import_layout(&dir, tag.as_deref(), store);
    }
    pull(&parse_reference(text)?, store, options, progress).await
}

/// Copies the image `tag` of the OCI layout at `dir` into `store`,
/// verifying every blob's digest on the way, as a pull from a registry
/// would. Without a tag the layout must hold exactly one entry.
pub fn import_layout(dir: &Path, tag: Option<&str>, store: &ContentStore) -> Result<Pulled> {
    let name = match tag {
        Some(tag) => format!("oci:{}:{tag}", dir.display()),
        None => format!("oci:{}", dir.display()),
    };
    import_layout_inner(dir, tag, store, &name).with_context(|| format!("cannot read `{name}`"))
}

fn import_layout_inner(
    dir: &Path,
    tag: Option<&str>,
    store: &ContentStore,
    name: &str,
) -> Result<Pulled> {
    let entry = layout::entry(dir, tag)?;
    let top_bytes = layout::copy_blob(dir, &entry, store)?;
    let top = Manifest::parse(&top_bytes, Some(&entry.media_type))?;
    let (manifest_digest, manifest) = match top {
        Manifest::Index { manifests, .. } => {
            let chosen = choose_platform(&manifests)?;
            let bytes = layout::copy_blob(dir, chosen, store)?;
            (
                chosen.digest.clone(),
                Manifest::parse(&bytes, Some(&chosen.media_type))?,
            )
        }
        image => (entry.digest.clone(), image),
    };
    let Manifest::Image { config, layers, .. } = manifest else {
        bail!("index entry {manifest_digest} is itself an index");
    };
    for descriptor in std::iter::once(&config).chain(&layers) {
        layout::copy_blob(dir, descriptor, store)?;
    }
    let pulled = Pulled {
        reference: name.to_owned(),
        digest: entry.digest.clone(),
        manifest_digest,
        kind: Kind::of(&config, &layers)?,
        config,
        layers,
        offline: true,
    };
    record(store, name, &pulled)?;
    Ok(pulled)
}

/// Pulls `reference` into `store`. A reference by digest whose content is
/// all here is served from the store without the network; a tag is
/// resolved, or, when the registry is unreachable, falls back to what it
/// resolved to last (with a warning naming that digest).
pub async fn pull(
    reference: &Reference,
    store: &ContentStore,
    options: &RegistryOptions,
    progress: &Progress,
) -> Result<Pulled> {
    let name = reference.whole();
    let mut fetched = Vec::new();
    let result = pull_inner(reference, store, options, progress, &mut fetched).await;
    if result.is_err() {
        // A failed pull leaves nothing behind, not even the verified blobs
        // it fetched before failing.
        for digest in &fetched {
            if let Ok(path) = store.blob_path(digest) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
    match result {
        Ok(pulled) => Ok(pulled),
        Err(e) if e.chain().any(|c| c.is::<Unreachable>()) && reference.digest().is_none() => {
            let Some(record) = store.lookup_ref(&name) else {
                return Err(e.context(format!(
                    "cannot pull `{name}`, and it was never pulled here before"
                )));
            };
            let pulled = from_store(&name, &record.digest, store)
                .with_context(|| format!("cannot pull `{name}`: {e:#}"))?;
            tracing::warn!(
                "cannot reach the registry for `{name}` ({e:#}); serving {} (resolved {})",
                record.digest,
                ago(record.resolved_at)
            );
            Ok(pulled)
        }
        Err(e) => Err(e.context(format!("cannot pull `{name}`"))),
    }
}

async fn pull_inner(
    reference: &Reference,
    store: &ContentStore,
    options: &RegistryOptions,
    progress: &Progress,
    fetched: &mut Vec<String>,
) -> Result<Pulled> {
    let name = reference.whole();
    if let Some(digest) = reference.digest() {
        if let Ok(pulled) = from_store(&name, digest, store) {
            // Recorded already unless the content came in under another
            // reference; the write (with its fsync) stays off the start path.
            if store.lookup_ref(&name).is_none() {
                record(store, &name, &pulled)?;
            }
            return Ok(pulled);
        }
    }
    let registry = Registry::for_reference(reference, options);
    let (bytes, digest) = registry.manifest(reference).await?;
    let top = Manifest::parse(&bytes, None)?;
    let (manifest_digest, manifest_bytes, manifest) = match &top {
        Manifest::Index { manifests, .. } => {
            let entry = choose_platform(manifests)?;
            let child = reference.clone_with_digest(entry.digest.clone());
            let (bytes, child_digest) = registry.manifest(&child).await?;
            let manifest = Manifest::parse(&bytes, Some(&entry.media_type))?;
            if matches!(manifest, Manifest::Index { .. }) {
                bail!("index entry {} is itself an index", entry.digest);
            }
            (child_digest, bytes, manifest)
        }
        Manifest::Image { .. } => (digest.clone(), bytes.clone(), top.clone()),
    };
    let Manifest::Image { config, layers, .. } = manifest else {
        unreachable!("indexes were resolved above");
    };
    let kind = Kind::of(&config, &layers)?;
    for descriptor in std::iter::once(&config).chain(&layers) {
        if registry
            .fetch_blob(reference, descriptor, store, progress)
            .await?
        {
            fetched.push(descriptor.digest.clone());
        }
    }
    // Manifests last: a manifest in the store means its blobs are too.
    store.put_verified(&manifest_digest, &manifest_bytes)?;
    if manifest_digest != digest {
        store.put_verified(&digest, &bytes)?;
    }
    let pulled = Pulled {
        reference: name.clone(),
        digest,
        manifest_digest,
        config,
        layers,
        kind,
        offline: false,
    };
    record(store, &name, &pulled)?;
    Ok(pulled)
}

fn record(store: &ContentStore, name: &str, pulled: &Pulled) -> Result<()> {
    store.record_ref(&RefRecord {
        reference: name.to_owned(),
        digest: pulled.digest.clone(),
        media_type: pulled.kind.describe().to_owned(),
        resolved_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

/// Everything `digest` needs, from the store alone.
pub fn from_store(name: &str, digest: &str, store: &ContentStore) -> Result<Pulled> {
    let bytes = store.read(digest)?;
    let (manifest_digest, manifest) = match Manifest::parse(&bytes, None)? {
        Manifest::Index { manifests, .. } => {
            let entry = choose_platform(&manifests)?;
            let bytes = store.read(&entry.digest)?;
            (
                entry.digest.clone(),
                Manifest::parse(&bytes, Some(&entry.media_type))?,
            )
        }
        image => (digest.to_owned(), image),
    };
    let Manifest::Image { config, layers, .. } = manifest else {
        bail!("index entry {manifest_digest} is itself an index");
    };
    for descriptor in std::iter::once(&config).chain(&layers) {
        if !store.has(&descriptor.digest) {
            bail!("blob {} of `{name}` is not in the store", descriptor.digest);
        }
    }
    let kind = Kind::of(&config, &layers)?;
    Ok(Pulled {
        reference: name.to_owned(),
        digest: digest.to_owned(),
        manifest_digest,
        config,
        layers,
        kind,
        offline: true,
    })
}

/// The index entry to run here: a Wasm one (os `wasip1`/`wasip2`/`wasi` or
/// architecture `wasm`), else linux/amd64.
pub fn choose_platform(manifests: &[Descriptor]) -> Result<&Descriptor> {
    let wasm = manifests.iter().find(|m| {
        m.platform.as_ref().is_some_and(|p| {
            p.architecture == "wasm" || p.os.starts_with("wasi") || p.os.starts_with("Wasi")
        })
    });
    let linux = || {
        manifests.iter().find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
    };
    if let Some(entry) = wasm.or_else(linux) {
        return Ok(entry);
    }
    let found: Vec<String> = manifests
        .iter()
        .map(|m| match &m.platform {
            Some(p) => format!("{}/{}", p.os, p.architecture),
            None => "(no platform)".to_owned(),
        })
        .collect();
    bail!(
        "the index has no wasm or linux/amd64 entry (it has: {})",
        found.join(", ")
    )
}

fn ago(secs: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let age = now.saturating_sub(secs);
    match age {
        0..=119 => format!("{age} s ago"),
        120..=7199 => format!("{} min ago", age / 60),
        _ => format!("{} h ago", age / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_resolution_prefers_wasm_then_linux_amd64() {
        let entry = |os: &str, arch: &str| Descriptor {
            media_type: super::super::media::OCI_MANIFEST.into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size: 1,
            platform: Some(super::super::media::Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: None,
            }),
            annotations: None,
        };
        let list = [
            entry("linux", "arm64"),
            entry("linux", "amd64"),
            entry("wasip2", "wasm"),
        ];
        assert_eq!(
            choose_platform(&list)
                .unwrap()
                .platform
                .as_ref()
                .unwrap()
                .os,
            "wasip2"
        );
        assert_eq!(
            choose_platform(&list[..2])
                .unwrap()
                .platform
                .as_ref()
                .unwrap()
                .architecture,
            "amd64"
        );
        let err = choose_platform(&list[..1]).unwrap_err();
        assert!(err.to_string().contains("linux/arm64"), "{err}");
    }
}
