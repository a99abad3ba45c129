//! Where a route's rollout stands, and the transitions windows and
//! commands make: pure and serialisable (it is what the state directory
//! keeps), each rule pinned by a test below.
//!
//! ```text
//! Progressing ──pass, last step──► Complete
//!   │  ▲  pass: next step
//!   │  └──────── resume ────────── Paused ◄── pause
//!   └─breach (Progressing or Paused)─► RolledBack (0 %) ──resume──► Progressing, first step
//! any ──abort──► Aborted (0 %) ──resume──► Progressing, first step
//! any ──promote──► Promoted (100 %)
//! ```
//!
//! A paused rollout does not advance, but a breach still rolls it back:
//! pausing stops the progress, not the watch.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::judge::{Figures, Verdict};
use super::policy::{basis_points, Policy};
use crate::limits;

/// The phase of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Advancing window by window.
    Progressing,
    /// Held at its step by a command.
    Paused,
    /// A bound broke: `to` gets nothing until resumed.
    RolledBack,
    /// Stopped by a command: `to` gets nothing until resumed.
    Aborted,
    /// Sent to `to` entirely by a command.
    Promoted,
    /// Every step passed.
    Complete,
}

impl Phase {
    /// The word in status and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Progressing => "progressing",
            Phase::Paused => "paused",
            Phase::RolledBack => "rolled_back",
            Phase::Aborted => "aborted",
            Phase::Promoted => "promoted",
            Phase::Complete => "complete",
        }
    }
}

/// A command from the CLI (through the admin listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Stop advancing.
    Pause,
    /// Go on (from the first step after a rollback or an abort).
    Resume,
    /// All to `to`, now.
    Promote,
    /// Nothing to `to`, now.
    Abort,
}

impl Command {
    /// `pause`, `resume`, `promote`, `abort`.
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "pause" => Command::Pause,
            "resume" => Command::Resume,
            "promote" => Command::Promote,
            "abort" => Command::Abort,
            _ => return None,
        })
    }

    /// The word.
    pub fn name(self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Promote => "promote",
            Command::Abort => "abort",
        }
    }
}

/// One decision, with the figures it was taken on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// `advance`, `complete`, `rollback`, or a command's word.
    pub action: String,
    /// The step index after the decision.
    pub step: usize,
    /// `to`'s percent after the decision.
    pub weight_percent: f64,
    /// Why (a breach's figure and bound, a command's origin).
    pub reason: String,
    /// The window's figures (none for a command).
    pub figures: Option<Figures>,
}

/// A route's rollout: what is persisted and reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteState {
    /// The route, as written.
    pub route: String,
    /// The component moved away from.
    pub from: String,
    /// The component moved to.
    pub to: String,
    /// The phase.
    pub phase: Phase,
    /// The index of the current step in the policy's `steps`.
    pub step: usize,
    /// `to`'s share, in hundredths of a percent.
    pub weight: u32,
    /// Why it was rolled back or aborted, while it is.
    pub reason: Option<String>,
    /// Rollbacks so far, by bound.
    pub rollbacks: BTreeMap<String, u64>,
    /// The latest decisions, oldest first, at most
    /// [`limits::ROLLOUT_DECISIONS_KEPT`].
    pub decisions: VecDeque<Decision>,
}

impl RouteState {
    /// A rollout about to start: the first step.
    pub fn start(route: &str, policy: &Policy) -> Self {
        Self {
            route: route.to_owned(),
            from: policy.from.clone(),
            to: policy.to.clone(),
            phase: Phase::Progressing,
            step: 0,
            weight: policy.weight_of(0),
            reason: None,
            rollbacks: BTreeMap::new(),
            decisions: VecDeque::new(),
        }
    }

    /// Whether windows are judged now.
    pub fn watching(&self) -> bool {
        matches!(self.phase, Phase::Progressing | Phase::Paused)
    }

    /// Applies a window's verdict; the decision taken, if any (a wait is
    /// none: the window goes on).
    pub fn on_window(
        &mut self,
        policy: &Policy,
        verdict: &Verdict,
        figures: Figures,
        at: u64,
    ) -> Option<&Decision> {
        if !self.watching() {
            return None;
        }
        let (action, reason) = match verdict {
            Verdict::Wait(_) => return None,
            Verdict::Pass if self.phase == Phase::Paused => return None,
            Verdict::Pass if self.step + 1 < policy.steps.len() => {
                self.step += 1;
                self.weight = policy.weight_of(self.step);
                ("advance", "every bound held".to_owned())
            }
            Verdict::Pass => {
                self.phase = Phase::Complete;
                ("complete", "every bound held at the last step".to_owned())
            }
            Verdict::Breach { bound, reason } => {
                self.phase = Phase::RolledBack;
                self.weight = 0;
                self.reason = Some(reason.clone());
                *self.rollbacks.entry(bound.name().to_owned()).or_default() += 1;
                ("rollback", reason.clone())
            }
        };
        self.record(action, reason, Some(figures), at);
        self.decisions.back()
    }

    /// Applies a command; refused (saying why) when it means nothing in
    /// this phase.
    pub fn command(&mut self, policy: &Policy, command: Command, at: u64) -> Result<(), String> {
        let refuse = || {
            Err(format!(
                "cannot {} a rollout that is {}",
                command.name(),
                self.phase.name().replace('_', " ")
            ))
        };
        match (command, &self.phase) {
            (Command::Pause, Phase::Progressing) => self.phase = Phase::Paused,
            (Command::Pause, _) => return refuse(),
            (Command::Resume, Phase::Paused) => self.phase = Phase::Progressing,
            (Command::Resume, Phase::RolledBack | Phase::Aborted) => {
                self.phase = Phase::Progressing;
                self.step = 0;
                self.weight = policy.weight_of(0);
                self.reason = None;
            }
            (Command::Resume, _) => return refuse(),
            (Command::Promote, Phase::Promoted) => return refuse(),
            (Command::Promote, _) => {
                self.phase = Phase::Promoted;
                self.weight = basis_points(100.0);
                self.reason = None;
            }
            (Command::Abort, Phase::Aborted) => return refuse(),
            (Command::Abort, _) => {
                self.phase = Phase::Aborted;
                self.weight = 0;
                self.reason = Some("aborted by a command".to_owned());
            }
        }
        self.record(command.name(), "by a command".to_owned(), None, at);
        Ok(())
    }

