//! End to end over TCP: one test per promise the native form makes beyond
//! `todo-core`'s own (which its unit tests cover).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use todo_core::MemoryStorage;
use todo_native::server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server on a free port, stopped by `stop`.
struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    };
    let task = tokio::spawn(server::run(listener, MemoryStorage::new(), shutdown));
    Server { addr, stop, task }
}

/// The raw response to one request on its own connection.
async fn send(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

#[tokio::test]
async fn replies_say_they_were_served_by_the_container() {
    let server = start().await;
    let response = send(server.addr, "GET", "/healthz", "").await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("\r\nx-served-by: container\r\n"),
        "{response}"
    );
    assert!(
        response.contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"),
        "{response}"
    );
    assert_eq!(body(&response), "ok");
}

#[tokio::test]
async fn a_405_carries_the_allow_header() {
    let server = start().await;
    let response = send(server.addr, "DELETE", "/todos", "").await;
    assert!(response.starts_with("HTTP/1.1 405 "), "{response}");
    assert!(response.contains("\r\nallow: GET, POST\r\n"), "{response}");
}

#[tokio::test]
async fn concurrent_posts_never_share_an_id() {
    let server = start().await;
    let addr = server.addr;
    let posts = (0..32).map(|n| async move {
        send(addr, "POST", "/todos", &format!(r#"{{"title":"t{n}"}}"#)).await
    });
    let responses = join_all(posts).await;
    let ids: BTreeSet<String> = responses
        .iter()
        .map(|response| {
            assert!(response.starts_with("HTTP/1.1 201 "), "{response}");
            let id = body(response).split(',').next().unwrap_or_default();
            id.to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 32, "{ids:?}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let server = start().await;
    let big = "x".repeat(100 * 1024);
    let response = send(server.addr, "POST", "/todos", &big).await;
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
}

#[tokio::test]
async fn shutdown_lets_run_return() {
    let server = start().await;
    send(server.addr, "GET", "/healthz", "").await;
    let _ = server.stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("run returns promptly once told to stop")
        .expect("run does not panic");
}

#[tokio::test]
async fn shutdown_finishes_a_request_already_in_flight() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // Headers sent, body not yet: the request is in flight.
    let body = r#"{"title":"late"}"#;
    let head = format!(
        "POST /todos HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = server.stop.send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(body.as_bytes()).await.expect("write body");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 201 "), "{response}");
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("run returns once the request is done")
        .expect("run does not panic");
}

/// Runs the futures concurrently, each on its own task, so they can also run
/// in parallel (no `futures` dependency for one helper).
async fn join_all<F: std::future::Future<Output = String> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<String> {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("request task"));
    }
    results
}
