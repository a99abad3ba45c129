//! Health checks, one concept over two kinds of probe:
//!
//! - the manifest's HTTP check (`health = { path = "/healthz", interval =
//!   "5s" }`, `run --health-path`): `GET path`, as Kubernetes' `httpGet`
//!   probe: a 2xx or 3xx answer within `timeout` is healthy. A container
//!   with it is healthy from its start (waiting for its port was the first
//!   check);
//! - the image's HEALTHCHECK ([`ImageHealthcheck`]), as Docker runs it: the
//!   command executed inside the running container ([`OciRuntime::exec`]),
//!   exit 0 healthy, anything else (or running past `timeout`: killed)
//!   not. Until its first success the container is `starting` (not ready);
//!   failures within the start period do not count, and checks come every
//!   `start_interval` then.
//!
//! The manifest's check wins when both are given (the operator's word over
//! the image's); `healthcheck = false` (`run --no-healthcheck`) turns the
//! image's off. Either way, after `retries` failures in a row the container
//! is unhealthy: not ready (`/readyz`, the metrics) and stopped as
//! `docker restart` stops it (its stop signal, SIGKILL after `stop_grace`),
//! so it restarts with the crash backoff.
//!
//! [`OciRuntime::exec`]: crate::container::runtime::OciRuntime::exec

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::state::{Health, Live as _};
use super::{Lifecycle, Running};
use crate::container::healthcheck::ImageHealthcheck;
use crate::container::image::ImageConfig;
use crate::container::proxy::Upstream;
use crate::container::runtime::exec::{ExecAs, Ran};
use crate::container::settings::Settings;

/// A container's health check, whichever kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    probe: Probe,
    interval: Duration,
    timeout: Duration,
    start_period: Duration,
    start_interval: Duration,
    retries: u32,
}

/// What one check does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Probe {
    /// `GET path` on the container's port.
    Http { path: String },
    /// The command run inside the container.
    Command { command: Vec<String> },
}

impl Check {
    /// The check a component runs: the manifest's HTTP check if given,
    /// else the image's HEALTHCHECK unless turned off; a malformed one is
    /// left out with a warning (the image still runs).
    pub fn choose(component: &str, settings: &Settings, image: &ImageConfig) -> Option<Self> {
        let declared = image.healthcheck();
        if let Some(health) = &settings.health {
            if matches!(declared, Ok(Some(_))) {
                tracing::info!(%component, "the component's HTTP health check replaces the image's HEALTHCHECK");
            }
            return Some(Self {
                probe: Probe::Http {
                    path: health.path.clone(),
                },
                interval: health.interval,
                timeout: health.timeout,
                start_period: Duration::ZERO,
                start_interval: health.interval,
                retries: health.retries.max(1),
            });
        }
        match declared {
            Ok(Some(_)) if settings.healthcheck && !exec_keeps_user_namespace(settings) => {
                tracing::warn!(
                    %component,
                    "the image's HEALTHCHECK is not run: youki's exec cannot join a user namespace \
                     (use the embedded runtime, runc or crun, or an HTTP `health`)"
                );
                None
            }
            Ok(Some(check)) if settings.healthcheck => Some(Self::from_image(check)),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(%component, "{e}: the container runs without a health check");
                None
            }
        }
    }

    fn from_image(check: ImageHealthcheck) -> Self {
        Self {
            probe: Probe::Command {
                command: check.command,
            },
            interval: check.interval,
            timeout: check.timeout,
            start_period: check.start_period,
            start_interval: check.start_interval,
            retries: check.retries.max(1),
        }
    }

    /// A new container's health before its first check: an image's check
    /// must pass first (Docker's `starting`); the HTTP check's port was
    /// just seen answering.
    pub fn initial(&self) -> Health {
        match self.probe {
            Probe::Http { .. } => Health::Healthy,
            Probe::Command { .. } => Health::Starting,
        }
    }

    /// How long to wait for the next check, `since_start` after the
    /// container's start, as moby's `monitor` decides: the interval once
    /// the start period is over; within it, at most what is left of it,
    /// and the start interval while `starting`.
    fn pause(&self, since_start: Duration, health: Health) -> Duration {
        let Some(left) = self
            .start_period
            .checked_sub(since_start)
            .filter(|d| !d.is_zero())
        else {
            return self.interval;
        };
        if left < self.interval {
            left
        } else if health == Health::Starting {
            self.start_interval
        } else {
            self.interval
        }
    }

    /// Whether a failure of a check begun `since_start` after the start
    /// counts towards `retries`: not within the start period before a
    /// first success (moby's `handleProbeResult`).
    fn failure_counts(&self, since_start: Duration, health: Health) -> bool {
        !(health == Health::Starting && since_start < self.start_period)
    }

    /// What the log calls it.
    fn what(&self) -> String {
        match &self.probe {
            Probe::Http { path } => path.clone(),
            Probe::Command { command } => command.join(" "),
        }
    }
}

