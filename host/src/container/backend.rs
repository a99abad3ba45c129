//! [`ContainerBackend`]: a container image served behind the front door.
//! A request gets the running container from the [`Lifecycle`] (started
//! if need be, within the request's deadline: 503 past it or when the
//! container is unavailable), then is proxied to it ([`proxy::forward`],
//! under the same deadline: 504 past it).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context as _, Result};
use http::StatusCode;

use super::bundle::CONTAINERS_DIR;
use super::image::PreparedImage;
use super::lifecycle::health::Check;
use super::lifecycle::{Lifecycle, Plan};
use super::proxy;
use super::runtime::OciRuntime;
use super::settings::{Settings, Start};
use super::sweep::sweep;
use super::sys::{Linux, Syscall};
use crate::backend::{
    text_response, Backend, BoxFuture, ComponentStatus, RequestBody, RequestContext, ResponseBody,
};

/// A container image, ready to serve.
pub struct ContainerBackend {
    lifecycle: Arc<Lifecycle>,
}

impl ContainerBackend {
    /// A backend for component `id` running `image` as `settings` say.
    /// Sweeps containers a killed wasmhost left behind first; starts now
    /// if the settings say so, else creates the first container ahead.
    pub async fn new(id: &str, image: PreparedImage, settings: Settings) -> Result<Self> {
        for volume in &settings.volumes {
            volume.create_host_dir()?;
        }
        i64::try_from(settings.memory_limit).context("the memory limit is too large")?;
        let port = image
            .config
            .service_port(settings.port)
            .context("the port to proxy to")?;
        let stop_signal = image.config.stop_signal()?;
        let health = Check::choose(id, &settings, &image.config);
        let runtime = OciRuntime::named(&settings.runtime)?;
        let sys: Arc<dyn Syscall> = Arc::new(Linux);
        let state_dir = PathBuf::from(CONTAINERS_DIR);
        sweep(&runtime, &state_dir, &*sys).await;
        runtime.keep_standby();
        let start = settings.start;
        let lifecycle = Lifecycle::new(Plan {
            component: Arc::from(id),
            settings,
            image,
            runtime,
            port,
            stop_signal,
            health,
            state_dir,
            sys,
        });
        match start {
            Start::Eager => {
                lifecycle
                    .running()
                    .await
                    .map_err(|why| anyhow!("container `{id}` did not start: {why}"))?;
            }
            Start::Lazy => lifecycle.create_ahead(),
        }
        Ok(Self { lifecycle })
    }
}

impl Backend for ContainerBackend {
    fn handle(
        &self,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> BoxFuture<http::Response<ResponseBody>> {
        let lifecycle = self.lifecycle.clone();
        Box::pin(async move { serve(&lifecycle, req, ctx).await })
    }

    fn shutdown(&self) -> BoxFuture<()> {
        let lifecycle = self.lifecycle.clone();
        Box::pin(async move { lifecycle.shut_down().await })
    }

    fn status(&self) -> Vec<ComponentStatus> {
        vec![ComponentStatus {
            component: self.lifecycle.component().clone(),
            kind: self.lifecycle.status(),
        }]
    }
}

/// The running container (within the deadline), then the request proxied
/// to it (within the deadline).
async fn serve(
    lifecycle: &Lifecycle,
    req: http::Request<RequestBody>,
    ctx: RequestContext,
) -> http::Response<ResponseBody> {
    let component = lifecycle.component();
    let running = match tokio::time::timeout_at(ctx.deadline.into(), lifecycle.running()).await {
        Ok(Ok(running)) => running,
        Ok(Err(why)) => {
            tracing::warn!(request = %ctx.id, %component, "container unavailable: {why}");
            return text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("container unavailable: {why}"),
            );
        }
        Err(_) => {
            return text_response(StatusCode::SERVICE_UNAVAILABLE, "container start timed out")
        }
    };
    let _in_flight = running.begin_request();
    proxy::forward(&running.upstream, req, &ctx, component).await
}
