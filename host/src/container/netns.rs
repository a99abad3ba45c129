//! A private network namespace per container, with loopback only, and a
//! way in for the front door that exposes nothing outside the process.
//!
//! A socket belongs to the network namespace it was created in. A
//! dedicated OS thread moves into a fresh namespace (`unshare`), brings
//! `lo` up and stays there; the runtime joins the container to it through
//! `/proc/<pid>/task/<tid>/ns/net`; connections to the container's port
//! are created on that thread and handed to tokio. No veth, bridge or NAT,
//! no bind mount to clean up: the namespace goes when the thread and the
//! container's processes are gone. (containerd's CRI port-forward and
//! rootlesskit use the same trick.)

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use tokio::sync::oneshot;

type Reply = oneshot::Sender<io::Result<TcpStream>>;

/// A network namespace held by a thread of ours.
pub struct NetNs {
    path: PathBuf,
    requests: Mutex<Option<mpsc::Sender<(u16, Reply)>>>,
}

/// How long a connect inside the namespace may take; loopback answers at
/// once, so this only guards against a wedged kernel.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl NetNs {
    /// A new namespace with `lo` up.
    pub fn create(name: &str) -> Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<libc::pid_t>>();
        let (tx, rx) = mpsc::channel::<(u16, Reply)>();
        std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn(move || {
                let entered = enter_new_namespace();
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if ok {
                    serve(rx);
                }
            })
            .context("cannot start the network namespace thread")?;
        let tid = ready_rx
            .recv()
            .map_err(|_| anyhow!("the network namespace thread died"))??;
        Ok(Self {
            path: PathBuf::from(format!("/proc/{}/task/{tid}/ns/net", std::process::id())),
            requests: Mutex::new(Some(tx)),
        })
    }

    /// The namespace, as a path a runtime can join.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// A connection to `127.0.0.1:port` inside the namespace.
    pub async fn connect(&self, port: u16) -> io::Result<tokio::net::TcpStream> {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .requests
            .lock()
            .map_err(|_| io::Error::other("namespace lock poisoned"))?
            .as_ref()
            .map(|tx| tx.send((port, reply)).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(io::Error::other("the network namespace is gone"));
        }
        let stream = answer
            .await
            .map_err(|_| io::Error::other("the network namespace thread died"))??;
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        tokio::net::TcpStream::from_std(stream)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Closing the channel ends the thread, which releases the namespace.
        if let Ok(mut requests) = self.requests.lock() {
            requests.take();
        }
    }
}

fn serve(requests: mpsc::Receiver<(u16, Reply)>) {
    for (port, reply) in requests {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let _ = reply.send(TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT));
    }
}

/// Moves the calling thread into a new network namespace and brings `lo`
/// up; returns the thread id.
fn enter_new_namespace() -> Result<libc::pid_t> {
    // SAFETY: unshare affects only the calling thread's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error())
            .context("cannot create a network namespace (unshare)");
    }
    loopback_up().context("cannot bring `lo` up in the container's network namespace")?;
    // SAFETY: gettid has no preconditions.
    Ok(unsafe { libc::gettid() })
}

fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket/ioctl calls on a struct we own and initialise.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut result = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if result == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            result = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let error = io::Error::last_os_error();
        libc::close(fd);
        if result != 0 {
            return Err(error);
        }
    }
    Ok(())
}
