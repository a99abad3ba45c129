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
//!
//! The namespace calls go through [`Syscall`]: with the fake, the thread
//! stays in the host's namespace, so unit tests reach a "container" port
//! on the host's loopback.

#![forbid(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};

use anyhow::{anyhow, bail, Context as _, Result};
use tokio::sync::oneshot;

use super::sys::Syscall;

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
    /// The way out, when the container has one; closed with the namespace.
    outbound: Option<super::outbound::Outbound>,
}

impl NetNs {
    /// A new namespace with `lo` up.
    pub fn create(name: &str, sys: Arc<dyn Syscall>) -> Result<Self> {
        Self::held_by_thread(name, sys, enter_new_namespace)
    }

    /// The namespace process `pid` is in (one a container made for itself,
    /// owned by its user namespace), with `lo` brought up. Host root keeps
    /// its capabilities over namespaces owned by a user namespace it made.
    pub fn adopt(name: &str, pid: u32, sys: Arc<dyn Syscall>) -> Result<Self> {
        Self::held_by_thread(name, sys, move |sys| enter_namespace_of(sys, pid))
    }

    fn held_by_thread(
        name: &str,
        sys: Arc<dyn Syscall>,
        enter: impl FnOnce(&dyn Syscall) -> Result<i32> + Send + 'static,
    ) -> Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<i32>>();
        let (tx, rx) = mpsc::channel::<Request>();
        let pool = Arc::new(Mutex::new(Vec::new()));
        let thread_pool = pool.clone();
        std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn(move || {
                let entered = enter(&*sys);
                let ok = entered.is_ok();
                // The creator waits for this answer; if it is gone, so is
                // the namespace's use.
                if ready_tx.send(entered).is_err() || !ok {
                    return;
                }
                serve(rx, &thread_pool, &*sys);
            })
            .context("cannot start the network namespace thread")?;
        let tid = ready_rx
            .recv()
            .map_err(|_| anyhow!("the network namespace thread died"))??;
        // The thread serves until the sender goes, which is below.
        tx.send(Request::Refill(POOL))
            .map_err(|_| anyhow!("the network namespace thread died"))?;
        Ok(Self {
            path: PathBuf::from(format!("/proc/{}/task/{tid}/ns/net", std::process::id())),
            requests: Mutex::new(Some(tx)),
            pool,
            outbound: None,
        })
    }

    /// Gives the namespace a way out, allowed where `settings` say
    /// (closed when it is dropped); `userns` owns the namespace when the
    /// container has a user namespace; `image_resolv_conf` is the image's
    /// `/etc/resolv.conf`, if it has one.
    pub fn open_outbound(
        &mut self,
        id: &str,
        settings: &super::settings::Settings,
        userns: Option<&std::path::Path>,
        image_resolv_conf: Option<&str>,
    ) -> Result<()> {
        self.outbound = Some(super::outbound::Outbound::open(&super::outbound::Opening {
            netns: &self.path,
            userns,
            allowed: &settings.allowed_outbound_hosts,
            resolve_interval: settings.outbound_resolve_interval,
            id,
            image_resolv_conf,
        })?);
        Ok(())
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

fn serve(requests: mpsc::Receiver<Request>, pool: &Mutex<Vec<OwnedFd>>, sys: &dyn Syscall) {
    for request in requests {
        match request {
            Request::Refill(n) => {
                let fresh: Vec<OwnedFd> = (0..n).filter_map(|_| sys.tcp_socket().ok()).collect();
                if let Ok(mut pool) = pool.lock() {
                    pool.extend(fresh);
                }
            }
            Request::Socket(reply) => {
                // Nobody waiting any more (the request went): nothing to do.
                let _ = reply.send(sys.tcp_socket());
            }
        }
    }
}

/// Moves the calling thread into a new network namespace and brings `lo`
/// up; returns the thread id.
fn enter_new_namespace(sys: &dyn Syscall) -> Result<i32> {
    sys.unshare_network()
        .context("cannot create a network namespace (unshare)")?;
    sys.loopback_up()
        .context("cannot bring `lo` up in the container's network namespace")?;
    Ok(sys.thread_id())
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
fn enter_namespace_of(sys: &dyn Syscall, pid: u32) -> Result<i32> {
    let path = format!("/proc/{pid}/ns/net");
    let ns = std::fs::File::open(&path).with_context(|| format!("cannot open `{path}`"))?;
    let host = std::fs::metadata("/proc/self/ns/net").context("cannot stat our namespace")?;
    if same_file(&ns.metadata()?, &host) {
        bail!("process {pid} is in the host's network namespace");
    }
    sys.join_network(ns.as_fd())
        .with_context(|| format!("cannot enter the network namespace of {pid}"))?;
    sys.loopback_up()
        .context("cannot bring `lo` up in the container's network namespace")?;
    Ok(sys.thread_id())
}

#[cfg(test)]
mod tests {
    use super::super::sys::fake::{Call, Recording};
    use super::*;

    /// A listener on the host's loopback: with the fake, the namespace is
    /// the host's.
    fn listener() -> (std::net::TcpListener, u16) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    #[tokio::test]
    async fn connections_are_made_from_sockets_of_the_namespace_thread() {
        let sys = Arc::new(Recording::default());
        let netns = NetNs::create("test", sys.clone()).unwrap();
        assert_eq!(sys.calls(), [Call::UnshareNetwork, Call::LoopbackUp]);
        assert!(netns
            .path()
            .to_string_lossy()
            .starts_with(&format!("/proc/{}/task/", std::process::id())));
        let (listener, port) = listener();
        // More than the pool holds: the refills and the on-demand path
        // both serve.
        let mut streams = Vec::new();
        for _ in 0..POOL * 2 {
            streams.push(netns.connect(port).await.unwrap());
            listener.accept().unwrap();
        }
        assert!(streams.iter().all(|s| s.nodelay().unwrap()));
    }

    #[tokio::test]
    async fn a_namespace_that_cannot_be_made_is_an_error_not_a_thread_left_waiting() {
        let sys = Arc::new(Recording::default());
        sys.fail("unshare_network");
        let err = NetNs::create("test", sys).err().unwrap();
        assert!(format!("{err:#}").contains("unshare"), "{err:#}");
    }

    #[test]
    fn the_hosts_own_namespace_is_never_adopted() {
        let sys = Arc::new(Recording::default());
        let err = NetNs::adopt("test", std::process::id(), sys.clone())
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("in the host's network namespace"),
            "{err:#}"
        );
        assert!(sys.calls().is_empty());
        assert!(!is_own(std::process::id()));
    }
}
