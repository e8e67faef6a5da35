//! AdamW with decoupled weight decay (as `torch.optim.AdamW`), global-norm gradient clipping
//! (as `torch.nn.utils.clip_grad_norm_`), and the optimizer state's file format.
//!
//! The paper's settings (spec §6): beta1 0.9, beta2 0.95, eps 1e-8, weight decay 0.1 on the
//! matrices (every parameter with two or more dimensions: projections, embeddings, lm_head) and
//! none on the RMSNorm weights, gradients clipped to global norm 1.0.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// AdamW hyper-parameters (the learning rate comes from the schedule, step by step).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay of the matrices.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 }
    }
}

struct Slot {
    name: String,
    var: Var,
    decay: bool,
    m: Tensor,
    v: Tensor,
}

/// The optimizer over named parameters.
pub struct AdamW {
    cfg: AdamWConfig,
    slots: Vec<Slot>,
    /// Updates applied so far (the bias corrections use it).
    steps: u64,
}

impl AdamW {
    /// An optimizer with zero moments over `params`; weight decay on those with two or more
    /// dimensions.
    pub fn new(params: &[(String, Var)], cfg: AdamWConfig) -> Result<Self> {
        let slots = params
            .iter()
            .map(|(name, var)| {
                let t = var.as_tensor();
                Ok(Slot { name: name.clone(), var: var.clone(), decay: t.rank() >= 2, m: t.zeros_like()?, v: t.zeros_like()? })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW { cfg, slots, steps: 0 })
    }

    /// Updates applied so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One update with learning rate `lr`; `grads[i]` belongs to the i-th parameter given to
    /// [`AdamW::new`]. torch's order of operations: decay, moments, bias-corrected step.
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        assert_eq!(grads.len(), self.slots.len(), "one gradient per parameter");
        self.steps += 1;
        let c = self.cfg;
        let bias1 = 1.0 - c.beta1.powi(self.steps as i32);
        let bias2 = 1.0 - c.beta2.powi(self.steps as i32);
        for (slot, g) in self.slots.iter_mut().zip(grads) {
            if kiln_model::ops::fusable(&[slot.var.as_tensor(), &slot.m, &slot.v, g]) {
                update_f32(slot, g, lr, &c, bias1, bias2)?;
            } else {
                update_composed(slot, g, lr, &c, bias1, bias2)?;
            }
        }
        Ok(())
    }

    /// Saves the moments and the step count (safetensors: `m.<name>`, `v.<name>`, `step`),
    /// atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(2 * self.slots.len() + 1);
        for s in &self.slots {
            tensors.push((format!("m.{}", s.name), s.m.clone()));
            tensors.push((format!("v.{}", s.name), s.v.clone()));
        }
        tensors.push(("step".into(), Tensor::new(&[self.steps as i64], &candle_core::Device::Cpu)?));
        let tmp = kiln_base::fs::tmp_path(path);
        candle_core::safetensors::save(&tensors.into_iter().collect::<HashMap<_, _>>(), &tmp)?;
        kiln_base::fs::persist(&tmp, path).map_err(|e| TrainError::Io { path: e.path, source: e.source })?;
        Ok(())
    }

    /// Restores the state written by [`AdamW::save`]; every parameter must be present with its
    /// shape, else the error names the file and the tensor.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bad = |message: String| TrainError::Checkpoint { path: path.to_path_buf(), message };
        let device = self.slots.first().map(|s| s.var.device().clone()).unwrap_or(candle_core::Device::Cpu);
        let mut tensors = candle_core::safetensors::load(path, &device)
            .map_err(|e| bad(format!("unreadable optimizer state ({e}); delete this checkpoint to resume from an earlier one")))?;
        for s in &mut self.slots {
            for (kind, slot) in [("m", &mut s.m), ("v", &mut s.v)] {
                let key = format!("{kind}.{}", s.name);
                let t = tensors.remove(&key).ok_or_else(|| bad(format!("no tensor `{key}`: saved for another model?")))?;
                if t.dims() != s.var.dims() {
                    return Err(bad(format!("`{key}` has shape {:?}, the model's parameter {:?}", t.dims(), s.var.dims())));
                }
                *slot = t.to_dtype(s.var.dtype())?;
            }
        }
        let step = tensors.remove("step").ok_or_else(|| bad("no `step` tensor".into()))?;
        self.steps = step.to_dtype(DType::I64)?.to_vec1::<i64>()?.first().copied().unwrap_or(0) as u64;
        Ok(())
    }
}

