//! The HTTP front door: accepts connections (plain, or TLS with ALPN),
//! speaks HTTP/1.1 and HTTP/2 on the same port, applies the limits, hands
//! each request to the backend, and drains on shutdown.
//!
//! Three layers, as in wasmtime's `serve`: the accept loop ([`serve`]),
//! one task per connection ([`drive`]), and per-request code
//! ([`request::handle`]). Around them: the table of open connections
//! ([`connections`]: the connection limit, idle eviction, the slowloris
//! cut), the open-files limit ([`open_files`]), TLS ([`tls`]), the access
//! log ([`access_log`]) and the front door's counters ([`stats`]).
//!
//! Requests whose guest overruns its slice move to the overrun pool
//! ([`crate::overrun`]), so the threads that accept connections and read
//! requests are never held by guest code.

pub mod access_log;
pub mod connections;
pub mod open_files;
mod request;
pub mod stats;
pub mod tls;

use std::fs::File;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};

use self::access_log::AccessLog;
use self::connections::{Admission, Close, ConnHandle, Connections, EVICT_GRACE};
use self::stats::Stats;
use self::tls::Tls;
use crate::backend::Backend;
use crate::limits;
use crate::overrun::Overrun;
use crate::shutdown::Shutdown;

/// Front-door limits; every field has a default in [`crate::limits`].
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock budget per request, response body included.
    pub request_timeout: Duration,
    /// Largest request head in bytes (431 above).
    pub max_header_bytes: usize,
    /// Largest request body in bytes (413 above).
    pub max_body_bytes: u64,
    /// How long a shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Connections open at once; past it idle ones are closed, then new
    /// ones refused.
    pub max_connections: usize,
    /// Time from accept to a complete first request head (TLS handshake
    /// included).
    pub header_timeout: Duration,
    /// How long a connection may sit with no request in flight.
    pub keep_alive_timeout: Duration,
    /// HTTP/2 streams one connection may have open at once.
    pub h2_max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: limits::REQUEST_TIMEOUT,
            max_header_bytes: limits::MAX_HEADER_BYTES,
            max_body_bytes: limits::MAX_BODY_BYTES,
            drain_timeout: limits::DRAIN_TIMEOUT,
            max_connections: open_files::default_max_connections(
                open_files::current_soft_limit(),
                limits::MAX_CONCURRENCY,
            ),
            header_timeout: limits::HEADER_TIMEOUT,
            keep_alive_timeout: limits::KEEP_ALIVE_TIMEOUT,
            h2_max_concurrent_streams: limits::H2_MAX_CONCURRENT_STREAMS,
        }
    }
}

/// Everything the front door runs with besides the backend.
pub struct FrontDoor {
    /// The limits.
    pub limits: Limits,
    /// TLS, if the listener speaks it.
    pub tls: Option<Arc<Tls>>,
    /// Where access lines go, if anywhere.
    pub access_log: Option<AccessLog>,
    /// Counters, shared with the admin listener.
    pub stats: Arc<Stats>,
    /// The component a lone backend serves (`serve app.wasm`), for logs
    /// and spans; an app's dispatcher names each response's itself.
    pub component: Option<Arc<str>>,
}

impl FrontDoor {
    /// Plain HTTP with `limits`, no access log.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            tls: None,
            access_log: None,
            stats: Arc::default(),
            component: None,
        }
    }
}

/// How the server stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Every in-flight request finished.
    Drained,
    /// The drain timeout passed with connections still open.
    DrainTimedOut,
    /// A second shutdown request arrived during the drain.
    Forced,
}

/// What every connection and request of one front door shares.
struct Shared {
    backend: Arc<dyn Backend>,
    builder: auto::Builder<TokioExecutor>,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    access_log: Option<AccessLog>,
    stats: Arc<Stats>,
    component: Option<Arc<str>>,
}

/// Serves `backend` on `listener` until `shutdown` is requested, then
/// stops accepting and drains.
pub async fn serve(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
    front: FrontDoor,
    mut shutdown: Shutdown,
) -> Stopped {
    let limits = front.limits;
    let connections = Connections::new(limits.max_connections, front.stats.clone());
    let shared = Arc::new(Shared {
        backend,
        builder: connection_builder(&limits),
        limits,
        tls: front.tls,
        access_log: front.access_log,
        stats: front.stats,
        component: front.component,
    });
    let sweeper = tokio::spawn(connections.clone().sweep_forever(
        shared.limits.header_timeout,
        shared.limits.keep_alive_timeout,
    ));
    let mut spare = SpareFd::open();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(&shared, &connections, stream, peer),
                Err(e) if out_of_files(&e) => shed(&listener, &mut spare, &shared),
                Err(e) => {
                    // Resource shortages other than descriptors: back off
                    // instead of spinning, and keep serving what is open.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.requested(1) => break,
        }
    }
    drop(listener);
    shared.stats.draining.store(true, Ordering::Relaxed);
    let drain = shared.limits.drain_timeout;
    tracing::info!(
        "shutting down: no longer accepting; draining in-flight requests for up to {drain:?}"
    );
    connections.close_all(Close::Drain);
    let stopped = tokio::select! {
        _ = connections.emptied() => {
            tracing::info!("all connections drained");
            Stopped::Drained
        }
        _ = tokio::time::sleep(drain) => {
            tracing::warn!("drain timeout of {drain:?} passed; closing the remaining connections");
            Stopped::DrainTimedOut
        }
        _ = shutdown.requested(2) => {
            tracing::warn!("second shutdown signal: stopping now");
            Stopped::Forced
        }
    };
    sweeper.abort();
    stopped
}

