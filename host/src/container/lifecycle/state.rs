//! The lifecycle of one container component as a state machine: what it
//! is, and which moves each verb may make from there. Pure (no tokio, no
//! processes), so every transition is unit-tested; the verbs in the
//! sibling files do the work and move the state through these functions
//! only.
//!
//! ```text
//!            create ahead                 request
//!   Stopped ─────────────► CreatedAhead ───────────┐
//!     ▲  │ request                                  ▼
//!     │  └──────────────────────────────────────► Starting ──► Running ──► Stopping
//!     │        start failed (backoff) ◄───────────────┘           │ crash      │ exit
//!     └───────────────────────────────────────────────────────────┴────────────┘
//!   any settled state ── shut down ──► ShutDown
//! ```
//!
//! Generic over what a running container and a container created ahead
//! are, so the tests need neither.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::limits;

/// A running container, as far as the state machine asks.
pub trait Live {
    /// Whether its process has exited (the exit may not be handled yet).
    fn has_exited(&self) -> bool;
    /// What its health checks say.
    fn health(&self) -> Health {
        Health::Unchecked
    }
}

/// What a running container's health checks say (Docker's health
/// states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No check: healthy while it runs.
    Unchecked,
    /// An image HEALTHCHECK has not passed yet (Docker's `starting`): not
    /// ready.
    Starting,
    /// The last check passed, or too few failed in a row to matter.
    Healthy,
    /// `retries` checks failed in a row: not ready, and being restarted.
    Unhealthy,
}

impl Health {
    /// Docker's name for it; `None` without a check.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Health::Unchecked => None,
            Health::Starting => Some("starting"),
            Health::Healthy => Some("healthy"),
            Health::Unhealthy => Some("unhealthy"),
        }
    }
}

/// Where a container component is.
pub enum State<R, A> {
    /// Nothing runs; the next request starts a container, once `retry_at`
    /// has passed (after a crash or a failed start, with `why`).
    Stopped {
        /// Failed starts and crashes in a row.
        failures: u32,
        /// No start before this.
        retry_at: Option<Instant>,
        /// What went wrong last.
        why: Option<Arc<str>>,
    },
    /// Nothing runs, and the next container is created, waiting for the
    /// word to start: the next start only starts the workload.
    CreatedAhead(A),
    /// A start is under way; requests wait for it.
    Starting {
        /// Failures before this start.
        failures: u32,
    },
    /// It runs and takes requests.
    Running(Arc<R>, Streak),
    /// It was asked to stop (idle); requests wait for the end, then start
    /// another.
    Stopping(Arc<R>),
    /// wasmhost is shutting down: nothing starts any more.
    ShutDown,
}

impl<R, A> Default for State<R, A> {
    fn default() -> Self {
        State::Stopped {
            failures: 0,
            retry_at: None,
            why: None,
        }
    }
}

/// Failures in a row before a running container started, and when it
/// started: a crash soon after the start continues the streak (so a
/// crash loop backs off, doubling), one after a long run starts anew.
#[derive(Clone, Copy, Debug)]
pub struct Streak {
    failures: u32,
    since: Instant,
}

impl Streak {
    /// Failures in a row counting a crash `now`.
    fn after_crash(self, now: Instant) -> u32 {
        if now.saturating_duration_since(self.since) < limits::CONTAINER_CRASH_STREAK_RESET {
            self.failures + 1
        } else {
            1
        }
    }
}

/// What a request does next.
pub enum Next<R, A> {
    /// Use the running container.
    Serve(Arc<R>),
    /// Start one (the state is now [`State::Starting`]), from the
    /// container created ahead if there is one.
    Start(Option<A>),
    /// A start or stop is under way: wait for the state to change, then
    /// ask again.
    Wait,
}