/// One parameter's AdamW update from tensor ops (any device and dtype): torch's order —
/// decay, moments, bias-corrected step.
fn update_composed(slot: &mut Slot, g: &Tensor, lr: f64, c: &AdamWConfig, bias1: f64, bias2: f64) -> Result<()> {
    let mut p = slot.var.as_tensor().detach();
    if slot.decay && c.weight_decay != 0.0 {
        p = (p * (1.0 - lr * c.weight_decay))?;
    }
    slot.m = ((&slot.m * c.beta1)? + (g * (1.0 - c.beta1))?)?;
    slot.v = ((&slot.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
    let denom = ((slot.v.sqrt()? / bias2.sqrt())? + c.eps)?;
    let update = ((&slot.m / denom)? * (lr / bias1))?;
    slot.var.set(&(p - update)?)?;
    Ok(())
}

/// One parameter's AdamW update in a single pass over its four arrays (f32 on the CPU), the
/// same operations in the same order as the composed tensor ops of [`AdamW::step`] (which
/// made a dozen passes, each allocating).
fn update_f32(slot: &mut Slot, g: &Tensor, lr: f64, c: &AdamWConfig, bias1: f64, bias2: f64) -> Result<()> {
    let (shape, dev) = (slot.var.shape().clone(), slot.var.device().clone());
    if g.elem_count() != shape.elem_count() {
        return Err(TrainError::Config(format!(
            "gradient of `{}` has {} elements, the parameter {}",
            slot.name,
            g.elem_count(),
            shape.elem_count()
        )));
    }
    let (p, m, v, g) = (slot.var.as_tensor().contiguous()?, slot.m.contiguous()?, slot.v.contiguous()?, g.contiguous()?);
    let (np, nm, nv) =
        crate::cpu_step::with_slices(&[&p, &m, &v, &g], |s| Ok(adamw_f32(s[0], s[1], s[2], s[3], lr, c, slot.decay, bias1, bias2)))?;
    drop((p, m, v, g));
    slot.var.set(&Tensor::from_vec(np, shape.clone(), &dev)?)?;
    slot.m = Tensor::from_vec(nm, shape.clone(), &dev)?;
    slot.v = Tensor::from_vec(nv, shape, &dev)?;
    Ok(())
}

/// The arrays of [`update_f32`]: new parameter, first and second moments.
#[allow(clippy::too_many_arguments)]
fn adamw_f32(
    p: &[f32],
    m: &[f32],
    v: &[f32],
    g: &[f32],
    lr: f64,
    c: &AdamWConfig,
    decay: bool,
    bias1: f64,
    bias2: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    use rayon::prelude::*;
    let decay = if decay && c.weight_decay != 0.0 { Some((1.0 - lr * c.weight_decay) as f32) } else { None };
    let (b1, nb1, b2, nb2) = (c.beta1 as f32, (1.0 - c.beta1) as f32, c.beta2 as f32, (1.0 - c.beta2) as f32);
    let (inv_sqrt_bias2, eps, step) = ((1.0 / bias2.sqrt()) as f32, c.eps as f32, (lr / bias1) as f32);
    let (mut np, mut nm, mut nv) = (vec![0f32; p.len()], vec![0f32; p.len()], vec![0f32; p.len()]);
    const CHUNK: usize = 1 << 14;
    np.par_chunks_mut(CHUNK).zip(nm.par_chunks_mut(CHUNK)).zip(nv.par_chunks_mut(CHUNK)).enumerate().for_each(|(i, ((np, nm), nv))| {
        let o = i * CHUNK;
        for j in 0..np.len() {
            let (pj, gj) = (p[o + j], g[o + j]);
            let pj = match decay {
                Some(d) => pj * d,
                None => pj,
            };
            let mj = m[o + j] * b1 + gj * nb1;
            let vj = v[o + j] * b2 + (gj * gj) * nb2;
            let denom = vj.sqrt() * inv_sqrt_bias2 + eps;
            np[j] = pj - (mj / denom) * step;
            nm[j] = mj;
            nv[j] = vj;
        }
    });
    (np, nm, nv)
}

/// The L2 norm of all gradients together (f32 accumulation per tensor, f64 across tensors).
pub fn global_norm(grads: &[Tensor]) -> Result<f64> {
    let mut sum = 0f64;
    for g in grads {
        sum += if kiln_model::ops::fusable(&[g]) {
            let g = g.contiguous()?;
            crate::cpu_step::with_slices(&[&g], |s| Ok(kiln_model::ops::sum_of_squares_f32(s[0])))? as f64
        } else {
            g.to_dtype(DType::F32)?.sqr()?.sum_all()?.to_scalar::<f32>()? as f64
        };
    }
    Ok(sum.sqrt())
}

/// Scales `grads` so their global norm is at most `max_norm`, as torch does: by
/// `max_norm / (norm + 1e-6)` when that is below 1. Returns the norm before clipping.
pub fn clip_global_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads)?;
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for g in grads.iter_mut() {
            *g = (&*g * coef)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two AdamW steps on hand-checked numbers: torch.optim.AdamW(lr=0.1, betas=(0.9, 0.95),
    /// eps=1e-8, weight_decay=0.1) on p = [1, -2] with gradients [0.5, 0.5] then [-1, 2].
    #[test]
    fn adamw_matches_the_torch_update_rule() {
        let dev = Device::Cpu;
        let p = Var::new(&[1.0f32, -2.0], &dev).unwrap();
        let q = Var::new(&[3.0f32], &dev).unwrap(); // 1-D: no decay
        let mut opt = AdamW::new(
            &[
                ("w".into(), Var::from_tensor(&Tensor::new(&[[0f32]], &dev).unwrap()).unwrap()),
                ("p".into(), p.clone()),
                ("q".into(), q.clone()),
            ],
            AdamWConfig::default(),
        )
        .unwrap();
        // Compute the expected values by the formula in f64.
        let (b1, b2, eps, wd, lr) = (0.9f64, 0.95f64, 1e-8f64, 0.1f64, 0.1f64);
        let mut want = [1.0f64, -2.0];
        let (mut m, mut v) = ([0f64; 2], [0f64; 2]);
        let mut want_q = 3.0f64;
        let (mut mq, mut vq) = (0f64, 0f64);
        for (t, g) in [[0.5f64, 0.5], [-1.0, 2.0]].iter().enumerate() {
            let t = t as i32 + 1;
            for i in 0..2 {
                want[i] *= 1.0 - lr * wd * 0.0; // p is 1-D here too: no decay
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                want[i] -= lr / (1.0 - b1.powi(t)) * m[i] / (v[i].sqrt() / (1.0 - b2.powi(t)).sqrt() + eps);
            }
            mq = b1 * mq + (1.0 - b1) * g[0];
            vq = b2 * vq + (1.0 - b2) * g[0] * g[0];
            want_q -= lr / (1.0 - b1.powi(t)) * mq / (vq.sqrt() / (1.0 - b2.powi(t)).sqrt() + eps);
            let grads = [
                Tensor::new(&[[0f32]], &dev).unwrap(),
                Tensor::new(&[g[0] as f32, g[1] as f32], &dev).unwrap(),
                Tensor::new(&[g[0] as f32], &dev).unwrap(),
            ];
            opt.step(&grads, lr).unwrap();
        }
        let got = p.as_tensor().to_vec1::<f32>().unwrap();
        for i in 0..2 {
            assert!((got[i] as f64 - want[i]).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        assert!((q.as_tensor().to_vec1::<f32>().unwrap()[0] as f64 - want_q).abs() < 1e-6);
    }

    /// The one-pass f32 update gives what the composed tensor ops give, over several steps.
    #[test]
    fn fused_update_equals_the_composed_one() {
        let dev = Device::Cpu;
        let init = Tensor::randn(0f32, 1.0, (37, 29), &dev).unwrap();
        let slot = |name: &str| Slot {
            name: name.into(),
            var: Var::from_tensor(&init).unwrap(),
            decay: true,
            m: init.zeros_like().unwrap(),
            v: init.zeros_like().unwrap(),
        };
        let (mut a, mut b) = (slot("a"), slot("b"));
        let c = AdamWConfig::default();
        for t in 1..=4 {
            let g = Tensor::randn(0f32, 0.3, (37, 29), &dev).unwrap();
            let (bias1, bias2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
            update_f32(&mut a, &g, 3e-3, &c, bias1, bias2).unwrap();
            update_composed(&mut b, &g, 3e-3, &c, bias1, bias2).unwrap();
        }
        for (x, y) in [(a.var.as_tensor(), b.var.as_tensor()), (&a.m, &b.m), (&a.v, &b.v)] {
            let diff = (x - y).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-6, "fused and composed AdamW differ by {diff}");
        }
        assert!(
            (a.var.as_tensor() - &init).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 1e-3,
            "the update moved nothing"
        );
    }

    #[test]
    fn weight_decay_only_on_matrices() {
        let dev = Device::Cpu;
        let w = Var::new(&[[2.0f32]], &dev).unwrap();
        let n = Var::new(&[2.0f32], &dev).unwrap();
        let mut opt = AdamW::new(&[("w".into(), w.clone()), ("n".into(), n.clone())], AdamWConfig::default()).unwrap();
        // Zero gradients: only the decay moves a parameter.
        opt.step(&[Tensor::zeros((1, 1), DType::F32, &dev).unwrap(), Tensor::zeros(1, DType::F32, &dev).unwrap()], 0.5).unwrap();
        assert!((w.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()[0] - 2.0 * (1.0 - 0.05)).abs() < 1e-7);
        assert_eq!(n.as_tensor().to_vec1::<f32>().unwrap()[0], 2.0);
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let dev = Device::Cpu;
        let mut g = vec![Tensor::new(&[3.0f32], &dev).unwrap(), Tensor::new(&[4.0f32], &dev).unwrap()];
        let norm = clip_global_norm(&mut g, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        assert!((global_norm(&g).unwrap() - 1.0).abs() < 1e-5);
        let mut small = vec![Tensor::new(&[0.3f32], &dev).unwrap()];
        clip_global_norm(&mut small, 1.0).unwrap();
        assert_eq!(small[0].to_vec1::<f32>().unwrap(), [0.3]);
    }

    #[test]
    fn state_round_trips_and_mismatches_are_named() {
        let dev = Device::Cpu;
        let w = Var::new(&[[1.0f32, 2.0]], &dev).unwrap();
        let mut opt = AdamW::new(&[("w".into(), w.clone())], AdamWConfig::default()).unwrap();
        opt.step(&[Tensor::new(&[[0.1f32, -0.2]], &dev).unwrap()], 0.01).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optimizer.safetensors");
        opt.save(&path).unwrap();
        let mut again = AdamW::new(&[("w".into(), w.clone())], AdamWConfig::default()).unwrap();
        again.load(&path).unwrap();
        assert_eq!(again.steps(), 1);
        assert_eq!(again.slots[0].m.to_vec2::<f32>().unwrap(), opt.slots[0].m.to_vec2::<f32>().unwrap());
        let other = Var::new(&[[1.0f32, 2.0, 3.0]], &dev).unwrap();
        let mut wrong = AdamW::new(&[("w".into(), other)], AdamWConfig::default()).unwrap();
        let e = wrong.load(&path).unwrap_err().to_string();
        assert!(e.contains("optimizer.safetensors") && e.contains("shape"), "{e}");
        std::fs::write(&path, b"garbage").unwrap();
        let e = again.load(&path).unwrap_err().to_string();
        assert!(e.contains("unreadable"), "{e}");
    }
}
