//! Keep-alive connections to one container, idle, for the next request.

#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};

use hyper::client::conn::http1::SendRequest;

use crate::backend::RequestBody;

/// Idle keep-alive connections kept per container at most.
pub const MAX_IDLE: usize = 32;

/// The idle connections of one container.
#[derive(Clone, Default)]
pub struct Pool {
    idle: Arc<Mutex<Vec<SendRequest<RequestBody>>>>,
}

impl Pool {
    /// An idle connection that can take a request now, if any (the ones
    /// the container closed meanwhile are dropped on the way).
    pub fn take(&self) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(sender) = idle.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    /// Puts `sender` back once its current exchange is through (its
    /// connection driven by a task of its own), unless the pool is full or
    /// the connection closes instead.
    pub fn keep(&self, mut sender: SendRequest<RequestBody>) {
        let idle = self.idle.clone();
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            if let Ok(mut idle) = idle.lock() {
                if idle.len() < MAX_IDLE {
                    idle.push(sender);
                }
            }
        });
    }

    /// How many connections wait.
    pub fn len(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
