//! One window's figures and what they mean for the rollout: pure, so each
//! rule is pinned by a test below.
//!
//! A bound is judged only once the figure behind it rests on at least
//! `min_requests` samples (Argo Rollouts' "inconclusive" and Flagger's
//! minimum request count serve the same end: one 5xx out of three requests
//! is not a 33 % error rate). A window in which `to` has not yet served
//! `min_requests` is extended rather than judged as passed.

use serde::{Deserialize, Serialize};

use super::policy::Policy;
use crate::limits;
use crate::metrics::Snapshot;

/// What one window saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Seconds the window lasted.
    pub seconds: f64,
    /// Responses `to` served.
    pub to_requests: u64,
    /// Of them, 5xx.
    pub to_errors: u64,
    /// Responses `from` served.
    pub from_requests: u64,
    /// `to`'s p99 time to the response head, seconds.
    pub to_p99: Option<f64>,
    /// `from`'s.
    pub from_p99: Option<f64>,
    /// Requests copied to the other form and compared.
    pub mirrored: u64,
    /// Of them, answers that differed.
    pub mismatches: u64,
}

/// The counters a window is cut from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// `from`'s series.
    pub from: Snapshot,
    /// `to`'s series.
    pub to: Snapshot,
    /// Mirrored requests, both ways.
    pub mirrored: u64,
    /// Mismatches, both ways.
    pub mismatches: u64,
}

impl Reading {
    /// The figures from `earlier` to this reading, `seconds` apart.
    pub fn since(&self, earlier: &Reading, seconds: f64) -> Figures {
        let (from, to) = (self.from.since(&earlier.from), self.to.since(&earlier.to));
        Figures {
            seconds,
            to_requests: to.requests,
            to_errors: to.errors,
            from_requests: from.requests,
            to_p99: to.quantile(0.99),
            from_p99: from.quantile(0.99),
            mirrored: self.mirrored.saturating_sub(earlier.mirrored),
            mismatches: self.mismatches.saturating_sub(earlier.mismatches),
        }
    }
}

/// Which bound a window broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// `max_error_rate`.
    ErrorRate,
    /// `max_p99_ratio`.
    P99Ratio,
    /// `max_mismatch_rate`.
    MismatchRate,
}

impl Bound {
    /// The metric label and the word in logs.
    pub fn name(self) -> &'static str {
        match self {
            Bound::ErrorRate => "error_rate",
            Bound::P99Ratio => "p99_ratio",
            Bound::MismatchRate => "mismatch_rate",
        }
    }
}

/// What a window says.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every bound held on enough samples: the next step may come.
    Pass,
    /// Not enough of `to`'s traffic yet: the window goes on.
    Wait(String),
    /// A bound broke: back to 0 %.
    Breach {
        /// Which.
        bound: Bound,
        /// The figure, and the bound, for the log and the decision.
        reason: String,
    },
}

impl Figures {
    /// `to`'s 5xx rate, once it rests on enough responses.
    fn error_rate(&self, min: u64) -> Option<f64> {
        (self.to_requests >= min && self.to_requests > 0)
            .then(|| self.to_errors as f64 / self.to_requests as f64)
    }

    /// `to`'s p99 over `from`'s, both raised to the floor, once both rest
    /// on enough responses.
    pub fn p99_ratio(&self, min: u64) -> Option<f64> {
        if self.to_requests < min.max(1) || self.from_requests < min.max(1) {
            return None;
        }
        let floor = limits::ROLLOUT_P99_FLOOR.as_secs_f64();
        Some(self.to_p99?.max(floor) / self.from_p99?.max(floor))
    }

    /// Mismatched over mirrored, once enough were compared.
    fn mismatch_rate(&self, min: u64) -> Option<f64> {
        (self.mirrored >= min && self.mirrored > 0)
            .then(|| self.mismatches as f64 / self.mirrored as f64)
    }
}

