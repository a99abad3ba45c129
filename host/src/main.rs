//! The `wasmhost` binary: parse, then hand over to the subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wasmhost::commands::cache::CacheCommand;
use wasmhost::commands::compare::CompareCommand;
use wasmhost::commands::image::ImageCommand;
use wasmhost::commands::pull::PullCommand;
use wasmhost::commands::push::PushCommand;
use wasmhost::commands::registry::RegistryCommand;
use wasmhost::commands::rollout::RolloutCommand;
use wasmhost::commands::run::RunCommand;
use wasmhost::commands::runtime::RuntimeCommand;
use wasmhost::commands::serve::ServeCommand;
use wasmhost::frontdoor::Stopped;
use wasmhost::logging;
use wasmhost::telemetry::Telemetry;

/// Serve HTTP from WebAssembly components; pull and push them through OCI
/// registries.
#[derive(Debug, Parser)]
#[command(name = "wasmhost", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Serve(ServeCommand),
    Run(RunCommand),
    Pull(PullCommand),
    Push(PushCommand),
    Registry(RegistryCommand),
    Cache(CacheCommand),
    Image(ImageCommand),
    Compare(CompareCommand),
    Rollout(RolloutCommand),
    /// The embedded OCI runtime (internal: wasmhost runs it for its containers).
    #[command(hide = true)]
    Runtime(RuntimeCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The embedded container runtime must stay single-threaded: no tokio,
    // no writer threads. Its stderr is the container's, which the server
    // logs: only libcontainer's errors belong there unless asked for.
    let command = match cli.command {
        Command::Runtime(cmd) => {
            logging::init_blocking("WASMHOST_RUNTIME_LOG", "error");
            return match cmd.execute() {
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        other => {
            // Before any thread or child exists (see the module).
            wasmhost::inherited_fds::keep_to_ourselves();
            other
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The OTLP gRPC client starts a task of its own: inside the runtime.
    let telemetry = match runtime.block_on(async { Telemetry::from_env() }) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    logging::init("WASMHOST_LOG", "info", telemetry.as_ref());
    if let Some(telemetry) = &telemetry {
        tracing::info!("OpenTelemetry: {}", telemetry.describe());
    }
    let result = runtime.block_on(async {
        match command {
            Command::Serve(cmd) => cmd.execute().await,
            Command::Run(cmd) => cmd.execute().await,
            Command::Pull(cmd) => cmd.execute().await.map(|()| Stopped::Drained),
            Command::Push(cmd) => cmd.execute().await.map(|()| Stopped::Drained),
            Command::Registry(cmd) => cmd.execute().await.map(|()| Stopped::Drained),
            Command::Cache(cmd) => cmd.execute().await.map(|()| Stopped::Drained),
            Command::Image(cmd) => cmd.execute().await.map(|()| Stopped::Drained),
            Command::Compare(cmd) => cmd.execute().await.map(|()| Stopped::Drained),
            Command::Rollout(cmd) => cmd.execute().await.map(|()| Stopped::Drained),
            Command::Runtime(_) => unreachable!("handled before the async runtime starts"),
        }
    });
    // The container runtime helper's read-only mount, if one was made.
    wasmhost::container::runtime::sealed::release();
    // Exporters flush through the runtime: before it goes.
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    match result {
        Ok(Stopped::Drained) => ExitCode::SUCCESS,
        Ok(Stopped::DrainTimedOut | Stopped::Forced) => {
            // Do not wait for the tasks still running: that is what the
            // timeout or the second signal asked for.
            std::process::exit(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
