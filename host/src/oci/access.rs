//! How a command reaches artifacts: the registries (plain HTTP or not)
//! and the cache directory that holds the content store. The flags
//! (`commands::RegistryArgs`, `serve`'s own) and a comparison's options
//! all become one [`Access`], which alone builds the store and the
//! registry options.

use std::path::PathBuf;

use anyhow::Result;

use super::registry::RegistryOptions;
use super::store::ContentStore;

/// The cache root: `explicit`, else `$XDG_CACHE_HOME/wasmhost`, else
/// `$HOME/.cache/wasmhost`. Holds `compiled/` (compiled code), `blobs/` and
/// `refs/` (the content store), `layers/` (unpacked image layers) and
/// `apps/` (pulled apps, materialised).
pub fn cache_root(explicit: Option<&PathBuf>) -> Option<PathBuf> {
    if let Some(dir) = explicit {
        return Some(dir.clone());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("wasmhost"))
}

/// Where artifacts come from and where they are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Plain HTTP (and any certificate) for every registry; loopback
    /// registries get plain HTTP without it.
    pub insecure: bool,
    /// The cache directory; `None`: the default ([`cache_root`]).
    pub cache_dir: Option<PathBuf>,
}

impl Access {
    /// The cache root this access uses, if there is one.
    pub fn cache_root(&self) -> Option<PathBuf> {
        cache_root(self.cache_dir.as_ref())
    }

    /// The content store in the cache root.
    pub fn store(&self) -> Result<ContentStore> {
        let root = self.cache_root().ok_or_else(|| {
            anyhow::anyhow!("no cache directory: set --cache-dir, XDG_CACHE_HOME or HOME")
        })?;
        Ok(ContentStore::at(root))
    }

    /// How to reach registries (credentials from Docker's config).
    pub fn options(&self) -> RegistryOptions {
        RegistryOptions {
            insecure: self.insecure,
            credentials: None,
        }
    }
}
