//! Learning-rate schedules (paper §3.3, spec §6): linear warmup, then DeepSeek-Coder's
//! three-stage step schedule or cosine.

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

/// Where the decay ends, as a fraction of `max_lr` (both kinds).
pub const FINAL_FRACTION: f64 = 0.1;

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
}
