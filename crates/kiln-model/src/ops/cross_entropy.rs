//! Cross-entropy over logits rows: the fused loss (forward and backward), the in-place gradient
//! used by the CPU trainer, and the composed reference.

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::{exp, exp_into, f32s, for_rows, fusable, max, u32s, GRAIN};

/// Mean cross-entropy of `logits` (N, V) against `targets` (N) u32: a scalar. Backward for the
/// logits, `(softmax - onehot) / N`, one pass over each row each way.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if !fusable(&[logits]) {
        return cross_entropy_reference(logits, targets);
    }
    cross_entropy_rows(logits, targets)?.mean_all()
}

/// Per-row cross-entropy `logsumexp(logits[r]) - logits[r, targets[r]]`, shape (N): what a
/// masked or weighted loss sums. Backward for the logits.
pub fn cross_entropy_rows(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, v) = logits.dims2()?;
    if targets.dims() != [n] {
        bail!("cross_entropy: targets {:?} for logits ({n}, {v})", targets.dims());
    }
    let targets = targets.to_dtype(DType::U32)?.contiguous()?;
    if !fusable(&[logits]) {
        let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
        return logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg();
    }
    logits.contiguous()?.apply_op2(&targets, CrossEntropyRows)
}

/// Cross-entropy from composed ops (`candle_nn::loss::cross_entropy`).
pub fn cross_entropy_reference(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    candle_nn::loss::cross_entropy(logits, targets)
}

struct CrossEntropyRows;

/// Log-sum-exp of a row in one pass: blocks of 256 (in L1) against a running max.
fn logsumexp(x: &[f32], buf: &mut [f32; 256]) -> f32 {
    let (mut m, mut s) = (f32::NEG_INFINITY, 0f32);
    for block in x.chunks(256) {
        let bm = max(block);
        if bm > m {
            s *= exp(m - bm);
            m = bm;
        }
        s += exp_into(&mut buf[..block.len()], block, 1.0, m);
    }
    m + s.ln()
}

fn check_targets(t: &[u32], v: usize) -> Result<()> {
    if let Some(&bad) = t.iter().find(|&&t| t as usize >= v) {
        bail!("cross_entropy: target {bad} out of range for {v} classes");
    }
    Ok(())
}

impl CustomOp2 for CrossEntropyRows {
    fn name(&self) -> &'static str {
        "kiln-cross-entropy"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, t) = (f32s(s1, l1, self.name())?, u32s(s2, l2, self.name())?);
        let (n, v) = l1.shape().dims2()?;
        check_targets(t, v)?;
        let rows = |r: usize, buf: &mut [f32; 256]| {
            let xr = &x[r * v..(r + 1) * v];
            logsumexp(xr, buf) - xr[t[r] as usize]
        };
        let out: Vec<f32> = if n * v <= GRAIN {
            let mut buf = [0f32; 256];
            (0..n).map(|r| rows(r, &mut buf)).collect()
        } else {
            (0..n).into_par_iter().map_init(|| [0f32; 256], |buf, r| rows(r, buf)).collect()
        };
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(&self, logits: &Tensor, targets: &Tensor, res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let loss_and_grad = Tensor::stack(&[res, &g.contiguous()?], 0)?; // (2, N)
        Ok((Some(logits.apply_op3_no_bwd(targets, &loss_and_grad, &CrossEntropyRowsBwd)?), None))
    }
}

/// (logits, targets, [loss; grad]) -> grad[r] * (softmax(logits[r]) - onehot(targets[r])).
struct CrossEntropyRowsBwd;

impl CustomOp3 for CrossEntropyRowsBwd {
    fn name(&self) -> &'static str {
        "kiln-cross-entropy-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, t, lg) = (f32s(s1, l1, self.name())?, u32s(s2, l2, self.name())?, f32s(s3, l3, self.name())?);
        let (n, v) = l1.shape().dims2()?;
        let (loss, grad) = lg.split_at(n);
        let mut out = vec![0f32; x.len()];
        for_rows(&mut out, v, |r, d| {
            let xr = &x[r * v..(r + 1) * v];
            let tr = t[r] as usize;
            // loss = lse - x[t], so lse = loss + x[t] (the forward's log-sum-exp, to rounding).
            let lse = loss[r] + xr[tr];
            let gr = grad[r];
            for (o, &xv) in d.iter_mut().zip(xr) {
                *o = gr * exp(xv - lse);
            }
            d[tr] -= gr;
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Cross-entropy and its gradient in one call, in place: row r of `logits` (N, V) is replaced
/// by `weights[r] * (softmax(row) - onehot(targets[r]))` and its loss `lse - x[target]` is
/// returned (unweighted). The loss's gradient for a weighted sum `sum_r weights[r] * loss_r`
/// is then what `logits` holds: the hand-written training step's last op.
pub fn cross_entropy_grad_inplace_f32(logits: &mut [f32], targets: &[u32], weights: &[f32], v: usize) -> Result<Vec<f32>> {
    let n = targets.len();
    if logits.len() != n * v || weights.len() != n {
        bail!("cross_entropy: {} logits for {n} targets of {v} classes and {} weights", logits.len(), weights.len());
    }
    check_targets(targets, v)?;
    let mut losses = vec![0f32; n];
    let per = (GRAIN / v.max(1)).max(1);
    logits.par_chunks_mut(per * v).zip(losses.par_chunks_mut(per)).enumerate().for_each(|(c, (rows, ls))| {
        let mut buf = [0f32; 256];
        for (k, (row, l)) in rows.chunks_mut(v).zip(ls.iter_mut()).enumerate() {
            let r = c * per + k;
            let tr = targets[r] as usize;
            let lse = logsumexp(row, &mut buf);
            *l = lse - row[tr];
            let w = weights[r];
            for x in row.iter_mut() {
                *x = w * exp(*x - lse);
            }
            row[tr] -= w;
        }
    });
    Ok(losses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{check, randn, rel};
    use candle_core::Device;
    use rand::{Rng, SeedableRng};

    #[test]
    fn cross_entropy_matches_composed_ops() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for (k, (n, v, std)) in [(7, 37, 1.0), (33, 1000, 2.0), (5, 300, 30.0), (3, 1, 1.0), (2, 513, 1.0)].into_iter().enumerate() {
            let logits = randn(&[n, v], std, k as u64);
            let targets = Tensor::from_vec((0..n).map(|_| rng.random_range(0..v as u32)).collect::<Vec<_>>(), n, &Device::Cpu).unwrap();
            let fused = |a: &[Tensor]| a[0].apply_op2(&a[1], CrossEntropyRows)?.mean_all();
            let reference = |a: &[Tensor]| cross_entropy_reference(&a[0], &a[1]);
            check(
                &format!("cross_entropy ({n}, {v}) std {std}"),
                &fused,
                &reference,
                &[logits.clone(), targets.clone()],
                &[true, false],
                700 + k as u64,
            );
            // Per row, against log_softmax + gather.
            let rows = logits.apply_op2(&targets, CrossEntropyRows).unwrap();
            let want = candle_nn::ops::log_softmax(&logits, 1)
                .unwrap()
                .gather(&targets.unsqueeze(1).unwrap(), 1)
                .unwrap()
                .squeeze(1)
                .unwrap()
                .neg()
                .unwrap();
            assert!(rel(&rows, &want) <= 1e-5, "cross_entropy rows ({n}, {v})");
        }
        let bad = cross_entropy(&randn(&[2, 4], 1.0, 0), &Tensor::new(&[1u32, 4], &Device::Cpu).unwrap());
        assert!(bad.is_err(), "an out-of-range target is an error");
    }
}
