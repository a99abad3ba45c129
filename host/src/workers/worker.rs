//! A worker's side of the [`super::Handoff`]: the socket it listens on,
//! the ready line it writes, the lifeline it watches.
//!
//! The two pipes are reached through `/proc/self/fd` (a new description
//! of the same pipe, as `serve --start-gate-fd` does): no `unsafe`.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use tokio::net::TcpListener;

use super::Handoff;
use crate::limits;

/// The line a worker writes on its ready pipe once it serves:
/// `ready <admin address>`.
pub const READY: &str = "ready";

/// Listens on the supervisor's address with a socket of this worker's own
/// (`SO_REUSEPORT`: the kernel spreads connections over the workers).
pub fn listen(handoff: &Handoff) -> Result<TcpListener> {
    let address = handoff.listen;
    super::shared_port(address)
        .context("beside the other workers")?
        .listen(limits::LISTEN_BACKLOG)
        .with_context(|| format!("cannot listen on `{address}`"))
}

/// Tells the supervisor this worker serves, and where its admin listener is.
pub fn report_ready(handoff: &Handoff, admin: SocketAddr) -> Result<()> {
    let path = format!("/proc/self/fd/{}", handoff.ready);
    let mut pipe = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .context("cannot open the ready pipe")?;
    writeln!(pipe, "{READY} {admin}").context("cannot write to the ready pipe")
}

/// Sends this process SIGTERM (a graceful drain) once the supervisor is
/// gone: the lifeline's write end is the supervisor's alone, so end of
/// file means it exited, however it ended.
pub fn watch_lifeline(handoff: &Handoff) -> Result<()> {
    let path = format!("/proc/self/fd/{}", handoff.lifeline);
    // Read without a blocking thread: the runtime's shutdown would wait
    // for one forever.
    let mut pipe = tokio::net::unix::pipe::OpenOptions::new()
        .open_receiver(&path)
        .context("cannot open the supervisor's lifeline")?;
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt as _;
        let mut byte = [0u8; 1];
        match pipe.read(&mut byte).await {
            Ok(0) => tracing::warn!("the supervisor is gone: draining and exiting"),
            Ok(_) => tracing::warn!("the supervisor wrote on the lifeline: draining and exiting"),
            Err(e) => tracing::error!("cannot watch the supervisor's lifeline ({e}): exiting"),
        }
        let me = nix::unistd::Pid::this();
        if let Err(e) = nix::sys::signal::kill(me, nix::sys::signal::Signal::SIGTERM) {
            tracing::error!("cannot signal this worker to stop: {e}");
        }
    });
    Ok(())
}
