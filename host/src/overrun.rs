//! Requests whose guest overruns its first time slice move off the front
//! door's threads.
//!
//! A guest runs on the thread of the connection that brought its request:
//! most answer within microseconds, and staying put costs no task spawn and
//! no cross-thread wake-up. A guest that has computed for a whole epoch
//! tick ([`crate::limits::EPOCH_TICK`]) within one poll is another matter
//! (it is caught at the first or second tick, ≤ 20 ms): it
//! yields at every tick, and a tokio worker that keeps finding a yielded
//! guest ready to run polls its I/O driver only every 61 polls — with as
//! many looping guests as cores, a new connection waited ~600 ms to be
//! accepted (61 ticks of 10 ms). So the epoch callback marks the guest as
//! overrunning ([`mark`]), and the [`Overrun`] wrapper around the request's
//! future hands it, at that yield, to the overrun pool: threads of their
//! own, at a lower scheduling priority ([`OVERRUN_NICE`]), which never
//! accept connections or read requests. Healthy requests keep the front
//! door's threads to themselves; a looping guest costs the others only its
//! share of CPU, and still ends at its deadline.
//!
//! A guest that waited (a timer, an outbound call, a database) is not
//! computing: the epoch moved on while it waited, so its first epoch check
//! after the wait is past its deadline, but [`slice_used`] tells the
//! callback that this poll began less than a tick ago, and the guest goes
//! on where it is. (Without that check every request that waited a tick —
//! all of an I/O-bound app's — moved to the pool and its lower priority:
//! 37 % of the process's CPU ran on the pool's threads with the sleep
//! component at 5,000 requests/s, bench/RESULTS.md.)
//!
//! The mark and the poll's start are thread-locals: the epoch callback runs
//! on the thread polling the guest, inside [`Overrun::poll`], so no state
//! has to be threaded through the stores of every kind of guest.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

/// Nice value of the overrun pool's threads (0 is the default, 19 the
/// lowest priority). At 10, the kernel weighs a front-door thread ~10× a
/// pool thread (CFS weights 1024 vs 110), so a request arriving while the
/// pool loops gets a core within a scheduler tick, and a lone looping guest
/// still gets a whole core when nothing else wants it.
pub const OVERRUN_NICE: i32 = 10;

/// How often a pool worker polls its I/O driver and timers, in tasks run.
/// Guests on the pool yield at every epoch tick: at tokio's default (61)
/// a guest waiting for I/O or its deadline on a pool of looping guests
/// would wait 61 ticks. The pool runs few tasks, so polling the driver
/// after every one costs nothing that matters.
const POOL_EVENT_INTERVAL: u32 = 1;

thread_local! {
    /// Set by [`mark`] while a guest runs inside [`Overrun::poll`].
    static OVERRAN: Cell<bool> = const { Cell::new(false) };
    /// When the [`Overrun::poll`] running on this thread began, while it
    /// polls its future here.
    static POLL_STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Records that the guest running on this thread has used up its slice.
/// Called from the epoch-deadline callback of every guest store.
pub fn mark() {
    OVERRAN.with(|flag| flag.set(true));
}

/// Whether the guest running on this thread has used its slice: the poll
/// running it began at least one epoch tick ago. Outside an
/// [`Overrun::poll`] (on the pool, or a guest run without the wrapper)
/// every tick counts as used.
pub fn slice_used() -> bool {
    POLL_STARTED
        .with(Cell::get)
        .is_none_or(|started| started.elapsed() >= crate::limits::EPOCH_TICK)
}

/// The overrun pool, started on first use: one worker per core.
fn pool() -> &'static Handle {
    static POOL: OnceLock<Runtime> = OnceLock::new();
    POOL.get_or_init(|| {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("wasmhost-overrun")
            .event_interval(POOL_EVENT_INTERVAL)
            .on_thread_start(lower_priority)
            .enable_all()
            .build()
            // Without threads there is nothing sensible left to do: the
            // same failure would have stopped the main runtime at start.
            .expect("cannot start the overrun pool's threads")
    })
    .handle()
}

