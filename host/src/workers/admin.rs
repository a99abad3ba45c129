//! The supervisor's admin listener (`serve --workers N --admin-listen`):
//! one address for the whole server, as a single process would have.
//!
//! Each worker serves its own admin endpoints on a loopback port it
//! reports when ready; this listener asks them. `/metrics` is their sum
//! ([`super::merge`]) plus the supervisor's own series, `/readyz` is 200
//! only when every worker is ready (and 503 once the drain began),
//! `/healthz` is the supervisor's. Anything else (the dashboard) is worker
//! 0's page: each worker sees only its share of the traffic.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};

use crate::admin::Answer;
use crate::limits;

/// What the supervisor knows of its workers.
pub struct Board {
    /// Each worker's admin address while it serves.
    admins: Mutex<Vec<Option<SocketAddr>>>,
    draining: AtomicBool,
    restarts: AtomicU64,
}

impl Board {
    /// A board for `workers` workers, none serving yet.
    pub fn new(workers: usize) -> Board {
        Board {
            admins: Mutex::new(vec![None; workers]),
            draining: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
        }
    }

    /// Notes worker `index`'s admin address (`None`: it is not serving).
    pub fn set_admin(&self, index: usize, admin: Option<SocketAddr>) {
        if let Some(slot) = self.lock().get_mut(index) {
            *slot = admin;
        }
    }

    /// Notes that the drain began.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Counts a worker started again after it died.
    pub fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    fn admins(&self) -> Vec<Option<SocketAddr>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<SocketAddr>>> {
        self.admins.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Binds `address` and serves the merged admin endpoints on it.
pub async fn start(address: SocketAddr, board: Arc<Board>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on the admin address `{address}`"))?;
    tracing::info!(
        "admin on http://{}/ (/metrics and /readyz of every worker, /healthz)",
        listener.local_addr()?
    );
    let client = reqwest::Client::builder()
        .timeout(limits::WORKER_SCRAPE_TIMEOUT)
        .no_proxy()
        .build()
        .context("cannot make the admin's HTTP client")?;
    let admin = Arc::new(Supervised { board, client });
    tokio::spawn(crate::admin::serve_answers(listener, move |req| {
        let admin = admin.clone();
        async move { admin.answer(req.uri().path()).await }
    }));
    Ok(())
}

/// The merged admin endpoints.
struct Supervised {
    board: Arc<Board>,
    client: reqwest::Client,
}

impl Supervised {
    async fn answer(&self, path: &str) -> Answer {
        match path {
            "/metrics" => (200, "text/plain; version=0.0.4", self.metrics().await),
            "/healthz" => (200, "text/plain", "ok\n".to_owned()),
            "/readyz" => self.readiness().await,
            other => self.first_workers_page(other).await,
        }
    }

    async fn metrics(&self) -> String {
        let admins = self.board.admins();
        let texts = futures::future::join_all(
            admins
                .iter()
                .flatten()
                .map(|admin| self.get(*admin, "/metrics")),
        )
        .await;
        let texts: Vec<String> = texts
            .into_iter()
            .filter_map(|got| match got {
                Ok((200, text)) => Some(text),
                _ => None,
            })
            .collect();
        let mut out = super::merge::merge(&texts);
        out.push_str(
            "# HELP wasmhost_workers Worker processes, by whether their metrics were read.\n",
        );
        out.push_str("# TYPE wasmhost_workers gauge\n");
        let _ = writeln!(out, "wasmhost_workers{{state=\"serving\"}} {}", texts.len());
        let _ = writeln!(
            out,
            "wasmhost_workers{{state=\"missing\"}} {}",
            admins.len() - texts.len()
        );
        out.push_str(
            "# HELP wasmhost_worker_restarts_total Workers started again after they died.\n",
        );
        out.push_str("# TYPE wasmhost_worker_restarts_total counter\n");
        let _ = writeln!(
            out,
            "wasmhost_worker_restarts_total {}",
            self.board.restarts.load(Ordering::Relaxed)
        );
        out
    }

    async fn readiness(&self) -> Answer {
        if self.board.draining.load(Ordering::Relaxed) {
            return (503, "text/plain", "draining: shutting down\n".to_owned());
        }
        let admins = self.board.admins();
        let answers = futures::future::join_all(admins.iter().map(|admin| async move {
            match admin {
                Some(admin) => self.get(*admin, "/readyz").await,
                None => Ok((503, "not serving (starting)\n".to_owned())),
            }
        }))
        .await;
        let waiting: Vec<String> = answers
            .into_iter()
            .enumerate()
            .filter_map(|(index, answer)| match answer {
                Ok((200, _)) => None,
                Ok((_, why)) => Some(format!("worker {index}: {}", why.trim_end())),
                Err(e) => Some(format!("worker {index}: {e:#}")),
            })
            .collect();
        if waiting.is_empty() {
            (
                200,
                "text/plain",
                format!("ready ({} workers)\n", admins.len()),
            )
        } else {
            (
                503,
                "text/plain",
                format!("not ready: {}\n", waiting.join("; ")),
            )
        }
    }

    async fn first_workers_page(&self, path: &str) -> Answer {
        let Some(admin) = self.board.admins().into_iter().flatten().next() else {
            return (503, "text/plain", "no worker is serving\n".to_owned());
        };
        match self.get(admin, path).await {
            Ok((status, body)) if body.starts_with("<!") => {
                (status, "text/html; charset=utf-8", body)
            }
            Ok((status, body)) => (status, "text/plain", body),
            Err(e) => (502, "text/plain", format!("{e:#}\n")),
        }
    }

    async fn get(&self, admin: SocketAddr, path: &str) -> Result<(u16, String)> {
        let response = self
            .client
            .get(format!("http://{admin}{path}"))
            .send()
            .await
            .with_context(|| format!("cannot reach {admin}"))?;
        let status = response.status().as_u16();
        let body = response.text().await.context("cannot read the answer")?;
        Ok((status, body))
    }
}
