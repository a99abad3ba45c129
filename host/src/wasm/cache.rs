//! The on-disk compiled-code cache: the second start of the same component
//! with the same engine settings compiles nothing.
//!
//! Entries are named `<sha256 of the component>-<engine key>.cwasm`, where
//! the engine key ([`EngineKey`]) covers wasmtime's version and every
//! setting that changes generated code. Entries are written to a temporary
//! file and renamed, so a crash never leaves half an entry; an entry
//! wasmtime refuses to load is recompiled and replaced. Only code of the
//! engine the cache is asked about is stored: baseline code
//! ([`super::tiered`]) never is. One process at a time compiles an entry
//! ([`super::compile_lock`]): the others wait and load what it stored.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use super::compile_lock::CompileLock;
use super::engine_key::EngineKey;

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
    /// Loaded from a cache entry another process (a worker of the same
    /// `serve --workers`, or another server sharing the cache directory)
    /// stored while this one waited for its compile.
    Peer,
    /// Compiled quickly by the baseline compiler; the optimised code
    /// replaces it when ready.
    Baseline,
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
        match self.lookup(engine, bytes) {
            Some(component) => Ok((component, Origin::Cached)),
            None => self.compile(engine, bytes),
        }
    }

    /// Whether an entry for `bytes` on `engine` exists (usable or not).
    pub fn contains(&self, engine: &Engine, bytes: &[u8]) -> bool {
        self.entry(engine, bytes).is_some_and(|path| path.exists())
    }

    /// The cached code for `bytes` on `engine`, if there is a usable entry.
    pub fn lookup(&self, engine: &Engine, bytes: &[u8]) -> Option<Component> {
        let path = self.entry(engine, bytes)?;
        load_entry(engine, &path)
    }

    /// Compiles `bytes` with `engine` and stores the code when the cache is
    /// on (a failed write is only a warning: the code is still good).
    ///
    /// With the cache on, this waits while another process compiles the
    /// same entry and then loads its code ([`Origin::Peer`]), so N workers
    /// starting on an empty cache compile once. Without a cache each
    /// process compiles: there is nowhere to share the code.
    pub fn compile(&self, engine: &Engine, bytes: &[u8]) -> Result<(Component, Origin)> {
        let Some(path) = self.entry(engine, bytes) else {
            return Ok((compile(engine, bytes)?, Origin::Compiled));
        };
        // Held until the entry is stored (or the compile failed).
        let _lock = match CompileLock::take(&path) {
            Ok(lock) => Some(lock),
            Err(e) => {
                // A cache directory this process cannot write: the entry
                // could not be stored either, so there is nothing to share.
                tracing::warn!(
                    "cannot lock compile-cache entry `{}` ({e}); compiling without waiting for other processes",
                    path.display()
                );
                None
            }
        };
        // Missed by the caller's lookup, stored since: a peer compiled it.
        if let Some(component) = load_entry(engine, &path) {
            return Ok((component, Origin::Peer));
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

    /// Stores `compiled`, code for `bytes` compiled elsewhere, as the entry
    /// for `bytes` on `engine`. The caller has decided to trust it (see
    /// `oci::precompiled`); what is checked here is that wasmtime accepts it
    /// for this engine, so a mismatch is refused now rather than at the
    /// next load.
    pub fn adopt(&self, engine: &Engine, bytes: &[u8], compiled: &[u8]) -> Result<()> {
        let path = self
            .entry(engine, bytes)
            .context("the compile cache is off (`--no-cache`)")?;
        anyhow::ensure!(
            Engine::detect_precompiled(compiled) == Some(wasmtime::Precompiled::Component),
            "it is not compiled code of a component for this wasmtime"
        );
        // SAFETY: the caller vouches for the code's origin (a registry the
        // operator named as trusted, the digest chain checked); wasmtime
        // checks the header's version and engine settings here.
        unsafe { Component::deserialize(engine, compiled) }
            .map_err(anyhow::Error::from)
            .context("wasmtime refuses it for this engine")?;
        store(&path, compiled)
    }

    /// Where the entry for `bytes` on `engine` lives; none without a cache.
    fn entry(&self, engine: &Engine, bytes: &[u8]) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let started = Instant::now();
        let path = dir.join(entry_name(engine, bytes));
        tracing::debug!("cache key computed in {:?}", started.elapsed());
        Some(path)
    }
}

/// The code in the entry at `path`, if there is one wasmtime accepts.
fn load_entry(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: entries are only ever written by `store` below, from
    // `Engine::precompile_component` (here, or on a registry the
    // operator trusts: `adopt`), into the user's own cache directory,
    // and wasmtime checks the header (version and engine settings)
    // before using one. A tampered cache directory is as trusted as the
    // wasmhost binary next to it.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(
                "ignoring unusable compile-cache entry `{}`: {e:#}",
                path.display()
            );
            None
        }
    }
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    Component::from_binary(engine, bytes)
        .map_err(anyhow::Error::from)
        .context("compiling the component failed")
}

fn entry_name(engine: &Engine, bytes: &[u8]) -> String {
    let content = hex::encode(Sha256::digest(bytes));
    format!("{content}-{}.cwasm", EngineKey::of(engine))
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
