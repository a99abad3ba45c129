//! The front door's own counters: connections and requests in flight,
//! and what each kind of abuse cost the abuser. Rendered on the admin
//! listener beside the app's metrics.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters updated without locks by the accept loop, the connections and
/// their requests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections refused at the limit, every open one being busy.
    pub refused: AtomicU64,
    /// Idle connections closed to make room for new ones.
    pub evicted: AtomicU64,
    /// Connections cut for not sending a complete first request head in
    /// time.
    pub slow_heads: AtomicU64,
    /// TLS handshakes that failed.
    pub tls_failures: AtomicU64,
    /// Requests between head and the end of their response.
    pub in_flight: AtomicU64,
    /// Requests answered with 504 by the front door because the backend
    /// had not answered by the deadline.
    pub deadline_504s: AtomicU64,
    /// Set once shutdown has begun (`/readyz` answers 503 from then on).
    pub draining: AtomicBool,
}

impl Stats {
    /// Prometheus text for these counters.
    pub fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &str, &AtomicU64); 8] = [
            (
                "wasmhost_connections_open",
                "gauge",
                "Client connections open now.",
                &self.open,
            ),
            (
                "wasmhost_connections_accepted_total",
                "counter",
                "Client connections accepted.",
                &self.accepted,
            ),
            (
                "wasmhost_connections_refused_total",
                "counter",
                "Connections refused at the connection limit (every open connection busy).",
                &self.refused,
            ),
            (
                "wasmhost_connections_evicted_total",
                "counter",
                "Idle connections closed to make room at the connection limit.",
                &self.evicted,
            ),
            (
                "wasmhost_connections_slow_head_total",
                "counter",
                "Connections cut for not sending a complete first request head in time.",
                &self.slow_heads,
            ),
            (
                "wasmhost_tls_handshake_failures_total",
                "counter",
                "TLS handshakes that failed.",
                &self.tls_failures,
            ),
            (
                "wasmhost_requests_in_flight",
                "gauge",
                "Requests between their head and the end of their response.",
                &self.in_flight,
            ),
            (
                "wasmhost_request_deadline_total",
                "counter",
                "Requests the front door answered with 504 at the deadline.",
                &self.deadline_504s,
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        out.push_str("# HELP wasmhost_draining 1 once shutdown has begun.\n");
        out.push_str("# TYPE wasmhost_draining gauge\n");
        let _ = writeln!(
            out,
            "wasmhost_draining {}",
            u8::from(self.draining.load(Ordering::Relaxed))
        );
    }
}
