//! [`Dispatch`]: the backend of a multi-component app. Matches each request
//! against the app's route table, tells the chosen component how it was
//! matched (Spin's `spin-*` headers) and hands the request on; answers the
//! health check and unmatched paths itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderName, HeaderValue, HOST};
use http::StatusCode;

use crate::backend::{
    text_response, Backend, BoxFuture, ComponentStatus, RequestBody, RequestContext, ResponseBody,
    Served,
};
use crate::metrics::{Metrics, Series};
use crate::mirror::Mirror;
use crate::rollout::Weight;
use crate::router::{self, Route, RouteError, Router};
use crate::services::chaining::App;

/// Spin's health-check path: always 200, whatever the routes say.
pub const HEALTH_PATH: &str = "/.well-known/spin/health";

/// Spin 3 serves every app at `/`.
const BASE_PATH: &str = "/";

/// A component a route can send a request to: its id (for logs), its
/// backend and the series its requests on this route are counted in.
#[derive(Clone)]
pub struct Choice {
    /// The component id from the manifest.
    pub component: Arc<str>,
    /// What serves it.
    pub backend: Arc<dyn Backend>,
    /// Its counters on this route, resolved once at assembly.
    pub series: Arc<Series>,
}

/// What a route leads to.
#[derive(Clone)]
pub struct Target {
    /// The route as written in the manifest (`(private)` for a private
    /// one): what logs, spans and counters call it.
    pub route: Arc<str>,
    /// The route's own component.
    pub primary: Choice,
    /// A traffic split over several components, if the route has one.
    pub split: Option<Arc<Split>>,
    /// Where copies of the route's requests go, if anywhere.
    pub mirror: Option<Arc<Mirror>>,
    /// The route's rollout, if it has one (then `split` and `mirror` are
    /// `None`).
    pub rollout: Option<Arc<Rollout>>,
}

/// A route under a rollout: requests shared between `from` and `to` by the
/// weight its controller sets ([`crate::rollout`]), and reads copied to
/// the form that did not serve them, so both directions are compared.
pub struct Rollout {
    /// The component moved away from.
    pub from: Choice,
    /// The component moved to.
    pub to: Choice,
    /// `to`'s share now.
    pub weight: Arc<Weight>,
    /// Copies of what `from` serves, to `to`.
    pub mirror_to: Option<Arc<Mirror>>,
    /// Copies of what `to` serves, to `from`.
    pub mirror_from: Option<Arc<Mirror>>,
}

/// Weighted choice between components for one route.
pub struct Split {
    choices: Vec<(Choice, u32)>,
    total: u32,
}

impl Split {
    /// Components and weights; `None` when every weight is 0.
    pub fn new(choices: Vec<(Choice, u32)>) -> Option<Self> {
        let total = choices.iter().map(|(_, w)| *w).sum();
        (total > 0).then_some(Self { choices, total })
    }

    fn pick(&self) -> &Choice {
        let mut roll = fastrand::u32(0..self.total);
        for (choice, weight) in &self.choices {
            if roll < *weight {
                return choice;
            }
            roll -= weight;
        }
        &self.choices[self.choices.len() - 1].0
    }
}

impl Target {
    /// The component that serves this request, and where its copy goes.
    fn choose(&self) -> (&Choice, Option<&Arc<Mirror>>) {
        if let Some(rollout) = &self.rollout {
            return match rollout.weight.pick_new() {
                true => (&rollout.to, rollout.mirror_from.as_ref()),
                false => (&rollout.from, rollout.mirror_to.as_ref()),
            };
        }
        match &self.split {
            Some(split) => (split.pick(), self.mirror.as_ref()),
            None => (&self.primary, self.mirror.as_ref()),
        }
    }
}

/// Routes requests to the components of an app.
pub struct Dispatch {
    router: Router<Target>,
    /// What a `<id>.spin.internal` request is matched against: `/...`, so
    /// its whole path is the component's (`spin-path-info`), as Spin
    /// matches it.
    chained: Router<()>,
    metrics: Arc<Metrics>,
    /// Every component, private ones included, for `<id>.spin.internal`.
    components: HashMap<Arc<str>, Arc<dyn Backend>>,
}

