//! Start: from the container created ahead if there is one, else from a
//! fresh bundle; then the network namespace (adopted from the container
//! in a user namespace), the watch on its exit, and the wait for its port.

#![forbid(unsafe_code)]

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use futures::FutureExt as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Child;
use tokio::sync::watch;
use tracing::Instrument as _;

use super::health::Check;
use super::state::{Ended, Health};
use super::{Ahead, Lifecycle, Running};
use crate::container::bundle::{Bundle, Recipe};
use crate::container::netns::{self, NetNs};
use crate::container::proxy::Upstream;
use crate::container::rootfs::ContainerRoot;
use crate::container::runtime::protocol::Signal;
use crate::telemetry;

/// How often a starting container is asked whether it is there yet (its
/// init process): the timer's resolution, since every tick of waiting is
/// part of the cold start.
const READY_POLL: Duration = Duration::from_millis(1);

/// How often a starting container's port is tried: finer than tokio's
/// timer, whose 1 ms ticks make a 1 ms sleep last 1–2 ms, so a port that
/// opens just after a try was found up to 2 ms late. A try is one connect
/// refused by the kernel (tens of microseconds), so the poll costs a few
/// percent of a core for the milliseconds a start takes. Only for the
/// first [`PORT_POLL_FINE_FOR`]: a service that takes longer is tried at
/// [`READY_POLL`].
const PORT_POLL: Duration = Duration::from_micros(250);

/// How long a starting container's port is tried every [`PORT_POLL`].
const PORT_POLL_FINE_FOR: Duration = Duration::from_millis(100);

/// The longest pause between two looks for the init process of a
/// container in a user namespace (each look runs the runtime's `list`).
const ADOPT_POLL_MAX: Duration = Duration::from_millis(16);

impl Lifecycle {
    /// Starts a container on a task of its own and moves the state on
    /// when it is ready or failed.
    pub(super) fn spawn_start(&self, ahead: Option<Ahead>) {
        let Some(me) = self.me.upgrade() else { return };
        // Made here, in the request's context: the start is its child in a
        // trace, though it runs on a task of its own.
        let span = tracing::info_span!(target: telemetry::TARGET, "container.start", wasmhost.component = %me.plan.component);
        tokio::spawn(async move {
            // A start that panics is a failed start, not a component left
            // starting for ever.
            let started = AssertUnwindSafe(me.start(ahead).instrument(span))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the start panicked")));
            match started {
                Ok(running) => {
                    if me
                        .transition(|state| state.started(running.clone(), Instant::now()))
                        .is_err()
                    {
                        // Shut down meanwhile: nobody else will stop it.
                        me.terminate(&running).await;
                        return;
                    }
                    if let Some(check) = me.plan.health.clone() {
                        me.watch_health(running.clone(), check);
                    }
                    if let Some(idle) = me.plan.settings.idle_timeout {
                        me.watch_idle(running, idle);
                    }
                }
                Err(e) => {
                    tracing::error!(component = %me.plan.component, "container start failed: {e:#}");
                    let why = Arc::from(format!("{e:#}"));
                    me.transition(|state| state.start_failed(why, Instant::now()));
                }
            }
        });
    }

    /// Root, network namespace and `config.json` of the next container.
    pub(super) fn bundle(&self) -> Result<Bundle> {
        let plan = &self.plan;
        Bundle::build(&Recipe {
            component: &plan.component,
            image: &plan.image,
            settings: &plan.settings,
            state_dir: &plan.state_dir,
            sys: &plan.sys,
        })
    }

    async fn start(&self, ahead: Option<Ahead>) -> Result<Arc<Running>> {
        let started = Instant::now();
        let launched = match ahead {
            Some(Ahead { bundle, created }) => match created.start().await {
                Some(child) => Some((bundle, child, "created ahead")),
                None => {
                    tracing::warn!(component = %self.plan.component, "the container created ahead is gone; starting a new one");
                    self.delete(&bundle.id).await;
                    None
                }
            },
            None => None,
        };
        let (bundle, mut child, how) = match launched {
            Some(launched) => launched,
            None => {
                let bundle = self.bundle()?;
                let child = self.plan.runtime.run(&bundle.id, &bundle.dir).await?;
                (bundle, child, "started")
            }
        };
        let Bundle {
            id,
            dir,
            root,
            netns: premade,
        } = bundle;
        let launched = started.elapsed();
        forward_output(&self.plan.component, child.stdout.take(), "stdout");
        forward_output(&self.plan.component, child.stderr.take(), "stderr");
        let netns = match premade {
            Some(netns) => netns,
            None => match self
                .adopt_network(&id, started, root.read("etc/resolv.conf").as_deref())
                .await
            {
                Ok(netns) => netns,
                Err(e) => {
                    // The helper may be stuck creating it: kill it too.
                    self.signal(&id, Signal::Kill).await;
                    if let Err(e) = child.kill().await {
                        tracing::warn!(component = %self.plan.component, "cannot kill the runtime of container `{id}`: {e}");
                    }
                    self.delete(&id).await;
                    return Err(e);
                }
            },
        };
        let (exit_tx, exited) = watch::channel(None);
        let health = self.plan.health.as_ref().map_or(Health::Unchecked, Check::initial);
        let running = Arc::new(Running::new(
            id.clone(),
            Upstream::new(netns, self.plan.port),
            dir,
            exited,
            health,
        ));
        self.watch_exit(child, root, exit_tx, running.clone());
        let ready = self.wait_ready(&running, started).await;
        // A helper for the next start, now that this one has the CPU no more.
        self.plan.runtime.keep_standby();
        if let Err(e) = ready {
            self.signal(&id, Signal::Kill).await;
            return Err(e);
        }
        tracing::info!(
            component = %self.plan.component,
            "container `{id}` ({how}) ready in {:?} (bundle and runtime {launched:?}, then to port {:?})",
            started.elapsed(),
            started.elapsed() - launched,
        );
        Ok(running)
    }

