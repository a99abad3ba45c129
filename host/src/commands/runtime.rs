//! `wasmhost runtime …` (hidden), and the `wasmhost-runtime` helper
//! binary: the embedded OCI runtime's command line, runc's subset. What
//! each action does is `container::runtime::helper`'s.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use crate::container::runtime::helper;

/// The embedded OCI runtime (internal).
#[derive(Debug, Parser)]
pub struct RuntimeCommand {
    /// State directory.
    #[arg(long)]
    pub root: PathBuf,

    #[command(subcommand)]
    pub action: RuntimeAction,
}

/// runc-compatible actions.
#[derive(Debug, Subcommand)]
pub enum RuntimeAction {
    /// Create and start a container, wait for it, delete it; exit with its
    /// status.
    Run {
        /// The bundle (config.json and root).
        #[arg(long)]
        bundle: PathBuf,
        /// The container id.
        id: String,
    },
    /// Wait, already executed, for one order on stdin (a JSON line
    /// `{"bundle": …, "id": …}`), then run it as `run` would; exit quietly
    /// at end of input. wasmhost keeps one such helper started ahead, so a
    /// container start does not wait for the helper's own exec. With
    /// `"wait_for_start": true` the container is created at once and
    /// started at the next line (`start`); end of input instead deletes it.
    /// (`container::runtime::protocol` has the order's type.)
    #[command(hide = true)]
    Standby,
    /// Run a command inside a running container (its namespaces, cgroup,
    /// environment, capabilities and seccomp filter); exit with its
    /// status.
    Exec {
        /// `uid[:gid]` [default: the container's user].
        #[arg(long)]
        user: Option<String>,
        /// The working directory [default: the container's].
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Write the command's host pid here.
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Set no_new_privs (the container's process has it already, and
        /// the command keeps it either way).
        #[arg(long)]
        no_new_privs: bool,
        /// The container id.
        id: String,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Signal a container.
    Kill {
        /// Every process in it, not only init.
        #[arg(long)]
        all: bool,
        /// The container id.
        id: String,
        /// `TERM`, `KILL`, `SIGTERM`, `15`, …
        signal: String,
    },
    /// Remove a container.
    Delete {
        /// Kill it first if it still runs.
        #[arg(long)]
        force: bool,
        /// The container id.
        id: String,
    },
    /// List containers as JSON.
    List {
        /// Only `json`.
        #[arg(long, default_value = "json")]
        format: String,
    },
}

impl RuntimeCommand {
    /// Runs the action; returns the process exit code.
    pub fn execute(self) -> Result<i32> {
        let root = &self.root;
        match self.action {
            RuntimeAction::Run { bundle, id } => helper::run(root, &bundle, &id),
            RuntimeAction::Standby => helper::standby(root),
            RuntimeAction::Exec {
                user,
                cwd,
                pid_file,
                no_new_privs: _,
                id,
                command,
            } => helper::exec(
                root,
                helper::ExecOrder {
                    id: &id,
                    user: user.as_deref(),
                    cwd: cwd.as_deref(),
                    pid_file: pid_file.as_deref(),
                    command,
                },
            ),
            RuntimeAction::Kill { all, id, signal } => {
                helper::kill(root, &id, &signal, all)?;
                Ok(0)
            }
            RuntimeAction::Delete { force, id } => {
                helper::delete(root, &id, force)?;
                Ok(0)
            }
            RuntimeAction::List { format } => {
                if format != "json" {
                    bail!("only `--format json` is supported");
                }
                println!("{}", serde_json::to_string(&helper::list(root)?)?);
                Ok(0)
            }
        }
    }
}