impl Dispatch {
    /// A dispatcher over `routes` (as written in the manifest, or private),
    /// counting into `metrics` (shared across reloads of the same app).
    pub fn new(routes: Vec<(Route, Target)>, metrics: Arc<Metrics>) -> Result<Self, RouteError> {
        let mut components: HashMap<Arc<str>, Arc<dyn Backend>> = routes
            .iter()
            .map(|(_, t)| (t.primary.component.clone(), t.primary.backend.clone()))
            .collect();
        for split in routes.iter().filter_map(|(_, t)| t.split.as_ref()) {
            for (choice, _) in &split.choices {
                components.insert(choice.component.clone(), choice.backend.clone());
            }
        }
        for rollout in routes.iter().filter_map(|(_, t)| t.rollout.as_ref()) {
            for choice in [&rollout.from, &rollout.to] {
                components.insert(choice.component.clone(), choice.backend.clone());
            }
        }
        let router = Router::build(routes)?;
        for shadowed in router.shadowed() {
            tracing::warn!(
                "route `{}` (trigger {}) is never used: trigger {} takes its requests",
                shadowed.route,
                shadowed.unused + 1,
                shadowed.used + 1
            );
        }
        Ok(Self {
            router,
            chained: Router::build([("/...", ())])?,
            metrics,
            components,
        })
    }

    /// The app's request counters (`--admin-listen` serves them).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The request with the `spin-*` headers for its route, and the target;
    /// `None` when no route matches.
    fn resolve(
        &self,
        req: http::Request<RequestBody>,
        ctx: &RequestContext,
    ) -> Option<(http::Request<RequestBody>, Target)> {
        let path = req.uri().path().to_owned();
        let matched = self.router.route(&path)?;
        let target = matched.target().clone();
        Some((with_spin_headers(req, &matched, ctx), target))
    }
}

/// `req` with the `spin-*` headers of `matched` (and none the client
/// sent: a client must not be able to forge how it was routed).
fn with_spin_headers<T>(
    mut req: http::Request<RequestBody>,
    matched: &router::RouteMatch<'_, T>,
    ctx: &RequestContext,
) -> http::Request<RequestBody> {
    let full_url = full_url(&req);
    let headers: Vec<(HeaderName, HeaderValue)> =
        router::spin_headers(matched, &full_url, BASE_PATH, ctx.client_addr)
            .into_iter()
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::from_bytes(name.as_bytes()).ok()?,
                    HeaderValue::from_str(&value).ok()?,
                ))
            })
            .collect();
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
    req
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
        let started = Instant::now();
        match self.resolve(req, &ctx) {
            Some((req, target)) => {
                let (choice, mirror) = target.choose();
                let response = match mirror {
                    Some(mirror) if mirror.applies_to(req.method()) => crate::mirror::serve(
                        choice.backend.clone(),
                        mirror,
                        req,
                        ctx,
                        self.metrics.clone(),
                    ),
                    _ => choice.backend.handle(req, ctx),
                };
                let series = choice.series.clone();
                let served = Served {
                    route: Some(target.route.clone()),
                    component: choice.component.clone(),
                };
                Box::pin(async move {
                    let mut response = response.await;
                    series.observe(response.status().as_u16(), started.elapsed());
                    response.extensions_mut().insert(served);
                    response
                })
            }
            None => Box::pin(async {
                text_response(StatusCode::NOT_FOUND, "no route matches this path")
            }),
        }
    }

    fn status(&self) -> Vec<ComponentStatus> {
        self.components
            .values()
            .flat_map(|backend| backend.status())
            .collect()
    }

    fn shutdown(&self) -> BoxFuture<()> {
        let backends: Vec<Arc<dyn Backend>> = self.components.values().cloned().collect();
        Box::pin(async move {
            futures::future::join_all(backends.iter().map(|b| b.shutdown())).await;
        })
    }
}

impl App for Dispatch {
    fn send_to_component(
        &self,
        id: &str,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> Option<BoxFuture<http::Response<ResponseBody>>> {
        let backend = self.components.get(id)?;
        let path = req.uri().path().to_owned();
        let req = match self.chained.route(&path) {
            Some(matched) => with_spin_headers(req, &matched, &ctx),
            None => req,
        };
        Some(backend.handle(req, ctx))
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
