//! Rotary position embeddings (RoPE): the rotation and its inverse (the backward), and the
//! composed reference.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};

use super::{f32s, for_rows, fusable};

/// Rotary embedding, HF rotate_half layout (dimension i pairs with i + D/2), exactly as
/// `llama::rope_reference`: `x` (B, H, T, D), `cos`/`sin` (T, D/2) constants. Backward for `x`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !fusable(&[x, cos, sin]) {
        return rope_reference(x, cos, sin);
    }
    let (_, _, t, d) = x.dims4()?;
    if d % 2 != 0 || cos.dims() != [t, d / 2] || sin.dims() != [t, d / 2] {
        bail!("rope: x {:?} needs cos/sin ({t}, {}), got {:?} / {:?}", x.dims(), d / 2, cos.dims(), sin.dims());
    }
    x.contiguous()?.apply_op3(&cos.contiguous()?, &sin.contiguous()?, RopeOp { inverse: false })
}

/// RoPE from composed ops (narrow/cat/neg/mul).
pub fn rope_reference(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let hd = x.dim(D::Minus1)?;
    let (x1, x2) = (x.narrow(D::Minus1, 0, hd / 2)?, x.narrow(D::Minus1, hd / 2, hd / 2)?);
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    let cos = Tensor::cat(&[cos, cos], D::Minus1)?; // (T, head_dim)
    let sin = Tensor::cat(&[sin, sin], D::Minus1)?;
    x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
}

/// Rotation by +angle, or by -angle (`inverse`: the transpose, i.e. the backward).
struct RopeOp {
    inverse: bool,
}

impl CustomOp3 for RopeOp {
    fn name(&self) -> &'static str {
        "kiln-rope"
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
        let (x, cos, sin) = (f32s(s1, l1, self.name())?, f32s(s2, l2, self.name())?, f32s(s3, l3, self.name())?);
        let (_, _, t, d) = l1.shape().dims4()?;
        let h = d / 2;
        let mut out = vec![0f32; x.len()];
        let inverse = self.inverse;
        for_rows(&mut out, d, |i, y| {
            let p = i % t;
            rope_row_f32(&x[i * d..(i + 1) * d], &cos[p * h..(p + 1) * h], &sin[p * h..(p + 1) * h], y, inverse);
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = g.contiguous()?.apply_op3_no_bwd(cos, sin, &RopeOp { inverse: !self.inverse })?;
        Ok((Some(dx), None, None))
    }
}

/// Rotates one head row `x` (D) into `y` by the angles whose cosines/sines are `c`/`s` (D/2),
/// HF rotate_half layout; `inverse` rotates back (the transpose: RoPE's backward).
#[inline]
pub fn rope_row_f32(x: &[f32], c: &[f32], s: &[f32], y: &mut [f32], inverse: bool) {
    let h = c.len();
    let (x1, x2) = x.split_at(h);
    let (y1, y2) = y.split_at_mut(h);
    let (x2, y2, s) = (&x2[..h], &mut y2[..h], &s[..h]);
    if inverse {
        // dx1 = g1 cos + g2 sin, dx2 = g2 cos - g1 sin
        for j in 0..h {
            y1[j] = x1[j] * c[j] + x2[j] * s[j];
            y2[j] = x2[j] * c[j] - x1[j] * s[j];
        }
    } else {
        // y1 = x1 cos + (-x2) sin, y2 = x2 cos + x1 sin (the reference's order)
        for j in 0..h {
            y1[j] = x1[j] * c[j] + (-x2[j]) * s[j];
            y2[j] = x2[j] * c[j] + x1[j] * s[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{check, randn};

    #[test]
    fn rope_matches_composed_ops() {
        for (k, (b, h, t, d)) in [(2, 3, 7, 10), (1, 2, 13, 64), (1, 1, 1, 6), (2, 3, 64, 64)].into_iter().enumerate() {
            let x = randn(&[b, h, t, d], 1.0, k as u64);
            // Angles of positions 5..5+t: a narrowed (offset) view, as the model passes them.
            let angles = randn(&[t + 5, d / 2], 3.0, 50 + k as u64).narrow(0, 5, t).unwrap();
            let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
            let fused = |a: &[Tensor]| a[0].apply_op3(&a[1], &a[2], RopeOp { inverse: false });
            let reference = |a: &[Tensor]| rope_reference(&a[0], &a[1], &a[2]);
            check(&format!("rope {:?}", (b, h, t, d)), &fused, &reference, &[x, cos, sin], &[true, false, false], 300 + k as u64);
        }
    }
}
