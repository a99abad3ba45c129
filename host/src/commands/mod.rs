//! The CLI's subcommands, one struct each with an `execute` method.

use std::path::PathBuf;

pub mod cache;
pub mod compare;
pub mod front_door;
pub mod image;
pub mod parse;
pub mod pull;
pub mod push;
pub mod registry;
pub mod run;
pub mod runtime;
pub mod serve;

/// The cache root: `explicit`, else `$XDG_CACHE_HOME/wasmhost`, else
/// `$HOME/.cache/wasmhost`. Holds `compiled/` (compiled code), `blobs/` and
/// `refs/` (the content store) and `apps/` (pulled apps, materialised).
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

/// A name for logs from a reference's last path segment, without tag or
/// digest: `registry/team/legacy:1` → `legacy`, `oci:build/img:v1` → `img`.
pub fn name_of(reference: &str) -> String {
    let reference = reference.strip_prefix("oci:").unwrap_or(reference);
    let last = reference
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(reference);
    match last.split(['@', ':']).next() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => "component".to_owned(),
    }
}

/// Options every registry-facing command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Use plain HTTP (and accept any certificate) for every registry;
    /// loopback registries get plain HTTP without it.
    #[arg(long)]
    pub insecure: bool,

    /// Cache directory holding the content store
    /// [default: $XDG_CACHE_HOME/wasmhost].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

impl RegistryArgs {
    /// The content store.
    pub fn store(&self) -> anyhow::Result<crate::oci::store::ContentStore> {
        let root = cache_root(self.cache_dir.as_ref()).ok_or_else(|| {
            anyhow::anyhow!("no cache directory: set --cache-dir, XDG_CACHE_HOME or HOME")
        })?;
        Ok(crate::oci::store::ContentStore::at(root))
    }

    /// How to reach registries.
    pub fn options(&self) -> crate::oci::registry::RegistryOptions {
        crate::oci::registry::RegistryOptions {
            insecure: self.insecure,
            credentials: None,
        }
    }
}

/// Prints `value` as one line of JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
