//! `wasmhost push FILE REF`: push a component or a whole Spin app.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Parser;

use super::RegistryArgs;
use crate::app::{manifest, sources};
use crate::oci::progress::Progress;
use crate::oci::push;
use crate::oci::registry;

/// Push a component (`.wasm`, as a CNCF Wasm artifact) or a Spin app
/// (`spin.toml`, in Spin's registry format).
#[derive(Debug, Parser)]
pub struct PushCommand {
    /// A `.wasm` component or module, or a Spin manifest (`*.toml`).
    pub source: PathBuf,

    /// `registry/repository:tag`.
    pub reference: String,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Print one JSON object instead of text (and no progress bars).
    #[arg(long)]
    pub json: bool,
}

impl PushCommand {
    /// Pushes and prints the manifest digest.
    pub async fn execute(self) -> Result<()> {
        let reference = registry::parse_reference(&self.reference)?;
        let options = self.registry.options();
        let progress = Progress::for_terminal(self.json);
        let pushed = if self.source.extension().is_some_and(|e| e == "toml") {
            let mut loaded = manifest::load(&self.source)?;
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            let store = self.registry.store()?;
            sources::resolve(&mut loaded, &store, &options).await?;
            let packed = crate::app::pack::pack(&loaded)?;
            push::push_app(&reference, &packed, &options, &progress).await?
        } else {
            let wasm = std::fs::read(&self.source)
                .with_context(|| format!("cannot read `{}`", self.source.display()))?;
            push::push_component(&reference, &wasm, &options, &progress)
                .await
                .with_context(|| format!("`{}`", self.source.display()))?
        };
        if self.json {
            super::print_json(&pushed)?;
        } else {
            println!(
                "pushed `{}` ({}): {}",
                pushed.reference, pushed.kind, pushed.digest
            );
        }
        Ok(())
    }
}
