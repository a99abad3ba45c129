//! [`Dispatch`]: the backend of a multi-component app. Matches each request
//! against the app's route table, tells the chosen component how it was
//! matched (Spin's `spin-*` headers) and hands the request on; answers the
//! health check and unmatched paths itself.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue, HOST};
use http::StatusCode;

use crate::backend::{
    text_response, Backend, BoxFuture, RequestBody, RequestContext, ResponseBody,
};
use crate::router::{self, Route, RouteError, Router};

/// Spin's health-check path: always 200, whatever the routes say.
pub const HEALTH_PATH: &str = "/.well-known/spin/health";

/// Spin 3 serves every app at `/`.
const BASE_PATH: &str = "/";

/// One routed component: its id (for logs and 404s) and its backend.
#[derive(Clone)]
pub struct Target {
    /// The component id from the manifest.
    pub component: Arc<str>,
    /// What serves it.
    pub backend: Arc<dyn Backend>,
}

/// Routes requests to the components of an app.
pub struct Dispatch {
    router: Router<Target>,
}

impl Dispatch {
    /// A dispatcher over `routes` (as written in the manifest, or private).
    pub fn new(routes: Vec<(Route, Target)>) -> Result<Self, RouteError> {
        let router = Router::build(routes)?;
        for shadowed in router.shadowed() {
            tracing::warn!(
                "route `{}` (trigger {}) is never used: trigger {} takes its requests",
                shadowed.route,
                shadowed.unused + 1,
                shadowed.used + 1
            );
        }
        Ok(Self { router })
    }

    /// The request with the `spin-*` headers for its route, and the target;
    /// `None` when no route matches.
    fn resolve(
        &self,
        mut req: http::Request<RequestBody>,
        ctx: &RequestContext,
    ) -> Option<(http::Request<RequestBody>, Target)> {
        let path = req.uri().path().to_owned();
        let matched = self.router.route(&path)?;
        let full_url = full_url(&req);
        let headers: Vec<(HeaderName, HeaderValue)> =
            router::spin_headers(&matched, &full_url, BASE_PATH, ctx.client_addr)
                .into_iter()
                .filter_map(|(name, value)| {
                    Some((
                        HeaderName::from_bytes(name.as_bytes()).ok()?,
                        HeaderValue::from_str(&value).ok()?,
                    ))
                })
                .collect();
        let target = matched.target().clone();
        // A client must not be able to forge how it was routed.
        let forged: Vec<HeaderName> = req
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("spin-"))
            .cloned()
            .collect();
        for name in forged {
            req.headers_mut().remove(name);
        }
        for (name, value) in headers {
            req.headers_mut().insert(name, value);
        }
        Some((req, target))
    }
}

impl Backend for Dispatch {
    fn handle(
        &self,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> BoxFuture<http::Response<ResponseBody>> {
        if req.uri().path() == HEALTH_PATH {
            return Box::pin(async { text_response(StatusCode::OK, "OK") });
        }
        match self.resolve(req, &ctx) {
            Some((req, target)) => target.backend.handle(req, ctx),
            None => Box::pin(async {
                text_response(StatusCode::NOT_FOUND, "no route matches this path")
            }),
        }
    }
}

/// `scheme://host` plus the path and query as received, as Spin builds
/// `spin-full-url` (host from the URI, else the `Host` header, else
/// `localhost`).
fn full_url<B>(req: &http::Request<B>) -> String {
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    format!("http://{host}{path_and_query}")
}
