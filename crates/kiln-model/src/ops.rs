//! Fused ops with forward AND backward, as candle custom ops (f32 on the CPU).
//!
//! candle's own fused `rms_norm`, `softmax_last_dim`, `rope` and `sdpa` have no backward, and the
//! composed ops that do (narrow/cat/neg/mul, max/sub/exp/sum/div, ...) make one pass over memory
//! and one backward node each. Each op here makes one pass forward and one backward, parallel over
//! rows or heads (rayon), with plain loops the compiler vectorises (reductions over 16 fixed
//! lanes, an `exp` without libm calls). [`causal_attention`] is one kernel per head: a
//! register-tiled multiply-add microkernel compiled for AVX2+FMA (chosen at run time) that only
//! computes the causal half, with the softmax in between. Every op:
//!
//! - runs its kernel when all its float inputs are f32 on the CPU, and otherwise the composed
//!   reference op (`*_reference`), which is also what the tests check the kernels against, in
//!   value and in gradient;
//! - takes contiguous inputs (it makes them so) and returns a contiguous result;
//! - is deterministic: the same inputs give the same bits whatever the thread count.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

/// Elements per parallel task: below this a kernel runs on the calling thread.
const GRAIN: usize = 1 << 14;
/// Lanes of the vectorised reductions (fixed, so results are independent of the ISA).
const LANES: usize = 16;

/// Whether the fused kernels apply: every tensor f32 and on the CPU.
pub fn fusable(ts: &[&Tensor]) -> bool {
    ts.iter().all(|t| t.dtype() == DType::F32 && t.device().is_cpu())
}

/// The contiguous f32 data of a storage + layout.
fn f32s<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{op}: expected a contiguous input"),
    }
}

fn u32s<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [u32]> {
    let data = s.as_slice::<u32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{op}: expected a contiguous input"),
    }
}

/// Calls `f(row_index, row)` for every `row_len`-long row of `out`, in parallel when large.
fn for_rows<F>(out: &mut [f32], row_len: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    if row_len == 0 || out.is_empty() {
        return;
    }
    if out.len() <= GRAIN {
        out.chunks_mut(row_len).enumerate().for_each(|(i, r)| f(i, r));
        return;
    }
    let per = (GRAIN / row_len).max(1);
    out.par_chunks_mut(per * row_len).enumerate().for_each(|(c, chunk)| {
        chunk.chunks_mut(row_len).enumerate().for_each(|(k, r)| f(c * per + k, r));
    });
}

/// Calls `f(offset, chunk_a, chunk_b)` over matching chunks of two equal-length outputs.
fn for_chunks2<F>(a: &mut [f32], b: &mut [f32], f: F)
where
    F: Fn(usize, &mut [f32], &mut [f32]) + Sync + Send,
{
    if a.len() <= GRAIN {
        f(0, a, b);
        return;
    }
    a.par_chunks_mut(GRAIN).zip(b.par_chunks_mut(GRAIN)).enumerate().for_each(|(c, (x, y))| f(c * GRAIN, x, y));
}

/// e^x to ~1 ulp (Cephes expf), in straight-line code that vectorises (libm's `expf` does not).
/// Arguments below -87 give ~1e-38 instead of 0, above 88 give ~1.6e38; NaN stays NaN.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC; // round(x / ln 2)
    let ni = t.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4; // x - n ln 2, in two parts
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 0.5;
    let y = p * (r * r) + r + 1.0;
    y * f32::from_bits(((ni + 127) << 23) as u32)
}

fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    let m = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    acc.iter().fold(m, |m, &v| if v > m { v } else { m })
}

fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (mut ca, mut cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum::<f32>()
}

/// `sum(x²)` of f32 data: 16-lane partial sums per block of `GRAIN`, blocks summed in order
/// (deterministic whatever the thread count).
pub fn sum_of_squares_f32(x: &[f32]) -> f32 {
    if x.len() <= GRAIN {
        return dot(x, x);
    }
    let parts: Vec<f32> = x.par_chunks(GRAIN).map(|c| dot(c, c)).collect();
    parts.iter().sum()
}

