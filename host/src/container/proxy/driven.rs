//! A fresh HTTP/1 connection to a container, driven by the task of the
//! request that uses it.
//!
//! Containers such as busybox httpd close every connection, so most
//! upstream connections carry one exchange. Giving each its own task cost
//! a spawn and a wake-up across worker threads at every read and write;
//! here the request's task drives the connection while it waits for the
//! response head and while it reads the body.
//!
//! One more detail matters as much: driving the connection wakes the very
//! task that is polling it (the connection hands the response head and
//! the body's bytes over through channels whose receivers that task
//! polls). tokio treats a task woken during its own poll as a yield and
//! wakes an idle worker thread to share the load — a futex wake-up and a
//! thread hop per request for nothing. [`Driven`] catches those wakes and
//! polls again in place instead.

#![forbid(unsafe_code)]

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::backend::RequestBody;

/// The client half of a connection to a container.
pub type Connection =
    hyper::client::conn::http1::Connection<TokioIo<tokio::net::TcpStream>, RequestBody>;

/// Turns in a row a poll may take for wakes it caused itself before it
/// hands the task back to the scheduler (a connection that wakes itself
/// on every poll must not spin).
const MAX_TURNS: usize = 8;

/// A connection this task drives, until it finishes.
pub struct Driven {
    connection: Option<Pin<Box<Connection>>>,
    turn: Arc<Turn>,
}

impl Driven {
    pub fn new(connection: Connection) -> Self {
        Self {
            connection: Some(Box::pin(connection)),
            turn: Arc::new(Turn::default()),
        }
    }

    /// The connection as a task of its own (for one the container keeps
    /// open, which outlives this request).
    pub fn spawn(self) {
        if let Some(connection) = self.connection {
            tokio::spawn(async move {
                // A keep-alive connection ends when either side closes it;
                // how is nobody's business once no request uses it.
                if let Err(e) = connection.await {
                    tracing::debug!("a kept connection to a container ended: {e}");
                }
            });
        }
    }

    /// Drives the connection, then polls `step`, until `step` is ready or
    /// nothing woke them during the turn.
    fn poll_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut step: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.turn.task.register(cx.waker());
        let waker = Waker::from(self.turn.clone());
        let mut inner = Context::from_waker(&waker);
        for _ in 0..MAX_TURNS {
            self.turn.woken.store(false, Ordering::SeqCst);
            self.turn.polling.store(true, Ordering::SeqCst);
            if let Some(connection) = self.connection.as_mut() {
                if connection.as_mut().poll(&mut inner).is_ready() {
                    self.connection = None;
                }
            }
            let result = step(&mut inner);
            self.turn.polling.store(false, Ordering::SeqCst);
            if result.is_ready() || !self.turn.woken.load(Ordering::SeqCst) {
                return result;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The waker handed to the connection and to what it feeds: wakes the
/// task, unless the task is polling them right now (then the poll loop
/// takes another turn).
#[derive(Default)]
struct Turn {
    polling: AtomicBool,
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Turn {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

/// Sends `req` and waits for the response head, driving the connection
/// if this task owns it.
pub async fn exchange(
    sender: &mut SendRequest<RequestBody>,
    driven: Option<&mut Driven>,
    req: http::Request<RequestBody>,
) -> hyper::Result<http::Response<Incoming>> {
    let send = sender.send_request(req);
    tokio::pin!(send);
    match driven {
        Some(driven) => {
            std::future::poll_fn(|cx| driven.poll_with(cx, |cx| send.as_mut().poll(cx))).await
        }
        None => send.await,
    }
}

/// A response body that drives its own connection as it is read; the
/// connection goes with it.
pub struct DrivenBody {
    pub body: Incoming,
    pub driven: Driven,
}

impl Body for DrivenBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let body = &mut this.body;
        this.driven
            .poll_with(cx, |cx| Pin::new(&mut *body).poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
