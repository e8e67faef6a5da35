//! The causal (masked, scaled) softmax over attention scores, with backward, and the composed
//! reference.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, D};

use super::{dot, exp_into, f32s, for_rows, fusable, max};

/// `softmax(scores * scale + mask)` over the last dim of `scores` (..., T, S), where query row i
/// sees keys `0..=offset + i` (the rest get probability 0). Backward for `scores`.
pub fn causal_softmax(scores: &Tensor, scale: f64, offset: usize) -> Result<Tensor> {
    if !fusable(&[scores]) {
        return causal_softmax_reference(scores, scale, offset);
    }
    if scale <= 0.0 {
        bail!("causal_softmax: scale must be positive, got {scale}");
    }
    let t = scores.dim(D::Minus2)?;
    scores.contiguous()?.apply_op1(CausalSoftmax { scale: scale as f32, offset, t })
}

/// Causal softmax from composed ops: scale, additive -inf mask, `candle_nn::ops::softmax`.
pub fn causal_softmax_reference(scores: &Tensor, scale: f64, offset: usize) -> Result<Tensor> {
    let (t, s) = (scores.dim(D::Minus2)?, scores.dim(D::Minus1)?);
    let mask: Vec<f32> = (0..t).flat_map(|i| (0..s).map(move |j| if j > offset + i { f32::NEG_INFINITY } else { 0.0 })).collect();
    let mask = Tensor::from_vec(mask, (t, s), scores.device())?;
    let x = (scores * scale)?.to_dtype(DType::F32)?.broadcast_add(&mask)?;
    candle_nn::ops::softmax(&x, D::Minus1)
}

struct CausalSoftmax {
    scale: f32,
    offset: usize,
    t: usize,
}

impl CausalSoftmax {
    /// Keys visible to flat row `i`.
    fn visible(&self, i: usize, s: usize) -> usize {
        (self.offset + i % self.t + 1).min(s)
    }
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "kiln-causal-softmax"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(st, l, self.name())?;
        let s = l.dims().last().copied().unwrap_or(0);
        let mut out = vec![0f32; x.len()];
        for_rows(&mut out, s, |i, y| {
            let n = self.visible(i, s);
            let xr = &x[i * s..i * s + n];
            let shift = max(xr) * self.scale;
            let total = exp_into(&mut y[..n], xr, self.scale, shift);
            let inv = 1.0 / total;
            y[..n].iter_mut().for_each(|v| *v *= inv);
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, p: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let op = CausalSoftmaxBwd { scale: self.scale, offset: self.offset, t: self.t };
        Ok(Some(p.apply_op2_no_bwd(&g.contiguous()?, &op)?))
    }
}

/// (p, g) -> scale * p * (g - sum(g p)).
struct CausalSoftmaxBwd {
    scale: f32,
    offset: usize,
    t: usize,
}

impl CustomOp2 for CausalSoftmaxBwd {
    fn name(&self) -> &'static str {
        "kiln-causal-softmax-bwd"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (p, g) = (f32s(s1, l1, self.name())?, f32s(s2, l2, self.name())?);
        let s = l1.dims().last().copied().unwrap_or(0);
        let mut out = vec![0f32; p.len()];
        let vis = CausalSoftmax { scale: self.scale, offset: self.offset, t: self.t };
        for_rows(&mut out, s, |i, d| {
            let n = vis.visible(i, s);
            let (pr, gr) = (&p[i * s..i * s + n], &g[i * s..i * s + n]);
            let m = dot(pr, gr);
            for j in 0..n {
                d[j] = self.scale * pr[j] * (gr[j] - m);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{check, randn};

    #[test]
    fn causal_softmax_matches_composed_ops() {
        for (k, (shape, offset)) in
            [(vec![2, 3, 7, 7], 0), (vec![1, 2, 5, 12], 7), (vec![2, 2, 33, 33], 0), (vec![1, 1, 1, 9], 8), (vec![2, 3, 100, 100], 0)]
                .into_iter()
                .enumerate()
        {
            let x = randn(&shape, 3.0, k as u64);
            let t = shape[2];
            let fused = move |a: &[Tensor]| a[0].apply_op1(CausalSoftmax { scale: 0.3, offset, t });
            let reference = move |a: &[Tensor]| causal_softmax_reference(&a[0], 0.3, offset);
            check(&format!("causal_softmax {shape:?} offset {offset}"), &fused, &reference, &[x], &[true], 400 + k as u64);
        }
    }
}