/// The verdict of `figures` under `policy`.
pub fn judge(policy: &Policy, figures: &Figures) -> Verdict {
    let min = policy.min_requests;
    if let Some(rate) = figures.error_rate(min) {
        if rate > policy.max_error_rate {
            return Verdict::Breach {
                bound: Bound::ErrorRate,
                reason: format!(
                    "error rate {:.4} > {} ({} of {} responses from `{}` were 5xx)",
                    rate, policy.max_error_rate, figures.to_errors, figures.to_requests, policy.to
                ),
            };
        }
    }
    if let Some(ratio) = figures.p99_ratio(min) {
        if ratio > policy.max_p99_ratio {
            return Verdict::Breach {
                bound: Bound::P99Ratio,
                reason: format!(
                    "p99 ratio {ratio:.2} > {} (`{}` {:.1} ms, `{}` {:.1} ms)",
                    policy.max_p99_ratio,
                    policy.to,
                    figures.to_p99.unwrap_or_default() * 1e3,
                    policy.from,
                    figures.from_p99.unwrap_or_default() * 1e3
                ),
            };
        }
    }
    if let Some(rate) = figures.mismatch_rate(min) {
        if rate > policy.max_mismatch_rate {
            return Verdict::Breach {
                bound: Bound::MismatchRate,
                reason: format!(
                    "mismatch rate {rate:.4} > {} ({} of {} mirrored answers differed)",
                    policy.max_mismatch_rate, figures.mismatches, figures.mirrored
                ),
            };
        }
    }
    if figures.to_requests < min {
        return Verdict::Wait(format!(
            "`{}` served {} of the {} requests a step needs",
            policy.to, figures.to_requests, min
        ));
    }
    Verdict::Pass
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            min_requests: 10,
            max_error_rate: 0.05,
            max_p99_ratio: 1.5,
            max_mismatch_rate: 0.0,
            ..Policy::new("old", "new")
        }
    }

    fn healthy() -> Figures {
        Figures {
            seconds: 1.0,
            to_requests: 100,
            from_requests: 100,
            to_p99: Some(0.001),
            from_p99: Some(0.001),
            mirrored: 50,
            ..Figures::default()
        }
    }

    #[test]
    fn a_window_within_every_bound_passes() {
        assert_eq!(judge(&policy(), &healthy()), Verdict::Pass);
    }

    #[test]
    fn too_many_5xx_breach_the_error_rate() {
        let figures = Figures {
            to_errors: 6,
            ..healthy()
        };
        let Verdict::Breach { bound, reason } = judge(&policy(), &figures) else {
            panic!("no breach")
        };
        assert_eq!(bound, Bound::ErrorRate);
        assert!(reason.contains("6 of 100"), "{reason}");
    }

    #[test]
    fn a_slow_new_form_breaches_the_p99_ratio() {
        let figures = Figures {
            to_p99: Some(0.05),
            from_p99: Some(0.002),
            ..healthy()
        };
        assert!(matches!(
            judge(&policy(), &figures),
            Verdict::Breach {
                bound: Bound::P99Ratio,
                ..
            }
        ));
    }

    #[test]
    fn latencies_below_the_floor_are_not_compared() {
        // 0.9 ms against 0.1 ms: nine times, but both below the floor.
        let figures = Figures {
            to_p99: Some(0.0009),
            from_p99: Some(0.0001),
            ..healthy()
        };
        assert_eq!(judge(&policy(), &figures), Verdict::Pass);
    }

    #[test]
    fn one_mismatch_breaches_a_zero_mismatch_bound() {
        let figures = Figures {
            mismatches: 1,
            ..healthy()
        };
        assert!(matches!(
            judge(&policy(), &figures),
            Verdict::Breach {
                bound: Bound::MismatchRate,
                ..
            }
        ));
    }

    #[test]
    fn too_few_samples_wait_rather_than_judge() {
        let figures = Figures {
            to_requests: 3,
            to_errors: 3,
            mirrored: 2,
            mismatches: 2,
            ..healthy()
        };
        assert!(matches!(judge(&policy(), &figures), Verdict::Wait(_)));
    }

    #[test]
    fn mismatches_are_judged_while_the_new_form_still_waits_for_traffic() {
        // A 1 % step: `to` served little, but many reads were mirrored.
        let figures = Figures {
            to_requests: 2,
            mirrored: 40,
            mismatches: 40,
            ..healthy()
        };
        assert!(matches!(
            judge(&policy(), &figures),
            Verdict::Breach {
                bound: Bound::MismatchRate,
                ..
            }
        ));
    }
}
