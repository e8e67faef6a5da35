//! SwiGLU (`silu(gate) * up`): forward and backward kernels, and the composed reference.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::{exp, f32s, for_chunks2, for_rows, fusable, GRAIN};

/// `silu(gate) * up`, with backward for both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if !fusable(&[gate, up]) || gate.shape() != up.shape() {
        return swiglu_reference(gate, up);
    }
    gate.contiguous()?.apply_op2(&up.contiguous()?, Swiglu)
}

/// SwiGLU from composed ops.
pub fn swiglu_reference(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    candle_nn::ops::silu(gate)? * up
}

struct Swiglu;

/// silu(g) = g / (1 + e^-g)
#[inline(always)]
fn sigmoid(g: f32) -> f32 {
    1.0 / (1.0 + exp(-g))
}

impl CustomOp2 for Swiglu {
    fn name(&self) -> &'static str {
        "kiln-swiglu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (g, u) = (f32s(s1, l1, self.name())?, f32s(s2, l2, self.name())?);
        let mut out = vec![0f32; g.len()];
        swiglu_f32(g, u, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, gate: &Tensor, up: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let n = gate.elem_count();
        let both = gate.apply_op3_no_bwd(up, &grad.contiguous()?, &SwigluBwd)?; // (2 n)
        Ok((Some(both.narrow(0, 0, n)?.reshape(gate.shape())?), Some(both.narrow(0, n, n)?.reshape(up.shape())?)))
    }
}

/// (gate, up, grad) -> [d gate, d up] flattened one after the other.
struct SwigluBwd;

impl CustomOp3 for SwigluBwd {
    fn name(&self) -> &'static str {
        "kiln-swiglu-bwd"
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
        let (g, u, d) = (f32s(s1, l1, self.name())?, f32s(s2, l2, self.name())?, f32s(s3, l3, self.name())?);
        let n = g.len();
        let mut out = vec![0f32; 2 * n];
        let (dg, du) = out.split_at_mut(n);
        swiglu_bwd_f32(g, u, d, dg, du);
        Ok((CpuStorage::F32(out), Shape::from(2 * n)))
    }
}

/// `out = silu(g) * u`, elementwise: the slice kernel behind [`swiglu`].
pub fn swiglu_f32(g: &[f32], u: &[f32], out: &mut [f32]) {
    assert!(g.len() == u.len() && g.len() == out.len(), "swiglu_f32: mismatched lengths");
    for_rows(out, GRAIN, |c, y| {
        let o = c * GRAIN;
        for ((y, &gv), &uv) in y.iter_mut().zip(&g[o..]).zip(&u[o..]) {
            *y = gv / (1.0 + exp(-gv)) * uv;
        }
    });
}

/// SwiGLU backward: `dg`, `du` from the output gradient `d`.
pub fn swiglu_bwd_f32(g: &[f32], u: &[f32], d: &[f32], dg: &mut [f32], du: &mut [f32]) {
    assert!(g.len() == u.len() && g.len() == d.len() && g.len() == dg.len() && g.len() == du.len(), "swiglu_bwd_f32: mismatched lengths");
    for_chunks2(dg, du, |o, dg, du| {
        for j in 0..dg.len() {
            let (gv, uv, dv) = (g[o + j], u[o + j], d[o + j]);
            let s = sigmoid(gv);
            dg[j] = dv * uv * (s * (1.0 + gv * (1.0 - s)));
            du[j] = dv * (gv * s);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{check, randn};

    #[test]
    fn swiglu_matches_composed_ops() {
        for (k, (shape, std)) in [(vec![3, 17], 1.0), (vec![2, 5, 129], 4.0), (vec![40_000], 2.0), (vec![9], 60.0)].into_iter().enumerate()
        {
            let g = randn(&shape, std, k as u64);
            let u = randn(&shape, 1.0, 10 + k as u64);
            let fused = |a: &[Tensor]| a[0].apply_op2(&a[1], Swiglu);
            let reference = |a: &[Tensor]| swiglu_reference(&a[0], &a[1]);
            check(&format!("swiglu {shape:?}"), &fused, &reference, &[g, u], &[true, true], 600 + k as u64);
        }
    }
}
