//! The lifecycle of one container component: started on the first
//! request (or with the server, a setting); ready once its port accepts a
//! connection inside its network namespace (past the ready timeout: the
//! start fails, 503 and a log line saying why); stopped after an idle
//! time, and started again (a cold start) by the next request; when it
//! exits on its own, requests get 503 until a restart, which waits a
//! backoff that doubles with each failure in a row. Its stdout and stderr
//! go to the host log under the component id. On shutdown: SIGTERM, then
//! SIGKILL after a grace period; its root is unmounted and removed.
//!
//! Where it is lives in one [`State`] ([`state`]), behind one watch
//! channel that requests wait on; each verb moves it through a typed
//! transition that may refuse. One file per verb: [`start`], [`stop`]
//! (and the idle watch), [`ahead`] (a container created ahead). Every
//! cleanup that fails is logged, never dropped.

#![forbid(unsafe_code)]

mod ahead;
pub mod health;
mod start;
pub mod state;
mod stop;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use self::health::Check;
use self::state::{Health, Leftover, Live, Next, Refused, State};
use super::bundle::Bundle;
use super::image::PreparedImage;
use super::proxy::Upstream;
use super::runtime::protocol::{RuntimeError, Signal};
use super::runtime::standby::Created;
use super::runtime::OciRuntime;
use super::settings::{Settings, Start};
use super::sys::Syscall;
use crate::backend::StatusKind;

/// Everything a component's containers are made from, resolved.
pub struct Plan {
    /// The component id.
    pub component: Arc<str>,
    /// How it runs.
    pub settings: Settings,
    /// The image, unpacked.
    pub image: PreparedImage,
    /// The runtime that runs it.
    pub runtime: OciRuntime,
    /// The port proxied to.
    pub port: u16,
    /// What asks the container to stop (the image's `StopSignal`).
    pub stop_signal: Signal,
    /// Its health check ([`Check::choose`]), if any.
    pub health: Option<Check>,
    /// Where its bundles go.
    pub state_dir: PathBuf,
    /// Mounts and namespaces.
    pub sys: Arc<dyn Syscall>,
}

/// One container component's lifecycle.
pub struct Lifecycle {
    plan: Plan,
    state: watch::Sender<State<Running, Ahead>>,
    me: Weak<Lifecycle>,
}

/// A running container.
pub struct Running {
    /// Its id.
    pub id: String,
    /// The way to its service.
    pub upstream: Upstream,
    /// Its bundle (`config.json`: what a command run inside runs as).
    bundle_dir: PathBuf,
    /// `Some(how it ended)` once it exited.
    exited: watch::Receiver<Option<String>>,
    /// Requests in flight and the last one's end, for the idle stop.
    activity: Mutex<Activity>,
    /// What its health checks say; written by the health watch only.
    health: Mutex<Health>,
}

impl Live for Running {
    fn has_exited(&self) -> bool {
        self.exited.borrow().is_some()
    }

    fn health(&self) -> Health {
        self.health.lock().map_or(Health::Unhealthy, |health| *health)
    }
}

struct Activity {
    in_flight: usize,
    last_end: Instant,
}

impl Running {
    fn new(
        id: String,
        upstream: Upstream,
        bundle_dir: PathBuf,
        exited: watch::Receiver<Option<String>>,
        health: Health,
    ) -> Self {
        Self {
            id,
            upstream,
            bundle_dir,
            exited,
            activity: Mutex::new(Activity {
                in_flight: 0,
                last_end: Instant::now(),
            }),
            health: Mutex::new(health),
        }
    }

    fn set_health(&self, health: Health) {
        if let Ok(mut current) = self.health.lock() {
            *current = health;
        }
    }

    /// Counts a request in until the guard goes, however the request ends
    /// (answered, failed, or dropped at the deadline): the idle stop never
    /// stops a container mid-request.
    pub fn begin_request(&self) -> InFlight<'_> {
        if let Ok(mut activity) = self.activity.lock() {
            activity.in_flight += 1;
        }
        InFlight { running: self }
    }

    /// How long it has had no request in flight; `None` while one is.
    fn idle_for(&self) -> Option<Duration> {
        let activity = self.activity.lock().ok()?;
        (activity.in_flight == 0).then(|| activity.last_end.elapsed())
    }
}

