//! Training to a time budget instead of a step count (`kiln quickstart`): [`calibrate_steps`]
//! times a few steps of the same model on the same data in a scratch run and says how many steps
//! fit the seconds; [`train_to_deadline`] trains a tenth of that plan, re-plans the number of
//! steps from the pace it really had ([`Trainer::replan_steps`]), and trains the rest.
//!
//! Both steps are needed: a short calibration on a busy or virtual machine is off by up to 20%
//! either way, and a plan that is only fixed at the end would change the LR schedule of the
//! steps already taken.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;

use crate::error::{Result, TrainError};
use crate::trainer::{Quiet, StepMetrics, TrainConfig, TrainObserver, Trainer, TrainerState};

/// Optimizer steps of the calibration run.
pub const CALIBRATION_STEPS: usize = 6;
/// The first steps are slower (buffers being allocated): only the steps after these are timed.
const WARM_STEPS: usize = 2;
/// The share of the seconds given to optimizer steps: 3% goes to the periodic validation passes
/// and checkpoints.
const STEP_SHARE: f64 = 0.97;

/// The number of optimizer steps of `cfg` that fit in `seconds`, from the median speed of steps
/// 3 to 6 of a [`CALIBRATION_STEPS`]-step run of the same model and data in `scratch` (a run
/// directory that is replaced, then removed). `cfg`'s step count, schedule, evaluation and
/// checkpoints do not matter; its model, data, batch and precision do. `None` when no step's
/// speed could be measured.
pub fn calibrate_steps(cfg: &TrainConfig, scratch: &Path, device: &Device, seconds: f64) -> Result<Option<usize>> {
    let _ = std::fs::remove_dir_all(scratch);
    let mut cfg = cfg.clone();
    cfg.steps = CALIBRATION_STEPS;
    cfg.schedule.total_steps = CALIBRATION_STEPS;
    cfg.schedule.warmup_steps = 0;
    cfg.eval_every = 0;
    cfg.checkpoint_every = 0;
    cfg.keep_last = 1;
    let text = Trainer::create(scratch, cfg, device).and_then(|mut trainer| {
        trainer.run(None, &Quiet)?;
        let path = scratch.join("metrics.jsonl");
        std::fs::read_to_string(&path).map_err(|source| TrainError::Io { path, source })
    });
    let _ = std::fs::remove_dir_all(scratch);
    let metrics: Vec<StepMetrics> =
        text?.lines().filter_map(|l| serde_json::from_str::<StepMetrics>(l).ok()).filter(|m| m.kind == "train").collect();
    let mut speeds: Vec<f64> = metrics.iter().filter(|m| m.step > WARM_STEPS).map(|m| m.tokens_per_s).collect();
    speeds.sort_by(f64::total_cmp);
    let tokens_per_s = speeds.get(speeds.len() / 2).copied().unwrap_or(0.0);
    // Tokens of one optimizer step (micro batch x accumulation x window targets), as trained.
    let step_tokens = metrics.last().map(|m| m.tokens as f64 / m.step.max(1) as f64).unwrap_or(0.0);
    if tokens_per_s.is_nan() || tokens_per_s <= 0.0 || step_tokens <= 0.0 {
        return Ok(None);
    }
    Ok(Some((seconds * STEP_SHARE * tokens_per_s / step_tokens) as usize))
}

/// A new plan made by [`train_to_deadline`] from the measured pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replan {
    /// The steps planned before.
    pub planned: usize,
    /// The steps planned now (recorded in the run's `config.json`).
    pub steps: usize,
    /// The measured seconds per optimizer step.
    pub seconds_per_step: f64,
}

/// Trains a tenth of the plan (at least 10 steps, at most 70%), then re-plans the number of
/// steps from the real pace so that training ends at `deadline`, then trains the rest. The
/// re-plan happens before the LR decay, so the run is the one that plan would have been from the
/// start. A pace within 2% of the plan keeps it; a re-plan the schedule no longer allows is
/// logged and the plan kept. `on_replan` hears a re-plan when it is made (before the rest is
/// trained).
pub fn train_to_deadline(
    trainer: &mut Trainer,
    deadline: Instant,
    observer: &dyn TrainObserver,
    on_replan: &mut dyn FnMut(&Replan),
) -> Result<TrainerState> {
    let planned = trainer.cfg.steps;
    let first = (planned / 10).max(10).min(planned * 7 / 10);
    let started = Instant::now();
    let from = trainer.state().step;
    trainer.run(Some(first), observer)?;
    let taken = trainer.state().step - from;
    if taken > 0 && trainer.state().step < planned {
        let per_step = started.elapsed().as_secs_f64() / taken as f64;
        let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
        let steps = trainer.state().step + (left / per_step) as usize;
        if steps.abs_diff(planned) * 50 > planned {
            match trainer.replan_steps(steps) {
                Ok(()) => on_replan(&Replan { planned, steps, seconds_per_step: per_step }),
                Err(e) => tracing::warn!(error = %e, "keeping the planned steps"),
            }
        }
    }
    trainer.run(None, observer)
}
