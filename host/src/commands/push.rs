//! `wasmhost push FILE REF`: push a component or a whole Spin app.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Parser;

use super::RegistryArgs;
use crate::app::{manifest, sources};
use crate::oci::precompiled::{self, Code, Subject};
use crate::oci::progress::Progress;
use crate::oci::push::{self, Pushed};
use crate::oci::registry::{self, RegistryOptions};
use crate::oci::store::digest_of;
use crate::wasm::engine::{self, EngineSettings};
use crate::wasm::engine_key::EngineKey;
use crate::wasm::load::{self, HandlerKind};

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

    /// Also push the component's compiled code for this machine's engine
    /// (wasmtime's version, these CPU features, `wasmhost serve`'s default
    /// settings), attached to it as an OCI referrer. A node serving the
    /// reference with `--trust-precompiled <this registry>` and the same
    /// engine loads it instead of compiling. Components only.
    #[arg(long)]
    pub precompiled: bool,
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
            anyhow::ensure!(
                !self.precompiled,
                "--precompiled is for components; push the app without it"
            );
            let packed = crate::app::pack::pack(&loaded)?;
            push::push_app(&reference, &packed, &options, &progress).await?
        } else {
            let wasm = std::fs::read(&self.source)
                .with_context(|| format!("cannot read `{}`", self.source.display()))?;
            let mut pushed = push::push_component(&reference, &wasm, &options, &progress)
                .await
                .with_context(|| format!("`{}`", self.source.display()))?;
            if self.precompiled {
                let digest = self
                    .push_precompiled(&reference, &pushed, &wasm, &options, &progress)
                    .await
                    .with_context(|| {
                        format!(
                            "`{}` was pushed, but not its precompiled code",
                            self.source.display()
                        )
                    })?;
                pushed.precompiled = Some(digest);
            }
            pushed
        };
        if self.json {
            super::print_json(&pushed)?;
        } else {
            println!(
                "pushed `{}` ({}): {}",
                pushed.reference, pushed.kind, pushed.digest
            );
            if let Some(digest) = &pushed.precompiled {
                println!("attached its precompiled code: {digest}");
            }
        }
        Ok(())
    }

    /// Compiles the component as `wasmhost serve` would by default and
    /// attaches the code to `pushed`; returns the referrer's digest.
    async fn push_precompiled(
        &self,
        reference: &oci_client::Reference,
        pushed: &Pushed,
        wasm: &[u8],
        options: &RegistryOptions,
        progress: &Progress,
    ) -> Result<String> {
        let source = self.source.clone();
        let (code, compiled_from, key) = tokio::task::spawn_blocking(move || -> Result<_> {
            let prepared = load::read_component(&source)?;
            let settings = EngineSettings::defaults(prepared.kind == HandlerKind::P3);
            let (engine, _) = engine::build(&settings)?;
            let code = engine
                .precompile_component(&prepared.bytes)
                .map_err(anyhow::Error::from)
                .context("compiling the component failed")?;
            Ok((code, digest_of(&prepared.bytes), EngineKey::of(&engine)))
        })
        .await
        .context("the compile task failed")??;
        let component_digest = digest_of(wasm);
        precompiled::push(
            reference,
            &Subject {
                digest: &pushed.digest,
                size: pushed.manifest_size,
                component_digest: &component_digest,
            },
            &Code {
                bytes: &code,
                engine_key: key.as_str(),
                compiled_from,
                wasmtime: WASMTIME_VERSION,
            },
            options,
            progress,
        )
        .await
    }
}

/// The wasmtime release wasmhost is built on (the exact version pinned in
/// host/Cargo.toml), for people reading a referrer's annotations.
const WASMTIME_VERSION: &str = "48.0.8";
