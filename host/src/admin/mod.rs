//! The admin listener, apart from the app's: Prometheus metrics at
//! `/metrics`, liveness at `/healthz` and readiness at `/readyz` — what a
//! load balancer or Kubernetes' probes call.
//!
//! `/healthz` answers 200 while the process serves at all. `/readyz`
//! answers 200 once the app is loaded and every eagerly started container
//! is ready, and 503 (saying why) while one is not, or once shutdown has
//! begun, so a balancer stops sending new requests during the drain.
//!
//! `/rollouts` is the rollout API ([`rollouts`]), behind a bearer token.

pub mod dashboard;
pub mod rollouts;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::backend::{Backend, ComponentStatus, StatusKind};
use crate::frontdoor::stats::Stats;
use crate::metrics::Metrics;
use crate::rollout::Rollouts;

/// What the admin listener reports on.
pub struct Admin {
    /// The app's request counters (carried across reloads).
    pub metrics: Arc<Metrics>,
    /// The front door's counters.
    pub stats: Arc<Stats>,
    /// The app being served (the current version, after reloads).
    pub backend: Arc<dyn Backend>,
    /// The app's rollouts (carried across reloads).
    pub rollouts: Arc<Rollouts>,
    /// What the rollout API asks for; `None`: the API is off.
    pub token: Option<rollouts::Token>,
    /// The counters over time, for the dashboard's charts.
    pub history: Arc<dashboard::History>,
}

/// A response's status, content type and body.
pub type Answer = (u16, &'static str, String);

impl Admin {
    /// The answer to `req` (only its head matters).
    pub fn respond<B>(&self, req: &http::Request<B>) -> Answer {
        let path = req.uri().path();
        if path == "/rollouts" || path.starts_with("/rollouts/") {
            return rollouts::answer(
                &self.rollouts,
                self.token.as_ref(),
                req.method(),
                path,
                req.uri().query(),
                req.headers()
                    .get(http::header::AUTHORIZATION)
                    .map(|v| v.as_bytes()),
            );
        }
        self.answer(path)
    }

    /// The answer for `path`.
    pub fn answer(&self, path: &str) -> Answer {
        match path {
            "/" => (200, "text/html; charset=utf-8", dashboard::render(self)),
            "/metrics" => (200, "text/plain; version=0.0.4", self.render()),
            "/healthz" => (200, "text/plain", "ok\n".to_owned()),
            "/readyz" => self.readiness(),
            _ => (
                404,
                "text/plain",
                "try /, /metrics, /healthz, /readyz or /rollouts\n".to_owned(),
            ),
        }
    }

    fn readiness(&self) -> Answer {
        if self.stats.draining.load(Ordering::Relaxed) {
            return (503, "text/plain", "draining: shutting down\n".to_owned());
        }
        let waiting: Vec<String> = self
            .backend
            .status()
            .into_iter()
            .filter(|status| !status.ready())
            .map(|status| describe(&status))
            .collect();
        if waiting.is_empty() {
            (200, "text/plain", "ready\n".to_owned())
        } else {
            (
                503,
                "text/plain",
                format!("not ready: {}\n", waiting.join(", ")),
            )
        }
    }

    /// The Prometheus text: the app's series, the front door's counters,
    /// instance slots and container states.
    pub fn render(&self) -> String {
        let mut out = self.metrics.render();
        self.stats.render(&mut out);
        render_status(&self.backend.status(), &mut out);
        self.rollouts.render(&mut out);
        out.push_str(
            "# HELP wasmhost_log_lines_dropped_total Log and access lines dropped because their reader fell behind.\n",
        );
        out.push_str("# TYPE wasmhost_log_lines_dropped_total counter\n");
        let _ = writeln!(
            out,
            "wasmhost_log_lines_dropped_total {}",
            crate::logging::dropped_lines()
        );
        out
    }
}

fn describe(status: &ComponentStatus) -> String {
    match &status.kind {
        StatusKind::Container {
            state,
            health: Some(health),
            ..
        } => format!(
            "container `{}` is {state} (health: {health})",
            status.component
        ),
        StatusKind::Container { state, .. } => {
            format!("container `{}` is {state}", status.component)
        }
        StatusKind::Wasm { .. } => format!("component `{}`", status.component),
    }
}

fn render_status(statuses: &[ComponentStatus], out: &mut String) {
    // Components of one app share a pool: count each pool once.
    let mut pools: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for status in statuses {
        if let StatusKind::Wasm {
            pool,
            slots_in_use,
            slots,
        } = status.kind
        {
            pools.insert(pool, (slots_in_use, slots));
        }
    }
    let (in_use, total) = pools
        .values()
        .fold((0, 0), |(u, t), (in_use, slots)| (u + in_use, t + slots));
    out.push_str("# HELP wasmhost_instance_slots Wasm instance slots, in use and in all.\n");
    out.push_str("# TYPE wasmhost_instance_slots gauge\n");
    let _ = writeln!(out, "wasmhost_instance_slots{{state=\"in_use\"}} {in_use}");
    let _ = writeln!(out, "wasmhost_instance_slots{{state=\"total\"}} {total}");
    out.push_str(
        "# HELP wasmhost_container_state 1 for each container's current lifecycle state.\n",
    );
    out.push_str("# TYPE wasmhost_container_state gauge\n");
    for status in statuses {
        if let StatusKind::Container { state, .. } = status.kind {
            let _ = writeln!(
                out,
                "wasmhost_container_state{{component=\"{}\",state=\"{state}\"}} 1",
                crate::metrics::escape(&status.component)
            );
        }
    }
    out.push_str(
        "# HELP wasmhost_container_health 1 for the health of each running container with a health check (starting, healthy, unhealthy).\n",
    );
    out.push_str("# TYPE wasmhost_container_health gauge\n");
    for status in statuses {
        if let StatusKind::Container {
            health: Some(health),
            ..
        } = status.kind
        {
            let _ = writeln!(
                out,
                "wasmhost_container_health{{component=\"{}\",health=\"{health}\"}} 1",
                crate::metrics::escape(&status.component)
            );
        }
    }
}

/// Serves the admin endpoints on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, admin: Arc<Admin>) {
    tokio::spawn(admin.history.clone().sample(admin.metrics.clone()));
    serve_answers(listener, move |req| {
        let answer = admin.respond(&req);
        async move { answer }
    })
    .await
}

