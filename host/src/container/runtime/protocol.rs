//! What wasmhost and a runtime say to each other, typed, for both sides:
//! the driver ([`super::OciRuntime`]) writes orders and reads list
//! entries; the embedded runtime's helper ([`super::helper`]) reads orders
//! and writes list entries. runc, crun and youki speak the same command
//! line and list format, so one driver serves all four.
//!
//! - An [`Order`] is one JSON line on a standby helper's stdin; a helper
//!   told to wait for the start then reads one more line, [`Word`].
//! - `list --format json` prints an array of [`ListEntry`].
//! - Signals go as [`Signal`]s, named as runc's `kill` takes them.
//! - A container the runtime does not know is [`RuntimeError::NotFound`],
//!   recognised in one place ([`RuntimeError::from_stderr`]).

#![forbid(unsafe_code)]

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a standby helper is told to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The bundle (config.json and root).
    pub bundle: PathBuf,
    /// The container id.
    pub id: String,
    /// Create the container now, and start it only at the word
    /// [`Word::Start`].
    #[serde(default)]
    pub wait_for_start: bool,
}

impl Order {
    /// The order as the line the helper reads.
    pub fn to_line(&self) -> String {
        // A struct of a path, a string and a bool always serialises.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// Reads an order line; `None` for an empty one (end of input: the
    /// helper was not needed).
    pub fn from_line(line: &str) -> Result<Option<Self>, serde_json::Error> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(line).map(Some)
    }
}

/// What a helper holding a created container hears next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    /// Start it.
    Start,
    /// Delete it (end of input, or anything else: wasmhost stopped or
    /// dropped the container it made ahead).
    Discard,
}

impl Word {
    const START: &'static str = "start";

    /// The line that says it.
    pub fn to_line(self) -> &'static str {
        match self {
            Word::Start => "start\n",
            Word::Discard => "\n",
        }
    }

    /// The word a line says.
    pub fn from_line(line: &str) -> Self {
        if line.trim() == Self::START {
            Word::Start
        } else {
            Word::Discard
        }
    }
}

/// One container in `list --format json` (runc's format; other fields,
/// which runc and crun also print, are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// The container id.
    pub id: String,
    /// Its init process's host pid, once it has one (runc prints 0 for
    /// none).
    #[serde(default)]
    pub pid: Option<i64>,
    /// `created`, `running`, `stopped`, … (runtimes differ in case).
    #[serde(default)]
    pub status: String,
}

impl ListEntry {
    /// The init process's pid, if it has a real one.
    pub fn init_pid(&self) -> Option<u32> {
        self.pid
            .filter(|&pid| pid > 0)
            .and_then(|pid| u32::try_from(pid).ok())
    }

    /// Parses a runtime's `list` output; nothing printed is an empty list
    /// (runc prints `null` when it has no containers).
    pub fn parse_list(stdout: &[u8]) -> Result<Vec<Self>, serde_json::Error> {
        if stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let list: Option<Vec<Self>> = serde_json::from_slice(stdout)?;
        Ok(list.unwrap_or_default())
    }
}

/// A signal wasmhost sends a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Asks it to stop (the default stop signal).
    Term,
    /// Ends it.
    Kill,
    /// Another, such as an image's `StopSignal` (nginx: SIGQUIT).
    Other(nix::sys::signal::Signal),
}

impl Signal {
    /// As runc's `kill` takes it.
    pub fn as_arg(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
            Signal::Other(signal) => signal.as_str(),
        }
    }

    /// A signal as an image config's `StopSignal` gives it: `SIGQUIT`,
    /// `QUIT` or `3`.
    pub fn parse(text: &str) -> Result<Signal, String> {
        use nix::sys::signal::Signal as Nix;
        let upper = text.trim().to_ascii_uppercase();
        let signal = match upper.parse::<i32>() {
            Ok(number) => Nix::try_from(number).ok(),
            Err(_) => {
                let name = match upper.starts_with("SIG") {
                    true => upper.clone(),
                    false => format!("SIG{upper}"),
                };
                name.parse::<Nix>().ok()
            }
        };
        match signal {
            Some(Nix::SIGTERM) => Ok(Signal::Term),
            Some(Nix::SIGKILL) => Ok(Signal::Kill),
            Some(other) => Ok(Signal::Other(other)),
            None => Err(format!(
                "`{text}` is not a signal (such as `SIGQUIT`, `QUIT` or `3`)"
            )),
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signal::Other(signal) => write!(f, "{}", signal.as_str()),
            _ => write!(f, "SIG{}", self.as_arg()),
        }
    }
}

/// Why a runtime command failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime knows no such container (gone already, or never made).
    #[error("`{runtime}` knows no container `{id}`")]
    NotFound {
        /// `embedded`, `runc`, ….
        runtime: String,
        /// The container id.
        id: String,
    },
    /// It could not be run at all.
    #[error("cannot run `{program}` (is it installed?): {source}")]
    Spawn {
        /// The runtime's program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It ran and failed.
    #[error("`{runtime} {verb}` failed: {stderr}")]
    Failed {
        /// `embedded`, `runc`, ….
        runtime: String,
        /// `kill <id>`, `delete <id>`, `list`.
        verb: String,
        /// What it said.
        stderr: String,
    },
    /// Its `list` output did not parse.
    #[error("`{runtime} list` printed something else than a list: {source}")]
    BadList {
        /// `embedded`, `runc`, ….
        runtime: String,
        /// Why.
        source: serde_json::Error,
    },
}

