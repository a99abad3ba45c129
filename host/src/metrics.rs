//! Per-route, per-component request counters and latency histograms, in
//! Prometheus' text format: what a migration is judged by (the same route
//! served by a container and by a Wasm component, side by side).
//!
//! Latency is time to the response head (first byte), which is what the
//! front door controls; bodies stream afterwards.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Histogram bucket bounds, seconds (Prometheus' defaults plus finer ones
/// at the bottom, where Wasm requests live).
pub const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// One route × component's counters. Updated without a lock: a route's
/// target holds the series of each component it can send to, resolved
/// when the app is assembled, so a request only adds to atomics.
#[derive(Default)]
pub struct Series {
    requests: AtomicU64,
    errors: AtomicU64,
    /// Requests whose latency falls in each bucket (not cumulative; the
    /// rendering sums them), and above the last bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Series {
    /// Records one response.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl Series {
    /// The counters now, for a window's figures (a rollout's judge).
    pub fn snapshot(&self) -> Snapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Snapshot {
            requests: load(&self.requests),
            errors: load(&self.errors),
            buckets: std::array::from_fn(|i| load(&self.buckets[i])),
        }
    }
}

/// A [`Series`] read at one moment; two of them make a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Responses.
    pub requests: u64,
    /// 5xx responses.
    pub errors: u64,
    /// Per bucket of [`BUCKETS`] (and above the last), not cumulative.
    pub buckets: [u64; BUCKETS.len() + 1],
}

impl Snapshot {
    /// What happened between `earlier` and this one.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(earlier.buckets[i])),
        }
    }

    /// The `q` quantile (0..=1) in seconds, interpolated within its bucket
    /// as Prometheus' `histogram_quantile` does; `None` without requests.
    /// Above the last bound it is the last bound: what the histogram can say.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, count) in self.buckets.iter().enumerate() {
            let upto = below + count;
            if (upto as f64) >= rank && *count > 0 {
                let Some(upper) = BUCKETS.get(i) else {
                    return BUCKETS.last().copied();
                };
                let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
                let within = (rank - below as f64) / *count as f64;
                return Some(lower + (upper - lower) * within);
            }
            below = upto;
        }
        BUCKETS.last().copied()
    }
}

/// A mirrored answer that differed, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// The route, as written.
    pub route: String,
    /// The component that got the copy.
    pub component: String,
    /// What differed (`status 200 vs 500, body (12 vs 9 bytes)`).
    pub differences: String,
}

/// The counters of one app.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String), Arc<Series>>>,
    /// Mirrored requests and mismatches, by route and mirror component.
    mirrors: Mutex<BTreeMap<(String, String), (u64, u64)>>,
    /// The latest mismatches, oldest first.
    recent: Mutex<std::collections::VecDeque<Mismatch>>,
}

impl Metrics {
    /// The series of `component` on `route`, created on first use; the
    /// same one for every version of the app (reloads keep counting).
    pub fn series(&self, route: &str, component: &str) -> Arc<Series> {
        let mut series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        series
            .entry((route.to_owned(), component.to_owned()))
            .or_default()
            .clone()
    }

    /// Records one response of `component` on `route` (looking the series
    /// up; the request path uses [`Series::observe`] directly).
    pub fn observe(&self, route: &str, component: &str, status: u16, elapsed: Duration) {
        self.series(route, component).observe(status, elapsed);
    }

    /// Records one mirrored request and whether its answer matched.
    pub fn observe_mirror(&self, route: &str, component: &str, matched: bool) {
        if let Ok(mut mirrors) = self.mirrors.lock() {
            let entry = mirrors
                .entry((route.to_owned(), component.to_owned()))
                .or_default();
            entry.0 += 1;
            if !matched {
                entry.1 += 1;
            }
        }
    }

