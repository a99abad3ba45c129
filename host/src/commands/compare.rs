//! `wasmhost compare --container IMAGE --wasm APP`: the same workload
//! against both forms of a service; a table on stdout, JSON and an HTML
//! report on disk. See [`crate::compare`] for what is measured and how.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::Parser;

use crate::compare::load::RequestSpec;
use crate::compare::server::Form;
use crate::compare::{self, Plan};
use crate::container::settings::{Settings, Start, DEFAULT_RUNTIME};

/// Compare a service's container and Wasm forms on the same workload.
#[derive(Debug, Parser)]
pub struct CompareCommand {
    /// The container form: an image (`registry/repo:tag` or `oci:DIR:TAG`),
    /// run as `wasmhost run` runs it.
    #[arg(long)]
    pub container: String,

    /// The port the container's service listens on [default: the image's
    /// only exposed port].
    #[arg(long)]
    pub container_port: Option<u16>,

    /// A path in the container where the service keeps state: backed by a
    /// fresh host directory at every start, so both forms start empty.
    #[arg(long, value_name = "PATH")]
    pub container_state: Option<String>,

    /// Environment for the container (`NAME=value`). Repeatable.
    #[arg(long = "container-env", value_name = "NAME=VALUE", value_parser = super::run::parse_env)]
    pub container_env: Vec<(String, String)>,

    /// The OCI runtime for the container form.
    #[arg(long, default_value = DEFAULT_RUNTIME)]
    pub oci_runtime: String,

    /// The Wasm form: a component, a Spin manifest or a reference, served
    /// as `wasmhost serve` serves it (its key-value state fresh per start).
    #[arg(long)]
    pub wasm: String,

    /// A path where the Wasm service keeps state: backed by a fresh host
    /// directory at every start (`serve --volume`).
    #[arg(long, value_name = "PATH")]
    pub wasm_state: Option<String>,

    /// A request of the workload, `METHOD PATH [BODY]`; repeatable, cycled
    /// through in order [default: `GET /`].
    #[arg(long = "request", value_name = "METHOD PATH [BODY]", value_parser = RequestSpec::parse)]
    pub requests: Vec<RequestSpec>,

    /// Closed-loop workers, each on its own keep-alive connection.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,

    /// Measured load time per form.
    #[arg(long, default_value = "10s", value_parser = super::parse::duration)]
    pub duration: Duration,

    /// Unmeasured load before it.
    #[arg(long, default_value = "2s", value_parser = super::parse::duration)]
    pub warmup: Duration,

    /// Cold-start rounds per form.
    #[arg(long, default_value_t = 5)]
    pub cold_starts: usize,

    /// Requests sent to both forms to compare their answers.
    #[arg(long, default_value_t = 200)]
    pub mismatch_requests: usize,

    /// A response header to compare besides status and body. Repeatable.
    #[arg(long = "compare-header", value_name = "NAME")]
    pub compare_headers: Vec<String>,

    /// Write the figures as JSON here.
    #[arg(long, default_value = "compare.json")]
    pub json: PathBuf,

    /// Write the HTML report here.
    #[arg(long, default_value = "compare.html")]
    pub html: PathBuf,

    #[command(flatten)]
    pub registry: super::RegistryArgs,
}

impl CompareCommand {
    /// Runs the comparison and writes the reports.
    pub async fn execute(self) -> Result<()> {
        if self.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        if self.cold_starts == 0 {
            bail!("--cold-starts must be at least 1");
        }
        let access = self.registry.access();
        let workload = if self.requests.is_empty() {
            vec![RequestSpec::parse("GET /")?]
        } else {
            self.requests
        };
        let plan = Plan {
            container: Form::Container {
                image: self.container,
                settings: Settings {
                    port: self.container_port,
                    environment: self.container_env,
                    runtime: self.oci_runtime,
                    // As `wasmhost run` starts it: the cold starts measured
                    // are whole starts.
                    start: Start::Eager,
                    ..Settings::default()
                },
                state_path: self.container_state,
                access: access.clone(),
            },
            wasm: Form::Wasm {
                app: self.wasm,
                state_path: self.wasm_state,
                access,
            },
            workload,
            concurrency: self.concurrency,
            duration: self.duration,
            warmup: self.warmup,
            cold_starts: self.cold_starts,
            mismatch_requests: self.mismatch_requests,
            compare_headers: self
                .compare_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        };
        let report = compare::run(&plan).await?;
        print!("{}", report.table());
        std::fs::write(&self.json, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write `{}`", self.json.display()))?;
        std::fs::write(&self.html, report.html())
            .with_context(|| format!("cannot write `{}`", self.html.display()))?;
        println!(
            "wrote `{}` and `{}`",
            self.json.display(),
            self.html.display()
        );
        Ok(())
    }
}