/// `out[j] = exp(x[j] * scale - shift)`; returns the sum of `out`.
fn exp_into(out: &mut [f32], x: &[f32], scale: f32, shift: f32) -> f32 {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = exp(v * scale - shift);
    }
    sum(out)
}

// ---------------------------------------------------------------------------------------------
// RMSNorm
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// RoPE
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Causal softmax and attention
// ---------------------------------------------------------------------------------------------

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

/// Causal attention core `softmax(q kᵀ * scale + mask) v` for q (B, H, T, D) and k, v
/// (B, H, S, D) with S ≥ T (the last T keys are the queries' own positions; earlier keys come
/// from a cache: query i sees keys `0..=S-T+i`), GQA heads already repeated. Backward for q, k
/// and v.
///
/// Where the CPU has FMA (x86-64 with AVX2+FMA, aarch64) one fused kernel per head: blocks of
/// query rows, the products only over the keys each block can see (half the work of full
/// matmuls), the softmax on each block of scores while it is in cache, nothing (B, H, T, S)-sized
/// in memory; the backward recomputes the probabilities block by block (flash-attention style).
/// Elsewhere the products are candle matmuls around the fused [`causal_softmax`].
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    if !fusable(&[q, k, v]) {
        return causal_attention_reference(q, k, v, scale);
    }
    let (b, h, t, d) = q.dims4()?;
    let s = k.dim(2)?;
    if k.dims() != [b, h, s, d] || v.dims() != [b, h, s, d] || s < t {
        bail!("causal_attention: q {:?}, k {:?}, v {:?} (need k, v (B, H, S ≥ T, D))", q.dims(), k.dims(), v.dims());
    }
    if scale <= 0.0 {
        bail!("causal_attention: scale must be positive, got {scale}");
    }
    if attn::available() {
        return q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, CausalAttention { scale: scale as f32 });
    }
    causal_attention_matmul(q, k, v, scale)
}

/// The attention core as candle matmuls around the fused [`causal_softmax`] (where the fused
/// kernel has no fast multiply-add).
pub fn causal_attention_matmul(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let (t, s) = (q.dim(2)?, k.dim(2)?);
    let scores = q.matmul(&k.t()?)?; // (B, H, T, S)
    causal_softmax(&scores, scale, s - t)?.matmul(v) // (B, H, T, D)
}

struct CausalAttention {
    scale: f32,
}

/// The f32 data of a contiguous CPU tensor, under its read lock.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cs) => f(f32s(cs, layout, "causal_attention")?),
        _ => bail!("expected a CPU tensor"),
    }
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "kiln-causal-attention"
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
        let (q, k, v) = (f32s(s1, l1, self.name())?, f32s(s2, l2, self.name())?, f32s(s3, l3, self.name())?);
        let (_, _, t, d) = l1.shape().dims4()?;
        let s = l2.shape().dims4()?.2;
        let mut o = vec![0f32; q.len()];
        causal_attention_f32(q, k, v, &mut o, t, s, d, self.scale);
        Ok((CpuStorage::F32(o), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let (_, _, t, d) = q.dims4()?;
        let s = k.dim(2)?;
        let (mut dq, mut dk, mut dv) = (vec![0f32; q.elem_count()], vec![0f32; k.elem_count()], vec![0f32; v.elem_count()]);
        with_f32(q, |q| {
            with_f32(k, |k| {
                with_f32(v, |v| {
                    with_f32(&g, |g| {
                        causal_attention_bwd_f32(q, k, v, g, &mut dq, &mut dk, &mut dv, t, s, d, self.scale);
                        Ok(())
                    })
                })
            })
        })?;
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), dev)?),
            Some(Tensor::from_vec(dk, k.shape(), dev)?),
            Some(Tensor::from_vec(dv, v.shape(), dev)?),
        ))
    }
}

