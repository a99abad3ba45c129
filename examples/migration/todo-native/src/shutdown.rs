//! The signals that stop the server.
//!
//! In a container this process is PID 1, and the kernel does not apply the
//! default action (terminate) of a signal to PID 1 unless it has a handler:
//! without one, `docker stop` would wait out its grace period and SIGKILL.

use std::future::Future;
use std::io;

use tokio::signal::unix::{signal, SignalKind};

/// A future that completes on the first SIGTERM (container stop) or SIGINT
/// (Ctrl-C). The handlers are installed now, not when the future is first
/// polled, so a signal that arrives during start-up is not missed.
pub fn on_signal() -> io::Result<impl Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        eprintln!("todo-native: {name} received; finishing requests in flight");
    })
}