fn connection_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // Closes a keep-alive connection whose next head has not arrived
        // in time (hyper's timer runs from the end of the previous
        // response); the first head is the connection table's business.
        .header_read_timeout(limits.keep_alive_timeout)
        // hyper answers 431 itself once the head outgrows this buffer.
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits::H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(limits::H2_KEEP_ALIVE_INTERVAL)
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(limits::H2_MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(limits::H2_MAX_LOCAL_ERROR_RESETS)
        // Also bounds a CONTINUATION flood: h2 stops buffering and closes
        // the connection once a header block outgrows it.
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Takes an accepted connection in, or refuses it at the limit.
fn admit(
    shared: &Arc<Shared>,
    connections: &Arc<Connections>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    match connections.admit() {
        Admission::Refused => {
            tracing::debug!("refused {peer}: at the connection limit, every connection busy");
            refuse(stream, shared.tls.is_some());
        }
        Admission::Admitted(handle) => {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY for {peer}: {e}");
            }
            // Two task types, so a plain connection's task is not sized
            // for a TLS session it never has (measured: ~10 KB more per
            // idle connection when one future covered both).
            let shared = shared.clone();
            match shared.tls.clone() {
                None => {
                    tokio::spawn(async move {
                        drive(&shared, handle, TokioIo::new(stream), peer).await
                    });
                }
                Some(tls) => {
                    tokio::spawn(serve_tls(shared, tls, handle, stream, peer));
                }
            }
        }
    }
}

/// The answer to a connection refused at the limit: a complete HTTP/1.1
/// 503 in one write, then the connection closes. Never waits: if the
/// socket cannot take it at once, the client just sees the close.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 37\r\nretry-after: 1\r\nconnection: close\r\n\r\n\
the server is at its connection limit\n";

fn refuse(stream: TcpStream, tls: bool) {
    if !tls {
        let _ = stream.try_write(REFUSED);
    }
}

fn out_of_files(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// A descriptor held in reserve, so that when every other one is in use
/// the connection waiting in the backlog can still be accepted and told
/// no, instead of waiting there until it times out.
struct SpareFd(Option<File>);

impl SpareFd {
    fn open() -> Self {
        Self(File::open("/dev/null").ok())
    }
}

/// Out of descriptors: spends the spare one to accept and refuse the
/// waiting connection, then takes it back.
fn shed(listener: &TcpListener, spare: &mut SpareFd, shared: &Shared) {
    tracing::warn!("out of file descriptors: refusing a connection (raise the open-files limit)");
    spare.0 = None;
    if let Some(Ok((stream, _))) = listener.accept().now_or_never() {
        shared.stats.refused.fetch_add(1, Ordering::Relaxed);
        refuse(stream, shared.tls.is_some());
    }
    *spare = SpareFd::open();
}

/// One TLS connection: the handshake, then HTTP.
async fn serve_tls(
    shared: Arc<Shared>,
    tls: Arc<Tls>,
    mut handle: ConnHandle,
    stream: TcpStream,
    peer: SocketAddr,
) {
    // A handshake that stalls is cut by the header timeout, like a head
    // that never completes.
    let stream = tokio::select! {
        accepted = tls.acceptor().accept(stream) => match accepted {
            Ok(stream) => stream,
            Err(e) => {
                shared.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("TLS handshake with {peer} failed: {e}");
                return;
            }
        },
        _ = handle.close_requested() => return,
    };
    drive(&shared, handle, TokioIo::new(stream), peer).await
}

/// Serves HTTP on one connection until it ends or is asked to close.
async fn drive<I>(shared: &Arc<Shared>, mut handle: ConnHandle, io: I, peer: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let state = handle.state();
    let service = hyper::service::service_fn({
        let shared = shared.clone();
        let state = state.clone();
        move |req| Overrun::new(request::handle(shared.clone(), state.clone(), peer, req))
    });
    let conn = shared.builder.serve_connection(io, service);
    tokio::pin!(conn);
    let reason = tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("connection from {peer} ended with an error: {e}");
            }
            return;
        }
        reason = handle.close_requested() => reason,
    };
    if reason == Close::Abort {
        tracing::debug!("closed {peer}: no complete request head in time");
        return;
    }
    // Finish what is in flight; a connection with nothing in flight is cut
    // if it has not closed within the grace (a peer mid-way through a head
    // that will never complete).
    conn.as_mut().graceful_shutdown();
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep(EVICT_GRACE) => {
                if state.idle() {
                    return;
                }
            }
        }
    }
}
