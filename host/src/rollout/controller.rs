//! The rollouts of one serving process: [`Rollouts`] holds one
//! [`RouteRollout`] per route (kept across reloads, which only update its
//! policy), each watched by a task of its own that closes a window every
//! `step_time`, judges it and applies the verdict: the new weight is
//! stored for the request path, the decision logged, counted and written
//! to the state directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::Notify;

use super::judge::{judge, Figures, Reading, Verdict};
use super::policy::Policy;
use super::state::{Command, Phase, RouteState};
use super::{store, Weight};
use crate::metrics::{escape, Metrics};

/// Every rollout of the process, by route as written.
#[derive(Default)]
pub struct Rollouts {
    routes: Mutex<BTreeMap<String, Arc<RouteRollout>>>,
}

/// Why a command was not applied.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No rollout on that route, or no route named when several have one.
    #[error("{0}")]
    NoSuchRollout(String),
    /// The command means nothing in the rollout's phase.
    #[error("{0}")]
    Refused(String),
}

/// What `status` reports of one rollout.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The state, as persisted.
    #[serde(flatten)]
    pub state: RouteState,
    /// `to`'s share now, percent.
    pub weight_percent: f64,
    /// The policy's steps.
    pub steps: Vec<f64>,
    /// The policy's window, seconds.
    pub step_time_seconds: f64,
    /// The bounds.
    pub max_error_rate: f64,
    /// The bounds.
    pub max_p99_ratio: f64,
    /// The bounds.
    pub max_mismatch_rate: f64,
    /// The samples a figure needs.
    pub min_requests: u64,
    /// The current window's figures so far.
    pub window: Figures,
    /// Seconds until the current window is judged.
    pub next_decision_in_seconds: f64,
}

impl Rollouts {
    /// Starts (or, on a reload, updates) the rollout of `route`; returns
    /// the weight the route's requests read. A state kept in `state_dir`
    /// for the same `from` and `to` is taken up where it was.
    pub fn register(
        &self,
        route: &str,
        policy: &Policy,
        state_dir: &Path,
        metrics: &Arc<Metrics>,
    ) -> Arc<Weight> {
        let mut routes = lock(&self.routes);
        if let Some(existing) = routes.get(route) {
            existing.update(policy);
            return existing.weight.clone();
        }
        let file = store::path(state_dir, route);
        let state = match store::load(&file) {
            Some(kept) if kept.from == policy.from && kept.to == policy.to => {
                tracing::info!(
                    route,
                    "rollout of `{}` taken up where it was: {} at {} %",
                    policy.to,
                    kept.phase.name(),
                    f64::from(kept.weight) / 100.0
                );
                refit(kept, policy)
            }
            _ => {
                tracing::info!(
                    route,
                    "rollout from `{}` to `{}` starts at {} %",
                    policy.from,
                    policy.to,
                    policy.steps[0]
                );
                RouteState::start(route, policy)
            }
        };
        let rollout = Arc::new(RouteRollout::new(
            route,
            policy.clone(),
            state,
            file,
            metrics,
        ));
        rollout.persist();
        tokio::spawn(rollout.clone().watch());
        routes.insert(route.to_owned(), rollout.clone());
        rollout.weight.clone()
    }

