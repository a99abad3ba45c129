//! `wasi:random@0.2.0-rc-2023-10-18`: the same functions as 0.2's, on the
//! same generators.

use wasmtime_wasi::random::WasiRandomCtx;

use super::latest::random as latest;
use super::snapshot::random::{insecure, insecure_seed, random};

impl random::Host for WasiRandomCtx {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        latest::random::Host::get_random_bytes(self, len)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        latest::random::Host::get_random_u64(self)
    }
}

impl insecure::Host for WasiRandomCtx {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        latest::insecure::Host::get_insecure_random_bytes(self, len)
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        latest::insecure::Host::get_insecure_random_u64(self)
    }
}

impl insecure_seed::Host for WasiRandomCtx {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        latest::insecure_seed::Host::insecure_seed(self)
    }
}
