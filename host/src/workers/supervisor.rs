//! The supervisor of `serve --workers N`: holds the port, starts one
//! worker per slot pinned to a CPU, forwards signals, starts
//! again a worker that dies, and serves the merged admin listener.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::Child;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::admin::Board;
use super::{worker, Handoff};
use crate::frontdoor::Stopped;
use crate::limits;

/// What the supervisor runs.
pub struct Plan {
    /// Worker processes.
    pub workers: usize,
    /// The CPUs workers are pinned to, in turn.
    pub cpus: Vec<usize>,
    /// The app's address.
    pub listen: SocketAddr,
    /// The admin address, served by the supervisor itself.
    pub admin_listen: Option<SocketAddr>,
    /// `http` or `https`, for the printed URL.
    pub scheme: &'static str,
    /// What is served, for the printed line.
    pub app: String,
}

/// The CPUs this process may run on (its affinity set), in order.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0)).context("cannot read the CPU affinity")?;
    Ok((0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect())
}

/// Runs the workers until SIGINT/SIGTERM and every worker has drained.
/// Fails, stopping the others, if a worker exits before it serves.
pub async fn supervise(plan: Plan) -> Result<Stopped> {
    let mut signals = Signals::install()?;
    let port = hold_port(plan.listen)?;
    let address = port.local_addr()?;
    let (lifeline, _lifeline_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot make the lifeline")?;
    let template = Arc::new(Template::new(address, port, lifeline)?);

    let board = Arc::new(Board::new(plan.workers));
    let (stop, stop_rx) = watch::channel(0u32);
    let (reload, reload_rx) = watch::channel(0u32);
    let (first_tx, mut first_rx) = mpsc::channel(plan.workers);
    let mut keepers = JoinSet::new();
    for index in 0..plan.workers {
        let slot = Slot {
            index,
            cpu: plan.cpus.get(index % plan.cpus.len().max(1)).copied(),
            template: template.clone(),
            board: board.clone(),
        };
        keepers.spawn(slot.keep(stop_rx.clone(), reload_rx.clone(), first_tx.clone()));
    }
    drop(first_tx);
    if let Err(e) = all_serving(plan.workers, &mut first_rx, &mut signals).await {
        // Two requests: not a drain, an immediate stop.
        stop.send_modify(|n| *n += 2);
        while keepers.join_next().await.is_some() {}
        return Err(e);
    }
    // Printed, not logged, as a single process does: scripts read it.
    println!("serving `{}` on {}://{address}/", plan.app, plan.scheme);
    tracing::info!(
        "{} workers serve, pinned to CPUs {:?} in turn",
        plan.workers,
        plan.cpus
    );
    if let Some(admin) = plan.admin_listen {
        super::admin::start(admin, board.clone()).await?;
    }

    let mut stopped = Stopped::Drained;
    loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Asked::Stop => request_stop(&stop, &board, &template),
                Asked::Reload => reload.send_modify(|n| *n += 1),
            },
            ended = keepers.join_next() => match ended {
                None => break,
                Some(Ok(status)) => stopped = worse(stopped, outcome(status, *stop.borrow())),
                Some(Err(e)) => {
                    tracing::error!("a worker's keeper failed: {e}");
                    stopped = worse(stopped, Stopped::Forced);
                }
            },
        }
    }
    anyhow::ensure!(
        *stop.borrow() > 0,
        "every worker is gone and none could be started again"
    );
    Ok(stopped)
}

/// The signals the supervisor handles, installed before any worker runs.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            hangup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        })
    }

    /// What the next SIGINT, SIGTERM or SIGHUP asks for.
    async fn next(&mut self) -> Asked {
        tokio::select! {
            _ = self.interrupt.recv() => Asked::Stop,
            _ = self.terminate.recv() => Asked::Stop,
            _ = self.hangup.recv() => Asked::Reload,
        }
    }
}

/// What a signal asks the supervisor for.
enum Asked {
    /// SIGINT, SIGTERM: drain (the second time: stop now).
    Stop,
    /// SIGHUP: every worker reloads.
    Reload,
}

/// Waits until each of `workers` has said it serves (the line scripts
/// wait for comes after every worker loaded the app); fails on the first
/// worker that exits before, or on SIGINT/SIGTERM meanwhile.
async fn all_serving(
    workers: usize,
    first: &mut mpsc::Receiver<Result<()>>,
    signals: &mut Signals,
) -> Result<()> {
    for _ in 0..workers {
        tokio::select! {
            started = first.recv() => match started {
                Some(result) => result?,
                None => anyhow::bail!("the workers' keepers are gone"),
            },
            signal = signals.next() => match signal {
                Asked::Stop => anyhow::bail!("stopped while the workers loaded the app"),
                Asked::Reload => {}
            },
        }
    }
    Ok(())
}

