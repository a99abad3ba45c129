//! Reloading an app without dropping a request: the front door holds a
//! [`Swappable`] backend; a reload builds the new app completely (every
//! component loaded and checked) while the old one serves, then swaps it
//! in. Requests already in flight finish on the old app, which is shut
//! down (its containers stopped) only after they have had their full
//! deadline. A reload that fails leaves the running app as it was.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::backend::{Backend, BoxFuture, RequestBody, RequestContext, ResponseBody};

/// A backend that can be replaced while it serves.
pub struct Swappable {
    current: RwLock<Arc<dyn Backend>>,
}

impl Swappable {
    /// Serving `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            current: RwLock::new(backend),
        }
    }

    /// Serves `next` from now on; the previous backend is shut down once
    /// `grace` (the request deadline) has passed, so requests it took
    /// finish there.
    pub fn swap(&self, next: Arc<dyn Backend>, grace: Duration) {
        let previous = match self.current.write() {
            Ok(mut current) => std::mem::replace(&mut *current, next),
            Err(_) => return,
        };
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            previous.shutdown().await;
        });
    }

    fn current(&self) -> Option<Arc<dyn Backend>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

impl Backend for Swappable {
    fn handle(
        &self,
        req: http::Request<RequestBody>,
        ctx: RequestContext,
    ) -> BoxFuture<http::Response<ResponseBody>> {
        match self.current() {
            Some(backend) => backend.handle(req, ctx),
            None => Box::pin(async {
                crate::backend::text_response(http::StatusCode::INTERNAL_SERVER_ERROR, "no app")
            }),
        }
    }

    fn status(&self) -> Vec<crate::backend::ComponentStatus> {
        self.current().map(|b| b.status()).unwrap_or_default()
    }

    fn shutdown(&self) -> BoxFuture<()> {
        match self.current() {
            Some(backend) => backend.shutdown(),
            None => Box::pin(async {}),
        }
    }
}