    /// Ends the rollouts of routes not in `routes` — a reload that took a
    /// route's rollout away: their watch stops, and they leave status,
    /// metrics and the dashboard. Their state file stays, so a reload that
    /// puts the rollout back takes it up where it was.
    pub fn retain<'a>(&self, routes: impl IntoIterator<Item = &'a str>) {
        let keep: BTreeSet<&str> = routes.into_iter().collect();
        lock(&self.routes).retain(|route, rollout| {
            let kept = keep.contains(route.as_str());
            if !kept {
                tracing::info!(route = %route, "rollout ended: the route no longer has one");
                rollout.retire();
            }
            kept
        });
    }

    /// Every rollout's status, by route.
    pub fn status(&self) -> Vec<Status> {
        lock(&self.routes).values().map(|r| r.status()).collect()
    }

    /// Applies `command` to the rollout of `route` (which may be left out
    /// when there is only one rollout).
    pub fn command(&self, route: Option<&str>, command: Command) -> Result<Status, CommandError> {
        let rollout = {
            let routes = lock(&self.routes);
            match route {
                Some(route) => routes.get(route).cloned().ok_or_else(|| {
                    CommandError::NoSuchRollout(format!(
                        "no rollout on route `{route}`; rollouts: {}",
                        names(&routes)
                    ))
                })?,
                None if routes.len() == 1 => routes.values().next().cloned().ok_or_else(|| {
                    CommandError::NoSuchRollout("no rollout in this app".to_owned())
                })?,
                None => {
                    return Err(CommandError::NoSuchRollout(format!(
                        "name the route (`--route`); rollouts: {}",
                        names(&routes)
                    )))
                }
            }
        };
        rollout.command(command)?;
        Ok(rollout.status())
    }

    /// The rollouts' gauges and counters, in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let rollouts: Vec<Arc<RouteRollout>> = lock(&self.routes).values().cloned().collect();
        if rollouts.is_empty() {
            return;
        }
        let states: Vec<RouteState> = rollouts.iter().map(|r| lock(&r.state).clone()).collect();
        let labels = |s: &RouteState| {
            format!(
                "route=\"{}\",component=\"{}\"",
                escape(&s.route),
                escape(&s.to)
            )
        };
        out.push_str("# HELP wasmhost_rollout_weight_percent Percent of a route's requests its rollout sends to the new component.\n");
        out.push_str("# TYPE wasmhost_rollout_weight_percent gauge\n");
        for s in &states {
            let _ = writeln!(
                out,
                "wasmhost_rollout_weight_percent{{{}}} {}",
                labels(s),
                f64::from(s.weight) / 100.0
            );
        }
        out.push_str("# HELP wasmhost_rollout_step The rollout's current step, counted from 1.\n");
        out.push_str("# TYPE wasmhost_rollout_step gauge\n");
        for s in &states {
            let _ = writeln!(out, "wasmhost_rollout_step{{{}}} {}", labels(s), s.step + 1);
        }
        out.push_str("# HELP wasmhost_rollout_phase 1 for the rollout's current phase.\n");
        out.push_str("# TYPE wasmhost_rollout_phase gauge\n");
        for s in &states {
            let _ = writeln!(
                out,
                "wasmhost_rollout_phase{{{},phase=\"{}\"}} 1",
                labels(s),
                s.phase.name()
            );
        }
        out.push_str(
            "# HELP wasmhost_rollout_rollbacks_total Rollbacks, by the bound that broke.\n",
        );
        out.push_str("# TYPE wasmhost_rollout_rollbacks_total counter\n");
        for s in &states {
            for (bound, count) in &s.rollbacks {
                let _ = writeln!(
                    out,
                    "wasmhost_rollout_rollbacks_total{{{},bound=\"{bound}\"}} {count}",
                    labels(s)
                );
            }
        }
    }
}

impl std::fmt::Debug for Rollouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rollouts")
    }
}

