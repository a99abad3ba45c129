//! Component sources that are not local files, made local before anything
//! is compiled:
//! - `source = { url, digest }`: downloaded once into the content store,
//!   checked against its digest before anyone can use it;
//! - `source = { registry, package, version }`: the component artifact at
//!   `<registry>/<namespace>/<name>:<version>` (how `wkg` maps a package
//!   onto an OCI registry), pulled through the content store.
//!
//! - `container = { image, ... }`: the image, pulled through the same
//!   store, its layers left for the container backend to unpack.
//!
//! Either way later starts (and other apps) need no network.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use futures::TryStreamExt as _;

use super::manifest::{LoadedManifest, Source};
use crate::oci::component;
use crate::oci::media::Kind;
use crate::oci::progress::Progress;
use crate::oci::pull;
use crate::oci::registry::{self, RegistryOptions};
use crate::oci::store::{ContentStore, RefRecord};

/// Largest component accepted from a URL. Components are rarely above a
/// few tens of MiB; this bounds what a wrong URL can make us store.
pub const MAX_DOWNLOAD_BYTES: u64 = 512 << 20;

/// The path of the blob `digest`, downloading it from `url` unless a
/// verified copy is already in the store.
pub async fn fetch_url(
    store: &ContentStore,
    url: &str,
    digest: &str,
) -> Result<std::path::PathBuf> {
    let path = store
        .blob_path(digest)
        .with_context(|| format!("the digest of `{url}`"))?;
    if !store.has(digest) {
        let response = reqwest::get(url)
            .await
            .with_context(|| format!("cannot download `{url}`"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("cannot download `{url}`: the server answered {status}");
        }
        let body = response.bytes_stream().map_err(std::io::Error::other);
        store
            .put_stream(digest, None, MAX_DOWNLOAD_BYTES, Box::pin(body), |_| {})
            .await
            .with_context(|| format!("download of `{url}`"))?;
    }
    store.record_ref(&RefRecord {
        reference: format!("url:{url}"),
        digest: digest.to_owned(),
        media_type: "application/octet-stream".into(),
        resolved_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })?;
    Ok(path)
}

/// The OCI reference of a registry package: `ns:name` at `registry`
/// becomes `registry/ns/name:version`.
pub fn package_reference(registry: Option<&str>, package: &str, version: &str) -> Result<String> {
    let Some(registry) = registry else {
        bail!(
            "package `{package}` names no `registry`, and wasmhost has no default package registry"
        );
    };
    let Some((namespace, name)) = package.split_once(':') else {
        bail!("package `{package}` is not `namespace:name`");
    };
    Ok(format!(
        "{registry}/{namespace}/{}:{version}",
        name.replace(':', "/")
    ))
}

/// Replaces every `{ url, digest }` and `{ registry, package, version }`
/// source in the manifest with the path of its verified local copy.
pub async fn resolve(
    loaded: &mut LoadedManifest,
    store: &ContentStore,
    options: &RegistryOptions,
) -> Result<()> {
    for (id, component) in loaded.manifest.components.iter_mut() {
        let path = match &mut component.source {
            Source::Local(_) | Source::Upstream(_) => continue,
            Source::Container(container) => {
                let image = match layout_in(&container.image, &loaded.dir) {
                    Some(absolute) => absolute,
                    None => container.image.clone(),
                };
                let pulled = pull::pull_named(&image, store, options, &Progress::hidden())
                    .await
                    .with_context(|| format!("component `{id}`"))?;
                if pulled.kind != Kind::Image {
                    bail!(
                        "component `{id}`: `{}` is a {}, not a container image; use `source` for Wasm",
                        container.image,
                        pulled.kind.describe()
                    );
                }
                container.pulled = Some((pulled.config, pulled.layers));
                continue;
            }
            Source::Url { url, digest } => fetch_url(store, url, digest)
                .await
                .with_context(|| format!("component `{id}`"))?,
            Source::Registry {
                registry,
                package,
                version,
            } => {
                let text = package_reference(registry.as_deref(), package, version)
                    .with_context(|| format!("component `{id}`"))?;
                let reference = registry::parse_reference(&text)?;
                let pulled = pull::pull(&reference, store, options, &Progress::hidden())
                    .await
                    .with_context(|| format!("component `{id}`"))?;
                if pulled.kind != Kind::Component {
                    bail!(
                        "component `{id}`: `{text}` is a {}, not a Wasm component",
                        pulled.kind.describe()
                    );
                }
                component::wasm_path(store, &pulled.layers)?
            }
        };
        component.source = Source::Local(path);
    }
    Ok(())
}

/// `oci:DIR[:TAG]` with a relative `DIR` made relative to the manifest's
/// directory, as every other path in a manifest is; `None` for registry
/// references and absolute layouts.
fn layout_in(image: &str, manifest_dir: &std::path::Path) -> Option<String> {
    let (dir, tag) = crate::oci::layout::parse(image)?;
    if dir.is_absolute() {
        return None;
    }
    let dir = manifest_dir.join(dir);
    Some(match tag {
        Some(tag) => format!("oci:{}:{tag}", dir.display()),
        None => format!("oci:{}", dir.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_map_onto_references() {
        assert_eq!(
            package_reference(Some("ghcr.io"), "example:hello", "1.0.0").unwrap(),
            "ghcr.io/example/hello:1.0.0"
        );
        assert!(package_reference(None, "example:hello", "1").is_err());
        assert!(package_reference(Some("ghcr.io"), "hello", "1").is_err());
    }
}
