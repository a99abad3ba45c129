//! `wasmhost rollout status|pause|resume|promote|abort`: a running
//! `wasmhost serve`'s rollouts, through its admin listener's rollout API
//! (`crate::admin::rollouts`), with the token from a file.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Parser, ValueEnum};

/// Show or steer the rollouts of a running `wasmhost serve` (through its
/// admin listener).
#[derive(Debug, Parser)]
pub struct RolloutCommand {
    /// What to do: `status` (every rollout), `pause` (stop advancing),
    /// `resume` (go on; from the first step after a rollback or an abort),
    /// `promote` (all traffic to the new component now) or `abort`
    /// (none now).
    #[arg(value_enum)]
    pub action: Action,

    /// The route whose rollout to steer, as written in the manifest
    /// (`/todos/...`); may be left out when the app has one rollout.
    #[arg(long)]
    pub route: Option<String>,

    /// The server's admin address (its `--admin-listen`).
    #[arg(long, value_name = "ADDR")]
    pub admin: SocketAddr,

    /// A file holding the server's admin token (its `--admin-token-file`).
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,

    /// Print the server's JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// `wasmhost rollout <action>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Action {
    /// Every rollout: phase, step, weight, the current window.
    Status,
    /// Stop advancing (a breach still rolls back).
    Pause,
    /// Go on.
    Resume,
    /// All traffic to the new component.
    Promote,
    /// No traffic to the new component.
    Abort,
}

impl RolloutCommand {
    /// Asks the server, prints its answer.
    pub async fn execute(self) -> Result<()> {
        let text = std::fs::read_to_string(&self.token_file).with_context(|| {
            format!("cannot read the token file `{}`", self.token_file.display())
        })?;
        let token = text.trim();
        let mut url = url::Url::parse(&format!("http://{}/rollouts", self.admin))
            .context("the admin address does not make a URL")?;
        let client = reqwest::Client::new();
        let request = match self.action {
            Action::Status => client.get(url),
            verb => {
                url.set_path(&format!("/rollouts/{}", verb_name(verb)));
                if let Some(route) = &self.route {
                    url.query_pairs_mut().append_pair("route", route);
                }
                client.post(url)
            }
        };
        let response = request
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("cannot reach the admin listener at `{}`", self.admin))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .context("the admin listener's answer was cut")?;
        if !status.is_success() {
            anyhow::bail!("the server refused ({status}): {}", body.trim());
        }
        if self.json {
            println!("{}", body.trim());
            return Ok(());
        }
        let value: serde_json::Value =
            serde_json::from_str(&body).context("the server's answer is not JSON")?;
        let rollouts = match value {
            serde_json::Value::Array(all) => all,
            one => vec![one],
        };
        if rollouts.is_empty() {
            println!("no rollouts");
        }
        for rollout in &rollouts {
            println!("{}", summary(rollout));
        }
        Ok(())
    }
}

fn verb_name(action: Action) -> &'static str {
    match action {
        Action::Status => "status",
        Action::Pause => "pause",
        Action::Resume => "resume",
        Action::Promote => "promote",
        Action::Abort => "abort",
    }
}

/// One line per rollout, then its reason and last decision.
fn summary(r: &serde_json::Value) -> String {
    let steps = r["steps"].as_array().map_or(0, Vec::len);
    let mut out = format!(
        "{}: {} → {}: {} at {} % (step {} of {steps})",
        r["route"].as_str().unwrap_or("?"),
        r["from"].as_str().unwrap_or("?"),
        r["to"].as_str().unwrap_or("?"),
        r["phase"].as_str().unwrap_or("?"),
        r["weight_percent"],
        r["step"].as_u64().map_or(0, |s| s + 1),
    );
    if let Some(reason) = r["reason"].as_str() {
        out.push_str(&format!("\n  why: {reason}"));
    }
    if let Some(last) = r["decisions"].as_array().and_then(|d| d.last()) {
        out.push_str(&format!(
            "\n  last decision: {} ({})",
            last["action"].as_str().unwrap_or("?"),
            last["reason"].as_str().unwrap_or("")
        ));
    }
    out
}
