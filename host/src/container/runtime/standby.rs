//! Work done before it is asked for, so a cold start pays for less:
//!
//! - a helper started ahead ([`keep`]): executed already, waiting on stdin
//!   for its [`Order`]; the next start hands it one ([`hand_over`]) and
//!   does not wait for an exec;
//! - a container created ahead ([`Created`]): a helper told to create it
//!   now and start it at the word [`Word::Start`]; dropped or discarded,
//!   the helper deletes it.
//!
//! Only the embedded runtime's helper running from its sealed mount does
//! either (see [`super::OciRuntime::create_ahead`]).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, ChildStdin};

use super::protocol::{Order, Word};

/// How long a discarded container's helper gets to delete it and exit
/// before it is killed.
const DISCARD_GRACE: Duration = Duration::from_secs(5);

/// The embedded runtime's helper started ahead, waiting for its order,
/// with the state directory it was started for. It exits at end of input,
/// so it goes when wasmhost does, however wasmhost ends (a static is never
/// dropped: that, not `kill_on_drop`, is what ends it). While a helper is
/// being started the slot stays locked, so a start that comes meanwhile
/// waits for that helper instead of executing one of its own.
static STANDBY: tokio::sync::Mutex<Option<(PathBuf, Child)>> = tokio::sync::Mutex::const_new(None);

/// The helper waiting for runtime state directory `root`, if any (waiting
/// for one being started).
pub async fn take(root: &Path) -> Option<Child> {
    STANDBY
        .lock()
        .await
        .take_if(|(waiting_for, _)| waiting_for == root)
        .map(|(_, helper)| helper)
}

/// Makes sure a helper waits for `root`, started by `spawn` if none does.
/// Returns at once: the spawn (a fork and exec the caller would otherwise
/// wait for, milliseconds on a busy machine) runs on a blocking thread
/// while the caller prepares the container's bundle. Call it from within
/// the tokio runtime.
pub fn keep(root: &Path, spawn: impl FnOnce() -> std::io::Result<Child> + Send + 'static) {
    // Locked: a helper is being started or handed over right now.
    let Ok(mut standby) = STANDBY.try_lock() else {
        return;
    };
    if standby.is_some() {
        return;
    }
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || match spawn() {
        Ok(helper) => *standby = Some((root, helper)),
        Err(e) => tracing::warn!("cannot start the runtime helper ahead: {e}"),
    });
}

/// Gives the waiting `helper` its order; `None` if it is gone.
pub async fn hand_over(mut helper: Child, order: &Order) -> Option<Child> {
    if !matches!(helper.try_wait(), Ok(None)) {
        return None;
    }
    let mut stdin = helper.stdin.take()?;
    match stdin.write_all(order.to_line().as_bytes()).await {
        Ok(()) => Some(helper),
        Err(e) => {
            tracing::debug!("the runtime helper started ahead is gone: {e}");
            None
        }
    }
}

/// A container created ahead, its helper waiting for the word to start it.
pub struct Created {
    helper: Child,
    stdin: ChildStdin,
}

impl Created {
    /// Gives a fresh standby `helper` an order to create a container and
    /// wait.
    pub async fn order(mut helper: Child, order: &Order) -> Result<Self> {
        let mut stdin = helper.stdin.take().context("the helper has no stdin")?;
        stdin
            .write_all(order.to_line().as_bytes())
            .await
            .context("cannot give the runtime helper its order")?;
        Ok(Self { helper, stdin })
    }

    /// Starts it; the helper is then the container's, as from
    /// [`super::OciRuntime::run`]. `None` if the helper is gone (the
    /// creation failed, or it was killed).
    pub async fn start(mut self) -> Option<Child> {
        if !matches!(self.helper.try_wait(), Ok(None)) {
            return None;
        }
        self.stdin
            .write_all(Word::Start.to_line().as_bytes())
            .await
            .ok()?;
        Some(self.helper)
    }

    /// Deletes it: end of input tells the helper to, then it exits (or is
    /// killed after a grace period, which is logged).
    pub async fn discard(self) {
        let Created { mut helper, stdin } = self;
        drop(stdin);
        match tokio::time::timeout(DISCARD_GRACE, helper.wait()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("cannot wait for the runtime helper: {e}"),
            Err(_) => {
                tracing::warn!(
                    "the runtime helper of a discarded container did not exit in {DISCARD_GRACE:?}: killing it"
                );
                if let Err(e) = helper.kill().await {
                    tracing::warn!("cannot kill the runtime helper: {e}");
                }
            }
        }
    }
}
