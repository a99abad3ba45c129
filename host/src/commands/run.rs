//! `wasmhost run IMAGE --port P`: one container image behind the front
//! door, in its own namespaces, reached through its private network
//! namespace.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::Parser;

use super::parse::{DurationArg, SizeArg};
use super::RegistryArgs;
use crate::backend::Backend;
use crate::container::backend::ContainerBackend;
use crate::container::capabilities;
use crate::container::image::PreparedImage;
use crate::container::settings::{Cpus, Health, Settings, Start, DEFAULT_RUNTIME};
use crate::limits;

use super::front_door::FrontDoorArgs;
use crate::admin::Admin;
use crate::frontdoor::{self, Stopped};
use crate::oci::media::Kind;
use crate::oci::progress::Progress;
use crate::oci::pull;
use crate::shutdown::Shutdown;
use crate::volume::Volume;

/// Run a container image and serve its port over HTTP.
#[derive(Debug, Parser)]
pub struct RunCommand {
    /// The image: `registry/repository:tag`, `…@sha256:…`, or `oci:DIR[:TAG]`
    /// (an OCI image layout, as `wasmhost image build` writes).
    pub image: String,

    /// The port the service listens on inside the container [default: the
    /// image's only exposed TCP port].
    #[arg(long)]
    pub port: Option<u16>,

    /// Listener, limits, TLS, access log, admin listener.
    #[command(flatten)]
    pub front: FrontDoorArgs,

    /// The OCI runtime that runs the bundle: `embedded` (youki's
    /// libcontainer, in a helper process), or an installed runc, crun or
    /// youki.
    #[arg(long, default_value = DEFAULT_RUNTIME)]
    pub oci_runtime: String,

    /// Memory limit of the container (cgroup).
    #[arg(long, default_value_t = SizeArg(limits::CONTAINER_MEMORY_LIMIT))]
    pub memory_limit: SizeArg,

    /// Most processes and threads in the container.
    #[arg(long, default_value_t = limits::CONTAINER_PIDS_LIMIT)]
    pub pids_limit: i64,

    /// CPUs the container may use (0.5 = half a core).
    #[arg(long, default_value_t = Cpus(limits::CONTAINER_MILLICPUS))]
    pub cpus: Cpus,

    /// Environment variable for the container (`NAME=value`). Repeatable.
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub environment: Vec<(String, String)>,

    /// Mount a host directory into the container: `HOST:PATH[:ro]`.
    /// Repeatable.
    #[arg(long = "volume", short = 'v', value_name = "HOST:PATH[:ro]")]
    pub volumes: Vec<String>,

    /// Run in a user namespace: ids 0-65535 inside are host ids
    /// 1000000000-1000065535, so root inside is nobody outside. The image's
    /// files keep their host owners (they show as `nobody` inside:
    /// readable, not writable).
    #[arg(long)]
    pub user_namespace: bool,

    /// Add a capability to Docker's default set for root in the container
    /// (`NET_ADMIN` or `CAP_NET_ADMIN`; `ALL`). Repeatable.
    #[arg(long, value_name = "CAPABILITY", value_parser = capabilities::canonical)]
    pub cap_add: Vec<String>,

    /// Take a capability from Docker's default set (`ALL`: every one).
    /// Repeatable.
    #[arg(long, value_name = "CAPABILITY", value_parser = capabilities::canonical)]
    pub cap_drop: Vec<String>,

    /// Mount the image's root filesystem read-only (volumes keep their own
    /// mode).
    #[arg(long)]
    pub read_only: bool,

    /// Run wasmhost's init as pid 1 in front of the image's command (it
    /// forwards signals and reaps orphans) [default].
    #[arg(long, overrides_with = "no_init")]
    pub init: bool,

    /// Run the image's command as pid 1 itself.
    #[arg(long, overrides_with = "init")]
    pub no_init: bool,

    /// `outbound`: give the container a way out (slirp4netns), to the
    /// hosts `--allowed-outbound-host` names only; `loopback`: none
    /// [default].
    #[arg(long, value_name = "loopback|outbound", default_value = "loopback", value_parser = ["loopback", "outbound"])]
    pub network: String,

    /// Where the container may connect, as in a manifest's
    /// `allowed_outbound_hosts` (`postgres://db.internal`,
    /// `http://10.0.0.5:8080`, `*://*:443`). Repeatable.
    #[arg(long, value_name = "ENTRY")]
    pub allowed_outbound_host: Vec<String>,

    /// How often the host names among `--allowed-outbound-host` are
    /// resolved again while the container runs (the filter follows a
    /// service whose addresses change).
    #[arg(long, default_value_t = DurationArg(limits::CONTAINER_OUTBOUND_RESOLVE_INTERVAL))]
    pub outbound_resolve_interval: DurationArg,

    /// Check the container's health with `GET PATH` (2xx or 3xx within
    /// `--health-timeout` is healthy); after `--health-retries` failures
    /// in a row it is not ready and is restarted.
    #[arg(long, value_name = "PATH")]
    pub health_path: Option<String>,

    /// How often the health check runs.
    #[arg(long, default_value_t = DurationArg(Health::DEFAULT_INTERVAL))]
    pub health_interval: DurationArg,

    /// How long a health check waits for its answer.
    #[arg(long, default_value_t = DurationArg(Health::DEFAULT_TIMEOUT))]
    pub health_timeout: DurationArg,

    /// Failed health checks in a row that make the container unhealthy.
    #[arg(long, default_value_t = Health::DEFAULT_RETRIES)]
    pub health_retries: u32,

