//! Rollouts: a route moved from one component to another step by step
//! (`rollout = { from, to, steps, step_time, ... }` on a trigger) while
//! the new form's error rate, its p99 against the old form's and the
//! mismatch rate of mirrored reads stay within bounds; rolled back to 0 %
//! at once when one breaks.
//!
//! - [`policy`]: the manifest's keys as plain values.
//! - [`judge`]: a window's figures and their verdict (pure).
//! - [`state`]: phases, steps, decisions, and what windows and commands do
//!   to them (pure).
//! - [`store`]: the state in the app's state directory.
//! - [`controller`]: one task per route that cuts windows from the app's
//!   counters ([`crate::metrics`]), and [`Rollouts`], the registry the
//!   admin listener and reloads share.
//!
//! The request path only reads one atomic (the route's [`Weight`]); the
//! figures come from the counters every route keeps anyway.

pub mod controller;
pub mod judge;
pub mod policy;
pub mod state;
pub mod store;

use std::sync::atomic::{AtomicU32, Ordering};

pub use controller::Rollouts;
pub use policy::Policy;

/// The share of a route's requests the new form gets now, in hundredths of
/// a percent: written by the controller, read by every request.
#[derive(Debug, Default)]
pub struct Weight(AtomicU32);

impl Weight {
    /// Whether this request goes to the new form.
    pub fn pick_new(&self) -> bool {
        let weight = self.0.load(Ordering::Relaxed);
        weight > 0 && fastrand::u32(0..10_000) < weight
    }

    /// Now, in hundredths of a percent.
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, basis_points: u32) {
        self.0.store(basis_points, Ordering::Relaxed);
    }
}
