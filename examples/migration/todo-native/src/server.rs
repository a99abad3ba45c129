//! HTTP/1.1 (keep-alive) around [`todo_core::handle`]: the accept loop
//! ([`run`]), one task per connection ([`serve_connection`]) and one call per
//! request ([`respond`]).

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use todo_core::{Reply, Storage, MAX_BODY_BYTES};
use tokio::net::{TcpListener, TcpStream};

/// How long a stop waits for requests in flight. Docker sends SIGKILL 10 s
/// after SIGTERM by default; 8 s leaves time to exit on our own terms.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

/// Pause after a failed `accept`. Its failures (out of file descriptors,
/// mostly) last a while, and retrying at once would spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Header that tells a client which form answered; the Wasm form says `wasm`.
pub const SERVED_BY: &str = "x-served-by";

/// One lock around the whole store. `POST` reads and then advances the id
/// counter, and the lock is what keeps two of them from taking the same id.
/// A std `Mutex` rather than tokio's because it is only held inside
/// `spawn_blocking`, never across an `.await`.
type Shared<S> = Arc<Mutex<S>>;

/// Serves `listener` until `shutdown` completes, then stops accepting,
/// lets requests in flight finish (for up to [`DRAIN_TIMEOUT`]) and returns.
pub async fn run<S>(listener: TcpListener, storage: S, shutdown: impl Future<Output = ()>)
where
    S: Storage + Send + 'static,
{
    let storage = Arc::new(Mutex::new(storage));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            // Checked first, so that a stream of connections cannot delay a stop.
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => serve_connection(stream, Arc::clone(&storage), &graceful),
                Err(error) => {
                    eprintln!("todo-native: accept failed: {error}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("todo-native: requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
}

/// Serves one connection on its own task. A failed connection is logged and
/// affects no other.
fn serve_connection<S>(stream: TcpStream, storage: Shared<S>, graceful: &GracefulShutdown)
where
    S: Storage + Send + 'static,
{
    let service = service_fn(move |request| respond(request, Arc::clone(&storage)));
    // The timer enables hyper's default 30 s limit on reading request
    // headers, so a client that never finishes them cannot hold a task.
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("todo-native: connection failed: {error}");
        }
    });
}

/// Answers one request; every outcome, failures included, is a response.
async fn respond<S>(
    request: Request<Incoming>,
    storage: Shared<S>,
) -> Result<Response<Full<Bytes>>, Infallible>
where
    S: Storage + Send + 'static,
{
    let (parts, body) = request.into_parts();
    let reply = match read_capped(body, MAX_BODY_BYTES + 1).await {
        Ok(body) => handle(parts.method, parts.uri.path().to_owned(), body, storage).await,
        Err(error) => {
            eprintln!("todo-native: reading a request body failed: {error}");
            Reply::unreadable_body()
        }
    };
    let mut response = reply.into_response(|bytes| Full::new(Bytes::from(bytes)));
    response
        .headers_mut()
        .insert(SERVED_BY, HeaderValue::from_static("container"));
    Ok(response)
}

/// Reads at most `cap` bytes of the body and leaves the rest unread:
/// [`todo_core::handle`] only needs to know that there is more than
/// [`MAX_BODY_BYTES`], and reading on would let a client make us buffer any
/// amount.
async fn read_capped(mut body: Incoming, cap: usize) -> Result<Vec<u8>, hyper::Error> {
    let mut bytes = Vec::new();
    while bytes.len() < cap {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            let room = cap - bytes.len();
            bytes.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(bytes)
}

/// Runs [`todo_core::handle`] under the storage lock on a blocking thread:
/// file writes and `fsync` would otherwise stall every connection sharing
/// the async worker.
async fn handle<S>(method: Method, path: String, body: Vec<u8>, storage: Shared<S>) -> Reply
where
    S: Storage + Send + 'static,
{
    let task = tokio::task::spawn_blocking(move || {
        // A panic while the lock was held poisons it, but the store keeps no
        // state a panic could leave half-updated (DirStorage's writes are
        // atomic), so carry on.
        let mut storage = storage.lock().unwrap_or_else(PoisonError::into_inner);
        todo_core::handle(method.as_str(), &path, &body, &mut *storage)
    });
    task.await.unwrap_or_else(|error| {
        eprintln!("todo-native: handler failed: {error}");
        Reply::error(500, "internal error; the server log says why")
    })
}
