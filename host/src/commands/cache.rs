//! `wasmhost cache ls|gc`: what the content store holds, and freeing what
//! nothing references.

use anyhow::Result;
use clap::{Parser, Subcommand};

use super::RegistryArgs;

/// Inspect or clean the local content store.
#[derive(Debug, Parser)]
pub struct CacheCommand {
    #[command(subcommand)]
    pub action: CacheAction,
}

/// `cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// List references, what they resolved to, and the store's size.
    Ls {
        #[command(flatten)]
        registry: RegistryArgs,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove blobs no reference reaches (and forget `--ref`s first).
    Gc {
        #[command(flatten)]
        registry: RegistryArgs,
        /// Forget these references before collecting. Repeatable.
        #[arg(long = "ref", value_name = "REF")]
        forget: Vec<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

impl CacheCommand {
    /// Runs the action.
    pub async fn execute(self) -> Result<()> {
        match self.action {
            CacheAction::Ls { registry, json } => {
                let store = registry.store()?;
                let refs = store.refs()?;
                let blobs = store.blobs()?;
                let total: u64 = blobs.iter().map(|(_, size)| size).sum();
                if json {
                    super::print_json(&serde_json::json!({
                        "root": store.root(),
                        "refs": refs,
                        "blobs": blobs.iter().map(|(d, s)| serde_json::json!({"digest": d, "size": s})).collect::<Vec<_>>(),
                        "total_bytes": total,
                    }))?;
                } else {
                    println!("{:<60} {:<20} DIGEST", "REFERENCE", "KIND");
                    for r in &refs {
                        println!("{:<60} {:<20} {}", r.reference, r.media_type, r.digest);
                    }
                    println!(
                        "{} blobs, {total} bytes in `{}`",
                        blobs.len(),
                        store.root().display()
                    );
                }
            }
            CacheAction::Gc {
                registry,
                forget,
                json,
            } => {
                let store = registry.store()?;
                for reference in &forget {
                    let name = crate::oci::registry::parse_reference(reference)
                        .map(|r| r.whole())
                        .unwrap_or_else(|_| reference.clone());
                    if !store.remove_ref(&name)? {
                        tracing::warn!("no reference `{name}` in the store");
                    }
                }
                let (count, bytes) = store.gc()?;
                if json {
                    super::print_json(
                        &serde_json::json!({ "removed_blobs": count, "removed_bytes": bytes }),
                    )?;
                } else {
                    println!("removed {count} blobs, {bytes} bytes");
                }
            }
        }
        Ok(())
    }
}
