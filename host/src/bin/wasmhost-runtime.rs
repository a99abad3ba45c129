//! The embedded OCI runtime's helper, as a binary of its own.
//!
//! Every container start executes the helper twice (once, then again from
//! a read-only bind mount of itself; see `wasmhost::container::runtime::helper`).
//! Executing the whole `wasmhost` binary costs ~2.5 ms each time on the
//! bench machine, nearly all of it the kernel faulting in and the loader
//! relocating a binary that carries wasmtime and Cranelift; this one holds
//! only the runtime (libcontainer). `wasmhost` runs it when it is installed
//! beside it, and runs itself (`wasmhost runtime …`) otherwise.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wasmhost::commands::runtime::RuntimeCommand;

fn main() -> ExitCode {
    let command = RuntimeCommand::parse();
    // stderr is the container's, which the server logs: only
    // libcontainer's errors belong there unless asked for.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env("WASMHOST_RUNTIME_LOG")
                .unwrap_or_else(|_| EnvFilter::new("error")),
        )
        .init();
    match command.execute() {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
