//! Admission: never more requests in flight than the pooling allocator has
//! instance slots, and a bounded wait for one.
//!
//! Every component of an app draws on one [`Admission`] (one pool). A
//! request beyond it queues for a free slot for at most the queue timeout
//! (or its own deadline, if that comes first), then gets `503` with
//! `Retry-After`: under overload a client learns at once that it should
//! back off or go elsewhere, instead of holding its connection until the
//! request deadline (30 s by default) to hear the same. HAProxy's
//! `timeout queue` does the same for its server queues.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, RETRY_AFTER};
use http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::backend::{text_response, RequestContext, ResponseBody};

/// What a refused request is told to wait before trying again: the order
/// of one request's time, so a retry lands once the queue has moved.
const RETRY_AFTER_SECS: &str = "1";

/// The instance slots of one app's pool and how long a request may wait
/// for one.
#[derive(Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    size: u32,
    queue_timeout: Duration,
}

/// A request that found no free slot within its wait.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue timeout passed first.
    QueueTimeout,
    /// The request's own deadline passed first.
    Deadline,
}

impl Admission {
    /// `size` slots; a request waits at most `queue_timeout` for one.
    pub fn new(size: u32, queue_timeout: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(size as usize)),
            size,
            queue_timeout,
        }
    }

    /// A slot, held until the permit is dropped; or why there was none
    /// before the queue timeout or `deadline`, whichever comes first.
    pub async fn enter(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, Refused> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let queue_end = Instant::now() + self.queue_timeout;
        let (until, why) = if queue_end < deadline {
            (queue_end, Refused::QueueTimeout)
        } else {
            (deadline, Refused::Deadline)
        };
        match tokio::time::timeout_at(until, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one admits nobody.
            _ => Err(why),
        }
    }

    /// Slots held now.
    pub fn in_use(&self) -> usize {
        (self.size as usize).saturating_sub(self.slots.available_permits())
    }

    /// The pool's size.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Names the pool, so a status report can tell which components share
    /// one.
    pub fn pool_id(&self) -> usize {
        Arc::as_ptr(&self.slots) as usize
    }
}

impl Refused {
    /// The log line's words.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::QueueTimeout => "no free instance within the queue timeout",
            Refused::Deadline => "no free instance before the deadline",
        }
    }

    /// The answer to request `ctx` for `component`: 503, with when to try
    /// again; and the log line saying why.
    pub fn answer(&self, ctx: &RequestContext, component: &str) -> http::Response<ResponseBody> {
        tracing::warn!(request = %ctx.id, component, "{}", self.reason());
        self.response()
    }

    /// The answer: 503, with when to try again.
    pub fn response(&self) -> http::Response<ResponseBody> {
        let mut resp = text_response(StatusCode::SERVICE_UNAVAILABLE, "all instances busy");
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test]
    async fn a_free_slot_is_taken_at_once_and_given_back_on_drop() {
        let admission = Admission::new(1, Duration::from_secs(1));
        let permit = admission.enter(far()).await.unwrap();
        assert_eq!(admission.in_use(), 1);
        drop(permit);
        assert_eq!(admission.in_use(), 0);
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_slot_freed_within_its_wait() {
        let admission = Admission::new(1, Duration::from_secs(60));
        let held = admission.enter(far()).await.unwrap();
        let waiting = tokio::spawn({
            let admission = admission.clone();
            async move { admission.enter(far()).await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "admitted beside the held slot");
        drop(held);
        assert_eq!(waiting.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_full_pool_refuses_at_the_queue_timeout_before_the_deadline() {
        let admission = Admission::new(1, Duration::from_millis(50));
        let _held = admission.enter(far()).await.unwrap();
        assert_eq!(admission.enter(far()).await.unwrap_err(), Refused::QueueTimeout);
    }

    #[tokio::test]
    async fn a_deadline_before_the_queue_timeout_refuses_at_the_deadline() {
        let admission = Admission::new(1, Duration::from_secs(3600));
        let _held = admission.enter(far()).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(50);
        assert_eq!(admission.enter(deadline).await.unwrap_err(), Refused::Deadline);
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn a_refusal_is_a_503_that_says_when_to_retry() {
        let resp = Refused::QueueTimeout.response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[RETRY_AFTER], "1");
    }
}