    /// Keeps `mismatch` among the latest ones (the dashboard shows them).
    pub fn record_mismatch(&self, mismatch: Mismatch) {
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() >= crate::limits::DASHBOARD_MISMATCHES_KEPT {
                recent.pop_front();
            }
            recent.push_back(mismatch);
        }
    }

    /// The latest mismatches, oldest first.
    pub fn recent_mismatches(&self) -> Vec<Mismatch> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every series now, by route and component.
    pub fn snapshots(&self) -> BTreeMap<(String, String), Snapshot> {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        series.into_iter().map(|(k, s)| (k, s.snapshot())).collect()
    }

    /// Mirrored requests and mismatches, by route and mirror component.
    pub fn mirror_totals(&self) -> BTreeMap<(String, String), (u64, u64)> {
        self.mirrors.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Mirrored requests and mismatches so far on `route` to `component`.
    pub fn mirror_counts(&self, route: &str, component: &str) -> (u64, u64) {
        self.mirrors
            .lock()
            .ok()
            .and_then(|m| m.get(&(route.to_owned(), component.to_owned())).copied())
            .unwrap_or_default()
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut out = String::new();
        let labels = |route: &str, component: &str| {
            format!(
                "route=\"{}\",component=\"{}\"",
                escape(route),
                escape(component)
            )
        };
        out.push_str("# HELP wasmhost_requests_total Requests answered, by route and component.\n");
        out.push_str("# TYPE wasmhost_requests_total counter\n");
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        for ((route, component), s) in &series {
            let _ = writeln!(
                out,
                "wasmhost_requests_total{{{}}} {}",
                labels(route, component),
                load(&s.requests)
            );
        }
        out.push_str("# HELP wasmhost_request_errors_total Responses with a 5xx status, by route and component.\n");
        out.push_str("# TYPE wasmhost_request_errors_total counter\n");
        for ((route, component), s) in &series {
            let _ = writeln!(
                out,
                "wasmhost_request_errors_total{{{}}} {}",
                labels(route, component),
                load(&s.errors)
            );
        }
        out.push_str("# HELP wasmhost_request_duration_seconds Time to the response head.\n");
        out.push_str("# TYPE wasmhost_request_duration_seconds histogram\n");
        for ((route, component), s) in &series {
            let l = labels(route, component);
            // Read once, so that the buckets, +Inf and count agree.
            let counts: Vec<u64> = s.buckets.iter().map(load).collect();
            let total: u64 = counts.iter().sum();
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "wasmhost_request_duration_seconds_bucket{{{l},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "wasmhost_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {total}"
            );
            let _ = writeln!(
                out,
                "wasmhost_request_duration_seconds_sum{{{l}}} {}",
                load(&s.sum_nanos) as f64 / 1e9
            );
            let _ = writeln!(
                out,
                "wasmhost_request_duration_seconds_count{{{l}}} {total}"
            );
        }
        let mirrors = self.mirrors.lock().map(|m| m.clone()).unwrap_or_default();
        out.push_str(
            "# HELP wasmhost_mirror_requests_total Requests copied to a mirror component.\n",
        );
        out.push_str("# TYPE wasmhost_mirror_requests_total counter\n");
        for ((route, component), (requests, _)) in &mirrors {
            let _ = writeln!(
                out,
                "wasmhost_mirror_requests_total{{{}}} {requests}",
                labels(route, component)
            );
        }
        out.push_str("# HELP wasmhost_mirror_mismatches_total Mirrored requests whose answer differed from the served one.\n");
        out.push_str("# TYPE wasmhost_mirror_mismatches_total counter\n");
        for ((route, component), (_, mismatches)) in &mirrors {
            let _ = writeln!(
                out,
                "wasmhost_mirror_mismatches_total{{{}}} {mismatches}",
                labels(route, component)
            );
        }
        out
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// A label value escaped for Prometheus' text format.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_p99_is_interpolated_within_its_bucket() {
        let series = Series::default();
        let before = series.snapshot();
        for _ in 0..99 {
            series.observe(200, Duration::from_micros(50));
        }
        series.observe(200, Duration::from_millis(40));
        let window = series.snapshot().since(&before);
        assert_eq!(window.requests, 100);
        // 99 of 100 in the first bucket (0..100 µs): p99 is its bound.
        let p99 = window.quantile(0.99).unwrap();
        assert!((p99 - 0.0001).abs() < 1e-9, "{p99}");
        // The max lands in (25 ms, 50 ms].
        let max = window.quantile(1.0).unwrap();
        assert!(max > 0.025 && max <= 0.05, "{max}");
        assert_eq!(Snapshot::default().quantile(0.99), None);
    }

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        let metrics = Metrics::default();
        metrics.observe("/todos/...", "todo-wasm", 200, Duration::from_micros(300));
        metrics.observe("/todos/...", "todo-wasm", 503, Duration::from_millis(30));
        let text = metrics.render();
        assert!(
            text.contains(
                "wasmhost_requests_total{route=\"/todos/...\",component=\"todo-wasm\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "wasmhost_request_errors_total{route=\"/todos/...\",component=\"todo-wasm\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("le=\"0.0005\"} 1"), "{text}");
        assert!(text.contains("le=\"0.05\"} 2"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2"), "{text}");
    }
}
