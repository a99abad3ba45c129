//! One task: its root filesystem, cgroup and process, from `Create` to
//! `Delete`. The process is forked at `Create` (so containerd gets its
//! pid, and it is in its cgroup and network namespace before anything
//! runs) and held at a gate until `Start`.
//!
//! One exception: a pod's sandbox, whose process is the shim's own
//! `pause` (it runs no code of the pod's and only waits for a signal),
//! joins its cgroup in the background. Moving a process into a cgroup
//! waits for the kernel's RCU grace period when none was taken lately
//! (`cgroup_wait.rs`): 5–18 ms on the bench machine, on the path of every
//! pod start when Create waits for it. What reads or signals the whole
//! cgroup (Kill with `all`, Pids, Stats, Delete) waits for the move;
//! Start does not.

#![forbid(unsafe_code)]

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

use anyhow::{bail, Context as _, Result};
use containerd_shim_protos::api::CreateTaskRequest;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::app::{self, Node};
use super::cgroup::Cgroup;
use super::{log, rootfs, stdio, sys};

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Forked, waiting at the gate.
    Created,
    /// Started.
    Running,
    /// Its process has exited.
    Stopped,
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, or 128 + the signal that killed it.
    pub status: u32,
    /// When it was reaped.
    pub at: SystemTime,
}

/// What the `delete` action finds after a shim died.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The task's process.
    pub pid: i32,
    /// Its cgroup path.
    pub cgroup: String,
}

/// The record's file in the bundle.
pub const RECORD: &str = "wasmhost-shim.json";

/// One task.
pub struct Task {
    /// The container id.
    pub id: String,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The process.
    pub pid: i32,
    /// containerd's stdio paths, as given.
    pub stdio: [String; 3],
    /// Set once the process exited.
    pub exit: Option<Exit>,
    /// Whether containerd has been told of the exit.
    pub exit_published: bool,
    gate: Option<OwnedFd>,
    cgroup: Arc<Cgroup>,
    /// The sandbox's move into its cgroup, while under way (see the
    /// module); taken by whatever uses the cgroup first.
    joining: Mutex<Option<JoinHandle<()>>>,
    rootfs: PathBuf,
}

impl Task {
    /// Mounts the root filesystem, finds the app, makes the cgroup and
    /// forks the process (gated). Undoes what it did when a step fails.
    pub fn create(req: &CreateTaskRequest, namespace: &str, node: &Node) -> Result<Task> {
        if req.terminal {
            bail!("a terminal is not supported: an app answers HTTP, not a TTY");
        }
        let bundle = PathBuf::from(&req.bundle);
        let spec = Spec::load(bundle.join("config.json"))
            .with_context(|| format!("cannot read `{}/config.json`", bundle.display()))?;
        let root = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_else(|| PathBuf::from("rootfs"));
        let rootfs = if root.is_absolute() {
            root
        } else {
            bundle.join(root)
        };
        rootfs::mount(&req.rootfs, &rootfs)?;
        let mut undo = Undo {
            rootfs: Some(rootfs.clone()),
            cgroup: None,
        };
        let sandbox = super::sandbox::is_sandbox(&spec);
        let plan = if sandbox {
            app::sandbox_plan(&rootfs)?
        } else {
            rootfs::refuse_links(&rootfs)?;
            let process = spec.process().clone().unwrap_or_default();
            let args = process.args().clone().unwrap_or_default();
            let env = process.env().clone().unwrap_or_default();
            let cwd = process.cwd().display().to_string();
            app::plan(&args, &env, &cwd, &rootfs, node)?
        };
        let linux = spec.linux().clone().unwrap_or_default();
        let cgroup_path = linux
            .cgroups_path()
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("/{namespace}/{}", req.id));
        let cgroup = undo
            .cgroup
            .insert(Arc::new(Cgroup::open(&cgroup_path, &req.id)?));
        let netns = match linux
            .namespaces()
            .iter()
            .flatten()
            .find(|ns| ns.typ() == LinuxNamespaceType::Network)
        {
            None => sys::NetNs::Host,
            Some(ns) => match ns.path() {
                None => sys::NetNs::New,
                Some(path) => sys::NetNs::Join(
                    std::fs::File::open(path)
                        .with_context(|| {
                            format!("cannot open the network namespace `{}`", path.display())
                        })?
                        .into(),
                ),
            },
        };
        // A preloaded process executes as soon as it is in its cgroup, and
        // waits at its start gate (a pipe of its own) for Start.
        let start_gate = if plan.preload {
            Some(sys::pipe().context("cannot make the task's start gate")?)
        } else {
            None
        };
        let (start_gate_r, start_gate_w) = match start_gate {
            Some((r, w)) => (Some((r, app::START_GATE_FD)), Some(w)),
            None => (None, None),
        };
        let exec = sys::Exec {
            program: c_string(plan.program.as_os_str().as_bytes())?,
            argv: plan
                .argv
                .iter()
                .map(|a| c_string(a.as_bytes()))
                .collect::<Result<_>>()?,
            envp: plan
                .env
                .iter()
                .map(|e| c_string(e.as_bytes()))
                .collect::<Result<_>>()?,
            cwd: c_string(plan.cwd.as_os_str().as_bytes())?,
            stdio: [
                stdio::null_input()?,
                stdio::open_output(&req.stdout)?,
                stdio::open_output(&req.stderr)?,
            ],
            netns,
            start_gate: start_gate_r,
        };
        let (pid, gate) = sys::spawn_gated(&exec).context("cannot fork the task's process")?;
        drop(exec);
        // In, then limited, before the gate opens; the sandbox's pause in
        // the background (see the module).
        let joining = if sandbox {
            let (cgroup, id) = (cgroup.clone(), req.id.clone());
            let resources = linux.resources().clone();
            let joining = std::thread::Builder::new()
                .name("sandbox-cgroup".into())
                .spawn(move || {
                    if let Err(e) = cgroup.join(pid, resources.as_ref()) {
                        log::line(&format!("sandbox {id}: {e:#}; its pause is stopped"));
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                });
            match joining {
                Ok(joining) => Some(joining),
                Err(e) => {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    return Err(e).context("cannot start the sandbox's cgroup move");
                }
            }
        } else {
            if let Err(e) = cgroup.join(pid, linux.resources().as_ref()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                return Err(e);
            }
            None
        };
        // What Start opens: the preloaded process's start gate (its exec
        // gate opens now), or the exec gate.
        let gate = match start_gate_w {
            Some(start) => {
                open_gate(gate).context("cannot start loading the app")?;
                start
            }
            None => gate,
        };
        let record = Record {
            pid,
            cgroup: cgroup_path,
        };
        let _ = std::fs::write(
            bundle.join(RECORD),
            serde_json::to_vec(&record).unwrap_or_default(),
        );
        undo.rootfs = None;
        let cgroup = undo.cgroup.take().expect("made above");
        Ok(Task {
            id: req.id.clone(),
            bundle,
            pid,
            stdio: [req.stdin.clone(), req.stdout.clone(), req.stderr.clone()],
            exit: None,
            exit_published: false,
            gate: Some(gate),
            cgroup,
            joining: Mutex::new(joining),
            rootfs,
        })
    }