/// Why a verb refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// wasmhost is shutting down.
    #[error("wasmhost is shutting down")]
    ShuttingDown,
    /// The last start failed or the container crashed; the next start
    /// waits for its backoff.
    #[error("{why} and restarts in {:.1} s", .retry_in.as_secs_f64())]
    Restarting {
        /// What went wrong.
        why: Arc<str>,
        /// How long until the next start may begin.
        retry_in: Duration,
    },
    /// The start this request waited for failed.
    #[error("{0}")]
    StartFailed(Arc<str>),
    /// A stop of a container that is not the running one (stopped or
    /// replaced meanwhile).
    #[error("the container is not the running one")]
    NotRunning,
}

/// How a container's end is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It was asked to stop: no failure.
    Stopped,
    /// It ended on its own: a crash, counted towards the backoff.
    Crashed,
    /// It is no longer the current container (shut down, or replaced):
    /// nothing changes.
    Stale,
}

/// What shutting down leaves to clean up.
pub enum Leftover<R, A> {
    /// Nothing.
    Nothing,
    /// A running container to stop.
    Running(Arc<R>),
    /// A container created ahead to discard.
    Ahead(A),
}

impl<R: Live, A> State<R, A> {
    /// A request arrives: serve, start, wait, or refuse.
    pub fn request(&mut self, now: Instant) -> Result<Next<R, A>, Refused> {
        match self {
            State::Running(running, _) if !running.has_exited() => {
                return Ok(Next::Serve(running.clone()))
            }
            State::Starting { .. } | State::Stopping(_) => return Ok(Next::Wait),
            State::ShutDown => return Err(Refused::ShuttingDown),
            State::Stopped {
                retry_at: Some(at),
                why,
                ..
            } if now < *at => {
                return Err(Refused::Restarting {
                    why: why.clone().unwrap_or_else(|| Arc::from("it failed")),
                    retry_in: at.saturating_duration_since(now),
                })
            }
            // Exited but not handled yet: a fresh start, as from stopped.
            State::Running(..) | State::Stopped { .. } | State::CreatedAhead(_) => {}
        }
        let failures = match self {
            State::Stopped { failures, .. } => *failures,
            _ => 0,
        };
        match std::mem::replace(self, State::Starting { failures }) {
            State::CreatedAhead(ahead) => Ok(Next::Start(Some(ahead))),
            _ => Ok(Next::Start(None)),
        }
    }

    /// After waiting on a start: what became of it, for the requests that
    /// waited (the one that failed is reported as such).
    pub fn after_start(&mut self, now: Instant) -> Result<Next<R, A>, Refused> {
        match self {
            State::Stopped {
                retry_at: Some(at),
                why: Some(why),
                ..
            } if now < *at => Err(Refused::StartFailed(why.clone())),
            _ => self.request(now),
        }
    }

    /// The start succeeded. Refused when wasmhost shut down meanwhile: the
    /// caller stops what it started.
    pub fn started(&mut self, running: Arc<R>, now: Instant) -> Result<(), Refused> {
        match *self {
            State::Starting { failures } => {
                *self = State::Running(
                    running,
                    Streak {
                        failures,
                        since: now,
                    },
                );
                Ok(())
            }
            _ => Err(Refused::ShuttingDown),
        }
    }

    /// The start failed: back to stopped, the next start after a backoff.
    pub fn start_failed(&mut self, why: Arc<str>, now: Instant) {
        if let State::Starting { failures } = *self {
            let failures = failures + 1;
            *self = State::Stopped {
                failures,
                retry_at: Some(now + backoff(failures)),
                why: Some(why),
            };
        }
    }

    /// An idle stop begins: only of the running container.
    pub fn stop(&mut self, running: &Arc<R>) -> Result<(), Refused> {
        match self {
            State::Running(current, _) if Arc::ptr_eq(current, running) => {
                *self = State::Stopping(running.clone());
                Ok(())
            }
            _ => Err(Refused::NotRunning),
        }
    }