    /// Reaps the container and cleans up after it, however it ends, then
    /// moves the state on (a crash counts towards the backoff).
    fn watch_exit(
        &self,
        mut child: Child,
        root: ContainerRoot,
        exit_tx: watch::Sender<Option<String>>,
        running: Arc<Running>,
    ) {
        let me = self.me.clone();
        let runtime = self.plan.runtime.clone();
        let component = self.plan.component.clone();
        tokio::spawn(async move {
            let how = match child.wait().await {
                Ok(status) => format!("{status}"),
                Err(e) => format!("wait failed: {e}"),
            };
            match me.upgrade() {
                Some(lifecycle) => lifecycle.delete(&running.id).await,
                // The component is gone: still no container left behind.
                None => {
                    if let Err(e) = runtime.delete(&running.id).await {
                        if !e.is_not_found() {
                            tracing::warn!(%component, "cannot delete container `{}`: {e}", running.id);
                        }
                    }
                }
            }
            drop(root);
            exit_tx.send_replace(Some(how.clone()));
            let Some(lifecycle) = me.upgrade() else {
                return;
            };
            let ended = lifecycle.transition(|state| state.ended(&running, &how, Instant::now()));
            if ended == Ended::Crashed {
                tracing::warn!(%component, "container `{}` exited: {how}", running.id);
            }
        });
    }

    /// The network namespace container `id` made for itself, once its
    /// init process is there, with its way out when it has one
    /// (`image_resolv_conf`: the image's `/etc/resolv.conf`, if it has one).
    async fn adopt_network(
        &self,
        id: &str,
        started: Instant,
        image_resolv_conf: Option<&str>,
    ) -> Result<NetNs> {
        let ready_timeout = self.plan.settings.ready_timeout;
        // Each look runs the runtime's `list`: back off from the timer's
        // resolution rather than start a process every millisecond.
        let mut pause = READY_POLL;
        loop {
            if let Some(pid) = self.plan.runtime.init_pid(id).await? {
                if netns::is_own(pid) {
                    let mut netns = NetNs::adopt(id, pid, self.plan.sys.clone())?;
                    if self.plan.settings.outbound {
                        let userns = PathBuf::from(format!("/proc/{pid}/ns/user"));
                        netns
                            .open_outbound(
                                id,
                                &self.plan.settings,
                                Some(&userns),
                                image_resolv_conf,
                            )
                            .context("outbound network")?;
                    }
                    return Ok(netns);
                }
            }
            if started.elapsed() > ready_timeout {
                bail!(
                    "container `{id}` had no network namespace of its own after {ready_timeout:?}"
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(ADOPT_POLL_MAX);
        }
    }

    async fn wait_ready(&self, running: &Running, started: Instant) -> Result<()> {
        let port = running.upstream.port();
        let ready_timeout = self.plan.settings.ready_timeout;
        loop {
            if let Some(how) = running.exited.borrow().clone() {
                bail!("the container exited ({how}) before listening on port {port}");
            }
            if running.upstream.connect().await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > ready_timeout {
                bail!("the container did not listen on port {port} within {ready_timeout:?}");
            }
            if started.elapsed() < PORT_POLL_FINE_FOR {
                // Below the timer's resolution: a blocking thread's sleep.
                let _ = tokio::task::spawn_blocking(|| std::thread::sleep(PORT_POLL)).await;
            } else {
                tokio::time::sleep(READY_POLL).await;
            }
        }
    }
}

/// Lines of the container's output into the host log.
fn forward_output<R>(id: &Arc<str>, pipe: Option<R>, stream: &'static str)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let Some(pipe) = pipe else { return };
    let id = id.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(target: "wasmhost::container", "[{id} {stream}] {line}");
        }
    });
}
