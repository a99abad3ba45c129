//! The `start` action: listen on the task's socket, start the daemon that
//! serves it (forked, not executed again: a session of its own, the
//! listener as fd 3), write the
//! address into the bundle (containerd reads it back after a restart) and
//! print it (containerd reads it now). A socket that already answers is
//! the daemon of an earlier `start`: its address is printed again.

#![forbid(unsafe_code)]

use std::os::fd::AsRawFd as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result};

use super::args::Args;
use super::{socket, sys};

/// The address file containerd reads in the bundle.
pub const ADDRESS_FILE: &str = "address";

/// Runs `start`; returns the address to print.
pub fn start(args: &Args) -> Result<String> {
    let bundle = std::env::current_dir().context("cannot read the bundle directory")?;
    let path = socket::path(&args.address, &args.namespace, &args.id);
    let address = socket::address(&path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    let listener = match UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(&path).is_ok() {
                write_address(&bundle, &address)?;
                return Ok(address);
            }
            // A dead shim's socket.
            let _ = std::fs::remove_file(&path);
            UnixListener::bind(&path)
                .with_context(|| format!("cannot listen on `{}`", path.display()))?
        }
        Err(e) => return Err(e).with_context(|| format!("cannot listen on `{}`", path.display())),
    };
    let daemon_args = Args::parse(args.for_daemon(&path))
        .context("cannot make the daemon's arguments")?;
    let forked = sys::fork_daemon(listener.as_raw_fd(), || {
        let code = match super::daemon::serve(&daemon_args) {
            Ok(()) => 0,
            Err(e) => {
                super::log::debug(&format!("the daemon failed: {e:#}"));
                1
            }
        };
        std::process::exit(code);
    });
    match forked {
        Ok(true) => {
            write_address(&bundle, &address)?;
            return Ok(address);
        }
        Ok(false) => {}
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e).context("cannot start the shim daemon");
        }
    }
    // More than one thread here (not expected): execute the daemon.
    let exe = std::env::current_exe().context("cannot find the shim's own binary")?;
    let mut command = Command::new(exe);
    command
        .args(args.for_daemon(&path))
        .current_dir(&bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let spawned = sys::spawn_daemon(command, listener.as_raw_fd());
    if let Err(e) = spawned {
        let _ = std::fs::remove_file(&path);
        return Err(e).context("cannot start the shim daemon");
    }
    write_address(&bundle, &address)?;
    Ok(address)
}

fn write_address(bundle: &Path, address: &str) -> Result<()> {
    std::fs::write(bundle.join(ADDRESS_FILE), address)
        .with_context(|| format!("cannot write `{}/{ADDRESS_FILE}`", bundle.display()))
}