    /// Container `running` ended (`how`, as its exit status reads).
    pub fn ended(&mut self, running: &Arc<R>, how: &str, now: Instant) -> Ended {
        match self {
            State::Stopping(current) if Arc::ptr_eq(current, running) => {
                *self = State::default();
                Ended::Stopped
            }
            State::Running(current, streak) if Arc::ptr_eq(current, running) => {
                let failures = streak.after_crash(now);
                *self = State::Stopped {
                    failures,
                    retry_at: Some(now + backoff(failures)),
                    why: Some(Arc::from(format!("it exited ({how})"))),
                };
                Ended::Crashed
            }
            _ => Ended::Stale,
        }
    }

    /// The next container was created ahead. Refused (the caller discards
    /// it) unless the component is stopped with nothing waiting: a start
    /// or a shutdown came first, or another was created.
    pub fn created_ahead(&mut self, ahead: A) -> Result<(), A> {
        match self {
            State::Stopped {
                failures: 0,
                retry_at: None,
                ..
            } => {
                *self = State::CreatedAhead(ahead);
                Ok(())
            }
            _ => Err(ahead),
        }
    }

    /// Whether a start or stop is under way (shutting down waits for it).
    pub fn is_busy(&self) -> bool {
        matches!(self, State::Starting { .. } | State::Stopping(_))
    }

    /// wasmhost shuts down: from a settled state, to [`State::ShutDown`];
    /// what was there is the caller's to clean up. Call when not
    /// [`Self::is_busy`].
    pub fn shut_down(&mut self) -> Leftover<R, A> {
        match std::mem::replace(self, State::ShutDown) {
            State::Running(running, _) | State::Stopping(running) => Leftover::Running(running),
            State::CreatedAhead(ahead) => Leftover::Ahead(ahead),
            _ => Leftover::Nothing,
        }
    }

    /// The state for `/readyz` and the metrics: its name, and whether a
    /// request would be served (a lazy component's start is part of its
    /// first request).
    pub fn status(&self, now: Instant, eager: bool) -> (&'static str, bool) {
        match self {
            State::Starting { .. } => ("starting", !eager),
            State::Running(running, _) if running.has_exited() => ("exited", false),
            State::Running(running, _) => match running.health() {
                Health::Unhealthy => ("unhealthy", false),
                Health::Starting => ("running", false),
                Health::Unchecked | Health::Healthy => ("running", true),
            },
            State::Stopping(_) => ("stopping", true),
            State::Stopped {
                retry_at: Some(at), ..
            } if now < *at => ("restarting", false),
            // Never started, or idle: the next request starts it.
            State::Stopped { .. } | State::CreatedAhead(_) => ("stopped", true),
            State::ShutDown => ("shut-down", false),
        }
    }
}

impl<R: Live, A> State<R, A> {
    /// The running container's health (`None` when none runs or it has no
    /// check), for `/readyz` and the metrics.
    pub fn health(&self) -> Option<Health> {
        match self {
            State::Running(running, _) if !running.has_exited() => {
                Some(running.health()).filter(|health| *health != Health::Unchecked)
            }
            _ => None,
        }
    }
}

