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

/// The way to one container's service: its network namespace, its port,
/// and the connections it keeps open.
pub struct Upstream {
    netns: NetNs,
    port: u16,
    pool: Pool,
}

impl Upstream {
    /// The service on `port` inside `netns`.
    pub fn new(netns: NetNs, port: u16) -> Self {
        Self {
            netns,
            port,
            pool: Pool::default(),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A TCP connection to the service (a start asks until one succeeds).
    pub async fn connect(&self) -> std::io::Result<tokio::net::TcpStream> {
        self.netns.connect(self.port).await
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
            .context("cannot connect to the container's port")?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake with the container failed")?;
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
            tracing::warn!(request = %ctx.id, component, "the container did not answer before the request deadline");
            text_response(
                StatusCode::GATEWAY_TIMEOUT,
                "the container did not answer in time",
            )
        }
        Ok(Err(e)) => {
            tracing::warn!(request = %ctx.id, component, "proxying to the container failed: {e:#}");
            text_response(
                StatusCode::BAD_GATEWAY,
                format!("the container did not answer: {e}"),
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
    let response = response.context("the container closed the connection")?;
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