/// Binds `address` without listening, with `SO_REUSEPORT`: the port is
/// this server's (a port picked for `:0` is known before any worker
/// starts, and stays reserved while a dead worker is started again), yet
/// no connection waits here, unaccepted.
fn hold_port(address: SocketAddr) -> Result<tokio::net::TcpSocket> {
    super::shared_port(address)
}

/// The first SIGINT/SIGTERM drains every worker; a second stops them now.
fn request_stop(stop: &watch::Sender<u32>, board: &Board, template: &Template) {
    board.set_draining();
    // No worker is started again: the port can go once the workers close
    // their sockets.
    template.close();
    stop.send_modify(|n| *n += 1);
}

/// How a worker's exit reads as the server's: 0 drained; otherwise the
/// drain timed out, or was cut short by a second signal.
fn outcome(status: Option<ExitStatus>, stops: u32) -> Stopped {
    match status.and_then(|s| s.code()) {
        Some(0) => Stopped::Drained,
        _ if stops >= 2 => Stopped::Forced,
        _ => Stopped::DrainTimedOut,
    }
}

fn worse(a: Stopped, b: Stopped) -> Stopped {
    match (a, b) {
        (Stopped::Forced, _) | (_, Stopped::Forced) => Stopped::Forced,
        (Stopped::DrainTimedOut, _) | (_, Stopped::DrainTimedOut) => Stopped::DrainTimedOut,
        _ => Stopped::Drained,
    }
}

/// How to start a worker: this binary, this command line, the port and
/// the lifeline.
struct Template {
    exe: PathBuf,
    args: Vec<OsString>,
    listen: SocketAddr,
    lifeline: RawFd,
    /// The held port and the lifeline's read end, open for every later
    /// start until the drain begins; the lock is held while a worker is
    /// started, so no other worker's ready pipe is inheritable at that
    /// moment (each worker gets only its own).
    shared: Mutex<Option<(tokio::net::TcpSocket, OwnedFd)>>,
}

impl Template {
    fn new(listen: SocketAddr, port: tokio::net::TcpSocket, lifeline: OwnedFd) -> Result<Template> {
        inheritable(lifeline.as_raw_fd())?;
        Ok(Template {
            exe: std::env::current_exe().context("cannot find this program to start workers")?,
            args: std::env::args_os().skip(1).collect(),
            listen,
            lifeline: lifeline.as_raw_fd(),
            shared: Mutex::new(Some((port, lifeline))),
        })
    }

    /// Closes the supervisor's copies of the shared descriptors.
    fn close(&self) {
        self.lock().take();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(tokio::net::TcpSocket, OwnedFd)>> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a worker on `cpu`; returns it and the read end of its ready pipe.
    fn start(&self, cpu: Option<usize>) -> Result<(Child, OwnedFd)> {
        let shared = self.lock();
        anyhow::ensure!(shared.is_some(), "the server is stopping");
        let (ready, ready_end) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot make a ready pipe")?;
        inheritable(ready_end.as_raw_fd())?;
        let handoff = Handoff {
            listen: self.listen,
            ready: ready_end.as_raw_fd(),
            lifeline: self.lifeline,
        };
        let mut command = tokio::process::Command::new(&self.exe);
        command
            .args(&self.args)
            .arg("--worker-of")
            .arg(handoff.to_string())
            .stdin(Stdio::null())
            // Out of the terminal's process group: a Ctrl-C reaches the
            // supervisor alone, which forwards it once.
            .process_group(0)
            .kill_on_drop(true);
        let child = on_cpu(cpu, || command.spawn())?.context("cannot start a worker")?;
        Ok((child, ready))
    }
}

/// One worker's place: started, watched, started again if it dies.
struct Slot {
    index: usize,
    cpu: Option<usize>,
    template: Arc<Template>,
    board: Arc<Board>,
}

impl Slot {
    /// Keeps a worker running until a stop is requested; returns its exit
    /// status. Says on `first` whether its first worker came to serve.
    async fn keep(
        self,
        mut stop: watch::Receiver<u32>,
        mut reload: watch::Receiver<u32>,
        first: mpsc::Sender<Result<()>>,
    ) -> Option<ExitStatus> {
        let mut first = Some(first);
        loop {
            let (mut child, ready) = match self.template.start(self.cpu) {
                Ok(started) => started,
                Err(e) => {
                    let e = e.context(format!("worker {}", self.index));
                    tracing::error!("{e:#}");
                    if let Some(first) = first.take() {
                        let _ = first.send(Err(e)).await;
                    }
                    return None;
                }
            };
            let pid = child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .map(Pid::from_raw);
            let status = self
                .watch(&mut child, pid, ready, &mut stop, &mut reload, &mut first)
                .await;
            self.board.set_admin(self.index, None);
            let status = status.ok();
            let describe = status.map_or("an unknown status".to_owned(), |s| s.to_string());
            if *stop.borrow() > 0 {
                return status;
            }
            if let Some(first) = first.take() {
                let e = anyhow::anyhow!("worker {} exited before serving ({describe})", self.index);
                let _ = first.send(Err(e)).await;
                return status;
            }
            tracing::error!(
                "worker {} exited ({describe}); starting it again in {:?}",
                self.index,
                limits::WORKER_RESTART_DELAY
            );
            self.board.count_restart();
            tokio::select! {
                _ = tokio::time::sleep(limits::WORKER_RESTART_DELAY) => {}
                _ = stop.changed() => return status,
            }
        }
    }

