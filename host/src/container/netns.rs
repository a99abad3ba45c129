//! A private network namespace per container, with loopback only, and a
//! way in for the front door that exposes nothing outside the process.
//!
//! A socket belongs to the network namespace it was created in. A
//! dedicated OS thread moves into a fresh namespace (`unshare`), brings
//! `lo` up and stays there; the runtime joins the container to it through
//! `/proc/<pid>/task/<tid>/ns/net`; sockets for connections to the
//! container's port are created on that thread (a small pool, ahead of
//! time) and connected from tokio like any other. No veth, bridge or NAT,
//! no bind mount to clean up: the namespace goes when the thread and the
//! container's processes are gone. (containerd's CRI port-forward and
//! rootlesskit use the same trick.)

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};

use anyhow::{anyhow, bail, Context as _, Result};
use tokio::sync::oneshot;

/// What the namespace thread is asked for.
enum Request {
    /// Put this many fresh sockets in the pool.
    Refill(usize),
    /// One socket, now (the pool was empty).
    Socket(oneshot::Sender<io::Result<OwnedFd>>),
}

/// Unconnected sockets kept ready: taking one costs no thread hop.
const POOL: usize = 32;

/// The pool is topped up (one wake-up of the namespace's thread, a batch
/// of sockets) when a take leaves this many: not at every take, which
/// would cost a thread wake-up per connection.
const LOW_WATER: usize = POOL / 2;

/// A network namespace held by a thread of ours.
pub struct NetNs {
    path: PathBuf,
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    pool: Arc<Mutex<Vec<OwnedFd>>>,
}

impl NetNs {
    /// A new namespace with `lo` up.
    pub fn create(name: &str) -> Result<Self> {
        Self::held_by_thread(name, enter_new_namespace)
    }

    /// The namespace process `pid` is in (one a container made for itself,
    /// owned by its user namespace), with `lo` brought up. Host root keeps
    /// its capabilities over namespaces owned by a user namespace it made.
    pub fn adopt(name: &str, pid: u32) -> Result<Self> {
        Self::held_by_thread(name, move || enter_namespace_of(pid))
    }

    fn held_by_thread(
        name: &str,
        enter: impl FnOnce() -> Result<libc::pid_t> + Send + 'static,
    ) -> Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<libc::pid_t>>();
        let (tx, rx) = mpsc::channel::<Request>();
        let pool = Arc::new(Mutex::new(Vec::new()));
        let thread_pool = pool.clone();
        std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn(move || {
                let entered = enter();
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if ok {
                    serve(rx, &thread_pool);
                }
            })
            .context("cannot start the network namespace thread")?;
        let tid = ready_rx
            .recv()
            .map_err(|_| anyhow!("the network namespace thread died"))??;
        let _ = tx.send(Request::Refill(POOL));
        Ok(Self {
            path: PathBuf::from(format!("/proc/{}/task/{tid}/ns/net", std::process::id())),
            requests: Mutex::new(Some(tx)),
            pool,
        })
    }

    /// The namespace, as a path a runtime can join.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// A connection to `127.0.0.1:port` inside the namespace. The socket
    /// was created inside it (usually ahead of time); the connect itself is
    /// an ordinary non-blocking one on the caller's task.
    pub async fn connect(&self, port: u16) -> io::Result<tokio::net::TcpStream> {
        let (pooled, left) = {
            let mut pool = self
                .pool
                .lock()
                .map_err(|_| io::Error::other("pool lock poisoned"))?;
            (pool.pop(), pool.len())
        };
        let fd = match pooled {
            Some(fd) => {
                // Takes are serialised by the lock, so exactly one of them
                // sees the pool at the mark; an empty pool falls back to
                // one socket on demand below.
                if left == LOW_WATER {
                    self.send(Request::Refill(POOL - LOW_WATER));
                }
                fd
            }
            None => {
                let (reply, answer) = oneshot::channel();
                if !self.send(Request::Socket(reply)) {
                    return Err(io::Error::other("the network namespace is gone"));
                }
                answer
                    .await
                    .map_err(|_| io::Error::other("the network namespace thread died"))??
            }
        };
        let socket = tokio::net::TcpSocket::from_std_stream(TcpStream::from(fd));
        socket.set_nodelay(true)?;
        socket
            .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
    }

    fn send(&self, request: Request) -> bool {
        self.requests
            .lock()
            .ok()
            .and_then(|tx| tx.as_ref().map(|tx| tx.send(request).is_ok()))
            .unwrap_or(false)
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

fn serve(requests: mpsc::Receiver<Request>, pool: &Mutex<Vec<OwnedFd>>) {
    for request in requests {
        match request {
            Request::Refill(n) => {
                let fresh: Vec<OwnedFd> = (0..n).filter_map(|_| new_socket().ok()).collect();
                if let Ok(mut pool) = pool.lock() {
                    pool.extend(fresh);
                }
            }
            Request::Socket(reply) => {
                let _ = reply.send(new_socket());
            }
        }
    }
}

/// A non-blocking TCP socket, in this thread's network namespace.
fn new_socket() -> io::Result<OwnedFd> {
    // SAFETY: a plain socket(2) call; the fd is owned on success.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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

/// Whether process `pid` is in a network namespace other than wasmhost's
/// (a container's init is in the host's until it makes its own).
pub fn is_own(pid: u32) -> bool {
    let ours = std::fs::metadata("/proc/self/ns/net");
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/net"));
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => !same_file(&ours, &theirs),
        _ => false,
    }
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Moves the calling thread into the network namespace of process `pid`
/// and brings `lo` up; returns the thread id. Refuses the host's own (a
/// pid reused, or a container not yet in its namespace): proxying there
/// would reach the host's loopback services.
fn enter_namespace_of(pid: u32) -> Result<libc::pid_t> {
    use std::os::fd::AsRawFd as _;
    let path = format!("/proc/{pid}/ns/net");
    let ns = std::fs::File::open(&path).with_context(|| format!("cannot open `{path}`"))?;
    let host = std::fs::metadata("/proc/self/ns/net").context("cannot stat our namespace")?;
    if same_file(&ns.metadata()?, &host) {
        bail!("process {pid} is in the host's network namespace");
    }
    // SAFETY: setns on a namespace fd we hold; affects only this thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("cannot enter the network namespace of {pid}"));
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
