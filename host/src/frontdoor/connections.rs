//! The open connections: how many may be open, which to close when a new
//! one needs room, and which have overstayed.
//!
//! hyper has no connection limit and no notion of an idle connection, so
//! the front door keeps one [`ConnState`] per connection: requests in
//! flight, whether a first request head has arrived, when it last did
//! anything. With that:
//!
//! - at the limit, the connection idle the longest (no request in flight)
//!   is closed to make room, and only when every connection is busy is a
//!   new one refused — at once, never left waiting in the backlog;
//! - a connection that has not sent a complete first request head within
//!   the header timeout is cut (slowloris, or a client that connects and
//!   says nothing); a slow request body is not affected, its head is in;
//! - a connection idle longer than the idle timeout is closed gracefully
//!   (HTTP/1.1 keep-alive, and HTTP/2, which hyper keeps open for ever);
//! - on shutdown every connection is asked to close gracefully.
//!
//! One sweeper walks the table every [`SWEEP_INTERVAL`] instead of a timer
//! per connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::stats::Stats;

/// How often the sweeper looks for connections to close. A quarter second
/// keeps the header and idle timeouts accurate to well under their own
/// size (seconds), at the cost of one pass over the table: ~10 µs per
/// 10,000 connections.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// Why a connection is asked to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Shutting down: finish what is in flight, however long the drain
    /// allows.
    Drain,
    /// Room is needed, or it sat idle too long: close gracefully, but cut
    /// it if it has not closed within [`EVICT_GRACE`].
    Evict,
    /// No complete request head in time: cut it now.
    Abort,
}

/// How long an evicted connection may take to close gracefully before it
/// is cut. It has no request in flight, so hyper closes it at its next
/// poll; this only bounds a peer that stops reading mid-shutdown.
pub const EVICT_GRACE: Duration = Duration::from_secs(1);

/// One connection's state, shared by its task, its requests and the
/// sweeper.
pub struct ConnState {
    opened: Instant,
    /// Requests in flight: from the head's arrival to the end (or drop) of
    /// the response body.
    active: AtomicU32,
    /// Whether a complete request head has arrived.
    started: AtomicBool,
    /// When a request last started or finished, in ms since `opened`.
    last_active_ms: AtomicU64,
    close: watch::Sender<Option<Close>>,
}

impl ConnState {
    fn new(now: Instant) -> Self {
        Self {
            opened: now,
            active: AtomicU32::new(0),
            started: AtomicBool::new(false),
            last_active_ms: AtomicU64::new(0),
            close: watch::Sender::new(None),
        }
    }

    /// A request head arrived.
    pub fn request_started(&self) {
        self.started.store(true, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    /// A response finished (or was dropped).
    pub fn request_finished(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether no request is in flight.
    pub fn idle(&self) -> bool {
        self.active.load(Ordering::Relaxed) == 0
    }

    fn closing(&self) -> bool {
        self.close.borrow().is_some()
    }

    /// Asks the connection's task to close; the first reason sticks, except
    /// that a cut overrides a graceful close.
    fn ask(&self, reason: Close) {
        self.close.send_if_modified(|current| match current {
            None => {
                *current = Some(reason);
                true
            }
            Some(Close::Abort) => false,
            Some(_) if reason == Close::Abort => {
                *current = Some(reason);
                true
            }
            Some(_) => false,
        });
    }

    /// Since when the connection has been idle (meaningful when idle).
    fn idle_since(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed))
    }
}

/// The table of open connections.
pub struct Connections {
    table: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    max: usize,
    stats: Arc<Stats>,
    emptied: Notify,
}

/// What [`Connections::admit`] decided.
pub enum Admission {
    /// Serve it; dropping the handle removes it from the table.
    Admitted(ConnHandle),
    /// Every connection is busy: refuse it now.
    Refused,
}

impl Connections {
    /// A table for at most `max` connections.
    pub fn new(max: usize, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self {
            table: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            max: max.max(1),
            stats,
            emptied: Notify::new(),
        })
    }

