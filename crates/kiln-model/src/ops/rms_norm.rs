//! RMSNorm: forward and backward kernels, and the composed reference.

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::{dot, f32s, for_rows, fusable, GRAIN};

/// RMSNorm over the last dim: `y = x / sqrt(mean(x²) + eps) * w`, with backward for `x` and `w`.
/// Non-f32 inputs (or non-CPU) take [`rms_norm_reference`]: computed in f32, cast back to x's
/// dtype, then scaled by `w`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if !fusable(&[x, weight]) {
        return rms_norm_reference(x, weight, eps);
    }
    x.contiguous()?.apply_op2(&weight.contiguous()?, RmsNormOp { eps: eps as f32 })
}

/// RMSNorm from composed candle ops (what [`rms_norm`] computes).
pub fn rms_norm_reference(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x32 = x.to_dtype(DType::F32)?;
    let var = x32.sqr()?.mean_keepdim(D::Minus1)?; // (..., 1)
    let normed = x32.broadcast_div(&(var + eps)?.sqrt()?)?;
    normed.to_dtype(dtype)?.broadcast_mul(weight)
}

struct RmsNormOp {
    eps: f32,
}

/// 1 / sqrt(mean(x²) + eps) of one row.
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    1.0 / (dot(x, x) / x.len() as f32 + eps).sqrt()
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "kiln-rms-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (f32s(s1, l1, self.name())?, f32s(s2, l2, self.name())?);
        let c = l1.dims().last().copied().unwrap_or(0);
        if w.len() != c {
            bail!("rms_norm: weight has {} elements for a last dim of {c}", w.len());
        }
        let mut out = vec![0f32; x.len()];
        rms_norm_f32(x, w, self.eps, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let c = w.elem_count();
        let rows = x.elem_count() / c.max(1);
        let both = x.apply_op3_no_bwd(w, &g.contiguous()?, &RmsNormBwd { eps: self.eps })?; // (rows + 1, C)
        let dx = both.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dw = both.narrow(0, rows, 1)?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw)))
    }
}

/// (x, w, g) -> rows of dx, then one row of dw.
struct RmsNormBwd {
    eps: f32,
}

impl CustomOp3 for RmsNormBwd {
    fn name(&self) -> &'static str {
        "kiln-rms-norm-bwd"
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
        let (x, w, g) = (f32s(s1, l1, self.name())?, f32s(s2, l2, self.name())?, f32s(s3, l3, self.name())?);
        let c = w.len();
        let rows = x.len() / c.max(1);
        let mut out = vec![0f32; x.len() + c];
        let (dx, dw) = out.split_at_mut(x.len());
        rms_norm_bwd_f32(x, w, g, self.eps, dx, dw, false);
        Ok((CpuStorage::F32(out), Shape::from((rows + 1, c))))
    }
}

/// RMSNorm of the rows of `x` (row length `w.len()`) into `y`: the slice kernel behind
/// [`rms_norm`], also called directly by the trainer's hand-written step.
pub fn rms_norm_f32(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "rms_norm_f32: x and y differ in length");
    let c = w.len();
    for_rows(y, c, |i, y| {
        let xr = &x[i * c..(i + 1) * c];
        let r = inv_rms(xr, eps);
        for ((y, &xv), &wv) in y.iter_mut().zip(xr).zip(w) {
            *y = xv * r * wv;
        }
    });
}

/// RMSNorm backward over rows: `dx` gets (or, with `accumulate`, has added) the input gradient,
/// `dw` has the weight gradient added. Deterministic: fixed blocks of rows, partial `dw`s summed
/// in block order.
pub fn rms_norm_bwd_f32(x: &[f32], w: &[f32], g: &[f32], eps: f32, dx: &mut [f32], dw: &mut [f32], accumulate: bool) {
    let c = w.len();
    assert!(x.len() == g.len() && x.len() == dx.len() && dw.len() == c, "rms_norm_bwd_f32: mismatched lengths");
    let per = (GRAIN / c.max(1)).max(1);
    let block = |b: usize, dxb: &mut [f32]| -> Vec<f32> {
        let mut part = vec![0f32; c];
        let mut gw = vec![0f32; c];
        for (k, dxr) in dxb.chunks_mut(c).enumerate() {
            let i = b * per + k;
            let (xr, gr) = (&x[i * c..(i + 1) * c], &g[i * c..(i + 1) * c]);
            let r = inv_rms(xr, eps);
            for ((o, &gv), &wv) in gw.iter_mut().zip(gr).zip(w) {
                *o = gv * wv;
            }
            // dx = r (g w - n mean(g w n)), n = x r;  dw += g n
            let m = dot(&gw, xr) * r / c as f32;
            for j in 0..c {
                let n = xr[j] * r;
                let d = r * (gw[j] - n * m);
                dxr[j] = if accumulate { dxr[j] + d } else { d };
                part[j] += gr[j] * n;
            }
        }
        part
    };
    let parts: Vec<Vec<f32>> = if x.len() <= GRAIN {
        dx.chunks_mut(per * c).enumerate().map(|(b, d)| block(b, d)).collect()
    } else {
        dx.par_chunks_mut(per * c).enumerate().map(|(b, d)| block(b, d)).collect()
    };
    for p in parts {
        for (o, v) in dw.iter_mut().zip(p) {
            *o += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{check, randn};

    #[test]
    fn rms_norm_matches_composed_ops() {
        for (k, shape) in [vec![3, 5, 37], vec![2, 384], vec![1, 1, 8], vec![64, 384], vec![7, 1000]].into_iter().enumerate() {
            let c = *shape.last().unwrap();
            let x = randn(&shape, 2.0, k as u64);
            let w = (randn(&[c], 0.5, 100 + k as u64) + 1.0).unwrap();
            let fused = |t: &[Tensor]| t[0].apply_op2(&t[1], RmsNormOp { eps: 1e-6 });
            let reference = |t: &[Tensor]| rms_norm_reference(&t[0], &t[1], 1e-6);
            check(&format!("rms_norm {shape:?}"), &fused, &reference, &[x, w], &[true, true], 200 + k as u64);
        }
    }
}
