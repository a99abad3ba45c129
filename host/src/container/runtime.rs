//! Running a bundle with an OCI runtime: the embedded one (youki's
//! `libcontainer` in a helper process, `wasmhost runtime …`, the default)
//! or an installed `runc`, `crun` or `youki` — the same `config.json` and
//! root filesystem and the same command line, so users can compare
//! runtimes and the benchmarks have an anchor.
//!
//! Every container wasmhost starts is named `wasmhost-…` and lives under a
//! state directory of wasmhost's own (`--root`), so a sweep at start can
//! remove what a killed wasmhost left behind without touching anybody
//! else's containers.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context as _, Result};
use tokio::process::{Child, Command};

/// Prefix of every container id wasmhost creates.
pub const ID_PREFIX: &str = "wasmhost-";

/// The runtimes `--oci-runtime` accepts; the first is the default.
pub const RUNTIMES: &[&str] = &["embedded", "runc", "crun", "youki"];

/// An OCI runtime with a runc-like command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRuntime {
    /// `embedded`, `runc`, `crun` or `youki`.
    pub name: String,
    /// The program: this very binary for `embedded`, else looked up in
    /// `PATH`.
    pub binary: PathBuf,
    /// Arguments before runc's own (`runtime` for the embedded one).
    prefix: Vec<String>,
    /// The runtime's state directory for wasmhost's containers.
    pub root: PathBuf,
}

impl OciRuntime {
    /// `name` with its state under `/run/wasmhost/<name>`.
    pub fn named(name: &str) -> Result<Self> {
        let (binary, prefix) = match name {
            "embedded" => (
                std::env::current_exe().context("cannot find the wasmhost binary")?,
                vec!["runtime".to_owned()],
            ),
            "runc" | "crun" | "youki" => (PathBuf::from(name), Vec::new()),
            _ => bail!("unknown OCI runtime `{name}`: use {}", RUNTIMES.join(", ")),
        };
        Ok(Self {
            name: name.to_owned(),
            binary,
            prefix,
            root: PathBuf::from("/run/wasmhost").join(name),
        })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.prefix).arg("--root").arg(&self.root);
        cmd
    }

    /// Starts container `id` from `bundle` in the foreground: the returned
    /// child exits when the container does, and its stdout/stderr are the
    /// container's.
    pub fn run(&self, id: &str, bundle: &Path) -> Result<Child> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create `{}`", self.root.display()))?;
        self.command()
            .arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run `{}` (is it installed?)", self.binary.display()))
    }

    /// Sends `signal` (`TERM`, `KILL`) to the container's processes.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let status = self
            .command()
            .args(["kill", "--all", id, signal])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await?;
        if !status.success() {
            bail!("`{} kill {id} {signal}` failed ({status})", self.name);
        }
        Ok(())
    }

    /// Removes the container (killing it if still running).
    pub async fn delete(&self, id: &str) -> Result<()> {
        let out = self
            .command()
            .args(["delete", "--force", id])
            .output()
            .await?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !stderr.contains("does not exist") && !stderr.contains("not found") {
                bail!("`{} delete {id}` failed: {}", self.name, stderr.trim());
            }
        }
        Ok(())
    }

    /// Every container of wasmhost's this runtime knows.
    pub async fn list(&self) -> Result<Vec<String>> {
        if !self.root.exists() {
            return Ok(Vec::new());
        }
        let out = self
            .command()
            .args(["list", "--format", "json"])
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "`{} list` failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let list: Option<Vec<serde_json::Value>> =
            serde_json::from_slice(&out.stdout).unwrap_or_default();
        Ok(list
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.get("id").and_then(|id| id.as_str()))
            .filter(|id| id.starts_with(ID_PREFIX))
            .map(str::to_owned)
            .collect())
    }
}