fn names(routes: &BTreeMap<String, Arc<RouteRollout>>) -> String {
    if routes.is_empty() {
        return "none".to_owned();
    }
    routes
        .keys()
        .map(|r| format!("`{r}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A kept state fitted to a policy whose steps may have changed.
fn refit(mut state: RouteState, policy: &Policy) -> RouteState {
    state.step = state.step.min(policy.steps.len() - 1);
    if state.watching() {
        state.weight = policy.weight_of(state.step);
    }
    state
}

/// One route's rollout.
pub struct RouteRollout {
    route: String,
    file: PathBuf,
    metrics: Arc<Metrics>,
    policy: Mutex<Policy>,
    state: Mutex<RouteState>,
    window: Mutex<Window>,
    weight: Arc<Weight>,
    /// Wakes the watch when a command or a reload starts a new window.
    wake: Notify,
    /// Set when a reload took the rollout away: the watch ends.
    retired: AtomicBool,
}

/// The window being watched.
struct Window {
    /// When it began (a wait extends it).
    started: Instant,
    /// The counters then.
    start: Reading,
    /// When it is judged next.
    next: Instant,
}

impl RouteRollout {
    fn new(
        route: &str,
        policy: Policy,
        state: RouteState,
        file: PathBuf,
        metrics: &Arc<Metrics>,
    ) -> Self {
        let weight = Arc::new(Weight::default());
        weight.set(state.weight);
        let now = Instant::now();
        let this = Self {
            route: route.to_owned(),
            file,
            metrics: metrics.clone(),
            window: Mutex::new(Window {
                started: now,
                start: Reading::default(),
                next: now + policy.step_time,
            }),
            policy: Mutex::new(policy),
            state: Mutex::new(state),
            weight,
            wake: Notify::new(),
            retired: AtomicBool::new(false),
        };
        this.new_window();
        this
    }

    /// The counters now.
    fn read(&self) -> Reading {
        let policy = lock(&self.policy).clone();
        let (to_mirrored, to_mismatches) = self.metrics.mirror_counts(&self.route, &policy.to);
        let (from_mirrored, from_mismatches) =
            self.metrics.mirror_counts(&self.route, &policy.from);
        Reading {
            from: self.metrics.series(&self.route, &policy.from).snapshot(),
            to: self.metrics.series(&self.route, &policy.to).snapshot(),
            mirrored: to_mirrored + from_mirrored,
            mismatches: to_mismatches + from_mismatches,
        }
    }

    /// Starts a new window now.
    fn new_window(&self) {
        let start = self.read();
        let step_time = lock(&self.policy).step_time;
        let now = Instant::now();
        *lock(&self.window) = Window {
            started: now,
            start,
            next: now + step_time,
        };
    }

    /// A reload's policy: kept state, new bounds (a new rollout when it
    /// moves between other components).
    fn update(&self, policy: &Policy) {
        let changed = {
            let mut current = lock(&self.policy);
            let changed = *current != *policy;
            *current = policy.clone();
            changed
        };
        if !changed {
            return;
        }
        {
            let mut state = lock(&self.state);
            *state = if state.from == policy.from && state.to == policy.to {
                refit(state.clone(), policy)
            } else {
                tracing::info!(route = %self.route, "rollout now from `{}` to `{}`: starts again", policy.from, policy.to);
                RouteState::start(&self.route, policy)
            };
            self.weight.set(state.weight);
        }
        self.persist();
        self.new_window();
        self.wake.notify_one();
    }

    /// Closes a window every `step_time`, for the life of the process.
    async fn watch(self: Arc<Self>) {
        while !self.retired.load(Ordering::Relaxed) {
            let next = lock(&self.window).next;
            tokio::select! {
                _ = tokio::time::sleep_until(next.into()) => self.close_window(),
                _ = self.wake.notified() => {}
            }
        }
    }

    /// Ends the watch (see [`Rollouts::retain`]).
    fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Judges the window so far and applies the verdict.
    fn close_window(&self) {
        let reading = self.read();
        let policy = lock(&self.policy).clone();
        let now = Instant::now();
        let mut window = lock(&self.window);
        let figures = reading.since(&window.start, (now - window.started).as_secs_f64());
        let verdict = judge(&policy, &figures);
        let decided = {
            let mut state = lock(&self.state);
            let decided = state
                .on_window(&policy, &verdict, figures, unix_now())
                .cloned();
            if decided.is_some() {
                self.weight.set(state.weight);
            }
            decided
        };
        // A wait extends the window; anything else starts a new one.
        if !matches!(verdict, Verdict::Wait(_)) {
            window.started = now;
            window.start = reading;
        }
        window.next = now + policy.step_time;
        drop(window);
        let Some(decision) = decided else { return };
        let percent = decision.weight_percent;
        match decision.action.as_str() {
            "rollback" => tracing::warn!(
                route = %self.route,
                "rollout of `{}` rolled back to 0 % and held: {}",
                policy.to,
                decision.reason
            ),
            "complete" => {
                tracing::info!(route = %self.route, "rollout of `{}` complete at {percent} %", policy.to)
            }
            _ => tracing::info!(
                route = %self.route,
                "rollout of `{}` advanced to {percent} % (step {} of {}): {} requests, {} errors, {} mirrored, {} mismatches",
                policy.to,
                decision.step + 1,
                policy.steps.len(),
                figures.to_requests,
                figures.to_errors,
                figures.mirrored,
                figures.mismatches
            ),
        }
        self.persist();
    }

    fn command(&self, command: Command) -> Result<(), CommandError> {
        let policy = lock(&self.policy).clone();
        {
            let mut state = lock(&self.state);
            state
                .command(&policy, command, unix_now())
                .map_err(CommandError::Refused)?;
            self.weight.set(state.weight);
            tracing::info!(
                route = %self.route,
                "rollout of `{}`: {} by a command, now {} at {} %",
                policy.to,
                command.name(),
                state.phase.name(),
                f64::from(state.weight) / 100.0
            );
        }
        self.persist();
        self.new_window();
        self.wake.notify_one();
        Ok(())
    }

    fn status(&self) -> Status {
        let policy = lock(&self.policy).clone();
        let reading = self.read();
        let (figures, next) = {
            let window = lock(&self.window);
            let now = Instant::now();
            (
                reading.since(&window.start, (now - window.started).as_secs_f64()),
                window.next.saturating_duration_since(now),
            )
        };
        let state = lock(&self.state).clone();
        Status {
            weight_percent: f64::from(state.weight) / 100.0,
            next_decision_in_seconds: if state.watching() {
                next.as_secs_f64()
            } else {
                0.0
            },
            state,
            steps: policy.steps,
            step_time_seconds: policy.step_time.as_secs_f64(),
            max_error_rate: policy.max_error_rate,
            max_p99_ratio: policy.max_p99_ratio,
            max_mismatch_rate: policy.max_mismatch_rate,
            min_requests: policy.min_requests,
            window: figures,
        }
    }

    fn persist(&self) {
        let state = lock(&self.state).clone();
        if let Err(e) = store::save(&self.file, &state) {
            tracing::error!(route = %self.route, "cannot keep the rollout's state: {e:#}");
        }
    }
}

impl Status {
    /// Whether the rollout has ended (nothing more happens without a
    /// command).
    pub fn settled(&self) -> bool {
        !matches!(self.state.phase, Phase::Progressing | Phase::Paused)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these leaves consistent values (each
    // is replaced whole): go on with them.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