/// Whether a command run inside by `settings.runtime` joins the
/// container's user namespace: runc and crun join every namespace, and so
/// does the embedded runtime (`runtime::enter`, as runc's `nsexec`);
/// youki's exec is libcontainer's tenant, which joins all but the user
/// namespace, so its command would run with host ids.
fn exec_keeps_user_namespace(settings: &Settings) -> bool {
    !settings.user_namespace || settings.runtime != "youki"
}

impl Lifecycle {
    /// Checks `running` until it exits; kills it once unhealthy.
    pub(super) fn watch_health(&self, running: Arc<Running>, check: Check) {
        let me = self.me.clone();
        let started = Instant::now();
        tokio::spawn(async move {
            let mut failures = 0;
            loop {
                tokio::time::sleep(check.pause(started.elapsed(), running.health())).await;
                if running.has_exited() {
                    return;
                }
                let Some(lifecycle) = me.upgrade() else {
                    return;
                };
                let began = started.elapsed();
                let result = lifecycle.probe(&running, &check).await;
                if running.has_exited() {
                    return;
                }
                let component = &lifecycle.plan.component;
                let health = running.health();
                match result {
                    Ok(()) => {
                        failures = 0;
                        if health == Health::Starting {
                            tracing::info!(%component, "container `{}` is healthy", running.id);
                        }
                        running.set_health(Health::Healthy);
                    }
                    Err(why) if !check.failure_counts(began, health) => {
                        tracing::info!(%component, "container `{}` health check of `{}` failed within its start period: {why}", running.id, check.what());
                    }
                    Err(why) => {
                        failures += 1;
                        tracing::warn!(%component, "container `{}` health check {failures}/{} of `{}` failed: {why}", running.id, check.retries, check.what());
                    }
                }
                if failures >= check.retries {
                    tracing::warn!(%component, "container `{}` is unhealthy: restarting it", running.id);
                    running.set_health(Health::Unhealthy);
                    // As `docker restart` or a failed liveness probe: the
                    // stop signal, SIGKILL after the grace. Its end is a
                    // crash (the state is still running): the backoff.
                    lifecycle.terminate(&running).await;
                    return;
                }
            }
        });
    }

    /// One check of `running`: `Err(why)` unless healthy.
    async fn probe(&self, running: &Running, check: &Check) -> Result<(), String> {
        match &check.probe {
            Probe::Http { path } => {
                tokio::time::timeout(check.timeout, probe_http(&running.upstream, path))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {:?}", check.timeout)))
            }
            Probe::Command { command } => self.probe_command(running, command, check.timeout).await,
        }
    }

    /// The command run inside `running` as its own process runs (user,
    /// working directory: its bundle's `config.json`).
    async fn probe_command(
        &self,
        running: &Running,
        command: &[String],
        timeout: Duration,
    ) -> Result<(), String> {
        let exec_as = ExecAs::of_bundle(&running.bundle_dir).map_err(|e| format!("{e:#}"))?;
        let pid_file = running.bundle_dir.join("health.pid");
        let ran = self
            .plan
            .runtime
            .exec(&running.id, &exec_as, command, &pid_file, timeout)
            .await
            .map_err(|e| e.to_string())?;
        match ran {
            Ran::Exited { code: 0, .. } => Ok(()),
            Ran::Exited { code, output } => {
                Err(format!("exit code {code}, output {:?}", output.trim()))
            }
            Ran::TimedOut { output } => Err(format!(
                "still running after {timeout:?} (killed), output {:?}",
                output.trim()
            )),
        }
    }
}

