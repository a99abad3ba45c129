//! The command line containerd gives a shim (Go `flag` style: `-name
//! value`, `-name=value`, `--name value`), then the action.
//!
//! containerd 1.6 runs `<shim> -namespace NS -address SOCK -publish-binary
//! BIN -id ID [-debug] start` in the bundle directory, and `... -bundle DIR
//! delete` after a shim died. The daemon `start` leaves behind gets the
//! same flags, no action, and `-socket PATH` (its listener is fd 3).

#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::{bail, Result};

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start a daemon, print its address and exit.
    Start,
    /// Clean up after a shim that died.
    Delete,
    /// Be the daemon: serve the task API on fd 3.
    Serve,
    /// Print the version.
    Version,
    /// Stand in for a pod sandbox's pause process (internal: the task of
    /// a CRI sandbox container).
    Pause,
}

/// The flags.
#[derive(Debug, Clone)]
pub struct Args {
    /// containerd namespace of the task.
    pub namespace: String,
    /// containerd's gRPC socket (the shim's socket path derives from it).
    pub address: String,
    /// containerd's binary (`containerd publish`); unused: events go over
    /// TTRPC_ADDRESS.
    pub publish_binary: String,
    /// The task (container) id.
    pub id: String,
    /// The bundle directory, when given (`delete`); else the working
    /// directory.
    pub bundle: Option<PathBuf>,
    /// The daemon's socket path (daemon only).
    pub socket: Option<PathBuf>,
    /// Verbose logging.
    pub debug: bool,
    /// What to do.
    pub action: Action,
}

impl Args {
    /// Parses `args` (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self> {
        let mut parsed = Args {
            namespace: String::new(),
            address: String::new(),
            publish_binary: String::new(),
            id: String::new(),
            bundle: None,
            socket: None,
            debug: false,
            action: Action::Serve,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                parsed.action = match arg.as_str() {
                    "start" => Action::Start,
                    "delete" => Action::Delete,
                    "pause" => Action::Pause,
                    other => bail!("unknown action `{other}` (expected `start` or `delete`)"),
                };
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (flag, None),
            };
            match name {
                "debug" => {
                    parsed.debug = inline.as_deref().is_none_or(|v| v == "true");
                    continue;
                }
                "v" | "version" => {
                    parsed.action = Action::Version;
                    continue;
                }
                _ => {}
            }
            let value = match inline {
                Some(value) => value,
                None => match args.next() {
                    Some(value) => value,
                    None => bail!("flag `-{name}` needs a value"),
                },
            };
            match name {
                "namespace" => parsed.namespace = value,
                "address" => parsed.address = value,
                "publish-binary" => parsed.publish_binary = value,
                "id" => parsed.id = value,
                "bundle" => parsed.bundle = Some(value.into()),
                "socket" => parsed.socket = Some(value.into()),
                // Flags of later containerd versions that this shim has no
                // use for.
                _ => {}
            }
        }
        if !matches!(parsed.action, Action::Version | Action::Pause) {
            if parsed.namespace.is_empty() {
                bail!("shim namespace cannot be empty (`-namespace`)");
            }
            if parsed.id.is_empty() {
                bail!("shim id cannot be empty (`-id`)");
            }
        }
        Ok(parsed)
    }

    /// The daemon's flags: these, without the action, plus its socket.
    pub fn for_daemon(&self, socket: &std::path::Path) -> Vec<String> {
        let mut flags = vec![
            "-namespace".to_owned(),
            self.namespace.clone(),
            "-id".to_owned(),
            self.id.clone(),
            "-address".to_owned(),
            self.address.clone(),
            "-publish-binary".to_owned(),
            self.publish_binary.clone(),
            "-socket".to_owned(),
            socket.display().to_string(),
        ];
        if self.debug {
            flags.push("-debug".to_owned());
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args> {
        Args::parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn containerd_16_start_and_delete_lines() {
        let args = parse(
            "-namespace k8s.io -address /run/containerd/containerd.sock \
             -publish-binary /usr/bin/containerd -id abc -debug start",
        )
        .unwrap();
        assert_eq!(args.action, Action::Start);
        assert_eq!(args.namespace, "k8s.io");
        assert_eq!(args.id, "abc");
        assert!(args.debug);
        let args = parse("--namespace=default -id=x -bundle /b delete").unwrap();
        assert_eq!(args.action, Action::Delete);
        assert_eq!(args.bundle.as_deref(), Some(std::path::Path::new("/b")));
        let daemon = Args::parse(args.for_daemon("/s".as_ref())).unwrap();
        assert_eq!(daemon.action, Action::Serve);
        assert_eq!(daemon.socket.as_deref(), Some(std::path::Path::new("/s")));
    }

    #[test]
    fn missing_id_or_unknown_action_is_an_error() {
        assert!(parse("-namespace x start").is_err());
        assert!(parse("-namespace x -id y frobnicate").is_err());
        assert_eq!(parse("-v").unwrap().action, Action::Version);
    }
}