/// Causal attention of contiguous heads: `q`/`o` (heads, T, D), `k`/`v` (heads, S, D), query i
/// seeing keys `0..=S-T+i`; parallel over heads. The slice kernel behind [`causal_attention`].
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_f32(q: &[f32], k: &[f32], v: &[f32], o: &mut [f32], t: usize, s: usize, d: usize, scale: f32) {
    assert!(q.len() == o.len() && k.len() == v.len() && s >= t, "causal_attention_f32: mismatched shapes");
    if o.is_empty() || s == 0 {
        return;
    }
    assert_eq!(q.len() / (t * d) * s * d, k.len(), "causal_attention_f32: q and k hold different head counts");
    let dims = attn::Dims { t, s, d, scale };
    o.par_chunks_mut(t * d).enumerate().for_each_init(attn::Scratch::default, |scr, (bh, o)| {
        attn::forward(&dims, &q[bh * t * d..][..t * d], &k[bh * s * d..][..s * d], &v[bh * s * d..][..s * d], o, scr)
    });
}

/// Backward of [`causal_attention_f32`] from the output gradient `g`: `dq` is overwritten,
/// `dk` and `dv` are accumulated into (pass zeros for plain gradients).
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_bwd_f32(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    g: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    t: usize,
    s: usize,
    d: usize,
    scale: f32,
) {
    assert!(
        q.len() == g.len() && q.len() == dq.len() && k.len() == dk.len() && v.len() == dv.len() && k.len() == v.len(),
        "causal_attention_bwd_f32: mismatched shapes"
    );
    if dq.is_empty() || s == 0 {
        return;
    }
    assert_eq!(q.len() / (t * d) * s * d, k.len(), "causal_attention_bwd_f32: q and k hold different head counts");
    let dims = attn::Dims { t, s, d, scale };
    dq.par_chunks_mut(t * d).zip(dk.par_chunks_mut(s * d)).zip(dv.par_chunks_mut(s * d)).enumerate().for_each_init(
        attn::Scratch::default,
        |scr, (bh, ((dq, dk), dv))| {
            let (qh, gh) = (&q[bh * t * d..][..t * d], &g[bh * t * d..][..t * d]);
            let (kh, vh) = (&k[bh * s * d..][..s * d], &v[bh * s * d..][..s * d]);
            attn::backward(&dims, qh, kh, vh, gh, dq, dk, dv, scr)
        },
    );
}

/// The fused attention kernel, one head at a time: a register-tiled multiply-add microkernel
/// (MR rows x NR columns of C, B rows contiguous, A read with any strides) plus the softmax.
mod attn {
    use super::{dot, exp, max, sum};

    /// Rows of a microkernel tile.
    const MR: usize = 4;
    /// Columns of a microkernel tile (two AVX registers).
    const NR: usize = 16;
    /// Query rows per backward block (its probabilities and their gradients are held).
    const BQ: usize = 64;
    /// Below this many queries the forward scores are dot products with K's rows (no transpose).
    const DOT_BELOW: usize = 16;

