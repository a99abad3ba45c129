//! The body of a guest's outgoing request, kept open until the guest
//! finishes it.
//!
//! hyper's HTTP/1 client drops a request body as soon as it has sent as
//! many bytes as the head announced: at once for a `GET` (or any request
//! with `content-length: 0`), after the last byte otherwise. wasi:http's
//! body is a channel from the guest's `output-stream`, so that drop
//! closes the guest's end: its next `check-write` or `flush` fails with
//! `closed`, although nothing went wrong. Whether the guest gets there
//! before hyper does is a race between the guest and the connection task.
//! The Spin Python SDK loses it now and then: it sends the request, then
//! (same event loop, next step) checks, flushes and finishes the empty
//! body of its `GET`, and raises `StreamError_Closed()` when the
//! connection task was quicker (`spin_sdk.http.send_async`). Slower guest
//! code loses it more often: 3 of 40 requests on Winch's baseline code.
//! Go's wasi-http client met the same (ydnar/wasi-http-go#21, "closed"
//! with `Content-Length` set) and ignores the error in the guest.
//!
//! [`KeptBody`] fixes it on the host side: a body hyper drops before its
//! end is handed to a task that keeps reading it, so the guest's stream
//! stays open until the guest finishes or drops it. The task stops at the
//! first byte it would have to throw away: data hyper did not want (it
//! had stopped before the announced length, so the exchange failed) gets
//! `closed`, as before.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

/// A request body that outlives hyper's interest in it; see the module doc.
pub struct KeptBody<B: Body<Data = Bytes> + Send + Unpin + 'static> {
    /// `None` once moved to the keeping task (in `drop`).
    inner: Option<B>,
    /// The inner body said it ended (or failed): nothing to keep.
    ended: bool,
}

impl<B: Body<Data = Bytes> + Send + Unpin + 'static> KeptBody<B> {
    /// Wraps `body`.
    pub fn new(body: B) -> Self {
        Self {
            inner: Some(body),
            ended: false,
        }
    }
}

impl<B: Body<Data = Bytes> + Send + Unpin + 'static> Body for KeptBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl<B: Body<Data = Bytes> + Send + Unpin + 'static> Drop for KeptBody<B> {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if self.ended || body.is_end_stream() {
            return;
        }
        // hyper drops bodies on its connection task, inside the runtime;
        // outside one (nothing to keep it on) the body closes as before.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(keep_until_finished(body));
        }
    }
}

/// Reads what the guest still sends after hyper let go: empty writes,
/// flushes and the finish (trailers or the end). Ends at the body's end,
/// its error, or the first data byte, which nobody would send.
async fn keep_until_finished<B: Body<Data = Bytes> + Unpin>(mut body: B) {
    while let Some(Ok(frame)) = body.frame().await {
        if frame.data_ref().is_some_and(|data| !data.is_empty()) {
            tracing::debug!("outgoing request body: data after the announced length, closed");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Empty;
    use hyper::server::conn::http1 as server;
    use hyper_util::rt::TokioIo;
    use tokio::sync::mpsc;

    /// A body fed from a channel, as wasi:http's outgoing body is: the
    /// sender is the guest's stream, closed when the body is dropped.
    struct GuestBody(mpsc::Receiver<Frame<Bytes>>);

    impl Body for GuestBody {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|frame| frame.map(Ok))
        }
    }

    fn guest_body() -> (mpsc::Sender<Frame<Bytes>>, GuestBody) {
        let (tx, rx) = mpsc::channel(2);
        (tx, GuestBody(rx))
    }

    /// Sends a `content-length: 0` POST with `body` to a real HTTP/1 server
    /// on loopback and waits for the whole exchange to end: by then hyper
    /// is done with the request body.
    async fn exchange<B>(body: B)
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Empty::<Bytes>::new()))
            });
            let _ = server::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let request = hyper::Request::post("/")
            .header("content-length", "0")
            .body(body)
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        drop(sender);
        conn.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn hyper_closes_a_plain_body_it_needed_nothing_of() {
        let (guest, body) = guest_body();
        exchange(body).await;
        assert!(
            guest.is_closed(),
            "the premise of KeptBody: hyper dropped the body"
        );
    }

    #[tokio::test]
    async fn a_kept_body_stays_open_until_the_guest_finishes_it() {
        let (guest, body) = guest_body();
        exchange(KeptBody::new(body)).await;
        assert!(!guest.is_closed(), "the guest's stream closed under it");
        // An empty write (the Python SDK's flush of an empty body) is taken.
        guest.send(Frame::data(Bytes::new())).await.unwrap();
        drop(guest);
    }

    #[tokio::test]
    async fn a_kept_body_closes_at_data_nobody_would_send() {
        let (guest, body) = guest_body();
        exchange(KeptBody::new(body)).await;
        guest
            .send(Frame::data(Bytes::from_static(b"late")))
            .await
            .unwrap();
        // The keeping task stops at that frame and drops the receiver.
        tokio::time::timeout(std::time::Duration::from_secs(10), guest.closed())
            .await
            .expect("the keeping task did not close the body at unwanted data");
    }
}