/// Serves HTTP/1.1 on `listener`, each request answered by `answer`: the
/// accept loop of every admin listener (a worker supervisor's too).
pub async fn serve_answers<F, Fut>(listener: tokio::net::TcpListener, answer: F)
where
    F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Answer> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!("admin accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let answer = answer(req);
                async move {
                    let (status, content_type, body) = answer.await;
                    http::Response::builder()
                        .status(status)
                        .header("content-type", content_type)
                        .body(Full::new(Bytes::from(body)))
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("admin connection ended with an error: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BoxFuture, RequestBody, RequestContext, ResponseBody};

    struct Fixed(Vec<ComponentStatus>);

    impl Backend for Fixed {
        fn handle(
            &self,
            _req: http::Request<RequestBody>,
            _ctx: RequestContext,
        ) -> BoxFuture<http::Response<ResponseBody>> {
            Box::pin(async { crate::backend::text_response(http::StatusCode::OK, "") })
        }

        fn status(&self) -> Vec<ComponentStatus> {
            self.0.clone()
        }
    }

    fn admin(statuses: Vec<ComponentStatus>) -> Admin {
        Admin {
            metrics: Arc::default(),
            stats: Arc::default(),
            backend: Arc::new(Fixed(statuses)),
            rollouts: Arc::default(),
            token: None,
            history: Arc::default(),
        }
    }

    fn container(state: &'static str, ready: bool) -> ComponentStatus {
        ComponentStatus {
            component: "legacy".into(),
            kind: StatusKind::Container {
                state,
                ready,
                health: None,
            },
        }
    }

    #[test]
    fn readyz_waits_for_an_eager_container_and_says_which() {
        let (status, _, body) = admin(vec![container("starting", false)]).answer("/readyz");
        assert_eq!(status, 503);
        assert!(body.contains("container `legacy` is starting"), "{body}");
        let (status, _, _) = admin(vec![container("running", true)]).answer("/readyz");
        assert_eq!(status, 200);
    }

    #[test]
    fn a_container_whose_health_check_has_not_passed_is_not_ready_and_its_health_is_a_metric() {
        let starting = ComponentStatus {
            component: "legacy".into(),
            kind: StatusKind::Container {
                state: "running",
                ready: false,
                health: Some("starting"),
            },
        };
        let admin = admin(vec![starting]);
        let (status, _, body) = admin.answer("/readyz");
        assert_eq!(status, 503);
        assert!(
            body.contains("container `legacy` is running (health: starting)"),
            "{body}"
        );
        let text = admin.render();
        assert!(
            text.contains(
                "wasmhost_container_health{component=\"legacy\",health=\"starting\"} 1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn readyz_answers_503_once_draining_and_healthz_stays_200() {
        let admin = admin(Vec::new());
        admin.stats.draining.store(true, Ordering::Relaxed);
        assert_eq!(admin.answer("/readyz").0, 503);
        assert_eq!(admin.answer("/healthz").0, 200);
    }

    #[test]
    fn instance_slots_count_each_shared_pool_once() {
        let wasm = |component: &str| ComponentStatus {
            component: component.into(),
            kind: StatusKind::Wasm {
                pool: 7,
                slots_in_use: 3,
                slots: 256,
            },
        };
        let text = admin(vec![wasm("a"), wasm("b"), container("running", true)]).render();
        assert!(
            text.contains("wasmhost_instance_slots{state=\"in_use\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("wasmhost_instance_slots{state=\"total\"} 256\n"),
            "{text}"
        );
        assert!(
            text.contains("wasmhost_container_state{component=\"legacy\",state=\"running\"} 1"),
            "{text}"
        );
    }
}
