//! Learning-rate schedules (paper §3.3, spec §6): linear warmup, then DeepSeek-Coder's
//! three-stage step schedule, cosine, warmup-stable-decay or linear decay to zero.
//!
//! The last two are for short budgets: a run of minutes has no time to spend at a tenth of its
//! peak rate, and both decay to zero (Bergsma et al. 2025, "Straight to Zero"; MiniCPM's WSD).
//! WSD also keeps the peak rate until its decay, so a time-budgeted run can re-plan its length
//! late (see `Schedule::decay_start`).

use serde::{Deserialize, Serialize};

/// The shape of the decay after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// DeepSeek-Coder's: the maximum LR until 80 % of the planned steps, then x sqrt(0.1), and
    /// x sqrt(0.1) again from 90 %, ending at 10 % of the maximum.
    Step,
    /// Cosine from the maximum down to 10 % of it at the last step.
    Cosine,
    /// Warmup-stable-decay: the maximum until the last [`WSD_DECAY_FRACTION`] of the steps,
    /// then linearly down to zero at the last step.
    Wsd,
    /// Linearly from the maximum (at the end of warmup) down to zero at the last step.
    Linear,
}

impl ScheduleKind {
    /// Every kind, for listings and errors.
    pub const ALL: [ScheduleKind; 4] = [ScheduleKind::Step, ScheduleKind::Cosine, ScheduleKind::Wsd, ScheduleKind::Linear];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ScheduleKind::Step => "step",
            ScheduleKind::Cosine => "cosine",
            ScheduleKind::Wsd => "wsd",
            ScheduleKind::Linear => "linear",
        }
    }
}

impl std::str::FromStr for ScheduleKind {
    type Err = String;

    /// The names of [`ScheduleKind::name`], and `deepseek` for the step schedule.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "deepseek" {
            return Ok(ScheduleKind::Step);
        }
        ScheduleKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown schedule {s:?}; expected one of {}", ScheduleKind::ALL.map(|k| k.name()).join(", ")))
    }
}

/// A schedule over `total_steps` optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Peak learning rate.
    pub max_lr: f64,
    /// Steps of linear warmup: step `s < warmup` uses `max_lr * (s + 1) / warmup`.
    pub warmup_steps: usize,
    /// Planned optimizer steps (the stages are placed at fractions of it).
    pub total_steps: usize,
    /// Decay after warmup.
    pub kind: ScheduleKind,
}

/// Where the step and cosine decays end, as a fraction of `max_lr` (WSD and linear end at 0).
pub const FINAL_FRACTION: f64 = 0.1;
/// The share of the steps over which WSD decays (Hägele et al. 2024 found a 20% cool-down
/// matches cosine at every length they tried).
pub const WSD_DECAY_FRACTION: f64 = 0.2;

impl Schedule {
    /// The learning rate of optimizer step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.max_lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let total = self.total_steps.max(1) as f64;
        match self.kind {
            ScheduleKind::Step => {
                let s = step as f64;
                let mut f = 1.0;
                if s >= 0.8 * total {
                    f *= 0.1f64.sqrt();
                }
                if s >= 0.9 * total {
                    f *= 0.1f64.sqrt();
                }
                self.max_lr * f
            }
            ScheduleKind::Cosine => {
                let span = (self.total_steps.saturating_sub(self.warmup_steps)).max(1) as f64;
                let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
                let min = self.max_lr * FINAL_FRACTION;
                min + (self.max_lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            ScheduleKind::Wsd => {
                let start = self.decay_start(self.total_steps);
                if step < start {
                    return self.max_lr;
                }
                // Linear from max at `start` to 0 one step past the last, so the last step still
                // moves the weights.
                let span = (self.total_steps - start) as f64;
                self.max_lr * (1.0 - (step - start) as f64 / span).max(0.0)
            }
            ScheduleKind::Linear => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                self.max_lr * (1.0 - (step - self.warmup_steps) as f64 / span).max(0.0)
            }
        }
    }

