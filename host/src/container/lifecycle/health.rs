//! Health checks (`health = { path = "/healthz", interval = "5s" }`):
//! while a container runs, its `path` is asked for every `interval`, as
//! Kubernetes' `httpGet` probe does it: a 2xx or 3xx answer within
//! `timeout` is healthy. After `retries` failures in a row the container
//! is unhealthy: not ready (`/readyz`, the metrics' state) and killed, so
//! it restarts with the crash backoff.

#![forbid(unsafe_code)]

use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::state::Live as _;
use super::{Lifecycle, Running};
use crate::container::proxy::Upstream;
use crate::container::runtime::protocol::Signal;
use crate::container::settings::Health;

impl Lifecycle {
    /// Checks `running` every `health.interval` until it exits; kills it
    /// once unhealthy.
    pub(super) fn watch_health(&self, running: Arc<Running>, health: Health) {
        let me = self.me.clone();
        tokio::spawn(async move {
            let mut failures = 0;
            loop {
                tokio::time::sleep(health.interval).await;
                if running.has_exited() {
                    return;
                }
                let answer =
                    tokio::time::timeout(health.timeout, probe(&running.upstream, &health.path))
                        .await
                        .unwrap_or_else(|_| Err(format!("no answer within {:?}", health.timeout)));
                let Some(lifecycle) = me.upgrade() else {
                    return;
                };
                match answer {
                    Ok(()) => failures = 0,
                    Err(why) => {
                        failures += 1;
                        tracing::warn!(component = %lifecycle.plan.component, "container `{}` health check {failures}/{} of `{}` failed: {why}", running.id, health.retries, health.path);
                    }
                }
                if failures >= health.retries {
                    tracing::warn!(component = %lifecycle.plan.component, "container `{}` is unhealthy: restarting it", running.id);
                    running.mark_unhealthy();
                    lifecycle.signal(&running.id, Signal::Kill).await;
                    return;
                }
            }
        });
    }
}

/// One `GET path` on a fresh connection; `Err(why)` unless 2xx or 3xx.
async fn probe(upstream: &Upstream, path: &str) -> Result<(), String> {
    let mut stream = upstream.connect().await.map_err(|e| format!("cannot connect: {e}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: wasmhost-health\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut head = [0u8; 32];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..]).await {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(format!("cannot read: {e}")),
        }
    }
    let status = std::str::from_utf8(&head[..read])
        .ok()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| "no HTTP answer".to_owned())?;
    match status {
        200..=399 => Ok(()),
        other => Err(format!("answered {other}")),
    }
}