/// 0.5 s after the first failure, doubling, at most 30 s.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.saturating_sub(1).min(6)))
        .min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A stand-in for a running container.
    #[derive(Default)]
    struct Container {
        exited: AtomicBool,
        health: std::sync::Mutex<Option<Health>>,
    }

    impl Live for Container {
        fn has_exited(&self) -> bool {
            self.exited.load(Ordering::SeqCst)
        }

        fn health(&self) -> Health {
            self.health.lock().unwrap().unwrap_or(Health::Unchecked)
        }
    }

    type Machine = State<Container, &'static str>;

    fn running(state: &mut Machine) -> Arc<Container> {
        let container = Arc::new(Container::default());
        assert!(matches!(state.request(Instant::now()), Ok(Next::Start(_))));
        state.started(container.clone(), Instant::now()).unwrap();
        container
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(20), Duration::from_secs(30));
    }

    #[test]
    fn a_request_starts_a_stopped_container_and_others_wait_for_that_start() {
        let now = Instant::now();
        let mut state = Machine::default();
        assert!(matches!(state.request(now), Ok(Next::Start(None))));
        assert!(state.is_busy());
        assert!(matches!(state.request(now), Ok(Next::Wait)));
        assert_eq!(state.status(now, false), ("starting", true));
        assert_eq!(state.status(now, true), ("starting", false));
        let container = Arc::new(Container::default());
        state.started(container.clone(), Instant::now()).unwrap();
        match state.request(now) {
            Ok(Next::Serve(served)) => assert!(Arc::ptr_eq(&served, &container)),
            _ => panic!("not served"),
        }
        assert_eq!(state.status(now, true), ("running", true));
    }

    #[test]
    fn a_crash_loop_backs_off_doubling_and_a_long_run_starts_the_streak_anew() {
        let mut now = Instant::now();
        let mut state = Machine::default();
        // Three crashes in a row, each soon after its start.
        for (crash, delay) in [(1, 500), (2, 1000), (3, 2000)] {
            let container = running_at(&mut state, now);
            now += Duration::from_secs(1);
            assert!(matches!(
                state.ended(&container, "exit status 1", now),
                Ended::Crashed
            ));
            let retry_in = match state.request(now) {
                Err(Refused::Restarting { retry_in, .. }) => retry_in,
                _ => panic!("crash {crash}: not backing off"),
            };
            assert_eq!(retry_in, Duration::from_millis(delay), "crash {crash}");
            now += retry_in;
        }
        // A crash after a long run: the first delay again.
        let container = running_at(&mut state, now);
        now += limits::CONTAINER_CRASH_STREAK_RESET;
        state.ended(&container, "exit status 1", now);
        assert!(matches!(
            state.request(now),
            Err(Refused::Restarting { retry_in, .. }) if retry_in == Duration::from_millis(500)
        ));
    }

    fn running_at(state: &mut Machine, now: Instant) -> Arc<Container> {
        let container = Arc::new(Container::default());
        assert!(matches!(state.request(now), Ok(Next::Start(_))));
        state.started(container.clone(), now).unwrap();
        container
    }

    #[test]
    fn a_container_created_ahead_is_what_the_next_start_starts() {
        let now = Instant::now();
        let mut state = Machine::default();
        state.created_ahead("ahead").unwrap();
        assert_eq!(state.status(now, false), ("stopped", true));
        assert!(matches!(state.request(now), Ok(Next::Start(Some("ahead")))));
        // Created ahead while starting or running: refused, handed back.
        assert_eq!(state.created_ahead("late").err(), Some("late"));
        state.started(Arc::default(), Instant::now()).unwrap();
        assert_eq!(state.created_ahead("late").err(), Some("late"));
    }

    #[test]
    fn a_failed_start_backs_off_and_the_waiting_requests_hear_why() {
        let now = Instant::now();
        let mut state = Machine::default();
        assert!(matches!(state.request(now), Ok(Next::Start(None))));
        state.start_failed(Arc::from("its start failed (no port)"), now);
        assert!(!state.is_busy());
        assert_eq!(
            state.after_start(now).err(),
            Some(Refused::StartFailed(Arc::from(
                "its start failed (no port)"
            )))
        );
        let refused = state.request(now).err().unwrap();
        assert_eq!(
            refused.to_string(),
            "its start failed (no port) and restarts in 0.5 s"
        );
        assert_eq!(state.status(now, true), ("restarting", false));
        // After the backoff a request starts again; a second failure waits
        // twice as long.
        let later = now + backoff(1);
        assert!(matches!(state.request(later), Ok(Next::Start(None))));
        state.start_failed(Arc::from("again"), later);
        match state.request(later) {
            Err(Refused::Restarting { retry_in, .. }) => assert_eq!(retry_in, backoff(2)),
            _ => panic!("not backing off"),
        }
        // A container created ahead is not taken during a backoff.
        assert_eq!(state.created_ahead("ahead").err(), Some("ahead"));
    }

    #[test]
    fn a_crash_counts_and_an_asked_for_stop_does_not() {
        let now = Instant::now();
        let mut state = Machine::default();
        let first = running(&mut state);
        assert_eq!(state.ended(&first, "signal: 9", now), Ended::Crashed);
        match state.request(now) {
            Err(refused @ Refused::Restarting { .. }) => assert_eq!(
                refused.to_string(),
                "it exited (signal: 9) and restarts in 0.5 s"
            ),
            _ => panic!("no backoff after a crash"),
        }
        let later = now + backoff(1);
        assert!(matches!(state.request(later), Ok(Next::Start(None))));
        let second = Arc::new(Container::default());
        state.started(second.clone(), Instant::now()).unwrap();
        state.stop(&second).unwrap();
        assert!(matches!(state.request(later), Ok(Next::Wait)));
        assert_eq!(state.status(later, true), ("stopping", true));
        assert_eq!(
            state.ended(&second, "exit status: 0", later),
            Ended::Stopped
        );
        assert!(matches!(state.request(later), Ok(Next::Start(None))));
    }

    #[test]
    fn an_unhealthy_container_and_one_whose_image_check_has_not_passed_yet_are_not_ready() {
        let now = Instant::now();
        let mut state = Machine::default();
        let container = running(&mut state);
        assert_eq!(state.status(now, true), ("running", true));
        assert_eq!(state.health(), None);
        for (health, ready) in [
            (Health::Starting, false),
            (Health::Healthy, true),
            (Health::Unhealthy, false),
        ] {
            *container.health.lock().unwrap() = Some(health);
            let expected = if health == Health::Unhealthy { "unhealthy" } else { "running" };
            assert_eq!(state.status(now, true), (expected, ready), "{health:?}");
            assert_eq!(state.health(), Some(health));
        }
        container.exited.store(true, Ordering::SeqCst);
        assert_eq!(state.health(), None);
    }

    #[test]
    fn only_the_current_container_is_stopped_or_mourned() {
        let now = Instant::now();
        let mut state = Machine::default();
        let old = running(&mut state);
        old.exited.store(true, Ordering::SeqCst);
        assert_eq!(state.status(now, true), ("exited", false));
        // Exited but its end not handled yet: the next request starts anew.
        assert!(matches!(state.request(now), Ok(Next::Start(None))));
        let new = Arc::new(Container::default());
        state.started(new.clone(), Instant::now()).unwrap();
        assert_eq!(state.ended(&old, "signal: 9", now), Ended::Stale);
        assert_eq!(state.stop(&old), Err(Refused::NotRunning));
        assert!(matches!(state.request(now), Ok(Next::Serve(_))));
    }

    #[test]
    fn shutting_down_hands_back_what_is_left_and_refuses_everything_after() {
        let now = Instant::now();
        let mut state = Machine::default();
        let container = running(&mut state);
        assert!(matches!(state.shut_down(), Leftover::Running(c) if Arc::ptr_eq(&c, &container)));
        assert_eq!(state.request(now).err(), Some(Refused::ShuttingDown));
        assert_eq!(state.ended(&container, "signal: 15", now), Ended::Stale);
        assert_eq!(state.created_ahead("ahead").err(), Some("ahead"));
        assert_eq!(state.status(now, true), ("shut-down", false));

        let mut ahead = Machine::default();
        ahead.created_ahead("ahead").unwrap();
        assert!(matches!(ahead.shut_down(), Leftover::Ahead("ahead")));

        // A start that finishes after the shutdown is refused: its caller
        // stops what it started.
        let mut starting = Machine::default();
        assert!(matches!(starting.request(now), Ok(Next::Start(None))));
        starting = State::ShutDown;
        assert_eq!(starting.started(Arc::default(), Instant::now()), Err(Refused::ShuttingDown));
    }
}