    /// The first step whose LR depends on the planned length when the run is planned for
    /// `total_steps`: before it, every step's LR is the same for any plan at least that long, so
    /// a run may change its plan (`Trainer::replan_steps`) until it gets there.
    pub fn decay_start(&self, total_steps: usize) -> usize {
        match self.kind {
            ScheduleKind::Step => (total_steps * 4).div_ceil(5),
            ScheduleKind::Wsd => {
                let stable = ((total_steps as f64) * (1.0 - WSD_DECAY_FRACTION)).ceil() as usize;
                stable.max(self.warmup_steps).min(total_steps)
            }
            ScheduleKind::Cosine | ScheduleKind::Linear => self.warmup_steps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_schedule_has_the_papers_stages() {
        let s = Schedule { max_lr: 1.0, warmup_steps: 10, total_steps: 100, kind: ScheduleKind::Step };
        assert_eq!(s.lr(0), 0.1);
        assert_eq!(s.lr(9), 1.0);
        assert_eq!(s.lr(10), 1.0);
        assert_eq!(s.lr(79), 1.0);
        assert!((s.lr(80) - 0.1f64.sqrt()).abs() < 1e-15);
        assert!((s.lr(89) - 0.1f64.sqrt()).abs() < 1e-15);
        assert!((s.lr(90) - 0.1).abs() < 1e-15);
        assert!((s.lr(99) - 0.1).abs() < 1e-15);
    }

    #[test]
    fn cosine_goes_from_max_to_a_tenth() {
        let s = Schedule { max_lr: 2.0, warmup_steps: 4, total_steps: 104, kind: ScheduleKind::Cosine };
        assert_eq!(s.lr(3), 2.0);
        assert!((s.lr(4) - 2.0).abs() < 1e-12);
        assert!((s.lr(54) - 1.1).abs() < 1e-12, "{}", s.lr(54)); // halfway: (2 + 0.2) / 2
        assert!((s.lr(104) - 0.2).abs() < 1e-12);
        assert!(s.lr(30) > s.lr(31));
    }

    #[test]
    fn wsd_holds_the_peak_then_decays_to_zero() {
        let s = Schedule { max_lr: 1.0, warmup_steps: 10, total_steps: 100, kind: ScheduleKind::Wsd };
        assert_eq!(s.lr(0), 0.1);
        assert_eq!(s.lr(10), 1.0);
        assert_eq!(s.lr(79), 1.0);
        assert_eq!(s.decay_start(100), 80);
        assert_eq!(s.lr(80), 1.0);
        assert!((s.lr(90) - 0.5).abs() < 1e-12, "{}", s.lr(90));
        assert!((s.lr(99) - 0.05).abs() < 1e-12, "{}", s.lr(99));
        assert!(s.lr(99) > 0.0 && s.lr(100) == 0.0);
        // A longer plan gives the same LR to every step before the shorter plan's decay.
        let longer = Schedule { total_steps: 150, ..s };
        assert!((0..80).all(|i| s.lr(i) == longer.lr(i)));
    }

    #[test]
    fn linear_goes_from_the_peak_to_zero() {
        let s = Schedule { max_lr: 2.0, warmup_steps: 4, total_steps: 104, kind: ScheduleKind::Linear };
        assert_eq!(s.lr(3), 2.0);
        assert_eq!(s.lr(4), 2.0);
        assert!((s.lr(54) - 1.0).abs() < 1e-12);
        assert!((s.lr(103) - 0.02).abs() < 1e-12);
        assert_eq!(s.decay_start(104), 4);
    }

    #[test]
    fn schedule_names_round_trip() {
        for k in ScheduleKind::ALL {
            assert_eq!(k.name().parse::<ScheduleKind>().unwrap(), k);
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{}\"", k.name()));
        }
        assert_eq!("deepseek".parse::<ScheduleKind>().unwrap(), ScheduleKind::Step);
        assert!("warmup".parse::<ScheduleKind>().unwrap_err().contains("step, cosine, wsd, linear"));
    }
}
