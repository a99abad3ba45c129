//! Spin's service chaining: a component's way back into its own app.
//! `http://self/...` goes through the app's routes,
//! `http://<id>.spin.internal/...` straight to component `<id>`, in
//! process, without a socket.
//!
//! The components exist before the app that routes to them, so the handle
//! is made empty, handed to every component, and bound once the app is
//! assembled; it holds the app weakly, so the app and its components do
//! not keep each other alive. It knows the app only as [`App`], which the
//! dispatcher implements: the wasm layer never sees the dispatcher.

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::backend::{
    text_response, Backend, BoxFuture, RequestBody, RequestContext, RequestId, ResponseBody,
};

/// The host suffix of Spin's local service chaining.
pub const SPIN_INTERNAL: &str = ".spin.internal";

/// What a chained request reaches: the app's routes, or one of its
/// components (private ones included).
pub trait App: Backend {
    /// Sends `req` straight to component `id`, with the `spin-*` headers
    /// Spin gives such a request (its whole path is `spin-path-info`, as if
    /// the component were routed `/...`); `None` when the app has no such
    /// component.
    fn send_to_component(
        &self,
        id: &str,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> Option<BoxFuture<http::Response<ResponseBody>>>;
}

/// A component's handle on its own app.
#[derive(Clone, Default)]
pub struct AppHandle {
    app: Arc<OnceLock<Weak<dyn App>>>,
    timeout: Arc<OnceLock<Duration>>,
}

impl std::fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppHandle")
    }
}

impl AppHandle {
    /// Binds the handle to the assembled app; its requests get `timeout`.
    pub fn bind(&self, app: Weak<dyn App>, timeout: Duration) {
        // Bound once, right after assembly: a second bind has nothing to
        // change.
        let _ = self.app.set(app);
        let _ = self.timeout.set(timeout);
    }

    /// Sends `req` into the app: to component `component` directly, or
    /// through the routes when `None`. 502 when the app is gone or has no
    /// such component.
    pub fn send(
        &self,
        req: http::Request<RequestBody>,
        component: Option<&str>,
    ) -> BoxFuture<http::Response<ResponseBody>> {
        let Some(app) = self.app.get().and_then(Weak::upgrade) else {
            return Box::pin(async {
                text_response(StatusCode::BAD_GATEWAY, "the app is not running")
            });
        };
        let ctx = RequestContext {
            id: RequestId::next(),
            client_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            deadline: Instant::now()
                + self
                    .timeout
                    .get()
                    .copied()
                    .unwrap_or(crate::limits::REQUEST_TIMEOUT),
        };
        match component {
            None => app.handle(req, ctx),
            Some(id) => app.send_to_component(id, req, ctx).unwrap_or_else(|| {
                let message = format!("the app has no component `{id}`");
                Box::pin(async move { text_response(StatusCode::BAD_GATEWAY, message) })
            }),
        }
    }
}
