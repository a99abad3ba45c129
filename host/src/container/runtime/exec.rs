//! `exec`: a command run inside a running container, as Docker runs a
//! HEALTHCHECK: in all its namespaces and its cgroup, as its user, in its
//! working directory, with its environment, capabilities and seccomp
//! filter; its stdout and stderr kept (at most [`OUTPUT_LIMIT`]); killed
//! past its timeout.
//!
//! runc, crun and youki take runc's `exec` command line; the embedded
//! runtime's helper takes the same ([`super::helper::exec`]). The user,
//! the working directory and `no_new_privs` are given explicitly: runc
//! and crun default to the container's user, youki to root, and runc
//! leaves `no_new_privs` off.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use super::protocol::RuntimeError;
use super::OciRuntime;

/// The most output of one run kept, as Docker keeps of a health check's
/// (`maxOutputLen` in moby's `daemon/health.go`): enough for an error
/// message, bounded however much a command prints.
pub const OUTPUT_LIMIT: usize = 4096;

/// Who a command runs as, and where: the container's own process's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecAs {
    /// Its uid inside the container.
    pub uid: u32,
    /// Its gid inside the container.
    pub gid: u32,
    /// Its working directory inside the container.
    pub cwd: PathBuf,
}

impl ExecAs {
    /// The process of the bundle in `bundle_dir` (its `config.json`).
    pub fn of_bundle(bundle_dir: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let path = bundle_dir.join("config.json");
        let spec = oci_spec::runtime::Spec::load(&path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        let process = spec
            .process()
            .as_ref()
            .with_context(|| format!("`{}` has no process", path.display()))?;
        Ok(Self {
            uid: process.user().uid(),
            gid: process.user().gid(),
            cwd: process.cwd().clone(),
        })
    }
}

/// How a command run in a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// It exited: its code (128 + the signal if one ended it), its output.
    Exited {
        /// 0 is success.
        code: i32,
        /// stdout then stderr, at most [`OUTPUT_LIMIT`] bytes, `...` after
        /// a cut.
        output: String,
    },
    /// It ran past its time and was killed; what it printed until then.
    TimedOut {
        /// As for [`Ran::Exited`].
        output: String,
    },
}

impl OciRuntime {
    /// Runs `command` in container `id` as `exec_as`, at most `timeout`
    /// (then it is killed: its pid, which the runtime writes to
    /// `pid_file`, gets SIGKILL).
    pub async fn exec(
        &self,
        id: &str,
        exec_as: &ExecAs,
        command: &[String],
        pid_file: &Path,
        timeout: Duration,
    ) -> Result<Ran, RuntimeError> {
        let _ = std::fs::remove_file(pid_file);
        let mut child = self
            .command()
            .arg("exec")
            .arg("--user")
            .arg(format!("{}:{}", exec_as.uid, exec_as.gid))
            .arg("--cwd")
            .arg(&exec_as.cwd)
            .arg("--pid-file")
            .arg(pid_file)
            // As the container's own process (runc's exec leaves it off
            // unless asked, whatever the spec says).
            .arg("--no-new-privs")
            .arg(id)
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| RuntimeError::Spawn {
                program: self.binary.clone(),
                source,
            })?;
        let output = Output::default();
        let readers = [
            output.read_from(child.stdout.take()),
            output.read_from(child.stderr.take()),
        ];
        let finished = tokio::time::timeout(timeout, async {
            let status = child.wait().await;
            for reader in readers {
                let _ = reader.await;
            }
            status
        })
        .await;
        match finished {
            Ok(Ok(status)) => Ok(Ran::Exited {
                code: exit_code(status),
                output: output.text(),
            }),
            Ok(Err(source)) => Err(RuntimeError::Spawn {
                program: self.binary.clone(),
                source,
            }),
            Err(_) => {
                kill_by_pid_file(pid_file);
                // The runtime waits for what it ran; gone, it returns.
                let _ = child.kill().await;
                Ok(Ran::TimedOut {
                    output: output.text(),
                })
            }
        }
    }
}

/// The code as a shell reports it: 128 + the signal for a killed runtime.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

/// SIGKILL to the process whose pid `pid_file` holds, if it does yet
/// (a runtime still starting the command has not written it: killing the
/// runtime then stops the start).
fn kill_by_pid_file(pid_file: &Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    if pid > 1 {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// What a command printed, both streams into one bounded buffer as it
/// comes (so a command killed at its timeout still shows what it said).
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Bounded>>);

#[derive(Default)]
struct Bounded {
    bytes: Vec<u8>,
    cut: bool,
}

impl Output {
    /// Reads `pipe` to its end on a task of its own, keeping what fits.
    fn read_from<R>(&self, pipe: Option<R>) -> tokio::task::JoinHandle<()>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        let output = self.clone();
        tokio::spawn(async move {
            let Some(mut pipe) = pipe else { return };
            let mut chunk = [0u8; 1024];
            while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
                output.keep(&chunk[..n]);
            }
        })
    }

    fn keep(&self, data: &[u8]) {
        let Ok(mut bounded) = self.0.lock() else {
            return;
        };
        let room = OUTPUT_LIMIT.saturating_sub(bounded.bytes.len());
        let kept = room.min(data.len());
        bounded.bytes.extend_from_slice(&data[..kept]);
        bounded.cut |= kept < data.len();
    }

    /// The output as text, `...` after a cut (Docker's mark).
    fn text(&self) -> String {
        let Ok(bounded) = self.0.lock() else {
            return String::new();
        };
        let mut text = String::from_utf8_lossy(&bounded.bytes).into_owned();
        if bounded.cut {
            text.push_str("...");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_the_first_four_kib_and_marks_the_cut() {
        let output = Output::default();
        output.keep(b"unhealthy: ");
        output.keep(&[b'x'; OUTPUT_LIMIT]);
        let text = output.text();
        assert_eq!(text.len(), OUTPUT_LIMIT + 3);
        assert!(
            text.starts_with("unhealthy: xxx") && text.ends_with("x..."),
            "{text}"
        );
        let short = Output::default();
        short.keep(b"ok\n");
        assert_eq!(short.text(), "ok\n");
    }
}