    /// Whether the kernel has a fast multiply-add to run on.
    pub(super) fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(target_arch = "aarch64")]
        {
            true
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            false
        }
    }

    /// One head's sizes: T queries, S keys (the first S - T visible to every query), D dims.
    pub(super) struct Dims {
        pub t: usize,
        pub s: usize,
        pub d: usize,
        pub scale: f32,
    }

    /// Per-thread buffers, reused across heads.
    #[derive(Default)]
    pub(super) struct Scratch {
        kt: Vec<f32>,
        vt: Vec<f32>,
        p: Vec<f32>,
        ds: Vec<f32>,
    }

    /// C[r][n] (=, or += with `ACC`) sum over k in k0..k1 of A[r*ars + k*acs] * B[k*brs + n],
    /// for r < mr ≤ MR and n < nc; C rows start at r*crs.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn gemm<const ACC: bool>(
        c: &mut [f32],
        crs: usize,
        a: &[f32],
        ars: usize,
        acs: usize,
        b: &[f32],
        brs: usize,
        mr: usize,
        nc: usize,
        k0: usize,
        k1: usize,
    ) {
        if mr == 0 || nc == 0 {
            return;
        }
        assert!(mr <= MR && (mr - 1) * crs + nc <= c.len());
        if k1 <= k0 {
            if !ACC {
                (0..mr).for_each(|r| c[r * crs..r * crs + nc].fill(0.0));
            }
            return;
        }
        // The unchecked reads below stay inside these bounds.
        assert!((mr - 1) * ars + (k1 - 1) * acs < a.len() && (k1 - 1) * brs + nc <= b.len());
        let full = nc / NR * NR;
        for n0 in (0..full).step_by(NR) {
            if mr == MR {
                let acc = tile::<MR>(a, ars, acs, b, brs, n0, k0, k1);
                store::<ACC, MR>(c, crs, n0, &acc);
            } else {
                for r in 0..mr {
                    let acc = tile::<1>(&a[r * ars..], ars, acs, b, brs, n0, k0, k1);
                    store::<ACC, 1>(&mut c[r * crs..], crs, n0, &acc);
                }
            }
        }
        for r in 0..mr {
            for n in full..nc {
                let mut acc = 0f32;
                for k in k0..k1 {
                    acc = a[r * ars + k * acs].mul_add(b[k * brs + n], acc);
                }
                let o = &mut c[r * crs + n];
                *o = if ACC { *o + acc } else { acc };
            }
        }
    }

    /// One M x NR tile of A B over k0..k1, in registers.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn tile<const M: usize>(a: &[f32], ars: usize, acs: usize, b: &[f32], brs: usize, n0: usize, k0: usize, k1: usize) -> [[f32; NR]; M] {
        let mut acc = [[0f32; NR]; M];
        for k in k0..k1 {
            // SAFETY: `gemm` checked (M-1)*ars + (k1-1)*acs < a.len() and (k1-1)*brs + n0 + NR <= b.len().
            let br: &[f32; NR] = unsafe { &*(b.as_ptr().add(k * brs + n0) as *const [f32; NR]) };
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = unsafe { *a.get_unchecked(r * ars + k * acs) };
                for n in 0..NR {
                    acc[n] = av.mul_add(br[n], acc[n]);
                }
            }
        }
        acc
    }

    #[inline(always)]
    fn store<const ACC: bool, const M: usize>(c: &mut [f32], crs: usize, n0: usize, acc: &[[f32; NR]; M]) {
        for (r, acc) in acc.iter().enumerate() {
            let row = &mut c[r * crs + n0..r * crs + n0 + NR];
            for n in 0..NR {
                row[n] = if ACC { row[n] + acc[n] } else { acc[n] };
            }
        }
    }

    /// `dst` (cols x rows) = transpose of `src` (rows x cols), in 16 x 16 blocks (cache-friendly).
    #[inline(always)]
    fn transpose(dst: &mut Vec<f32>, src: &[f32], rows: usize, cols: usize) {
        const B: usize = 16;
        dst.clear();
        dst.resize(rows * cols, 0.0);
        for i0 in (0..rows).step_by(B) {
            for j0 in (0..cols).step_by(B) {
                for i in i0..(i0 + B).min(rows) {
                    let row = &src[i * cols..(i + 1) * cols];
                    for j in j0..(j0 + B).min(cols) {
                        dst[j * rows + i] = row[j];
                    }
                }
            }
        }
    }

    /// Probabilities of query rows r0..r0+mr into `p` (row stride s): scores over the keys
    /// 0..n_end the block sees, softmax over each row's own keys, zeros after them. The scores
    /// come from the tiles with `kt` = Kᵀ, or (few queries: decoding) from dot products with
    /// the rows of `k`, which spares transposing K.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn probs(m: &Dims, q: &[f32], k: &[f32], kt: Option<&[f32]>, p: &mut [f32], r0: usize, mr: usize, n_end: usize) {
        let (s, d, off) = (m.s, m.d, m.s - m.t);
        match kt {
            Some(kt) => gemm::<false>(p, s, &q[r0 * d..], d, 1, kt, s, mr, n_end, 0, d),
            None => {
                for r in 0..mr {
                    let qr = &q[(r0 + r) * d..(r0 + r + 1) * d];
                    for (j, x) in p[r * s..r * s + n_end].iter_mut().enumerate() {
                        *x = dot(qr, &k[j * d..(j + 1) * d]);
                    }
                }
            }
        }
        for r in 0..mr {
            let n = (off + r0 + r + 1).min(s);
            let row = &mut p[r * s..r * s + n_end];
            let shift = max(&row[..n]) * m.scale;
            for x in &mut row[..n] {
                *x = exp(*x * m.scale - shift);
            }
            let inv = 1.0 / sum(&row[..n]);
            row[..n].iter_mut().for_each(|x| *x *= inv);
            row[n..].fill(0.0);
        }
    }

    #[inline(always)]
    fn forward_impl(m: &Dims, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32], scr: &mut Scratch) {
        let (t, s, d, off) = (m.t, m.s, m.d, m.s - m.t);
        let tiles = t >= DOT_BELOW;
        if tiles {
            transpose(&mut scr.kt, k, s, d); // (D, S)
        }
        scr.p.resize(MR * s, 0.0);
        for r0 in (0..t).step_by(MR) {
            let mr = MR.min(t - r0);
            let n_end = (off + r0 + mr).min(s);
            probs(m, q, k, tiles.then_some(&scr.kt[..]), &mut scr.p, r0, mr, n_end);
            gemm::<false>(&mut o[r0 * d..], d, &scr.p, s, 1, v, d, mr, d, 0, n_end);
            // O = P V
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn backward_impl(
        m: &Dims,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        g: &[f32],
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
        scr: &mut Scratch,
    ) {
        let (t, s, d, off) = (m.t, m.s, m.d, m.s - m.t);
        transpose(&mut scr.kt, k, s, d); // (D, S)
        transpose(&mut scr.vt, v, s, d);
        scr.p.resize(BQ * s, 0.0);
        scr.ds.resize(BQ * s, 0.0);
        for q0 in (0..t).step_by(BQ) {
            let bq = BQ.min(t - q0);
            let n_blk = (off + q0 + bq).min(s); // keys this block of queries sees
            for r0 in (0..bq).step_by(MR) {
                let mr = MR.min(bq - r0);
                let n_end = (off + q0 + r0 + mr).min(s);
                let (p, ds) = (&mut scr.p[r0 * s..], &mut scr.ds[r0 * s..]);
                probs(m, q, k, Some(&scr.kt), p, q0 + r0, mr, n_end);
                gemm::<false>(ds, s, &g[(q0 + r0) * d..], d, 1, &scr.vt, s, mr, n_end, 0, d); // dP = dO Vᵀ
                for r in 0..mr {
                    let (pr, dr) = (&p[r * s..r * s + n_blk], &mut ds[r * s..r * s + n_blk]);
                    let n = (off + q0 + r0 + r + 1).min(s);
                    let di = dot(&pr[..n], &dr[..n]); // = dO·O
                    for j in 0..n {
                        dr[j] = m.scale * pr[j] * (dr[j] - di);
                    }
                    dr[n..].fill(0.0);
                }
                // Zeros after n_end up to n_blk in P too (read below by the dV product).
                for r in 0..mr {
                    p[r * s + n_end..r * s + n_blk].fill(0.0);
                }
                gemm::<false>(&mut dq[(q0 + r0) * d..], d, ds, s, 1, k, d, mr, d, 0, n_end);
                // dQ = dS K
            }
            // dK += dSᵀ Q and dV += Pᵀ dO over this block's queries, for the keys it sees.
            for j0 in (0..n_blk).step_by(MR) {
                let mr = MR.min(n_blk - j0);
                let i0 = j0.saturating_sub(off + q0).min(bq); // first query of the block that sees key j0
                gemm::<true>(&mut dk[j0 * d..], d, &scr.ds[j0..], 1, s, &q[q0 * d..], d, mr, d, i0, bq);
                gemm::<true>(&mut dv[j0 * d..], d, &scr.p[j0..], 1, s, &g[q0 * d..], d, mr, d, i0, bq);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(m: &Dims, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32], scr: &mut Scratch) {
        forward_impl(m, q, k, v, o, scr)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn backward_avx2(
        m: &Dims,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        g: &[f32],
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
        scr: &mut Scratch,
    ) {
        backward_impl(m, q, k, v, g, dq, dk, dv, scr)
    }

    /// O (T, D) of one head.
    pub(super) fn forward(m: &Dims, q: &[f32], k: &[f32], v: &[f32], o: &mut [f32], scr: &mut Scratch) {
        #[cfg(target_arch = "x86_64")]
        if available() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { forward_avx2(m, q, k, v, o, scr) };
        }
        forward_impl(m, q, k, v, o, scr)
    }

    /// dQ (T, D), dK and dV (S, D) of one head from its upstream gradient `g` (T, D).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward(
        m: &Dims,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        g: &[f32],
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
        scr: &mut Scratch,
    ) {
        #[cfg(target_arch = "x86_64")]
        if available() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { backward_avx2(m, q, k, v, g, dq, dk, dv, scr) };
        }
        backward_impl(m, q, k, v, g, dq, dk, dv, scr)
    }
}

/// The attention core from composed ops (matmul, scale, -inf mask, softmax, matmul), with the
/// softmax in f32 and the products in the inputs' dtype.
pub fn causal_attention_reference(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let (t, s) = (q.dim(2)?, k.dim(2)?);
    let probs = causal_softmax_reference(&q.matmul(&k.t()?)?, scale, s.saturating_sub(t))?;
    probs.to_dtype(v.dtype())?.matmul(v)
}

// ---------------------------------------------------------------------------------------------
// SwiGLU
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Cross-entropy
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Batch-invariant projection (decoding)
// ---------------------------------------------------------------------------------------------

/// `y (rows, out) = x (rows, in) · wᵀ` for w (out, in), every output element one [`dot`] of
/// fixed lane order: a row's result does not depend on how many other rows are in the call.
/// That is what lets a server batch the decode steps of several sequences and still give each
/// exactly what it gets alone. Parallel over blocks of outputs; each block of `w` is read once
/// for all rows (decoding is bound by reading the weights).
pub fn linear_rows_f32(x: &[f32], w: &[f32], y: &mut [f32], rows: usize, input: usize, out: usize) {
    assert!(x.len() == rows * input && w.len() == out * input && y.len() == rows * out, "linear_rows_f32: mismatched shapes");
    if rows == 0 || out == 0 {
        return;
    }
    const BLOCK: usize = 32; // outputs per task
    let mut yt = vec![0f32; out * rows]; // (out, rows): each task writes a contiguous block
    yt.par_chunks_mut(BLOCK * rows).enumerate().for_each(|(b, block)| {
        let o0 = b * BLOCK;
        for (j, ys) in block.chunks_mut(rows).enumerate() {
            let wr = &w[(o0 + j) * input..(o0 + j + 1) * input];
            for (r, yv) in ys.iter_mut().enumerate() {
                *yv = dot_fast(&x[r * input..(r + 1) * input], wr);
            }
        }
    });
    for (j, col) in yt.chunks(rows).enumerate() {
        for (r, &v) in col.iter().enumerate() {
            y[r * out + j] = v;
        }
    }
}

/// `x (S, in) · wᵀ` for `w (out, in)`, f32 on the CPU: [`linear_rows_f32`] on tensors.
pub fn linear_rows(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (rows, input) = x.dims2()?;
    let (out, w_in) = w.dims2()?;
    if w_in != input || !fusable(&[x, w]) {
        bail!("linear_rows: x {:?} and w {:?} must be f32 CPU (S, in) and (out, in)", x.dims(), w.dims());
    }
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    let mut y = vec![0f32; rows * out];
    with_f32(&x, |xs| {
        with_f32(&w, |ws| {
            linear_rows_f32(xs, ws, &mut y, rows, input, out);
            Ok(())
        })
    })?;
    Tensor::from_vec(y, (rows, out), x.device())
}

/// [`dot`] compiled for AVX2 where the CPU has it (the same operations in the same order, so
/// the same bits as long as one build runs on one machine).
#[inline]
fn dot_fast(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
            dot(a, b)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot(a, b)
}

#[cfg(test)]
mod tests {
    //! Each kernel against the composed candle ops it replaces, in value and in gradient, on
    //! random inputs; the kernels are applied directly (not through the dispatching functions),
    //! so a silent fallback to the reference cannot make a test pass.
    use super::*;
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Normal};

    fn randn(shape: &[usize], std: f32, seed: u64) -> Tensor {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let normal = Normal::new(0f32, std).unwrap();
        Tensor::from_vec((0..n).map(|_| normal.sample(&mut rng)).collect::<Vec<_>>(), shape, &Device::Cpu).unwrap()
    }

    /// max |a - b| / max |b|.
    fn rel(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        let s = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(d.is_finite() && s.is_finite(), "non-finite: diff {d}, scale {s}");
        d / s.max(1e-12)
    }

    /// d sum(f(inputs) * g) / d inputs, for the inputs flagged in `wrt`.
    fn grads(f: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor], wrt: &[bool], g: &Tensor) -> Vec<Tensor> {
        let vars: Vec<Option<Var>> = inputs.iter().zip(wrt).map(|(t, &w)| w.then(|| Var::from_tensor(t).unwrap())).collect();
        let args: Vec<Tensor> =
            inputs.iter().zip(&vars).map(|(t, v)| v.as_ref().map(|v| v.as_tensor().clone()).unwrap_or_else(|| t.clone())).collect();
        let y = f(&args).unwrap();
        let loss = (y * g).unwrap().sum_all().unwrap();
        let gs = loss.backward().unwrap();
        vars.iter().flatten().map(|v| gs.get(v.as_tensor()).expect("a gradient").clone()).collect()
    }

    /// Value within `1e-5` and every gradient within `1e-4`, relative to the reference's scale.
    fn check(
        name: &str,
        fused: &dyn Fn(&[Tensor]) -> Result<Tensor>,
        reference: &dyn Fn(&[Tensor]) -> Result<Tensor>,
        inputs: &[Tensor],
        wrt: &[bool],
        seed: u64,
    ) {
        let (a, b) = (fused(inputs).unwrap(), reference(inputs).unwrap());
        let e = rel(&a, &b);
        assert!(e <= 1e-5, "{name}: value differs by {e} (relative)");
        let g = randn(b.dims(), 1.0, seed);
        let (ga, gb) = (grads(fused, inputs, wrt, &g), grads(reference, inputs, wrt, &g));
        for (i, (x, y)) in ga.iter().zip(&gb).enumerate() {
            let e = rel(x, y);
            assert!(e <= 1e-4, "{name}: gradient of input {i} differs by {e} (relative)");
        }
    }

    #[test]
    fn exp_is_accurate_and_keeps_nan() {
        for i in -87_000..=87_900 {
            let x = i as f32 * 1e-3 + 1.3e-4;
            let (a, b) = (exp(x), x.exp());
            assert!(((a - b) / b).abs() <= 3e-7, "exp({x}) = {a}, libm {b}");
        }
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        assert!(exp(f32::NAN).is_nan());
    }

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

    #[test]
    fn causal_attention_matches_composed_ops() {
        // Shapes: T not a multiple of the tile rows, D not of the tile columns, T over one
        // backward block (64), cached keys (S > T), a single query.
        let shapes = [
            (2, 3, 9, 9, 8),
            (1, 2, 5, 11, 16),
            (1, 4, 17, 17, 12),
            (1, 1, 1, 6, 7),
            (1, 2, 70, 70, 20),
            (1, 1, 67, 80, 32),
            (2, 1, 130, 130, 64),
        ];
        for (k, (b, h, t, s, d)) in shapes.into_iter().enumerate() {
            let q = randn(&[b, h, t, d], 1.0, k as u64);
            let kk = randn(&[b, h, s, d], 1.0, 10 + k as u64);
            let v = randn(&[b, h, s, d], 1.0, 20 + k as u64);
            let scale = 1.0 / (d as f64).sqrt();
            let reference = move |a: &[Tensor]| causal_attention_reference(&a[0], &a[1], &a[2], scale);
            if attn::available() {
                let kernel = move |a: &[Tensor]| a[0].apply_op3(&a[1], &a[2], CausalAttention { scale: scale as f32 });
                check(
                    &format!("causal_attention kernel {:?}", (b, h, t, s, d)),
                    &kernel,
                    &reference,
                    &[q.clone(), kk.clone(), v.clone()],
                    &[true, true, true],
                    500 + k as u64,
                );
            }
            let matmul = move |a: &[Tensor]| causal_attention_matmul(&a[0], &a[1], &a[2], scale);
            check(
                &format!("causal_attention matmul {:?}", (b, h, t, s, d)),
                &matmul,
                &reference,
                &[q, kk, v],
                &[true, true, true],
                500 + k as u64,
            );
        }
    }

    /// Position t's output does not depend on keys or values after t; it does on those at t.
    #[test]
    fn causal_attention_does_not_look_ahead() {
        let (b, h, t, d) = (2, 3, 12, 8);
        let (q, k, v) = (randn(&[b, h, t, d], 1.0, 1), randn(&[b, h, t, d], 1.0, 2), randn(&[b, h, t, d], 1.0, 3));
        let base = causal_attention(&q, &k, &v, 0.35).unwrap();
        for p in [0, 5, t - 1] {
            let bump = |x: &Tensor| -> Tensor {
                let mut data = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for bh in 0..b * h {
                    for j in 0..d {
                        data[(bh * t + p) * d + j] += 10.0;
                    }
                }
                Tensor::from_vec(data, x.dims(), x.device()).unwrap()
            };
            for (name, out) in
                [("key", causal_attention(&q, &bump(&k), &v, 0.35).unwrap()), ("value", causal_attention(&q, &k, &bump(&v), 0.35).unwrap())]
            {
                if p > 0 {
                    let before = rel(&out.narrow(2, 0, p).unwrap(), &base.narrow(2, 0, p).unwrap());
                    assert_eq!(before, 0.0, "a {name} at {p} changed earlier positions");
                }
                // (Position 0 sees one key: its softmax weight is 1 whatever the key.)
                let at = rel(&out.narrow(2, p, 1).unwrap(), &base.narrow(2, p, 1).unwrap());
                assert!(at > 1e-3 || (name == "key" && p == 0), "a {name} at {p} did not change position {p}");
            }
        }
    }

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

    /// The public functions run the kernels on f32 and the references on other dtypes, and both
    /// carry gradients.
    #[test]
    fn dispatch_by_dtype() {
        let x = randn(&[2, 3, 4, 8], 1.0, 1);
        let (cos, sin) = (randn(&[4, 4], 1.0, 2).cos().unwrap(), randn(&[4, 4], 1.0, 2).sin().unwrap());
        let w = randn(&[8], 1.0, 3);
        for dtype in [DType::F32, DType::F64] {
            let (x, cos, sin, w) =
                (x.to_dtype(dtype).unwrap(), cos.to_dtype(dtype).unwrap(), sin.to_dtype(dtype).unwrap(), w.to_dtype(dtype).unwrap());
            let xv = Var::from_tensor(&x).unwrap();
            let y = rms_norm(&rope(xv.as_tensor(), &cos, &sin).unwrap(), &w, 1e-5).unwrap();
            let y = swiglu(&y, &y).unwrap();
            let y = causal_attention(&y, &y, &y, 0.5).unwrap();
            let y =
                cross_entropy(&y.reshape((24, 8)).unwrap().to_dtype(dtype).unwrap(), &Tensor::zeros(24, DType::U32, &Device::Cpu).unwrap())
                    .unwrap();
            let g = y.backward().unwrap();
            let gx = g.get(xv.as_tensor()).expect("gradient reaches x");
            assert_eq!(gx.dtype(), dtype);
            assert!(gx.abs().unwrap().sum_all().unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap() > 0.0);
        }
    }
}