    fn record(&mut self, action: &str, reason: String, figures: Option<Figures>, at: u64) {
        if self.decisions.len() >= limits::ROLLOUT_DECISIONS_KEPT {
            self.decisions.pop_front();
        }
        self.decisions.push_back(Decision {
            at,
            action: action.to_owned(),
            step: self.step,
            weight_percent: f64::from(self.weight) / 100.0,
            reason,
            figures,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::judge::Bound;

    fn policy() -> Policy {
        Policy {
            steps: vec![10.0, 50.0, 100.0],
            ..Policy::new("old", "new")
        }
    }

    fn breach() -> Verdict {
        Verdict::Breach {
            bound: Bound::ErrorRate,
            reason: "error rate 0.5 > 0.01".to_owned(),
        }
    }

    #[test]
    fn passing_windows_advance_step_by_step_to_complete() {
        let p = policy();
        let mut s = RouteState::start("/...", &p);
        assert_eq!(s.weight, 1000);
        s.on_window(&p, &Verdict::Pass, Figures::default(), 1);
        assert_eq!((s.step, s.weight), (1, 5000));
        s.on_window(&p, &Verdict::Pass, Figures::default(), 2);
        assert_eq!((s.step, s.weight), (2, 10000));
        s.on_window(&p, &Verdict::Pass, Figures::default(), 3);
        assert_eq!(s.phase, Phase::Complete);
        let actions: Vec<&str> = s.decisions.iter().map(|d| d.action.as_str()).collect();
        assert_eq!(actions, ["advance", "advance", "complete"]);
    }

    #[test]
    fn a_breach_rolls_back_to_zero_and_holds() {
        let p = policy();
        let mut s = RouteState::start("/...", &p);
        s.on_window(&p, &Verdict::Pass, Figures::default(), 1);
        s.on_window(&p, &breach(), Figures::default(), 2);
        assert_eq!((s.phase.clone(), s.weight), (Phase::RolledBack, 0));
        assert_eq!(s.rollbacks["error_rate"], 1);
        // Held: passing windows change nothing now.
        assert!(s
            .on_window(&p, &Verdict::Pass, Figures::default(), 3)
            .is_none());
        assert_eq!(s.weight, 0);
    }

    #[test]
    fn a_wait_decides_nothing() {
        let p = policy();
        let mut s = RouteState::start("/...", &p);
        assert!(s
            .on_window(&p, &Verdict::Wait("few".into()), Figures::default(), 1)
            .is_none());
        assert_eq!((s.step, s.decisions.len()), (0, 0));
    }

    #[test]
    fn a_paused_rollout_does_not_advance_but_still_rolls_back() {
        let p = policy();
        let mut s = RouteState::start("/...", &p);
        s.command(&p, Command::Pause, 1).unwrap();
        s.on_window(&p, &Verdict::Pass, Figures::default(), 2);
        assert_eq!((s.phase.clone(), s.step), (Phase::Paused, 0));
        s.on_window(&p, &breach(), Figures::default(), 3);
        assert_eq!(s.phase, Phase::RolledBack);
    }

    #[test]
    fn resume_after_a_rollback_starts_again_from_the_first_step() {
        let p = policy();
        let mut s = RouteState::start("/...", &p);
        s.on_window(&p, &Verdict::Pass, Figures::default(), 1);
        s.on_window(&p, &breach(), Figures::default(), 2);
        s.command(&p, Command::Resume, 3).unwrap();
        assert_eq!(
            (s.phase.clone(), s.step, s.weight, s.reason.clone()),
            (Phase::Progressing, 0, 1000, None)
        );
    }

    #[test]
    fn promote_and_abort_set_the_weight_at_once() {
        let p = policy();
        let mut s = RouteState::start("/...", &p);
        s.command(&p, Command::Promote, 1).unwrap();
        assert_eq!((s.phase.clone(), s.weight), (Phase::Promoted, 10000));
        s.command(&p, Command::Abort, 2).unwrap();
        assert_eq!((s.phase.clone(), s.weight), (Phase::Aborted, 0));
    }

    #[test]
    fn a_command_that_means_nothing_now_is_refused_saying_why() {
        let p = policy();
        let mut s = RouteState::start("/...", &p);
        let err = s.command(&p, Command::Resume, 1).unwrap_err();
        assert_eq!(err, "cannot resume a rollout that is progressing");
        s.command(&p, Command::Abort, 2).unwrap();
        let err = s.command(&p, Command::Pause, 3).unwrap_err();
        assert_eq!(err, "cannot pause a rollout that is aborted");
    }

    #[test]
    fn only_the_latest_decisions_are_kept() {
        let p = policy();
        let mut s = RouteState::start("/...", &p);
        for at in 0..(limits::ROLLOUT_DECISIONS_KEPT as u64 + 5) {
            s.command(&p, Command::Pause, at).unwrap();
            s.command(&p, Command::Resume, at).unwrap();
        }
        assert_eq!(s.decisions.len(), limits::ROLLOUT_DECISIONS_KEPT);
    }
}
