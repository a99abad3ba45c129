//! `wasmhost run IMAGE --port P`: one container image behind the front
//! door, in its own namespaces, reached through its private network
//! namespace.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::Parser;

use super::RegistryArgs;
use crate::backend::Backend;
use crate::container::backend::{
    service_port, ContainerBackend, ContainerSettings, PreparedImage, CONTAINERS_DIR,
};
use crate::container::rootfs::LayerCache;
use crate::container::runtime::OciRuntime;

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
    #[arg(long, default_value = "embedded")]
    pub oci_runtime: String,

    /// Memory limit of the container (cgroup).
    #[arg(long, default_value = "256MiB", value_parser = super::parse::size)]
    pub memory_limit: u64,

    /// Most processes and threads in the container.
    #[arg(long, default_value_t = 256)]
    pub pids_limit: i64,

    /// CPUs the container may use (0.5 = half a core).
    #[arg(long, default_value_t = 1.0)]
    pub cpus: f64,

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

    /// Start on the first request instead of now.
    #[arg(long)]
    pub lazy: bool,

    /// Stop the container after this long without requests; the next
    /// request starts it again.
    #[arg(long, value_parser = super::parse::duration)]
    pub idle_timeout: Option<Duration>,

    /// How long a start may take to accept connections on the port.
    #[arg(long, default_value = "30s", value_parser = super::parse::duration)]
    pub ready_timeout: Duration,

    /// On shutdown, how long the container gets between SIGTERM and SIGKILL.
    #[arg(long, default_value = "10s", value_parser = super::parse::duration)]
    pub stop_grace: Duration,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl RunCommand {
    /// Pulls, unpacks, starts, serves until SIGINT/SIGTERM, then stops the
    /// container.
    pub async fn execute(self) -> Result<Stopped> {
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
        let cache = LayerCache::at(store.root().join("layers"));
        let image = PreparedImage::prepare(&store, &pulled.config, &pulled.layers, &cache)
            .with_context(|| format!("cannot unpack `{}`", self.image))?;
        let port = service_port(&image.config, self.port).context("--port")?;
        let settings = ContainerSettings {
            port,
            runtime: OciRuntime::named(&self.oci_runtime)?,
            memory_limit: i64::try_from(self.memory_limit)
                .context("--memory-limit is too large")?,
            pids_limit: self.pids_limit,
            cpus: self.cpus,
            start_eagerly: !self.lazy,
            idle_timeout: self.idle_timeout,
            ready_timeout: self.ready_timeout,
            stop_grace: self.stop_grace,
            environment: self.environment.clone(),
            state_dir: PathBuf::from(CONTAINERS_DIR),
            volumes: self
                .volumes
                .iter()
                .map(|v| Volume::parse(v, &std::env::current_dir()?).context("--volume"))
                .collect::<Result<_>>()?,
            user_namespace: self
                .user_namespace
                .then_some(crate::container::spec::IdMap::DEFAULT),
        };
        let id = super::name_of(&self.image);
        let backend: Arc<dyn Backend> =
            Arc::new(ContainerBackend::new(&id, image, settings).await?);
        let mut bound = self.front.bind(0).await?;
        bound.front.component = Some(Arc::from(id.as_str()));
        self.front
            .start_admin(Admin {
                metrics: Arc::default(),
                stats: bound.front.stats.clone(),
                backend: backend.clone(),
            })
            .await?;
        println!("serving `{}` on {}", self.image, bound.url()?);
        let shutdown = Shutdown::from_signals().context("cannot install signal handlers")?;
        let stopped = frontdoor::serve(bound.listener, backend.clone(), bound.front, shutdown).await;
        backend.shutdown().await;
        Ok(stopped)
    }
}

pub(crate) fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not NAME=value")),
    }
}
