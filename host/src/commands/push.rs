//! `wasmhost push FILE REF`: push a component or a whole Spin app.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Parser;

use super::RegistryArgs;
use crate::app::{manifest, sources};
use crate::oci::media;
use crate::oci::precompiled::{self, Code, Compiled, Subject};
use crate::oci::progress::Progress;
use crate::oci::push::{self, Pushed};
use crate::oci::registry::{self, RegistryOptions};
use crate::oci::signature::{self, SigningKey};
use crate::oci::spin_app::Packed;
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
    /// engine loads it instead of compiling. For a Spin app, each of its
    /// Wasm components is compiled and all the code is attached to the app.
    #[arg(long)]
    pub precompiled: bool,

    /// Sign the precompiled code's referrer with this ECDSA P-256 private
    /// key (unencrypted PKCS#8 PEM, as `openssl genpkey -algorithm EC
    /// -pkeyopt ec_paramgen_curve:P-256` writes it), in cosign's format:
    /// a `sha256-<referrer hex>.sig` tag in the same repository, which
    /// `cosign verify --key` reads. Nodes serving with
    /// `--precompiled-signer <its public key>` use only code so signed.
    #[arg(long, value_name = "PRIVATE-KEY.pem", requires = "precompiled")]
    pub sign_key: Option<PathBuf>,
}

impl PushCommand {
    /// Pushes and prints the manifest digest.
    pub async fn execute(self) -> Result<()> {
        let reference = registry::parse_reference(&self.reference)?;
        // Read before anything is pushed: a bad key must not leave
        // unsigned code behind.
        let sign_key = self
            .sign_key
            .as_deref()
            .map(SigningKey::load)
            .transpose()
            .context("--sign-key")?;
        let options = self.registry.options();
        let progress = Progress::for_terminal(self.json);
        // What was pushed, the Wasm layers to compile for `--precompiled`,
        // and whether it is a lone component (its code referrer keeps the
        // single-layer form).
        let (mut pushed, components, lone) = if self.source.extension().is_some_and(|e| e == "toml")
        {
            let mut loaded = manifest::load(&self.source)?;
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            let store = self.registry.store()?;
            sources::resolve(&mut loaded, &store, &options).await?;
            let packed = crate::app::pack::pack(&loaded)?;
            let pushed = push::push_app(&reference, &packed, &options, &progress).await?;
            let components = match self.precompiled {
                true => app_components(&packed),
                false => Vec::new(),
            };
            (pushed, components, false)
        } else {
            let wasm = std::fs::read(&self.source)
                .with_context(|| format!("cannot read `{}`", self.source.display()))?;
            let pushed = push::push_component(&reference, &wasm, &options, &progress)
                .await
                .with_context(|| format!("`{}`", self.source.display()))?;
            let component = Component {
                name: self.source.clone(),
                layer_digest: digest_of(&wasm),
                wasm,
            };
            (pushed, vec![component], true)
        };
        if self.precompiled {
            let digest =
                push_precompiled(&reference, &pushed, components, lone, &options, &progress)
                    .await
                    .with_context(|| {
                        format!(
                            "`{}` was pushed, but not its precompiled code",
                            self.source.display()
                        )
                    })?;
            if let Some(key) = &sign_key {
                let tag = signature::sign(&reference, &digest, key, &options)
                    .await
                    .with_context(|| {
                        format!("the precompiled code {digest} was pushed, but not its signature")
                    })?;
                pushed.precompiled_signature = Some(tag.whole());
            }
            pushed.precompiled = Some(digest);
        }
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
            if let Some(tag) = &pushed.precompiled_signature {
                println!("signed its precompiled code: {tag}");
            }
        }
        Ok(())
    }
}

/// A Wasm layer of what was pushed, to compile.
struct Component {
    /// The file, or the app's component ids, for messages.
    name: PathBuf,
    /// The layer's digest.
    layer_digest: String,
    /// The layer's bytes.
    wasm: Vec<u8>,
}

/// The Wasm layers of a packed app, each named after the components that
/// use it.
fn app_components(packed: &Packed) -> Vec<Component> {
    packed
        .layers
        .iter()
        .filter(|(_, media_type)| *media_type == media::SPIN_WASM_LAYER)
        .map(|(wasm, _)| {
            let layer_digest = digest_of(wasm);
            let ids: Vec<&str> = packed
                .locked
                .components
                .iter()
                .filter(|c| c.source.content.digest.as_ref() == Some(&layer_digest))
                .map(|c| c.id.as_str())
                .collect();
            Component {
                name: PathBuf::from(format!("component {}", ids.join(", "))),
                layer_digest,
                wasm: wasm.clone(),
            }
        })
        .collect()
}

/// Compiles `components` as `wasmhost serve` would by default (one engine
/// for them all, as an app is served) and attaches the code to `pushed`;
/// returns the referrer's digest. With `all`, each must compile (a lone
/// component); else a layer `serve` would not compile as a component (an
/// app's WAGI program, say) is left out with a warning.
async fn push_precompiled(
    reference: &oci_client::Reference,
    pushed: &Pushed,
    components: Vec<Component>,
    all: bool,
    options: &RegistryOptions,
    progress: &Progress,
) -> Result<String> {
    let (code, key) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut prepared = Vec::new();
        for component in components {
            match load::prepare(&component.name, component.wasm) {
                Ok(bytes) => prepared.push((component.layer_digest, bytes)),
                Err(e) if all => return Err(e.into()),
                Err(e) => tracing::warn!("{}: not precompiled: {e}", component.name.display()),
            }
        }
        let concurrency = prepared
            .iter()
            .any(|(_, bytes)| bytes.kind == HandlerKind::P3);
        let settings = EngineSettings::defaults(concurrency);
        let (engine, _) = engine::build(&settings)?;
        let mut code = Vec::new();
        for (component_digest, bytes) in prepared {
            let compiled = engine
                .precompile_component(&bytes.bytes)
                .map_err(anyhow::Error::from)
                .context("compiling the component failed")?;
            code.push(Code {
                bytes: compiled,
                component_digest,
                compiled_from: digest_of(&bytes.bytes),
            });
        }
        Ok((code, EngineKey::of(&engine)))
    })
    .await
    .context("the compile task failed")??;
    precompiled::push(
        reference,
        &Subject {
            digest: &pushed.digest,
            size: pushed.manifest_size,
        },
        &Compiled {
            code,
            engine_key: key.as_str(),
            wasmtime: WASMTIME_VERSION,
        },
        options,
        progress,
    )
    .await
}

/// The wasmtime release wasmhost is built on (the exact version pinned in
/// host/Cargo.toml), for people reading a referrer's annotations.
const WASMTIME_VERSION: &str = "48.0.8";
