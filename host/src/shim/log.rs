//! The shim's own log: lines on stderr, which containerd 1.6 copies from
//! the bundle's `log` FIFO into its own log. Never blocks and never
//! panics: a line that cannot be written is lost.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);

/// Turns debug lines on (`-debug`).
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// Writes one line.
pub fn line(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "wasmhost-shim[{}]: {text}", std::process::id());
}

/// Writes one line when debugging.
pub fn debug(text: &str) {
    if DEBUG.load(Ordering::Relaxed) {
        line(text);
    }
}
