//! The daemon `start` leaves behind: the task API on fd 3 until
//! `Shutdown`, events to containerd, the reaper.

#![forbid(unsafe_code)]

use std::os::fd::AsRawFd as _;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{Context as _, Result};
use containerd_shim_protos::create_task;
use containerd_shim_protos::ttrpc::Server;

use super::args::Args;
use super::events::Publisher;
use super::service::Service;
use super::{log, sys};

/// The listener `start` hands over.
const LISTENER_FD: i32 = 3;

/// Request threads per connection at most: `Wait` holds one for the
/// task's whole life, and containerd and CRI may each wait.
const MAX_THREADS: usize = 32;

/// Serves until `Shutdown`, then exits the process.
pub fn serve(args: &Args) -> Result<()> {
    sys::set_cloexec(LISTENER_FD).context("fd 3 is not the shim's listener")?;
    redirect_log();
    sys::become_subreaper().context("cannot become a subreaper")?;
    // Create puts the task's process in its cgroup in a few milliseconds;
    // the kernel's wait before that move is taken meanwhile.
    let _ = std::thread::Builder::new()
        .name("cgroup-wait".into())
        .spawn(crate::cgroup_wait::take_early);
    let ttrpc_address =
        std::env::var("TTRPC_ADDRESS").unwrap_or_else(|_| format!("{}.ttrpc", args.address));
    let events = Publisher::start(ttrpc_address, args.namespace.clone());
    let (shutdown_tx, shutdown_rx) = mpsc::channel();
    let service = Arc::new(Service::new(
        args.id.clone(),
        args.namespace.clone(),
        events.clone(),
        shutdown_tx,
    ));
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn({
            let service = service.clone();
            move || service.reap()
        })
        .context("cannot start the reaper")?;
    let mut server = Server::new()
        .add_listener(LISTENER_FD)
        .context("cannot serve on fd 3")?
        .register_service(create_task(service))
        .set_thread_count_max(MAX_THREADS);
    server.start().context("cannot start the ttrpc server")?;
    log::debug(&format!("serving task {}", args.id));
    let _ = shutdown_rx.recv();
    // The delete event must reach containerd before the shim goes.
    events.flush(Duration::from_secs(10));
    if let Some(socket) = &args.socket {
        let _ = std::fs::remove_file(socket);
    }
    // Let the Shutdown reply go out.
    std::thread::sleep(Duration::from_millis(20));
    std::process::exit(0)
}

/// containerd 1.6 reads the shim's log from the `log` FIFO in the bundle:
/// stderr goes there when it exists (non-blocking, a line that does not
/// fit is lost).
fn redirect_log() {
    let path = PathBuf::from("log");
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
    else {
        return;
    };
    let _ = sys::redirect_stderr(file.as_raw_fd());
}

use std::os::unix::fs::OpenOptionsExt as _;