    fn table(&self) -> MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        // A panic while holding this lock leaves the table consistent
        // (every operation is a single insert, remove or read).
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a new connection in, closing the longest-idle one if the table
    /// is full; refuses it only when none is idle. Connections already
    /// asked to close do not count against the limit: they are on their way
    /// out.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut table = self.table();
        // Counting the connections not yet closing walks the whole table
        // (under its lock): only when the table itself has reached the
        // limit can that count have. At 10,000 connections the walk on
        // every accept cost 2.6 % of the CPU (bench/RESULTS.md, scale).
        let at_limit =
            table.len() >= self.max && table.values().filter(|c| !c.closing()).count() >= self.max;
        if at_limit {
            let victim = table
                .values()
                .filter(|c| c.idle() && !c.closing())
                .min_by_key(|c| c.idle_since());
            match victim {
                Some(victim) => {
                    victim.ask(Close::Evict);
                    self.stats.evicted.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    return Admission::Refused;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(Instant::now()));
        table.insert(id, state.clone());
        self.stats.open.store(table.len() as u64, Ordering::Relaxed);
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        Admission::Admitted(ConnHandle {
            id,
            close: state.close.subscribe(),
            state,
            table: self.clone(),
        })
    }

    /// Asks every connection to close for `reason`.
    pub fn close_all(&self, reason: Close) {
        for state in self.table().values() {
            state.ask(reason);
        }
    }

    /// Resolves once no connection is open.
    pub async fn emptied(&self) {
        loop {
            let notified = self.emptied.notified();
            if self.table().is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// One pass of the sweeper: cuts connections without a complete first
    /// head after `header_timeout`, closes those idle beyond
    /// `idle_timeout`.
    pub fn sweep(&self, now: Instant, header_timeout: Duration, idle_timeout: Duration) {
        for state in self.table().values() {
            if state.closing() {
                continue;
            }
            let started = state.started.load(Ordering::Relaxed);
            if !started && now.saturating_duration_since(state.opened) >= header_timeout {
                state.ask(Close::Abort);
                self.stats.slow_heads.fetch_add(1, Ordering::Relaxed);
            } else if started
                && state.idle()
                && now.saturating_duration_since(state.idle_since()) >= idle_timeout
            {
                state.ask(Close::Evict);
            }
        }
    }

    /// Runs [`Connections::sweep`] every [`SWEEP_INTERVAL`] until the task
    /// is dropped.
    pub async fn sweep_forever(self: Arc<Self>, header_timeout: Duration, idle_timeout: Duration) {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.sweep(Instant::now(), header_timeout, idle_timeout);
        }
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A connection's place in the table, held by its task.
pub struct ConnHandle {
    id: u64,
    state: Arc<ConnState>,
    close: watch::Receiver<Option<Close>>,
    table: Arc<Connections>,
}

impl ConnHandle {
    /// The state its requests update.
    pub fn state(&self) -> Arc<ConnState> {
        self.state.clone()
    }

    /// Resolves with the reason once the connection is asked to close.
    pub async fn close_requested(&mut self) -> Close {
        match self.close.wait_for(Option::is_some).await {
            Ok(reason) => reason.unwrap_or(Close::Abort),
            // The sender lives in `state`, which this handle holds.
            Err(_) => Close::Abort,
        }
    }

    /// The reason, if the connection has been asked to close.
    pub fn close_reason(&self) -> Option<Close> {
        *self.close.borrow()
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        let mut table = self.table.table();
        table.remove(&self.id);
        self.table
            .stats
            .open
            .store(table.len() as u64, Ordering::Relaxed);
        if table.is_empty() {
            self.table.emptied.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(connections: &Arc<Connections>) -> ConnHandle {
        match connections.admit() {
            Admission::Admitted(handle) => handle,
            Admission::Refused => panic!("refused"),
        }
    }

    #[test]
    fn at_the_limit_the_longest_idle_connection_makes_room() {
        let connections = Connections::new(2, Arc::default());
        let older = admitted(&connections);
        let newer = admitted(&connections);
        std::thread::sleep(Duration::from_millis(20));
        older.state.request_started();
        older.state.request_finished();
        // `newer` has been idle longer than `older`, whose request just ended.
        let _third = admitted(&connections);
        assert_eq!(newer.close_reason(), Some(Close::Evict));
        assert_eq!(older.close_reason(), None);
    }

    #[test]
    fn when_every_connection_is_busy_a_new_one_is_refused() {
        let connections = Connections::new(1, Arc::default());
        let busy = admitted(&connections);
        busy.state.request_started();
        assert!(matches!(connections.admit(), Admission::Refused));
        assert_eq!(connections.stats.refused.load(Ordering::Relaxed), 1);
        busy.state.request_finished();
        assert!(matches!(connections.admit(), Admission::Admitted(_)));
    }

    #[test]
    fn a_connection_without_a_first_head_is_cut_after_the_header_timeout() {
        let connections = Connections::new(10, Arc::default());
        let silent = admitted(&connections);
        let talking = admitted(&connections);
        talking.state.request_started();
        let later = Instant::now() + Duration::from_secs(11);
        connections.sweep(later, Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(silent.close_reason(), Some(Close::Abort));
        // A request in flight (say, a slow upload) is left alone.
        assert_eq!(talking.close_reason(), None);
    }

    #[test]
    fn an_idle_keep_alive_connection_is_closed_gracefully_after_the_idle_timeout() {
        let connections = Connections::new(10, Arc::default());
        let kept = admitted(&connections);
        kept.state.request_started();
        kept.state.request_finished();
        connections.sweep(
            Instant::now() + Duration::from_secs(5),
            Duration::from_secs(10),
            Duration::from_secs(30),
        );
        assert_eq!(kept.close_reason(), None);
        connections.sweep(
            Instant::now() + Duration::from_secs(31),
            Duration::from_secs(10),
            Duration::from_secs(30),
        );
        assert_eq!(kept.close_reason(), Some(Close::Evict));
    }

    #[test]
    fn a_cut_overrides_a_graceful_close_but_not_the_reverse() {
        let state = ConnState::new(Instant::now());
        state.ask(Close::Drain);
        state.ask(Close::Evict);
        assert_eq!(*state.close.borrow(), Some(Close::Drain));
        state.ask(Close::Abort);
        state.ask(Close::Drain);
        assert_eq!(*state.close.borrow(), Some(Close::Abort));
    }

    #[tokio::test]
    async fn emptied_resolves_once_the_last_connection_is_gone() {
        let connections = Connections::new(10, Arc::default());
        let handle = admitted(&connections);
        let waiter = tokio::spawn({
            let connections = connections.clone();
            async move { connections.emptied().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(handle);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("emptied() resolves")
            .expect("the waiter does not panic");
    }
}