    /// Where the task is.
    pub fn status(&self) -> Status {
        match (&self.exit, &self.gate) {
            (Some(_), _) => Status::Stopped,
            (None, Some(_)) => Status::Created,
            (None, None) => Status::Running,
        }
    }

    /// Opens the gate: the process executes `wasmhost serve`, or (loaded
    /// at Create) binds and serves. A preloaded process may have exited
    /// before Start (an app that does not load): it is started all the
    /// same, and its exit is reported after the start.
    pub fn start(&mut self) -> Result<()> {
        let Some(gate) = self.gate.take() else {
            bail!("the task is already started");
        };
        // Refused only if the process is gone (the reaper may not have
        // seen it yet): its exit is reported after this start, as above.
        if self.exit.is_none() && open_gate(gate).is_err() {
            log::debug(&format!("task {}: its process ended before Start", self.id));
        }
        Ok(())
    }

    /// Whether Start has come.
    pub fn started(&self) -> bool {
        self.gate.is_none()
    }

    /// Sends `signal` to the process, or to every process in the cgroup.
    pub fn kill(&self, signal: i32, all: bool) -> Result<()> {
        let signal = Signal::try_from(signal).context("no such signal")?;
        let mut pids = vec![self.pid];
        if all {
            pids.extend(self.cgroup().pids().into_iter().filter(|p| *p != self.pid));
        }
        for pid in pids {
            match kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => bail!("cannot signal {pid}: {e}"),
            }
        }
        Ok(())
    }

    /// The processes in the task's cgroup.
    pub fn pids(&self) -> Vec<i32> {
        self.cgroup().pids()
    }

    /// The cgroup's figures.
    pub fn metrics(&self) -> Result<containerd_shim_protos::protobuf::well_known_types::any::Any> {
        self.cgroup().metrics()
    }

    /// Removes what the task left: processes, cgroup, mount, record.
    pub fn clean_up(&mut self) {
        self.gate = None;
        self.cgroup().remove();
        rootfs::unmount(&self.rootfs);
        let _ = std::fs::remove_file(self.bundle.join(RECORD));
    }

    /// The task's cgroup, once its process is in it.
    fn cgroup(&self) -> &Cgroup {
        let joining = self.joining.lock().map(|mut j| j.take()).unwrap_or_default();
        if let Some(joining) = joining {
            let _ = joining.join();
        }
        &self.cgroup
    }

    /// The root filesystem's mount point.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }
}

/// What a failed `create` undoes.
struct Undo {
    rootfs: Option<PathBuf>,
    cgroup: Option<Arc<Cgroup>>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(cgroup) = &self.cgroup {
            cgroup.remove();
        }
        if let Some(rootfs) = &self.rootfs {
            rootfs::unmount(rootfs);
        }
    }
}

/// Lets a process waiting at `gate` go on: one byte.
fn open_gate(gate: OwnedFd) -> Result<()> {
    let mut gate = std::fs::File::from(gate);
    std::io::Write::write_all(&mut gate, b"s").context("the process is gone")
}

fn c_string(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).context("an argument or variable holds a NUL byte")
}

/// The exit status containerd expects from a wait status: the code, or
/// 128 + the signal.
pub fn exit_status(status: nix::sys::wait::WaitStatus) -> Option<(i32, u32)> {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), code as u32)),
        WaitStatus::Signaled(pid, signal, _) => Some((pid.as_raw(), 128 + signal as u32)),
        _ => None,
    }
}
