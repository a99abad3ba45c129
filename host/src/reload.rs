//! Reloading an app without dropping a request: the front door holds a
//! [`Swappable`] backend; a reload builds the new app completely (every
//! component loaded and checked) while the old one serves, then swaps it
//! in. Requests already in flight finish on the old app, which is shut
//! down (its containers stopped) only after they have had their full
//! deadline. A reload that fails leaves the running app as it was.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::backend::{Backend, BoxFuture, RequestBody, RequestContext, ResponseBody};

/// A backend that can be replaced while it serves.
pub struct Swappable {
    current: RwLock<Arc<dyn Backend>>,
    /// Backends swapped out whose grace has not ended yet: a shutdown
    /// before then shuts them down too, or their containers would outlive
    /// the process.
    retiring: Arc<Mutex<Vec<Arc<dyn Backend>>>>,
}

impl Swappable {
    /// Serving `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            current: RwLock::new(backend),
            retiring: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Serves `next` from now on; the previous backend is shut down once
    /// `grace` (the request deadline) has passed, so requests it took
    /// finish there — or at this backend's own shutdown, if that comes
    /// first.
    pub fn swap(&self, next: Arc<dyn Backend>, grace: Duration) {
        let previous = match self.current.write() {
            Ok(mut current) => std::mem::replace(&mut *current, next),
            Err(_) => return,
        };
        if let Ok(mut retiring) = self.retiring.lock() {
            retiring.push(previous.clone());
        }
        let retiring = self.retiring.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let still_here = match retiring.lock() {
                Ok(mut list) => {
                    let before = list.len();
                    list.retain(|b| !Arc::ptr_eq(b, &previous));
                    list.len() < before
                }
                Err(_) => false,
            };
            // Not there: a shutdown took it (and stops it) already.
            if still_here {
                previous.shutdown().await;
            }
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
        let mut backends: Vec<Arc<dyn Backend>> = self
            .retiring
            .lock()
            .map(|mut list| std::mem::take(&mut *list))
            .unwrap_or_default();
        backends.extend(self.current());
        Box::pin(async move {
            futures::future::join_all(backends.iter().map(|b| b.shutdown())).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A backend that counts its shutdowns.
    struct Counting(Arc<AtomicUsize>);

    impl Backend for Counting {
        fn handle(
            &self,
            _req: http::Request<RequestBody>,
            _ctx: RequestContext,
        ) -> BoxFuture<http::Response<ResponseBody>> {
            Box::pin(async { crate::backend::text_response(http::StatusCode::OK, "ok") })
        }

        fn shutdown(&self) -> BoxFuture<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {})
        }
    }

    fn counting() -> (Arc<dyn Backend>, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        (Arc::new(Counting(count.clone())), count)
    }

    #[tokio::test]
    async fn a_shutdown_within_the_grace_stops_the_swapped_out_apps_too_and_only_once() {
        let (first, first_count) = counting();
        let (second, second_count) = counting();
        let (third, third_count) = counting();
        let swappable = Swappable::new(first);
        let grace = Duration::from_millis(300);
        swappable.swap(second, grace);
        swappable.swap(third, grace);
        swappable.shutdown().await;
        let counts =
            || [&first_count, &second_count, &third_count].map(|c| c.load(Ordering::SeqCst));
        assert_eq!(counts(), [1, 1, 1]);
        // The grace ends later: nothing is shut down twice.
        tokio::time::sleep(grace * 3).await;
        assert_eq!(counts(), [1, 1, 1]);
    }

    #[tokio::test]
    async fn a_swapped_out_app_is_shut_down_when_its_grace_ends() {
        let (first, first_count) = counting();
        let (second, second_count) = counting();
        let swappable = Swappable::new(first);
        let grace = Duration::from_millis(100);
        swappable.swap(second, grace);
        tokio::time::sleep(grace * 10).await;
        assert_eq!(first_count.load(Ordering::SeqCst), 1);
        assert_eq!(
            second_count.load(Ordering::SeqCst),
            0,
            "the app serving now"
        );
    }
}
