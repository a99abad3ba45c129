//! `wasmhost serve`: serve one component over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;

use crate::frontdoor::{self, Limits, Stopped};
use crate::shutdown::Shutdown;
use crate::wasm::cache::{CompileCache, Origin};
use crate::wasm::{ComponentBackend, ComponentOptions};

/// Default listen address: Spin's and `wasmtime serve`'s convention of a
/// loopback port, so nothing is exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// Serve a wasi:http component: a fresh instance for every request.
#[derive(Debug, Parser)]
pub struct ServeCommand {
    /// The component (`.wasm`): a wasi:http component, or a wasip1 module
    /// with component type information (wrapped at load time).
    pub component: PathBuf,

    /// Address to listen on; port 0 picks a free port (the address bound is
    /// printed on stdout).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Wall-clock limit per request, body included; past it the instance is
    /// stopped and the client gets 504.
    #[arg(long, default_value = "30s", value_parser = super::parse::duration)]
    pub timeout: Duration,

    /// Linear-memory cap per instance; a guest that needs more fails with 500.
    #[arg(long, default_value = "128MiB", value_parser = super::parse::size)]
    pub memory_limit: u64,

    /// Largest request head (request line and headers); larger gets 431.
    #[arg(long, default_value = "64KiB", value_parser = super::parse::size)]
    pub max_header_size: u64,

    /// Largest request body; larger gets 413.
    #[arg(long, default_value = "1GiB", value_parser = super::parse::size)]
    pub max_body_size: u64,

    /// How long shutdown waits for in-flight requests.
    #[arg(long, default_value = "10s", value_parser = super::parse::duration)]
    pub drain_timeout: Duration,

    /// Serve up to N requests with one instance before replacing it. Faster,
    /// but requests then share guest state. 1 = a fresh instance per request.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub reuse: u32,

    /// Requests served at once (and instances the pool reserves); more wait
    /// for a free instance, and get 503 if none frees up before their
    /// deadline.
    #[arg(long, default_value_t = crate::limits::MAX_CONCURRENCY, value_name = "N")]
    pub max_concurrency: u32,

    /// Compile the component even if a compiled copy is cached.
    #[arg(long)]
    pub no_cache: bool,

    /// Compiled-code cache directory [default: $XDG_CACHE_HOME/wasmhost/compiled].
    #[arg(long, conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,

    /// Allocate instances on demand instead of from the pooling allocator.
    #[arg(long)]
    pub no_pooling: bool,
}

impl ServeCommand {
    /// Loads and checks everything, binds, then serves until SIGINT/SIGTERM.
    pub async fn execute(self) -> Result<Stopped> {
        let (backend, limits) = self.load()?;
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("cannot listen on `{}`", self.listen))?;
        let bound = listener.local_addr()?;
        // Printed, not logged: scripts and tests read the bound port here.
        println!("serving `{}` on http://{bound}/", self.component.display());
        let shutdown = Shutdown::from_signals().context("cannot install signal handlers")?;
        Ok(frontdoor::serve(listener, backend, limits, shutdown).await)
    }

    fn load(&self) -> Result<(Arc<ComponentBackend>, Limits)> {
        let memory_limit =
            usize::try_from(self.memory_limit).context("--memory-limit is too large")?;
        anyhow::ensure!(self.reuse >= 1, "--reuse must be at least 1");
        anyhow::ensure!(
            self.max_concurrency >= 1,
            "--max-concurrency must be at least 1"
        );
        let cache = match (&self.cache_dir, self.no_cache) {
            (_, true) => CompileCache::disabled(),
            (Some(dir), false) => CompileCache::at(dir.clone()),
            (None, false) => CompileCache::default_location(),
        };
        let options = ComponentOptions {
            memory_limit,
            reuse: self.reuse,
            cache,
            pooling: !self.no_pooling,
            max_concurrency: self.max_concurrency,
        };
        let id = component_id(&self.component);
        let (backend, report) =
            ComponentBackend::load(&id, &self.component, options, self.timeout)?;
        tracing::info!(
            component = %id,
            "loaded `{}` in {:?}: {:?} handler, {:?} allocator, {}{}",
            self.component.display(),
            report.elapsed,
            report.kind,
            report.allocator,
            match report.origin {
                Origin::Cached => "compiled code loaded from cache",
                Origin::Compiled => "compiled",
            },
            if report.componentized { ", wasip1 module componentized" } else { "" },
        );
        let limits = Limits {
            request_timeout: self.timeout,
            max_header_bytes: usize::try_from(self.max_header_size).unwrap_or(usize::MAX),
            max_body_bytes: self.max_body_size,
            drain_timeout: self.drain_timeout,
        };
        Ok((Arc::new(backend), limits))
    }
}

/// The name a component goes by in logs: its file stem.
fn component_id(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "component".to_string())
}
