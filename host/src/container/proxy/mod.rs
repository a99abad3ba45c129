//! Proxying a request to a running container, in one place: a connection
//! made inside the container's network namespace ([`Upstream`]), reused
//! while the container keeps it open ([`pool`]), the hop-by-hop headers
//! dropped both ways ([`headers`]), a fresh connection driven by the
//! request's own task ([`driven`]), and the whole exchange under the
//! request's deadline: a container that accepts and never answers gets
//! 504 at the deadline, one that fails gets 502. (The response body is
//! bounded by the front door.)

#![forbid(unsafe_code)]

pub mod driven;
pub mod headers;
pub mod pool;

#[cfg(test)]
mod tests;

use anyhow::{Context as _, Result};
use http::StatusCode;
use http_body_util::BodyExt as _;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tracing::Instrument as _;

use self::driven::{Driven, DrivenBody};
use self::pool::Pool;
use super::netns::NetNs;
use crate::backend::{text_response, BoxError, RequestBody, RequestContext, ResponseBody};
use crate::telemetry;

/// The way to one service: how to dial it, its port, and the connections
/// it keeps open.
pub struct Upstream {
    dial: Dial,
    port: u16,
    pool: Pool,
}

/// Where the service's connections are made: inside a container's network
/// namespace, or an ordinary address (an upstream component: a service that
/// runs elsewhere).
enum Dial {
    Namespace(NetNs),
    Remote(String),
}

impl Upstream {
    /// The service on `port` inside `netns`.
    pub fn new(netns: NetNs, port: u16) -> Self {
        Self {
            dial: Dial::Namespace(netns),
            port,
            pool: Pool::default(),
        }
    }

    /// The service at `host:port` on the host's own network (resolved at
    /// each new connection, so a DNS change is followed).
    pub fn remote(host: &str, port: u16) -> Self {
        Self {
            dial: Dial::Remote(host.to_owned()),
            port,
            pool: Pool::default(),
        }
    }

    /// What the service is, for logs and error answers.
    fn kind(&self) -> &'static str {
        match self.dial {
            Dial::Namespace(_) => "the container",
            Dial::Remote(_) => "the upstream service",
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A TCP connection to the service (a start asks until one succeeds).
    pub async fn connect(&self) -> std::io::Result<tokio::net::TcpStream> {
        match &self.dial {
            Dial::Namespace(netns) => netns.connect(self.port).await,
            Dial::Remote(host) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), self.port)).await?;
                // Requests are small writes that wait for an answer.
                stream.set_nodelay(true)?;
                Ok(stream)
            }
        }
    }

    /// Connections kept open, waiting for a request.
    pub fn idle_connections(&self) -> usize {
        self.pool.len()
    }

    /// A fresh HTTP/1 connection, not yet driven.
    async fn handshake(&self) -> Result<(SendRequest<RequestBody>, Driven)> {
        let stream = self
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}'s port", self.kind()))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake with {} failed", self.kind()))?;
        Ok((sender, Driven::new(connection)))
    }
}

/// `req` proxied to `upstream`, under `ctx`'s deadline: the container's
/// response, or 504 at the deadline, or 502 if the exchange fails; both
/// logged for component `component`.
pub async fn forward(
    upstream: &Upstream,
    req: http::Request<RequestBody>,
    ctx: &RequestContext,
    component: &str,
) -> http::Response<ResponseBody> {
    match tokio::time::timeout_at(ctx.deadline.into(), exchange(upstream, req, ctx)).await {
        Ok(Ok(response)) => response,
        Err(_) => {
            let kind = upstream.kind();
            tracing::warn!(request = %ctx.id, component, "{kind} did not answer before the request deadline");
            text_response(
                StatusCode::GATEWAY_TIMEOUT,
                format!("{kind} did not answer in time"),
            )
        }
        Ok(Err(e)) => {
            let kind = upstream.kind();
            tracing::warn!(request = %ctx.id, component, "proxying to {kind} failed: {e:#}");
            text_response(
                StatusCode::BAD_GATEWAY,
                format!("{kind} did not answer: {e}"),
            )
        }
    }
}

/// One exchange: a pooled connection (driven by its own task) or a fresh
/// one (driven by this task), the request sent, the response head back.
async fn exchange(
    upstream: &Upstream,
    req: http::Request<RequestBody>,
    ctx: &RequestContext,
) -> Result<http::Response<ResponseBody>> {
    let (mut sender, mut driven) = match upstream.pool.take() {
        Some(sender) => (sender, None),
        None => {
            let (sender, driven) = upstream.handshake().await?;
            (sender, Some(driven))
        }
    };
    let mut req = headers::upstream_request(req, ctx);
    let span = telemetry::client_span(req.method(), req.uri(), "container");
    telemetry::inject(&span, req.headers_mut());
    let response = driven::exchange(&mut sender, driven.as_mut(), req)
        .instrument(span.clone())
        .await;
    telemetry::record_client_status(&span, response.as_ref().ok().map(|r| r.status()));
    let response =
        response.with_context(|| format!("{} closed the connection", upstream.kind()))?;
    let closing = headers::closes(&response);
    let response = headers::downstream_response(response);
    if closing {
        // Nothing to keep: whoever reads the body drives what is left
        // of the exchange, and the connection goes with the body.
        return Ok(response.map(|body| match driven {
            Some(driven) => DrivenBody { body, driven }
                .map_err(|e| Box::new(e) as BoxError)
                .boxed_unsync(),
            None => body.map_err(|e| Box::new(e) as BoxError).boxed_unsync(),
        }));
    }
    // The container keeps the connection open: it gets a task of its own
    // and goes back to the pool once this response is through.
    if let Some(driven) = driven {
        driven.spawn();
    }
    upstream.pool.keep(sender);
    Ok(response.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
}
