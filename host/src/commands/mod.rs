//! The CLI's subcommands, one struct each with an `execute` method.

use std::path::PathBuf;

use crate::oci::access::Access;

pub mod cache;
pub mod compare;
pub mod front_door;
pub mod image;
pub mod precompiled;
pub mod pull;
pub mod push;
pub mod registry;
pub mod rollout;
pub mod run;
pub mod runtime;
pub mod serve;

/// The value parsers, for the flags (they live below, shared with the
/// manifest).
pub use crate::parse;

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
    /// Registries and cache as these flags give them.
    pub fn access(&self) -> Access {
        Access {
            insecure: self.insecure,
            cache_dir: self.cache_dir.clone(),
        }
    }

    /// The content store.
    pub fn store(&self) -> anyhow::Result<crate::oci::store::ContentStore> {
        self.access().store()
    }

    /// How to reach registries.
    pub fn options(&self) -> crate::oci::registry::RegistryOptions {
        self.access().options()
    }
}

/// Prints `value` as one line of JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
