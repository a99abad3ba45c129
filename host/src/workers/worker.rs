//! A worker's side of the [`super::Handoff`]: the listening socket it
//! takes over, the ready line it writes, the lifeline it watches.
//!
//! The two pipes are reached through `/proc/self/fd` (a new description
//! of the same pipe, as `serve --start-gate-fd` does), so only taking
//! over the socket needs `unsafe`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::fd::FromRawFd as _;
use std::os::unix::fs::FileTypeExt as _;

use anyhow::{Context as _, Result};

use super::Handoff;

/// The line a worker writes on its ready pipe once it serves:
/// `ready <admin address>`.
pub const READY: &str = "ready";

/// Takes over the listening socket the supervisor bound.
pub fn take_listener(handoff: &Handoff) -> Result<std::net::TcpListener> {
    let fd = handoff.listen;
    let kind = std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .with_context(|| format!("descriptor {fd}, the listening socket, is not open"))?
        .file_type();
    anyhow::ensure!(
        kind.is_socket(),
        "descriptor {fd} is not the listening socket"
    );
    // SAFETY: `fd` is open and a socket (checked above); the supervisor
    // passed it to this process for exactly this use, and nothing else in
    // this process owns or closes it: `take_listener` runs once per serve.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    listener
        .local_addr()
        .with_context(|| format!("descriptor {fd} is not a TCP listening socket"))?;
    listener
        .set_nonblocking(true)
        .context("cannot make the listening socket non-blocking")?;
    Ok(listener)
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
