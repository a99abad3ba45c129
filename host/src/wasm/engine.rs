//! The wasmtime `Engine`: one per loaded app, configured for a fresh
//! instance per request, plus the engine-wide epoch ticker.
//!
//! The settings are wasmtime's own fast-instantiation recipe, measured on
//! this project's 2-core machine (docs/ARCHITECTURE.md): pooling allocator,
//! copy-on-write memory images, memory and tables kept resident between
//! instances and reset with `PAGEMAP_SCAN` so only written pages are wiped
//! (no `madvise`, so no TLB shootdown to the other core).

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, Result};
use wasmtime::{
    Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, OptLevel,
    PoolingAllocationConfig, Strategy,
};

use super::admission::Admission;
use crate::limits::{self, EPOCH_TICK};

/// Linear memory kept mapped in a pooling slot between instances. Most
/// handlers touch less than this, so the next instance starts without page
/// faults; measured 38 → 29 µs per request with it.
const MEMORY_KEEP_RESIDENT: usize = 4 << 20;

/// Table memory kept mapped between instances, as for memory.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// How the engine allocates instances; reported at start-up and part of the
/// compile-cache key (code compiled for one strategy may not load in the
/// other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// Pre-reserved slots, reused across instances: the fast path.
    Pooling,
    /// mmap per instance: slower, but works where address space is scarce
    /// (`ulimit -v`, some sandboxes).
    OnDemand,
}

/// What the engine must support; decided from the component before the
/// engine is built.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Per-instance linear-memory cap in bytes.
    pub memory_limit: usize,
    /// The component-model concurrency machinery, needed by
    /// `wasi:http/handler@0.3` guests. Leaving it off for 0.2 guests saves
    /// about 3 µs per instance.
    pub concurrency: bool,
    /// Try the pooling allocator (falls back to on-demand when the address
    /// space cannot be reserved).
    pub pooling: bool,
    /// Instances alive at once: the pool's size.
    pub max_concurrency: u32,
    /// Longest a request waits for a free instance before its 503.
    pub queue_timeout: Duration,
    /// Serve a component missing from the compile cache from a quick
    /// baseline (Winch) compile while Cranelift compiles it in the
    /// background ([`super::tiered`]).
    pub baseline: bool,
}

impl EngineSettings {
    /// `wasmhost serve`'s defaults (its flags default to the same
    /// constants): what code pushed with `--precompiled` is compiled for.
    pub fn defaults(concurrency: bool) -> Self {
        Self {
            memory_limit: limits::MEMORY_LIMIT,
            concurrency,
            pooling: true,
            max_concurrency: limits::MAX_CONCURRENCY,
            queue_timeout: limits::QUEUE_TIMEOUT,
            baseline: false,
        }
    }
}

/// What every component of one app shares: the engine (so one pooling
/// allocator and one epoch ticker serve them all), and the admission limit
/// that keeps requests in flight within the pool's size.
#[derive(Clone)]
pub struct Runtime {
    /// The engine.
    pub engine: Engine,
    /// How it allocates instances.
    pub allocator: Allocator,
    /// One permit per pooling slot: requests beyond it wait, for a while.
    pub admission: Admission,
    /// Whether components missing from the cache may start on baseline code.
    pub baseline: bool,
    /// The baseline engine while any component still runs its code: held
    /// weakly, so it (and its epoch ticker) goes away once every component
    /// has switched to optimised code.
    baseline_engine: Arc<Mutex<Option<EngineWeak>>>,
}

impl Runtime {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(settings: &EngineSettings) -> Result<Self> {
        let (engine, allocator) = build(settings)?;
        start_epoch_ticker(&engine)?;
        Ok(Self {
            engine,
            allocator,
            admission: Admission::new(settings.max_concurrency, settings.queue_timeout),
            baseline: settings.baseline,
            baseline_engine: Arc::default(),
        })
    }

