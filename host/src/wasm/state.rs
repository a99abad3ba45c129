//! What each `Store` carries: the WASI and wasi:http contexts, the resource
//! table and the memory limiter.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::guest_log::{CurrentRequest, GuestLog};

/// Table growth allowed per instance when no pooling slot caps it. Far
/// above what compiled Rust and C need (their function tables hold a few
/// thousand entries), far below what would hurt the host.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Store data for one instance.
pub struct GuestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    /// Enforces the memory cap and remembers a refused growth, so a trap
    /// that follows can be explained.
    pub limiter: MemoryLimiter,
}

impl GuestState {
    /// Fresh state for one instance of component `id`. `request` tells its
    /// stdio which request it serves.
    pub fn new(id: Arc<str>, request: CurrentRequest, memory_limit: usize) -> Self {
        let wasi = WasiCtx::builder()
            .stdout(GuestLog::stdout(id.clone(), request.clone()))
            .stderr(GuestLog::stderr(id, request))
            .build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter { limit: memory_limit, refused: None },
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

/// The per-instance memory cap.
pub struct MemoryLimiter {
    limit: usize,
    /// The size, in bytes, of the last growth refused.
    pub refused: Option<usize>,
}

impl MemoryLimiter {
    /// The cap in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