/// One `GET path` on a fresh connection; `Err(why)` unless 2xx or 3xx.
async fn probe_http(upstream: &Upstream, path: &str) -> Result<(), String> {
    let mut stream = upstream
        .connect()
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: wasmhost-health\r\n\r\n");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn image_check(start_period: u64) -> Check {
        Check::from_image(ImageHealthcheck {
            command: vec!["true".into()],
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            start_period: Duration::from_secs(start_period),
            start_interval: Duration::from_secs(5),
            retries: 3,
        })
    }

    #[test]
    fn checks_come_every_start_interval_while_starting_then_every_interval() {
        let check = image_check(60);
        let s = Duration::from_secs;
        assert_eq!(check.pause(s(0), Health::Starting), s(5));
        assert_eq!(check.pause(s(0), Health::Healthy), s(30));
        // What is left of the start period, when less than an interval.
        assert_eq!(check.pause(s(50), Health::Healthy), s(10));
        assert_eq!(check.pause(s(60), Health::Starting), s(30));
        assert_eq!(image_check(0).pause(s(0), Health::Starting), s(30));
    }

    #[test]
    fn failures_in_the_start_period_count_only_after_a_first_success() {
        let check = image_check(10);
        let s = Duration::from_secs;
        assert!(!check.failure_counts(s(9), Health::Starting));
        assert!(check.failure_counts(s(9), Health::Healthy));
        assert!(check.failure_counts(s(10), Health::Starting));
    }

    fn image(healthcheck: &str) -> ImageConfig {
        ImageConfig::parse(
            format!(
                r#"{{"config":{{"Healthcheck":{healthcheck}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn the_manifests_http_check_wins_and_the_images_can_be_turned_off() {
        let failing = image(r#"{"Test":["CMD-SHELL","exit 1"]}"#);
        let from_image = Check::choose("c", &Settings::default(), &failing).unwrap();
        assert_eq!(from_image.what(), "/bin/sh -c exit 1");
        assert_eq!(from_image.initial(), Health::Starting);
        let off = Settings {
            healthcheck: false,
            ..Settings::default()
        };
        assert_eq!(Check::choose("c", &off, &failing), None);
        let http = Settings {
            health: Some(crate::container::settings::Health {
                path: "/healthz".into(),
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(1),
                retries: 2,
            }),
            ..off
        };
        let chosen = Check::choose("c", &http, &failing).unwrap();
        assert_eq!(chosen.what(), "/healthz");
        assert_eq!(chosen.initial(), Health::Healthy);
        // In a user namespace, under every runtime but youki (whose exec
        // would run it with host ids).
        let user_ns = Settings {
            user_namespace: true,
            ..Settings::default()
        };
        assert_eq!(user_ns.runtime, "embedded");
        assert!(Check::choose("c", &user_ns, &failing).is_some());
        for runtime in ["runc", "crun"] {
            let other = Settings {
                runtime: runtime.into(),
                ..user_ns.clone()
            };
            assert!(Check::choose("c", &other, &failing).is_some(), "{runtime}");
        }
        let youki = Settings {
            runtime: "youki".into(),
            ..user_ns
        };
        assert_eq!(Check::choose("c", &youki, &failing), None);
        // NONE, and a malformed check: none, and the image still runs.
        assert_eq!(
            Check::choose("c", &Settings::default(), &image(r#"{"Test":["NONE"]}"#)),
            None
        );
        assert_eq!(
            Check::choose("c", &Settings::default(), &image(r#"{"Test":["PING"]}"#)),
            None
        );
    }
}
