//! What a route's rollout is asked to do: the manifest's `rollout = { ... }`
//! as plain values, checked by `app::manifest`, defaults from
//! [`crate::limits`].

use std::time::Duration;

use crate::limits;

/// `rollout = { from, to, steps, step_time, max_error_rate, max_p99_ratio,
/// max_mismatch_rate, min_requests, mirror_methods, compare_headers }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The component the route moves away from (the trigger's
    /// `component` unless given).
    pub from: String,
    /// The component it moves to.
    pub to: String,
    /// Percent of requests `to` serves at each step, increasing, each in
    /// (0, 100].
    pub steps: Vec<f64>,
    /// How long each step's window is: the figures over it decide.
    pub step_time: Duration,
    /// `to`'s 5xx responses over its responses, at most.
    pub max_error_rate: f64,
    /// `to`'s p99 time to the response head over `from`'s, at most (both
    /// raised to [`limits::ROLLOUT_P99_FLOOR`] first).
    pub max_p99_ratio: f64,
    /// Mirrored reads whose answers differ, over mirrored reads, at most.
    pub max_mismatch_rate: f64,
    /// A figure is judged only once its window holds this many samples;
    /// a step advances only once `to` served this many in its window.
    pub min_requests: u64,
    /// Requests copied to the other form (uppercase methods); empty: none.
    pub mirror_methods: Vec<String>,
    /// Response headers compared besides status and body.
    pub compare_headers: Vec<String>,
}

// Every float is checked finite by the manifest: equality is total.
impl Eq for Policy {}

impl Policy {
    /// A policy moving `from` to `to` with every default.
    pub fn new(from: &str, to: &str) -> Self {
        Self {
            from: from.to_owned(),
            to: to.to_owned(),
            steps: limits::ROLLOUT_STEPS.to_vec(),
            step_time: limits::ROLLOUT_STEP_TIME,
            max_error_rate: limits::ROLLOUT_MAX_ERROR_RATE,
            max_p99_ratio: limits::ROLLOUT_MAX_P99_RATIO,
            max_mismatch_rate: limits::ROLLOUT_MAX_MISMATCH_RATE,
            min_requests: limits::ROLLOUT_MIN_REQUESTS,
            mirror_methods: vec!["GET".to_owned(), "HEAD".to_owned()],
            compare_headers: Vec::new(),
        }
    }

    /// Why `steps` will not do, if it will not.
    pub fn check_steps(steps: &[f64]) -> Result<(), String> {
        if steps.is_empty() {
            return Err("no steps".to_owned());
        }
        if steps
            .iter()
            .any(|s| !s.is_finite() || *s <= 0.0 || *s > 100.0)
        {
            return Err("every step is a percentage above 0 and at most 100".to_owned());
        }
        if steps.windows(2).any(|w| w[0] >= w[1]) {
            return Err("steps must increase".to_owned());
        }
        Ok(())
    }

    /// The weight of step `index`, in hundredths of a percent.
    pub fn weight_of(&self, index: usize) -> u32 {
        self.steps.get(index).map_or(0, |p| basis_points(*p))
    }
}

/// `percent` in hundredths of a percent (what the request path compares a
/// random number against).
pub fn basis_points(percent: f64) -> u32 {
    (percent.clamp(0.0, 100.0) * 100.0).round() as u32
}
