//! `serve --workers N`: N processes serve one app on one port, each
//! pinned to a CPU, under a supervisor.
//!
//! Why processes, not more threads: a fresh instance per request writes
//! to pages the pooling allocator write-protected (`PAGEMAP_SCAN`) to
//! reset them cheaply, and every such fault and every reset flushes the
//! TLB of each other core running the same address space, by IPI. On 2
//! cores that was 35–47 % of all CPU for JavaScript and Python components,
//! in wasmtime serve as in wasmhost (bench/RESULTS.md). A process whose
//! threads stay on one core pays no shootdown; one such process per core
//! served 2.5–2.7× the requests of one process on both cores. nginx runs
//! one worker process per core for the same reasons.
//!
//! How ([`supervisor`]): the supervisor binds the port (`SO_REUSEPORT`,
//! not listening: it holds the port, takes no connection), then runs
//! `wasmhost serve` again with its own command line for each worker,
//! handing it ([`Handoff`]) the address bound, a pipe on which the worker
//! says it is ready (and where its admin listener is), and a lifeline pipe
//! whose end only the supervisor holds, so a worker whose supervisor is
//! gone (even by SIGKILL) drains and exits. Each worker is started on one
//! CPU of the supervisor's affinity set and its threads stay there, and
//! listens on a socket of its own on the same port (`SO_REUSEPORT`): the
//! kernel spreads new connections over the workers by a hash of their
//! addresses. One socket shared by every worker was tried first: whichever
//! worker woke first accepted the whole burst (all 16 of wrk's
//! connections), so one core served while the other idled. As with
//! nginx's `reuseport`, connections still queued at a worker that dies are
//! reset.
//!
//! The supervisor prints the `serving … on …` line once every worker has
//! loaded the app, forwards SIGINT/SIGTERM (each worker drains) and SIGHUP
//! (each reloads), starts a worker that dies again after
//! [`crate::limits::WORKER_RESTART_DELAY`], and serves the admin listener
//! itself ([`admin`]): `/metrics` is the sum of the workers' ([`merge`]),
//! `/readyz` is ready when every worker is.
//!
//! What a worker cannot share: a container component (its container
//! would run once per worker) and the rollout API (each worker would hold
//! its own rollout state) are refused with `--workers` above 1.

pub mod admin;
pub mod merge;
pub mod supervisor;
pub mod worker;

use std::net::SocketAddr;
use std::os::fd::RawFd;

use anyhow::{Context as _, Result};

/// How many worker processes `serve --workers` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerCount {
    /// One per CPU this process may run on (nginx's `worker_processes auto`).
    Auto,
    /// Exactly this many.
    Fixed(usize),
}

impl WorkerCount {
    /// The number of workers on this machine: `Auto` counts the CPUs of
    /// `cpus` (the affinity set workers are spread over).
    pub fn resolve(self, cpus: &[usize]) -> usize {
        match self {
            WorkerCount::Auto => cpus.len().max(1),
            WorkerCount::Fixed(n) => n,
        }
    }
}

impl std::str::FromStr for WorkerCount {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "auto" {
            return Ok(WorkerCount::Auto);
        }
        match text.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(WorkerCount::Fixed(n)),
            _ => Err(format!(
                "`{text}` is not a worker count: a number from 1, or `auto` (one per CPU)"
            )),
        }
    }
}

impl std::fmt::Display for WorkerCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerCount::Auto => f.write_str("auto"),
            WorkerCount::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// What a worker gets from its supervisor, passed on its command line as
/// `ADDRESS,READY,LIFELINE` (`serve --worker-of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handoff {
    /// The address the supervisor bound (a port picked for `:0`), where
    /// every worker listens.
    pub listen: SocketAddr,
    /// The write end of this worker's ready pipe.
    pub ready: RawFd,
    /// The read end of the lifeline: end of file once the supervisor is gone.
    pub lifeline: RawFd,
}

impl std::str::FromStr for Handoff {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let shape = || format!("`{text}` is not ADDRESS,READY,LIFELINE");
        let mut parts = text.split(',');
        let (Some(listen), Some(ready), Some(lifeline), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            anyhow::bail!(shape());
        };
        let listen = listen.parse().with_context(shape)?;
        let ready: RawFd = ready.parse().with_context(shape)?;
        let lifeline: RawFd = lifeline.parse().with_context(shape)?;
        anyhow::ensure!(
            ready > 2 && lifeline > 2,
            "`{text}`: the pipes are descriptors above 2"
        );
        Ok(Handoff {
            listen,
            ready,
            lifeline,
        })
    }
}

impl std::fmt::Display for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{}", self.listen, self.ready, self.lifeline)
    }
}

/// A socket bound to `address` that other sockets of this user may bind
/// too (`SO_REUSEPORT`): the supervisor's, which holds the port, and each
/// worker's, which listens on it.
pub fn shared_port(address: SocketAddr) -> Result<tokio::net::TcpSocket> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .context("cannot make a socket")?;
    socket.set_reuseaddr(true)?;
    socket
        .set_reuseport(true)
        .context("cannot share the port (SO_REUSEPORT)")?;
    socket
        .bind(address)
        .with_context(|| format!("cannot listen on `{address}`"))?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_count_is_auto_or_at_least_one() {
        assert_eq!("auto".parse::<WorkerCount>(), Ok(WorkerCount::Auto));
        assert_eq!("3".parse::<WorkerCount>(), Ok(WorkerCount::Fixed(3)));
        assert!("0".parse::<WorkerCount>().is_err());
        assert!("two".parse::<WorkerCount>().is_err());
        assert_eq!(WorkerCount::Auto.resolve(&[0, 1, 5]), 3);
        assert_eq!(WorkerCount::Auto.resolve(&[]), 1);
        assert_eq!(WorkerCount::Fixed(4).resolve(&[0, 1]), 4);
    }

    #[test]
    fn a_handoff_round_trips_and_refuses_the_standard_streams() {
        let handoff: Handoff = "127.0.0.1:3000,7,5".parse().unwrap();
        assert_eq!(
            handoff,
            Handoff {
                listen: "127.0.0.1:3000".parse().unwrap(),
                ready: 7,
                lifeline: 5
            }
        );
        assert_eq!(handoff.to_string(), "127.0.0.1:3000,7,5");
        let v6: Handoff = "[::1]:80,7,5".parse().unwrap();
        assert_eq!(v6.to_string(), "[::1]:80,7,5");
        assert!("127.0.0.1:3000,7".parse::<Handoff>().is_err());
        assert!("127.0.0.1:3000,1,5".parse::<Handoff>().is_err());
        assert!("127.0.0.1:3000,x,5".parse::<Handoff>().is_err());
        assert!("3,7,5".parse::<Handoff>().is_err());
        assert!("127.0.0.1:3000,7,5,9".parse::<Handoff>().is_err());
    }
}
