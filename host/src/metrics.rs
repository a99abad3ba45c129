//! Per-route, per-component request counters and latency histograms, in
//! Prometheus' text format: what a migration is judged by (the same route
//! served by a container and by a Wasm component, side by side).
//!
//! Latency is time to the response head (first byte), which is what the
//! front door controls; bodies stream afterwards.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket bounds, seconds (Prometheus' defaults plus finer ones
/// at the bottom, where Wasm requests live).
pub const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Default, Clone)]
struct Series {
    requests: u64,
    errors: u64,
    buckets: Vec<u64>,
    sum: f64,
}

/// The counters of one app.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String), Series>>,
    /// Mirrored requests and mismatches, by route and mirror component.
    mirrors: Mutex<BTreeMap<(String, String), (u64, u64)>>,
}

/// One series' figures, for callers that compare backends.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Route as written.
    pub route: String,
    /// Component id.
    pub component: String,
    /// Requests answered.
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
    /// Sum of latencies, seconds.
    pub sum_seconds: f64,
}

impl Metrics {
    /// Records one response of `component` on `route`.
    pub fn observe(&self, route: &str, component: &str, status: u16, elapsed: Duration) {
        let Ok(mut series) = self.series.lock() else {
            return;
        };
        let entry = series
            .entry((route.to_owned(), component.to_owned()))
            .or_insert_with(|| Series {
                buckets: vec![0; BUCKETS.len()],
                ..Series::default()
            });
        let seconds = elapsed.as_secs_f64();
        entry.requests += 1;
        if status >= 500 {
            entry.errors += 1;
        }
        entry.sum += seconds;
        for (count, bound) in entry.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= *bound {
                *count += 1;
            }
        }
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

    /// Every series.
    pub fn snapshot(&self) -> Vec<Snapshot> {
        let Ok(series) = self.series.lock() else {
            return Vec::new();
        };
        series
            .iter()
            .map(|((route, component), s)| Snapshot {
                route: route.clone(),
                component: component.clone(),
                requests: s.requests,
                errors: s.errors,
                sum_seconds: s.sum,
            })
            .collect()
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let series = match self.series.lock() {
            Ok(series) => series.clone(),
            Err(_) => return String::new(),
        };
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
        for ((route, component), s) in &series {
            let _ = writeln!(
                out,
                "wasmhost_requests_total{{{}}} {}",
                labels(route, component),
                s.requests
            );
        }
        out.push_str("# HELP wasmhost_request_errors_total Responses with a 5xx status, by route and component.\n");
        out.push_str("# TYPE wasmhost_request_errors_total counter\n");
        for ((route, component), s) in &series {
            let _ = writeln!(
                out,
                "wasmhost_request_errors_total{{{}}} {}",
                labels(route, component),
                s.errors
            );
        }
        out.push_str("# HELP wasmhost_request_duration_seconds Time to the response head.\n");
        out.push_str("# TYPE wasmhost_request_duration_seconds histogram\n");
        for ((route, component), s) in &series {
            let l = labels(route, component);
            for (bound, count) in BUCKETS.iter().zip(&s.buckets) {
                let _ = writeln!(
                    out,
                    "wasmhost_request_duration_seconds_bucket{{{l},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "wasmhost_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                s.requests
            );
            let _ = writeln!(
                out,
                "wasmhost_request_duration_seconds_sum{{{l}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "wasmhost_request_duration_seconds_count{{{l}}} {}",
                s.requests
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

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `/metrics` (and `/healthz`) on `listener` until the process
/// ends: the admin address, kept apart from the app's.
pub async fn serve_admin(listener: tokio::net::TcpListener, metrics: std::sync::Arc<Metrics>) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (status, content_type, body) = match req.uri().path() {
                        "/metrics" => (200, "text/plain; version=0.0.4", metrics.render()),
                        "/healthz" => (200, "text/plain", "ok\n".to_owned()),
                        _ => (404, "text/plain", "try /metrics\n".to_owned()),
                    };
                    http::Response::builder()
                        .status(status)
                        .header("content-type", content_type)
                        .body(Full::new(bytes::Bytes::from(body)))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
