//! Causal attention: the fused per-head kernel (a register-tiled multiply-add microkernel with the
//! softmax in between, forward and flash-style backward), the matmul fallback around
//! [`causal_softmax`], and the composed reference.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::softmax::{causal_softmax, causal_softmax_reference};
use super::{dot, exp, f32s, fusable, max, sum, with_f32};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{check, randn, rel};

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
}
