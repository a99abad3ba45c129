//! The on-disk compiled-code cache: the second start of the same component
//! with the same engine settings compiles nothing.
//!
//! Entries are named `<sha256 of the component>-<engine hash>.cwasm`, where
//! the engine hash covers wasmtime's version and every setting that changes
//! generated code (`Engine::precompile_compatibility_hash`). Entries are
//! written to a temporary file and renamed, so a crash never leaves half an
//! entry; an entry wasmtime refuses to load is recompiled and replaced.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Where compiled code is kept, or nowhere (`--no-cache`).
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// Whether a component came from the cache, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Loaded from a cache entry: nothing compiled.
    Cached,
    /// Compiled now (and stored when the cache is on).
    Compiled,
}

impl CompileCache {
    /// A cache in `dir` (created when first written).
    pub fn at(dir: PathBuf) -> Self {
        Self { dir: Some(dir) }
    }

    /// No cache: compile every time.
    pub fn disabled() -> Self {
        Self { dir: None }
    }

    /// The component for `bytes`, from the cache or freshly compiled.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> Result<(Component, Origin)> {
        let Some(dir) = &self.dir else {
            return Ok((compile(engine, bytes)?, Origin::Compiled));
        };
        let started = Instant::now();
        let path = dir.join(entry_name(engine, bytes));
        tracing::debug!("cache key computed in {:?}", started.elapsed());
        if path.exists() {
            // SAFETY: entries are only ever written by `store` below, from
            // `Engine::precompile_component`, into the user's own cache
            // directory, and wasmtime checks the header (version and engine
            // settings) before using one. A tampered cache directory is as
            // trusted as the wasmhost binary next to it.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, Origin::Cached)),
                Err(e) => tracing::warn!(
                    "ignoring unusable compile-cache entry `{}`: {e:#}",
                    path.display()
                ),
            }
        }
        let started = Instant::now();
        let compiled = engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)
            .context("compiling the component failed")?;
        tracing::debug!("compiled in {:?}", started.elapsed());
        if let Err(e) = store(&path, &compiled) {
            tracing::warn!(
                "cannot write compile-cache entry `{}`: {e:#}",
                path.display()
            );
        }
        // SAFETY: `compiled` was produced by `precompile_component` on this
        // very engine a moment ago.
        let component = unsafe { Component::deserialize(engine, &compiled) }
            .map_err(anyhow::Error::from)
            .context("loading freshly compiled code failed")?;
        Ok((component, Origin::Compiled))
    }
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    Component::from_binary(engine, bytes)
        .map_err(anyhow::Error::from)
        .context("compiling the component failed")
}

fn entry_name(engine: &Engine, bytes: &[u8]) -> String {
    let content = hex::encode(Sha256::digest(bytes));
    // DefaultHasher is deterministic within one build of wasmhost; a
    // different build may name entries differently, which only costs a
    // recompile.
    let mut hasher = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{content}-{:016x}.cwasm", hasher.finish())
}

fn store(path: &Path, compiled: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .context("cache entry has no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(compiled)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    Ok(())
}
