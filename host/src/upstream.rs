//! Upstream components (`upstream = "http://legacy.internal:8080"`): an
//! HTTP service that runs elsewhere (a Kubernetes Service, another VM)
//! behind the same routes as the app's Wasm and container components, so a
//! route can be split, mirrored and rolled out between a component and a
//! service wasmhost does not run.
//!
//! The proxying is the containers' own ([`crate::container::proxy`]): a
//! keep-alive pool, hop-by-hop headers dropped both ways, the whole
//! exchange under the request's deadline (504 past it, 502 when the
//! service fails). Only plain `http://` for now: TLS to an upstream is not
//! implemented, and refused by name rather than sent in clear.

#![forbid(unsafe_code)]

use std::sync::Arc;

use crate::backend::{Backend, BoxFuture, RequestBody, RequestContext, ResponseBody};
use crate::container::proxy::{self, Upstream};

/// Where an upstream component's requests go: `http://host[:port]`, as
/// written in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The URL as written (for messages).
    pub url: String,
    /// The host name or address.
    pub host: String,
    /// The port (80 when the URL names none).
    pub port: u16,
}

impl Address {
    /// `url` checked: `http://`, a host, an optional port, no path.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("not a URL ({e}); write `http://host:port`"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err("`https://` upstreams are not supported yet; use `http://`".into())
            }
            _ => return Err("expected an `http://` URL such as `http://legacy:8080`".into()),
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or("the URL names no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err("a path or query is not supported: requests keep their own path".into());
        }
        Ok(Self {
            url: url.to_owned(),
            host,
            port: uri.port_u16().unwrap_or(80),
        })
    }
}

/// The backend of an upstream component.
pub struct UpstreamBackend {
    component: Arc<str>,
    upstream: Arc<Upstream>,
}

impl UpstreamBackend {
    /// Component `component`, served by the service at `address`.
    pub fn new(component: &str, address: &Address) -> Self {
        Self {
            component: Arc::from(component),
            upstream: Arc::new(Upstream::remote(&address.host, address.port)),
        }
    }

    /// Connections kept open, waiting for a request.
    pub fn idle_connections(&self) -> usize {
        self.upstream.idle_connections()
    }
}

impl Backend for UpstreamBackend {
    fn handle(
        &self,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> BoxFuture<http::Response<ResponseBody>> {
        let (upstream, component) = (self.upstream.clone(), self.component.clone());
        Box::pin(async move { proxy::forward(&upstream, req, &ctx, &component).await })
    }
}

#[cfg(test)]
mod tests {
    use super::Address;

    #[test]
    fn an_address_without_a_port_is_port_80() {
        let a = Address::parse("http://legacy.internal").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("legacy.internal", 80));
        let a = Address::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 8080));
    }

    #[test]
    fn https_a_path_and_other_schemes_are_refused_by_name() {
        assert!(Address::parse("https://x:1").unwrap_err().contains("https"));
        assert!(Address::parse("http://x:1/api")
            .unwrap_err()
            .contains("path"));
        assert!(Address::parse("redis://x:1")
            .unwrap_err()
            .contains("http://"));
        assert!(Address::parse("legacy:8080").is_err());
    }
}
