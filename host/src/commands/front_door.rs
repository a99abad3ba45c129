//! The flags of the front door, shared by `serve` and `run`: where to
//! listen, limits, TLS, access log, admin listener. Defaults come from
//! [`crate::limits`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio::net::TcpListener;

use super::parse::{DurationArg, SizeArg};
use crate::admin::Admin;
use crate::frontdoor::access_log::{AccessLog, Format};
use crate::frontdoor::open_files;
use crate::frontdoor::tls::{Tls, TlsFiles};
use crate::frontdoor::{FrontDoor, Limits};
use crate::limits;

/// Default listen address: Spin's and `wasmtime serve`'s convention of a
/// loopback port, so nothing is exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// Front-door flags.
#[derive(Debug, Clone, clap::Args)]
pub struct FrontDoorArgs {
    /// Address to listen on; port 0 picks a free port (the address bound is
    /// printed on stdout).
    #[arg(long, env = "SPIN_HTTP_LISTEN_ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Wall-clock limit per request, response body included; past it the
    /// instance (or the proxying to a container) is stopped and the client
    /// gets 504.
    #[arg(long, default_value_t = DurationArg(limits::REQUEST_TIMEOUT))]
    pub timeout: DurationArg,

    /// Largest request head (request line and headers); larger gets 431.
    #[arg(long, default_value_t = SizeArg(limits::MAX_HEADER_BYTES as u64))]
    pub max_header_size: SizeArg,

    /// Largest request body; larger gets 413.
    #[arg(long, default_value_t = SizeArg(limits::MAX_BODY_BYTES))]
    pub max_body_size: SizeArg,

    /// How long shutdown waits for in-flight requests.
    #[arg(long, default_value_t = DurationArg(limits::DRAIN_TIMEOUT))]
    pub drain_timeout: DurationArg,

    /// Connections open at once. Past it the longest-idle connection is
    /// closed to make room; when every connection is busy, a new one gets
    /// 503 at once [default: the open-files limit, raised to its hard
    /// limit at start, minus a reserve for instances and files].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Time from accepting a connection to its first complete request head
    /// (TLS handshake included); slower connections are cut (slowloris).
    /// Request bodies are not affected.
    #[arg(long, default_value_t = DurationArg(limits::HEADER_TIMEOUT))]
    pub header_timeout: DurationArg,

    /// How long a connection may sit with no request in flight (HTTP/1.1
    /// keep-alive and HTTP/2) before it is closed.
    #[arg(long, default_value_t = DurationArg(limits::KEEP_ALIVE_TIMEOUT))]
    pub keep_alive_timeout: DurationArg,

    /// HTTP/2 streams one connection may have open at once.
    #[arg(long, value_name = "N", default_value_t = limits::H2_MAX_CONCURRENT_STREAMS)]
    pub h2_max_concurrent_streams: u32,

    /// Serve HTTPS with this PEM certificate chain (leaf first); needs
    /// `--tls-key`. HTTP/2 is offered by ALPN. Reloaded on SIGHUP and when
    /// the file changes.
    #[arg(long, env = "SPIN_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of `--tls-cert` (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SPIN_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Write one line per request to stdout: `common` (NCSA common log
    /// format, then duration, route, component and request id) or `json`.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub access_log: Option<Format>,

    /// Serve `/metrics` (Prometheus), `/healthz` and `/readyz` on this
    /// separate address.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,

    /// Turn on the admin listener's rollout API (`/rollouts`, what
    /// `wasmhost rollout` calls), for requests bearing the token in FILE
    /// (`Authorization: Bearer <token>`); off without it.
    #[arg(long, value_name = "FILE", requires = "admin_listen")]
    pub admin_token_file: Option<PathBuf>,
}

/// The listener, bound, and what the front door runs with.
pub struct Bound {
    /// The app's listener.
    pub listener: TcpListener,
    /// Limits, TLS, access log, counters.
    pub front: FrontDoor,
}

impl FrontDoorArgs {
    /// The request deadline.
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout.0
    }

    /// Checks every flag (the TLS pair is read and verified), raises the
    /// open-files limit, then binds: nothing listens if anything is wrong.
    /// `instance_slots` sizes the descriptor reserve.
    pub async fn bind(&self, instance_slots: u32) -> Result<Bound> {
        self.bind_or_adopt(instance_slots, None).await
    }

    /// As [`Self::bind`], but serves on `listener` when given (a worker of
    /// `serve --workers` listens beside the others on its supervisor's port).
    pub async fn bind_or_adopt(
        &self,
        instance_slots: u32,
        listener: Option<TcpListener>,
    ) -> Result<Bound> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(Tls::load(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })?)),
            _ => None,
        };
        let files = open_files::raise();
        let max_connections = self
            .max_connections
            .unwrap_or_else(|| open_files::default_max_connections(files.soft, instance_slots));
        anyhow::ensure!(max_connections >= 1, "--max-connections must be at least 1");
        anyhow::ensure!(
            self.h2_max_concurrent_streams >= 1,
            "--h2-max-concurrent-streams must be at least 1"
        );
        let limits = Limits {
            request_timeout: self.timeout.0,
            max_header_bytes: usize::try_from(self.max_header_size.0).unwrap_or(usize::MAX),
            max_body_bytes: self.max_body_size.0,
            drain_timeout: self.drain_timeout.0,
            max_connections,
            header_timeout: self.header_timeout.0,
            keep_alive_timeout: self.keep_alive_timeout.0,
            h2_max_concurrent_streams: self.h2_max_concurrent_streams,
        };
        tracing::info!("up to {max_connections} connections at once");
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(self.listen)
                .await
                .with_context(|| format!("cannot listen on `{}`", self.listen))?,
        };
        if let Some(tls) = &tls {
            tls.clone().watch()?;
        }
        let mut front = FrontDoor::new(limits);
        front.tls = tls;
        front.access_log = self
            .access_log
            .map(|format| AccessLog::new(format, crate::logging::stdout()));
        Ok(Bound { listener, front })
    }

    /// The admin token, read from `--admin-token-file` if given.
    pub fn admin_token(&self) -> Result<Option<crate::admin::rollouts::Token>> {
        self.admin_token_file
            .as_deref()
            .map(crate::admin::rollouts::Token::read)
            .transpose()
    }

    /// Starts the admin listener, if asked for.
    pub async fn start_admin(&self, admin: Admin) -> Result<()> {
        match self.admin_listen {
            Some(address) => {
                let bound = start_admin_at(address, admin).await?;
                tracing::info!(
                    "admin on http://{bound}/ (/ dashboard, /metrics, /healthz, /readyz, /rollouts)"
                );
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// Starts an admin listener on `address`; returns the address bound.
pub async fn start_admin_at(address: SocketAddr, admin: Admin) -> Result<SocketAddr> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on the admin address `{address}`"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(crate::admin::serve(listener, Arc::new(admin)));
    Ok(bound)
}

impl Bound {
    /// The URL clients reach: `http://` or `https://` and the bound
    /// address (printed on stdout for scripts and tests).
    pub fn url(&self) -> Result<String> {
        let scheme = if self.front.tls.is_some() {
            "https"
        } else {
            "http"
        };
        Ok(format!("{scheme}://{}/", self.listener.local_addr()?))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use crate::commands::run::RunCommand;
    use crate::commands::serve::ServeCommand;

    /// `run` has its own `--idle-timeout` (the container's): a front-door
    /// flag of the same name made every `wasmhost run` panic in clap.
    #[test]
    fn front_door_flags_do_not_clash_with_serve_or_run_flags() {
        ServeCommand::command().debug_assert();
        RunCommand::command().debug_assert();
    }
}