/// A request being proxied to a running container.
pub struct InFlight<'a> {
    running: &'a Running,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut activity) = self.running.activity.lock() {
            activity.in_flight -= 1;
            activity.last_end = Instant::now();
        }
    }
}

/// A container created ahead, with its bundle.
pub struct Ahead {
    bundle: Bundle,
    created: Created,
}

impl Lifecycle {
    /// A stopped component.
    pub fn new(plan: Plan) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            plan,
            state: watch::Sender::new(State::default()),
            me: me.clone(),
        })
    }

    /// The component id.
    pub fn component(&self) -> &Arc<str> {
        &self.plan.component
    }

    /// The running container, started if none runs (the start runs on a
    /// task of its own, so a request that gives up waiting does not
    /// abandon it halfway). Refused while wasmhost shuts down and during
    /// a backoff; a start that fails is reported to the requests that
    /// waited for it.
    pub async fn running(&self) -> Result<Arc<Running>, Refused> {
        let mut waited = false;
        loop {
            let now = Instant::now();
            let next = self.transition(|state| match waited {
                false => state.request(now),
                true => state.after_start(now),
            })?;
            match next {
                Next::Serve(running) => return Ok(running),
                Next::Start(ahead) => self.spawn_start(ahead),
                Next::Wait => {}
            }
            waited = true;
            // The sender lives as long as `self`.
            let _ = self
                .state
                .subscribe()
                .wait_for(|state| !state.is_busy())
                .await;
        }
    }

    /// The lifecycle state for `/readyz` and the metrics.
    pub fn status(&self) -> StatusKind {
        let eager = self.plan.settings.start == Start::Eager;
        let current = self.state.borrow();
        let (state, ready) = current.status(Instant::now(), eager);
        StatusKind::Container {
            state,
            ready,
            health: current.health().and_then(Health::name),
        }
    }

    /// Stops everything for good: waits for a start or stop under way,
    /// then stops the running container or discards the one created
    /// ahead.
    pub async fn shut_down(&self) {
        let mut changes = self.state.subscribe();
        let leftover = loop {
            let _ = changes.wait_for(|state| !state.is_busy()).await;
            let mut leftover = None;
            self.state.send_if_modified(|state| {
                if state.is_busy() {
                    return false;
                }
                leftover = Some(state.shut_down());
                true
            });
            if let Some(leftover) = leftover {
                break leftover;
            }
        };
        match leftover {
            Leftover::Running(running) if !running.has_exited() => self.terminate(&running).await,
            Leftover::Ahead(ahead) => self.discard(ahead).await,
            _ => {}
        }
    }

    /// Applies `transition` to the state, waking the requests that wait
    /// when it moved to another state.
    fn transition<T>(&self, transition: impl FnOnce(&mut State<Running, Ahead>) -> T) -> T {
        let mut result = None;
        self.state.send_if_modified(|state| {
            let before = std::mem::discriminant(state);
            result = Some(transition(state));
            before != std::mem::discriminant(state)
        });
        result.expect("send_if_modified runs its closure")
    }

    /// Removes container `id` from the runtime, saying so if that fails
    /// for another reason than its being gone already.
    async fn delete(&self, id: &str) {
        match self.plan.runtime.delete(id).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                tracing::warn!(component = %self.plan.component, "cannot delete container `{id}`: {e}")
            }
        }
    }

    /// Sends `signal` to container `id`, saying so if that fails for
    /// another reason than its being gone already.
    async fn signal(&self, id: &str, signal: Signal) {
        match self.plan.runtime.kill(id, signal).await {
            Ok(()) => {}
            Err(RuntimeError::NotFound { .. }) => {
                tracing::debug!(component = %self.plan.component, "container `{id}` is gone: no {signal}")
            }
            Err(e) => {
                tracing::warn!(component = %self.plan.component, "cannot send {signal} to container `{id}`: {e}")
            }
        }
    }
}