impl RuntimeError {
    /// The error a failed command about container `id` means: not found
    /// when the runtime says so (runc and youki: "does not exist"; crun:
    /// "not found"; the embedded helper: "no container"), else a failure.
    pub fn from_stderr(runtime: &str, verb: &str, id: &str, stderr: &[u8]) -> Self {
        let text = String::from_utf8_lossy(stderr).trim().to_owned();
        let lower = text.to_ascii_lowercase();
        if ["does not exist", "not found", "no container"]
            .iter()
            .any(|phrase| lower.contains(phrase))
        {
            return RuntimeError::NotFound {
                runtime: runtime.to_owned(),
                id: id.to_owned(),
            };
        }
        RuntimeError::Failed {
            runtime: runtime.to_owned(),
            verb: format!("{verb} {id}"),
            stderr: text,
        }
    }

    /// Whether the container is simply not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::NotFound { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_go_as_one_json_line_and_come_back_the_same() {
        let order = Order {
            bundle: "/run/wasmhost/containers/wasmhost-1-web-0".into(),
            id: "wasmhost-1-web-0".into(),
            wait_for_start: true,
        };
        let line = order.to_line();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        assert_eq!(Order::from_line(&line).unwrap(), Some(order));
        // An older wasmhost's order has no `wait_for_start`.
        let old = Order::from_line(r#"{"bundle":"/b","id":"x"}"#)
            .unwrap()
            .unwrap();
        assert!(!old.wait_for_start);
        assert_eq!(Order::from_line("").unwrap(), None);
        assert!(Order::from_line("start").is_err());
    }

    #[test]
    fn only_the_word_start_starts_a_container_created_ahead() {
        assert_eq!(Word::from_line(Word::Start.to_line()), Word::Start);
        for other in ["", "\n", "stop\n", "{}\n"] {
            assert_eq!(Word::from_line(other), Word::Discard, "{other:?}");
        }
    }

    #[test]
    fn list_entries_read_runcs_format_and_round_trip() {
        let runc = br#"[{"ociVersion":"1.0.2","id":"wasmhost-1-a-0","pid":4242,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00Z","owner":"root"},
                        {"id":"wasmhost-1-a-1","pid":0,"status":"stopped"}]"#;
        let list = ListEntry::parse_list(runc).unwrap();
        assert_eq!(list[0].init_pid(), Some(4242));
        assert_eq!(list[1].init_pid(), None);
        assert_eq!(list[1].status, "stopped");
        assert_eq!(ListEntry::parse_list(b"null").unwrap(), []);
        assert_eq!(ListEntry::parse_list(b"\n").unwrap(), []);
        let ours = serde_json::to_vec(&list).unwrap();
        assert_eq!(ListEntry::parse_list(&ours).unwrap(), list);
        assert!(ListEntry::parse_list(b"oops").is_err());
    }

    #[test]
    fn a_container_the_runtime_does_not_know_is_not_found_in_every_runtimes_words() {
        for stderr in [
            "container does not exist",
            "time=\"…\" level=error msg=\"container wasmhost-1-a-0 does not exist\"",
            "crun: error opening file `/run/wasmhost/crun/x/status`: container not found",
            "error: no container `wasmhost-1-a-0`",
        ] {
            let err = RuntimeError::from_stderr("runc", "delete", "x", stderr.as_bytes());
            assert!(err.is_not_found(), "{stderr}");
        }
        let err = RuntimeError::from_stderr("runc", "kill", "x", b"permission denied\n");
        assert!(!err.is_not_found());
        assert_eq!(err.to_string(), "`runc kill x` failed: permission denied");
    }

    #[test]
    fn signals_are_named_as_runc_takes_them() {
        assert_eq!(Signal::Term.as_arg(), "TERM");
        assert_eq!(Signal::Kill.as_arg(), "KILL");
        assert_eq!(Signal::Kill.to_string(), "SIGKILL");
    }

    #[test]
    fn stop_signals_are_read_as_images_write_them() {
        use nix::sys::signal::Signal as Nix;
        assert_eq!(Signal::parse("SIGQUIT"), Ok(Signal::Other(Nix::SIGQUIT)));
        assert_eq!(Signal::parse("quit"), Ok(Signal::Other(Nix::SIGQUIT)));
        assert_eq!(Signal::parse("3"), Ok(Signal::Other(Nix::SIGQUIT)));
        assert_eq!(Signal::parse("SIGTERM"), Ok(Signal::Term));
        assert_eq!(Signal::parse("9"), Ok(Signal::Kill));
        assert!(Signal::parse("SIGNOPE").unwrap_err().contains("`SIGNOPE`"));
        assert_eq!(Signal::Other(Nix::SIGQUIT).to_string(), "SIGQUIT");
        assert_eq!(Signal::Term.to_string(), "SIGTERM");
    }
}
