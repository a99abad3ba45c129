//! Stop: the stop signal (the image's `StopSignal`, else SIGTERM), then
//! SIGKILL after the grace period, and the end waited for. Used by the
//! idle watch (after which the next container is created ahead) and by
//! shutdown.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::{Lifecycle, Running};
use crate::container::runtime::protocol::Signal;

/// How long a container gets to end after SIGKILL before the stop gives
/// up on it (and says so).
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Lifecycle {
    /// Stops `running` if it is still the running container: refused (and
    /// nothing done) otherwise.
    async fn stop(&self, running: &Arc<Running>) -> bool {
        if self.transition(|state| state.stop(running)).is_err() {
            return false;
        }
        self.terminate(running).await;
        true
    }

    /// The stop signal, then SIGKILL after the grace period; waits for
    /// the end.
    pub(super) async fn terminate(&self, running: &Running) {
        let id = &running.id;
        let grace = self.plan.settings.stop_grace;
        let mut exited = running.exited.clone();
        let stop = self.plan.stop_signal;
        self.signal(id, stop).await;
        let ended = tokio::time::timeout(grace, exited.wait_for(Option::is_some))
            .await
            .is_ok();
        if !ended {
            tracing::warn!(component = %self.plan.component, "container `{id}` ignored {stop} for {grace:?}: SIGKILL");
            self.signal(id, Signal::Kill).await;
            // Its end, or the stop gives up (said below).
            let _ = tokio::time::timeout(KILL_WAIT, exited.wait_for(Option::is_some)).await;
        }
        let how = exited.borrow().clone();
        match how {
            Some(how) => {
                tracing::info!(component = %self.plan.component, "container `{id}` stopped ({how})")
            }
            None => {
                tracing::error!(component = %self.plan.component, "container `{id}` did not stop")
            }
        }
    }

    /// Stops `running` once it has had no request for `idle`, then creates
    /// the next container ahead for the cold start that follows.
    pub(super) fn watch_idle(&self, running: Arc<Running>, idle: Duration) {
        let me = self.me.clone();
        tokio::spawn(async move {
            let tick = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
            loop {
                tokio::time::sleep(tick).await;
                if running.exited.borrow().is_some() {
                    return;
                }
                if running.idle_for().is_some_and(|quiet| quiet >= idle) {
                    let Some(lifecycle) = me.upgrade() else {
                        return;
                    };
                    tracing::info!(component = %lifecycle.plan.component, "container idle for {idle:?}: stopping");
                    if lifecycle.stop(&running).await {
                        lifecycle.create_ahead();
                    }
                    return;
                }
            }
        });
    }
}
