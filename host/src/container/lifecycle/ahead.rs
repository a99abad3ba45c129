//! Create ahead: where a cold start is expected next (a lazy component
//! just made, a container just stopped for idleness), the next container
//! is created in the background if the runtime can (the embedded one), so
//! its start only starts the workload. A container created ahead that is
//! not wanted (a start or a shutdown came first) is discarded: its helper
//! deletes it, then the runtime is asked to make sure.

#![forbid(unsafe_code)]

use super::state::State;
use super::{Ahead, Lifecycle};

impl Lifecycle {
    /// Creates the next container now, in the background.
    pub(crate) fn create_ahead(&self) {
        let me = self.me.clone();
        tokio::spawn(async move {
            let Some(lifecycle) = me.upgrade() else {
                return;
            };
            let stopped = matches!(
                *lifecycle.state.borrow(),
                State::Stopped {
                    failures: 0,
                    retry_at: None,
                    ..
                }
            );
            if !stopped || !lifecycle.plan.runtime.creates_ahead() {
                return;
            }
            let component = lifecycle.plan.component.clone();
            let bundle = match lifecycle.bundle() {
                Ok(bundle) => bundle,
                Err(e) => {
                    tracing::warn!(%component, "cannot prepare the next container: {e:#}");
                    return;
                }
            };
            let created = match lifecycle
                .plan
                .runtime
                .create_ahead(&bundle.id, &bundle.dir)
                .await
            {
                Ok(Some(created)) => created,
                // This runtime cannot: the bundle goes, the start makes
                // another.
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(%component, "cannot create the next container ahead: {e:#}");
                    return;
                }
            };
            let ahead = Ahead { bundle, created };
            if let Err(ahead) = lifecycle.transition(|state| state.created_ahead(ahead)) {
                tracing::debug!(%component, "the container created ahead `{}` is not needed", ahead.bundle.id);
                lifecycle.discard(ahead).await;
            }
        });
    }

    /// Deletes a container created ahead (its helper does at end of input;
    /// the runtime's `delete` makes sure), then its root and namespace go.
    pub(super) async fn discard(&self, ahead: Ahead) {
        let Ahead { bundle, created } = ahead;
        created.discard().await;
        self.delete(&bundle.id).await;
        drop(bundle);
    }
}