    /// The engine that compiles baseline code: Winch, on-demand allocation
    /// (it serves only until the optimised code is ready, so it reserves no
    /// pool of its own), epoch interruption as on the main engine so
    /// deadlines hold. Built on first use, with its own epoch ticker;
    /// shared by the app's components while any of them uses it.
    pub fn baseline_engine(&self) -> Result<Engine> {
        let mut held = self
            .baseline_engine
            .lock()
            .map_err(|_| anyhow::anyhow!("the baseline engine's lock is poisoned"))?;
        if let Some(engine) = held.as_ref().and_then(EngineWeak::upgrade) {
            return Ok(engine);
        }
        let engine = Engine::new(&baseline_config())
            .map_err(anyhow::Error::from)
            .context("cannot configure the baseline (Winch) engine")?;
        start_epoch_ticker(&engine)?;
        *held = Some(engine.weak());
        Ok(engine)
    }
}

/// Builds the engine, probing the pooling allocator first.
pub fn build(settings: &EngineSettings) -> Result<(Engine, Allocator)> {
    if settings.pooling {
        match Engine::new(&config(settings, Allocator::Pooling)) {
            Ok(engine) => return Ok((engine, Allocator::Pooling)),
            Err(e) => tracing::warn!(
                "pooling allocator unavailable ({e:#}); falling back to on-demand allocation, \
                 which is slower per request"
            ),
        }
    }
    let engine = Engine::new(&config(settings, Allocator::OnDemand))
        .map_err(anyhow::Error::from)
        .context("cannot configure the wasmtime engine")?;
    Ok((engine, Allocator::OnDemand))
}

fn config(settings: &EngineSettings, allocator: Allocator) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.memory_init_cow(true);
    config.concurrency_support(settings.concurrency);
    if settings.concurrency {
        config.wasm_component_model_async(true);
    }
    if allocator == Allocator::Pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(settings)));
    }
    config
}

/// The baseline engine's configuration: what [`config`] sets that changes
/// behaviour (epoch interruption, copy-on-write images), compiled by Winch.
/// Only 0.2 components start on baseline code, so no concurrency support.
fn baseline_config() -> Config {
    let mut config = Config::new();
    config.strategy(Strategy::Winch);
    // Winch compiles the functions; the trampolines around them (one per
    // function a table or an export reaches: thousands in a JavaScript or
    // Python runtime) are still Cranelift's, and took more of a 12 MB
    // JavaScript component's baseline compile than Winch itself. They run
    // only until the optimised code replaces them: unoptimised is enough.
    // First 200 with an empty cache: JavaScript 12–22 % sooner, Python
    // 11–21 % (bench/RESULTS.md, "Baseline trampolines unoptimised").
    config.cranelift_opt_level(OptLevel::None);
    config.epoch_interruption(true);
    config.memory_init_cow(true);
    config.concurrency_support(false);
    config
}

fn pooling(settings: &EngineSettings) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    // A Rust component has one main memory; a componentized wasip1 module
    // adds the adapter's. Core instances: the module, the adapter and the
    // component model's shim modules.
    let n = settings.max_concurrency;
    pool.total_component_instances(n)
        .total_memories(2 * n)
        .total_tables(4 * n)
        .total_core_instances(8 * n)
        .total_stacks(n)
        .max_memory_size(settings.memory_limit)
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    pool
}

/// Starts the one epoch ticker thread for `engine`; it exits once the
/// engine is dropped. One thread per engine, never one per request: a
/// per-request ticker cost `wasmtime serve` two to three orders of magnitude
/// in throughput. Without it no guest could be interrupted, so failing to
/// start it is an error.
fn start_epoch_ticker(engine: &Engine) -> Result<()> {
    let engine = engine.weak();
    thread::Builder::new()
        .name("wasmhost-epoch".into())
        .spawn(move || loop {
            thread::sleep(EPOCH_TICK);
            match engine.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })
        .context("cannot start the epoch ticker thread")?;
    Ok(())
}
