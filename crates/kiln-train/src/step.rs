//! One optimizer step, the unit both the trainer and `kiln bench train` run: `accumulation`
//! forward + backward passes with their gradients averaged, global-norm clipping, then AdamW at
//! the step's learning rate. A non-finite loss or gradient norm skips the update (the trainer
//! counts those and stops a diverging run).

use std::time::Instant;

use candle_core::Tensor;

use crate::error::Result;
use crate::optim::{clip_global_norm, AdamW};

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Mean loss over the micro-batches.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// False when the loss or the norm was not finite and the weights were left as they were.
    pub applied: bool,
    /// Tokens the micro-batches held.
    pub tokens: u64,
    /// Seconds in forward + backward passes (gradient accumulation included).
    pub forward_backward_s: f64,
    /// Seconds clipping.
    pub clip_s: f64,
    /// Seconds in the AdamW update.
    pub optimizer_s: f64,
}

/// Runs one optimizer step: `micro_batch()` gives one forward + backward pass's `(loss,
/// gradients in parameter order, tokens)`; it is called `accumulation` times (at least once).
pub fn optimizer_step(
    opt: &mut AdamW,
    mut micro_batch: impl FnMut() -> Result<(f64, Vec<Tensor>, u64)>,
    accumulation: usize,
    clip: f64,
    lr: f64,
) -> Result<StepOutcome> {
    let t0 = Instant::now();
    let accumulation = accumulation.max(1);
    let mut sum: Option<Vec<Tensor>> = None;
    let (mut loss_sum, mut tokens) = (0.0, 0u64);
    for _ in 0..accumulation {
        let (loss, grads, n) = micro_batch()?;
        tokens += n;
        loss_sum += loss;
        sum = Some(match sum {
            None => grads,
            Some(acc) => acc.iter().zip(&grads).map(|(a, g)| a + g).collect::<candle_core::Result<Vec<_>>>()?,
        });
    }
    let k = accumulation as f64;
    let mut grads: Vec<Tensor> =
        sum.expect("accumulation >= 1").into_iter().map(|g| if k == 1.0 { Ok(g) } else { g / k }).collect::<candle_core::Result<_>>()?;
    let loss = loss_sum / k;
    let t1 = Instant::now();
    let grad_norm = clip_global_norm(&mut grads, clip)?;
    let t2 = Instant::now();
    let applied = loss.is_finite() && grad_norm.is_finite();
    if applied {
        opt.step(&grads, lr)?;
    }
    let t3 = Instant::now();
    Ok(StepOutcome {
        loss,
        grad_norm,
        applied,
        tokens,
        forward_backward_s: (t1 - t0).as_secs_f64(),
        clip_s: (t2 - t1).as_secs_f64(),
        optimizer_s: (t3 - t2).as_secs_f64(),
    })
}
