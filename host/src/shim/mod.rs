//! containerd's shim for wasmhost apps: `containerd-shim-wasmhost-v1`,
//! runtime `io.containerd.wasmhost.v1`, task API v2 over ttrpc (what
//! containerd 1.6 and 1.7 speak; 2.x still accepts it).
//!
//! One shim per task. `start` forks a daemon and prints its socket; the
//! daemon mounts the task's root filesystem, finds the app in it (as
//! containerd-shim-spin: `/spin.toml`, or an argument naming a `.wasm`),
//! and runs `wasmhost serve` on it as the task's process: in the task's
//! cgroup and network namespace, its stdout and stderr on containerd's
//! FIFOs. The shim links no engine: it stays small because containerd
//! executes it for every task.
//!
//! - [`args`]: the command line containerd gives.
//! - [`socket`]: where a shim listens.
//! - [`start`]: the `start` action (the daemon's fork).
//! - [`daemon`]: the daemon: ttrpc server, reaper, events.
//! - [`service`]: the task API over the one task.
//! - [`task`]: one task: root filesystem, cgroup, gated process.
//! - [`app`]: what a pod runs (the `wasmhost serve` command line).
//! - [`sandbox`]: a CRI pod sandbox, held by the shim's own pause.
//! - [`rootfs`], [`cgroup`], [`stdio`]: the task's pieces.
//! - [`events`]: `/tasks/*` events to containerd, in order, retried.
//! - [`cleanup`]: the `delete` action, after a shim died.
//! - `sys`: the system calls that need `unsafe`.

pub mod app;
pub mod args;
pub mod cgroup;
pub mod cleanup;
pub mod daemon;
pub mod events;
pub mod log;
pub mod rootfs;
pub mod sandbox;
pub mod service;
pub mod socket;
pub mod start;
pub mod stdio;
mod sys;
pub mod task;

use std::io::Write as _;
use std::process::ExitCode;

use args::{Action, Args};

/// The runtime name containerd users write (`--runtime`, `runtime_type`).
pub const RUNTIME: &str = "io.containerd.wasmhost.v1";

/// The shim binary's `main`.
pub fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("containerd-shim-wasmhost-v1: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    log::set_debug(args.debug);
    let result = match args.action {
        Action::Version => {
            println!(
                "containerd-shim-wasmhost-v1:\n  Version: {}\n  Runtime: {RUNTIME}\n  Task API: containerd.task.v2",
                env!("CARGO_PKG_VERSION")
            );
            Ok(())
        }
        Action::Start => start::start(&args).map(|address| {
            print!("{address}");
        }),
        Action::Delete => cleanup::delete(&args).map(|bytes| {
            let _ = std::io::stdout().write_all(&bytes);
        }),
        Action::Serve => daemon::serve(&args),
        Action::Pause => sandbox::pause(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("containerd-shim-wasmhost-v1: {e:#}");
            ExitCode::FAILURE
        }
    }
}