/// Lowers the calling thread's priority to [`OVERRUN_NICE`].
fn lower_priority() {
    // SAFETY: setpriority reads its three integer arguments and changes
    // only the scheduling priority of the thread `gettid` names (Linux
    // applies PRIO_PROCESS to a single thread). No memory is shared.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, OVERRUN_NICE)
    };
    if result != 0 {
        tracing::debug!(
            "cannot lower the overrun pool's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// A request's future that moves to the overrun pool when a guest it runs
/// overruns its slice. Dropping it (the client went away) cancels the work
/// wherever it runs, so the instance's slot is freed at once.
pub struct Overrun<F: Future> {
    state: State<F>,
}

enum State<F: Future> {
    Here(Pin<Box<F>>),
    Away(JoinHandle<F::Output>),
    Finished,
}

impl<F> Overrun<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// Wraps `future`, which runs here until it overruns.
    pub fn new(future: F) -> Self {
        Self {
            state: State::Here(Box::pin(future)),
        }
    }

    /// Whether the future has moved to the pool (for tests and logs).
    pub fn moved(&self) -> bool {
        matches!(self.state, State::Away(_))
    }
}

impl<F> Future for Overrun<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        if let State::Here(future) = &mut this.state {
            // Nested wrappers (a component calling another in process)
            // share the thread: keep an outer mark for the outer wrapper.
            let outer = OVERRAN.with(|flag| flag.replace(false));
            let outer_started = POLL_STARTED.with(|s| s.replace(Some(Instant::now())));
            let polled = future.as_mut().poll(cx);
            POLL_STARTED.with(|s| s.set(outer_started));
            let overran = OVERRAN.with(|flag| flag.replace(outer || flag.get()));
            match polled {
                Poll::Ready(output) => {
                    this.state = State::Finished;
                    return Poll::Ready(output);
                }
                Poll::Pending if !overran => return Poll::Pending,
                Poll::Pending => {
                    let State::Here(future) = std::mem::replace(&mut this.state, State::Finished)
                    else {
                        unreachable!("matched as Here above");
                    };
                    tracing::debug!("the guest overran its slice: moved to the overrun pool");
                    let span = tracing::Span::current();
                    this.state =
                        State::Away(pool().spawn(tracing::Instrument::instrument(future, span)));
                }
            }
        }
        match &mut this.state {
            State::Away(handle) => match Pin::new(handle).poll(cx) {
                Poll::Ready(Ok(output)) => {
                    this.state = State::Finished;
                    Poll::Ready(output)
                }
                Poll::Ready(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Only `Drop` aborts the task, and the pool is never shut
                // down: a cancelled task cannot be observed here.
                Poll::Ready(Err(e)) => panic!("overrun task ended without an output: {e}"),
                Poll::Pending => Poll::Pending,
            },
            State::Here(_) => Poll::Pending,
            State::Finished => panic!("`Overrun` polled after it finished"),
        }
    }
}

impl<F: Future> Drop for Overrun<F> {
    fn drop(&mut self) {
        if let State::Away(handle) = &self.state {
            handle.abort();
        }
    }
}

/// Runs `future` with the overrun pool as its tokio context, so whatever
/// it spawns (a WASIp3 guest's worker tasks, which wasmtime-wasi-http
/// spawns itself) runs on the pool, never on the front door's threads.
pub struct OnPool<F> {
    future: Pin<Box<F>>,
}

impl<F: Future> OnPool<F> {
    /// Wraps `future`.
    pub fn new(future: F) -> Self {
        Self {
            future: Box::pin(future),
        }
    }
}

impl<F: Future> Future for OnPool<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _context = pool().enter();
        self.future.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A future that marks an overrun on its first poll, as a guest's
    /// epoch callback would, then finishes on a later one.
    struct Looping {
        polls: u32,
        thread: Option<String>,
    }

    impl Future for Looping {
        type Output = Option<String>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<String>> {
            self.polls += 1;
            if self.polls == 1 {
                mark();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.thread = std::thread::current().name().map(str::to_owned);
            Poll::Ready(self.thread.take())
        }
    }

    #[tokio::test]
    async fn a_future_that_overruns_finishes_on_the_overrun_pool() {
        let thread = Overrun::new(Looping {
            polls: 0,
            thread: None,
        })
        .await;
        assert_eq!(thread.as_deref(), Some("wasmhost-overrun"));
    }

    #[tokio::test]
    async fn a_future_that_does_not_overrun_stays_on_its_thread() {
        let here = std::thread::current().name().map(str::to_owned);
        let there = Overrun::new(async { std::thread::current().name().map(str::to_owned) }).await;
        assert_eq!(there, here);
    }

    #[tokio::test]
    async fn dropping_a_moved_future_cancels_it() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut overrun = Box::pin(Overrun::new(async move {
            mark();
            tokio::task::yield_now().await;
            // Holds the sender until cancelled: never finishes by itself.
            std::future::pending::<()>().await;
            drop(tx);
        }));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(overrun.as_mut().poll(&mut cx).is_pending());
        assert!(overrun.moved());
        drop(overrun);
        // The sender is dropped when the task is cancelled.
        let closed = tokio::time::timeout(std::time::Duration::from_secs(5), rx).await;
        assert!(
            matches!(closed, Ok(Err(_))),
            "the moved task was not cancelled"
        );
    }

    #[test]
    fn a_slice_is_used_after_a_tick_within_one_poll_and_always_outside_a_poll() {
        assert!(slice_used(), "outside a poll");
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut seen = Box::pin(Overrun::new(async {
            let at_start = slice_used();
            std::thread::sleep(crate::limits::EPOCH_TICK);
            (at_start, slice_used())
        }));
        let Poll::Ready((at_start, after_a_tick)) = seen.as_mut().poll(&mut cx) else {
            panic!("the future finishes in one poll");
        };
        assert!(!at_start && after_a_tick);
        assert!(slice_used(), "the poll's start is not left behind");
    }

    #[test]
    fn an_outer_mark_survives_an_inner_wrapper() {
        mark();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut inner = Box::pin(Overrun::new(async { 1 }));
        let _ = inner.as_mut().poll(&mut cx);
        assert!(OVERRAN.with(Cell::get));
        OVERRAN.with(|flag| flag.set(false));
    }
}
