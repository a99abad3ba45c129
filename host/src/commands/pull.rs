//! `wasmhost pull REF`: fetch a component, a Spin app or a container image
//! into the content store.

use anyhow::Result;
use clap::Parser;

use super::RegistryArgs;
use crate::container::image::PreparedImage;
use crate::oci::media::Kind;
use crate::oci::progress::Progress;
use crate::oci::{pull, registry};

/// Pull a component, a Spin app or a container image into the local store.
#[derive(Debug, Parser)]
pub struct PullCommand {
    /// `registry/repository:tag` or `registry/repository@sha256:…`.
    pub reference: String,

    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Print one JSON object instead of text (and no progress bars).
    #[arg(long)]
    pub json: bool,
}

impl PullCommand {
    /// Pulls, then says what arrived and where.
    pub async fn execute(self) -> Result<()> {
        let reference = registry::parse_reference(&self.reference)?;
        let store = self.registry.store()?;
        let progress = Progress::for_terminal(self.json);
        let pulled = pull::pull(&reference, &store, &self.registry.options(), &progress).await?;
        if pulled.kind == Kind::Image {
            // Unpacked now, as containerd does: a hostile or corrupt layer
            // fails the pull, and the first start does not pay for it.
            PreparedImage::prepare(&store, &pulled.reference, &pulled.config, &pulled.layers)?;
        }
        let path = pulled.local_path(&store)?;
        if self.json {
            super::print_json(&serde_json::json!({
                "reference": pulled.reference,
                "digest": pulled.digest,
                "manifest": pulled.manifest_digest,
                "kind": pulled.kind.describe(),
                "layers": pulled.layers,
                "path": path,
            }))?;
        } else {
            println!(
                "pulled `{}` ({}): {}",
                pulled.reference,
                pulled.kind.describe(),
                pulled.digest
            );
            if let Some(path) = path {
                println!("  {}", path.display());
            }
        }
        Ok(())
    }
}