    /// Do not run the image's HEALTHCHECK (as Docker's
    /// `--no-healthcheck`). `--health-path` replaces it anyway.
    #[arg(long)]
    pub no_healthcheck: bool,

    /// Start on the first request instead of now.
    #[arg(long)]
    pub lazy: bool,

    /// Stop the container after this long without requests; the next
    /// request starts it again.
    #[arg(long, value_parser = super::parse::duration)]
    pub idle_timeout: Option<Duration>,

    /// How long a start may take to accept connections on the port.
    #[arg(long, default_value_t = DurationArg(limits::CONTAINER_READY_TIMEOUT))]
    pub ready_timeout: DurationArg,

    /// On shutdown, how long the container gets between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = DurationArg(limits::CONTAINER_STOP_GRACE))]
    pub stop_grace: DurationArg,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl RunCommand {
    /// Pulls, unpacks, starts, serves until SIGINT/SIGTERM, then stops the
    /// container.
    pub async fn execute(self) -> Result<Stopped> {
        let settings = self.settings()?;
        let store = self.registry.store()?;
        let pulled = pull::pull_named(
            &self.image,
            &store,
            &self.registry.options(),
            &Progress::for_terminal(false),
        )
        .await?;
        if pulled.kind != Kind::Image {
            bail!(
                "`{}` is a {}, not a container image: serve it with `wasmhost serve`",
                self.image,
                pulled.kind.describe()
            );
        }
        let image = PreparedImage::prepare(&store, &self.image, &pulled.config, &pulled.layers)?;
        let id = super::name_of(&self.image);
        // Bound before the container starts: a port in use fails the run
        // before any container exists, and a client that connects during
        // the start waits in the listen queue and is answered once the
        // container is ready, instead of being refused.
        let mut bound = self.front.bind(0).await?;
        let backend: Arc<dyn Backend> =
            Arc::new(ContainerBackend::new(&id, image, settings).await?);
        bound.front.component = Some(Arc::from(id.as_str()));
        self.front
            .start_admin(Admin {
                metrics: Arc::default(),
                rollouts: Arc::default(),
                token: None,
                history: Arc::default(),
                stats: bound.front.stats.clone(),
                backend: backend.clone(),
            })
            .await?;
        println!("serving `{}` on {}", self.image, bound.url()?);
        let shutdown = Shutdown::from_signals().context("cannot install signal handlers")?;
        let stopped =
            frontdoor::serve(bound.listener, backend.clone(), bound.front, shutdown).await;
        backend.shutdown().await;
        Ok(stopped)
    }

    /// The container's settings as the flags give them (volumes relative
    /// to the current directory).
    pub fn settings(&self) -> Result<Settings> {
        crate::services::outbound::AllowList::parse(&self.allowed_outbound_host)
            .context("--allowed-outbound-host")?;
        let here = std::env::current_dir().context("cannot read the current directory")?;
        Ok(Settings {
            port: self.port,
            runtime: self.oci_runtime.clone(),
            memory_limit: self.memory_limit.0,
            pids_limit: self.pids_limit,
            cpus: self.cpus,
            start: if self.lazy { Start::Lazy } else { Start::Eager },
            idle_timeout: self.idle_timeout,
            ready_timeout: self.ready_timeout.0,
            stop_grace: self.stop_grace.0,
            environment: self.environment.clone(),
            volumes: self
                .volumes
                .iter()
                .map(|v| Volume::parse(v, &here).context("--volume"))
                .collect::<Result<_>>()?,
            user_namespace: self.user_namespace,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            read_only_rootfs: self.read_only,
            init: !self.no_init,
            health: self.health_path.clone().map(|path| Health {
                path,
                interval: self.health_interval.0,
                timeout: self.health_timeout.0,
                retries: self.health_retries.max(1),
            }),
            healthcheck: !self.no_healthcheck,
            outbound: self.network == "outbound",
            allowed_outbound_hosts: self.allowed_outbound_host.clone(),
            outbound_resolve_interval: self.outbound_resolve_interval.0,
        })
    }
}

pub(crate) fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not NAME=value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let mut line = vec!["run", "example.com/img:1"];
        line.extend_from_slice(args);
        RunCommand::try_parse_from(line)
            .unwrap()
            .settings()
            .unwrap()
    }

    #[test]
    fn without_flags_run_starts_eagerly_with_the_defaults() {
        assert_eq!(
            settings(&[]),
            Settings {
                start: Start::Eager,
                ..Settings::default()
            }
        );
    }

    #[test]
    fn settings_go_through_the_flags_unchanged() {
        let chosen = Settings {
            port: Some(8080),
            runtime: "runc".into(),
            memory_limit: 64 << 20,
            pids_limit: 32,
            cpus: Cpus(500),
            start: Start::Lazy,
            idle_timeout: Some(Duration::from_millis(500)),
            ready_timeout: Duration::from_secs(5),
            stop_grace: Duration::from_secs(1),
            environment: vec![("GREETING".into(), "hi".into())],
            volumes: vec![Volume::parse("/srv/data:/data:ro", std::path::Path::new("/")).unwrap()],
            user_namespace: true,
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["ALL".into()],
            read_only_rootfs: true,
            init: false,
            outbound: true,
            allowed_outbound_hosts: vec!["http://10.0.0.5:8080".into()],
            outbound_resolve_interval: Duration::from_secs(5),
            health: Some(Health {
                path: "/healthz".into(),
                interval: Duration::from_millis(200),
                timeout: Duration::from_secs(1),
                retries: 2,
            }),
            healthcheck: false,
        };
        let args = chosen.run_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(settings(&args), chosen);
    }
}