    /// Waits for `child` to exit, meanwhile noting when it serves and
    /// passing on stop and reload requests.
    async fn watch(
        &self,
        child: &mut Child,
        pid: Option<Pid>,
        ready: OwnedFd,
        stop: &mut watch::Receiver<u32>,
        reload: &mut watch::Receiver<u32>,
        first: &mut Option<mpsc::Sender<Result<()>>>,
    ) -> std::io::Result<ExitStatus> {
        let signal = |signal: Signal| {
            if let Some(pid) = pid {
                let _ = kill(pid, signal);
            }
        };
        // A stop requested while this worker was being started.
        for _ in 0..*stop.borrow_and_update() {
            signal(Signal::SIGTERM);
        }
        reload.borrow_and_update();
        let ready_line = read_ready(ready);
        tokio::pin!(ready_line);
        let mut waiting_ready = true;
        loop {
            tokio::select! {
                status = child.wait() => return status,
                line = &mut ready_line, if waiting_ready => {
                    waiting_ready = false;
                    // A pipe closed without the line: the worker is exiting.
                    if let Ok(admin) = line {
                        self.board.set_admin(self.index, Some(admin));
                        if let Some(first) = first.take() {
                            let _ = first.send(Ok(())).await;
                        }
                    }
                }
                Ok(()) = stop.changed() => signal(Signal::SIGTERM),
                Ok(()) = reload.changed() => signal(Signal::SIGHUP),
            }
        }
    }
}

/// Reads a worker's `ready <admin address>` line.
async fn read_ready(pipe: OwnedFd) -> Result<SocketAddr> {
    let line = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use std::io::BufRead as _;
        let mut line = String::new();
        std::io::BufReader::new(std::fs::File::from(pipe)).read_line(&mut line)?;
        Ok(line)
    })
    .await
    .context("the ready pipe's reader failed")??;
    let address = line
        .trim_end()
        .strip_prefix(worker::READY)
        .map(str::trim)
        .with_context(|| format!("not a ready line: `{}`", line.trim_end()))?;
    address
        .parse()
        .with_context(|| format!("not an admin address: `{address}`"))
}

/// Runs `f` (a process start) with this thread pinned to `cpu`, so the
/// child and every thread it makes inherit the pin; then restores the
/// thread's own set.
fn on_cpu<T>(cpu: Option<usize>, f: impl FnOnce() -> T) -> Result<T> {
    let Some(cpu) = cpu else {
        return Ok(f());
    };
    let this_thread = Pid::from_raw(0);
    let before = sched_getaffinity(this_thread).context("cannot read the CPU affinity")?;
    let mut one = CpuSet::new();
    one.set(cpu)
        .with_context(|| format!("CPU {cpu} is out of range"))?;
    sched_setaffinity(this_thread, &one).with_context(|| format!("cannot pin to CPU {cpu}"))?;
    let out = f();
    sched_setaffinity(this_thread, &before).context("cannot restore the CPU affinity")?;
    Ok(out)
}

/// Clears close-on-exec on `fd`, so a worker started next inherits it.
fn inheritable(fd: RawFd) -> Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD)?);
    fcntl(fd, FcntlArg::F_SETFD(flags - FdFlag::FD_CLOEXEC))
        .with_context(|| format!("cannot pass descriptor {fd} on"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_drained_is_drained_and_a_second_stop_is_forced() {
        use std::os::unix::process::ExitStatusExt as _;
        let ok = Some(ExitStatus::from_raw(0));
        let failed = Some(ExitStatus::from_raw(1 << 8));
        assert_eq!(outcome(ok, 1), Stopped::Drained);
        assert_eq!(outcome(failed, 1), Stopped::DrainTimedOut);
        assert_eq!(outcome(failed, 2), Stopped::Forced);
        assert_eq!(outcome(None, 1), Stopped::DrainTimedOut);
        assert_eq!(
            worse(Stopped::Drained, Stopped::DrainTimedOut),
            Stopped::DrainTimedOut
        );
        assert_eq!(worse(Stopped::Forced, Stopped::Drained), Stopped::Forced);
    }

    #[test]
    fn cpus_allowed_are_listed() {
        assert!(!allowed_cpus().unwrap().is_empty());
    }
}
