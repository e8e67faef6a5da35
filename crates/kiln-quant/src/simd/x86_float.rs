//! x86 products of F32/F16/BF16 weight rows with f32 activations (AVX2+FMA+F16C, 8 lanes; the
//! AVX-512 tier compiles the same bodies): a register- and cache-blocked tile product whose
//! every output is one FMA chain (see [`float_tile`]). F16 converts with `vcvtph2ps`, BF16 by
//! shifting into the top half of an f32 (exact), so only the summation order differs from the
//! reference.
//! Like `x86_int`, these are `#[inline(always)]` bodies for the `#[target_feature]` wrappers.

use std::arch::x86_64::*;

use super::x86_int::hsum_ps;
use crate::attention::{attend_reference, Attend, KvType};

/// Four independent FMA chains over 8-lane chunks, then 8-lane steps (`$x.len()` a multiple of
/// 8): the attention scores' dot product.
macro_rules! dot256 {
    ($w:expr, $x:expr, $elem:expr, |$p:ident| $load:expr) => {{
        let (w, x): (&[u8], &[f32]) = ($w, $x);
        let n = x.len();
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let $p = wp.add((i + 8 * k) * $elem);
                *a = _mm256_fmadd_ps($load, _mm256_loadu_ps(xp.add(i + 8 * k)), *a);
            }
            i += 32;
        }
        while i + 8 <= n {
            let $p = wp.add(i * $elem);
            acc[0] = _mm256_fmadd_ps($load, _mm256_loadu_ps(xp.add(i)), acc[0]);
            i += 8;
        }
        debug_assert_eq!(i, n, "callers pass a multiple of 8 values");
        hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])))
    }};
}

#[inline(always)]
unsafe fn f16x8(p: *const u8) -> __m256 {
    F16W::load8(p)
}

/// A float weight type as the float kernels load it: 8 values at `p` as 8 f32 lanes (F16 by
/// `vcvtph2ps`, BF16 by shifting into the top half of an f32, both exact).
pub(crate) trait FloatLoad {
    /// Bytes per value.
    const ELEM: usize;
    unsafe fn load8(p: *const u8) -> __m256;
    /// The scalar reference dot product, for the `cols % 8` values after the last full 8.
    fn tail(w: &[u8], x: &[f32]) -> f32;
}

pub(crate) struct F32W;
pub(crate) struct F16W;
pub(crate) struct Bf16W;

impl FloatLoad for F32W {
    const ELEM: usize = 4;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        _mm256_loadu_ps(p as *const f32)
    }
    fn tail(w: &[u8], x: &[f32]) -> f32 {
        crate::float::vec_dot_f32(w, x)
    }
}

impl FloatLoad for F16W {
    const ELEM: usize = 2;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
    fn tail(w: &[u8], x: &[f32]) -> f32 {
        crate::float::vec_dot_f16(w, x)
    }
}

impl FloatLoad for Bf16W {
    const ELEM: usize = 2;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i))))
    }
    fn tail(w: &[u8], x: &[f32]) -> f32 {
        crate::float::vec_dot_bf16(w, x)
    }
}

/// Advances the FMA chains of `R` weight rows by `J` activation rows over values `k0..k1`
/// (multiples of 8): `acc[r][j] += w_r[k..k+8] * x_j[k..k+8]`, one chain per pair, in order of
/// `k`. Each pair's sequence of operations is the same whatever `R` and `J` are.
// Index loops on purpose: activation-major order keeps one activation vector live at a time.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn chains<L: FloatLoad, const R: usize, const J: usize>(
    w: *const u8,
    w_stride: usize,
    x: *const f32,
    x_stride: usize,
    (k0, k1): (usize, usize),
    acc: &mut [__m256],
    acc_stride: usize,
) {
    let mut a = [[_mm256_setzero_ps(); J]; R];
    for (r, row) in a.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = *acc.get_unchecked(r * acc_stride + j);
        }
    }
    let mut k = k0;
    while k < k1 {
        let mut wv = [_mm256_setzero_ps(); R];
        for (r, v) in wv.iter_mut().enumerate() {
            *v = L::load8(w.add(r * w_stride + k * L::ELEM));
        }
        for j in 0..J {
            let xv = _mm256_loadu_ps(x.add(j * x_stride + k));
            for r in 0..R {
                a[r][j] = _mm256_fmadd_ps(wv[r], xv, a[r][j]);
            }
        }
        k += 8;
    }
    for (r, row) in a.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            *acc.get_unchecked_mut(r * acc_stride + j) = *v;
        }
    }
}

/// Values per pass over a tile: 512 f32 of 4 activation rows (8 KB) stay in L1 while the
/// tile's weight rows go by, and each weight chunk is reused for every 4 activation rows.
const K_CHUNK: usize = 512;

/// `out[j * rows + r] = dot(w_r, x_j)` for `rows` weight rows of type `L` (row-major in `w`) and
/// `n` activation rows (`x`, row-major): a register-blocked product (3 weight rows by 4
/// activation rows per step, 8 weight rows at a time when `n == 1`), cache-blocked over the
/// values. Every (row, activation) pair is one 8-lane FMA chain over the values in order, its
/// lanes summed by `hsum_ps`, plus the scalar reference over the last `cols % 8` values: the
/// same bits for any tiling, so products are batch-invariant.
#[inline(always)]
pub(crate) unsafe fn float_tile<L: FloatLoad>(w: &[u8], rows: usize, x: &[f32], n: usize, out: &mut [f32]) {
    let cols = x.len() / n;
    let k8 = cols / 8 * 8;
    let stride = cols * L::ELEM;
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut acc = vec![_mm256_setzero_ps(); rows * n];
    macro_rules! step {
        ($r:expr, $j:expr, $ks:expr, $rb:expr, $jb:expr) => {
            chains::<L, $r, $j>(wp.add($rb * stride), stride, xp.add($jb * cols), cols, $ks, &mut acc[$rb * n + $jb..], n)
        };
    }
    let mut k0 = 0;
    while k0 < k8 {
        let ks = (k0, (k0 + K_CHUNK).min(k8));
        if n == 1 {
            let mut rb = 0;
            while rb + 8 <= rows {
                step!(8, 1, ks, rb, 0);
                rb += 8;
            }
            while rb < rows {
                step!(1, 1, ks, rb, 0);
                rb += 1;
            }
        } else {
            let mut rb = 0;
            while rb < rows {
                let mut jb = 0;
                while jb < n {
                    match (rows - rb, n - jb) {
                        (3.., 4..) => step!(3, 4, ks, rb, jb),
                        (3.., 3) => step!(3, 3, ks, rb, jb),
                        (3.., 2) => step!(3, 2, ks, rb, jb),
                        (3.., _) => step!(3, 1, ks, rb, jb),
                        (2, 4..) => step!(2, 4, ks, rb, jb),
                        (2, 3) => step!(2, 3, ks, rb, jb),
                        (2, 2) => step!(2, 2, ks, rb, jb),
                        (2, _) => step!(2, 1, ks, rb, jb),
                        (_, 4..) => step!(1, 4, ks, rb, jb),
                        (_, 3) => step!(1, 3, ks, rb, jb),
                        (_, 2) => step!(1, 2, ks, rb, jb),
                        (_, _) => step!(1, 1, ks, rb, jb),
                    }
                    jb += 4;
                }
                rb += 3;
            }
        }
        k0 = ks.1;
    }
    for r in 0..rows {
        let wr = &w[r * stride..(r + 1) * stride];
        for j in 0..n {
            let xj = &x[j * cols..(j + 1) * cols];
            out[j * rows + r] = hsum_ps(acc[r * n + j]) + L::tail(&wr[k8 * L::ELEM..], &xj[k8..]);
        }
    }
}

#[inline(always)]
pub(crate) unsafe fn f32_avx2(w: &[u8], x: &[f32]) -> f32 {
    let mut out = [0f32];
    float_tile::<F32W>(w, 1, x, 1, &mut out);
    out[0]
}

#[inline(always)]
pub(crate) unsafe fn f16_avx2(w: &[u8], x: &[f32]) -> f32 {
    let mut out = [0f32];
    float_tile::<F16W>(w, 1, x, 1, &mut out);
    out[0]
}

#[inline(always)]
pub(crate) unsafe fn bf16_avx2(w: &[u8], x: &[f32]) -> f32 {
    let mut out = [0f32];
    float_tile::<Bf16W>(w, 1, x, 1, &mut out);
    out[0]
}

/// e^x in each lane: Cephes' range reduction (x = n ln2 + r, |r| <= ln2/2, ln2 split in two for
/// exactness) and degree-7 polynomial for e^r, times 2^n built in the exponent bits. Relative
/// error below 2e-7 on [-87.3, 88.3]; inputs below -87.3 (e^x < 2^-126) give 2^-126-ish, never 0
/// or a NaN, which attention (weights of far-below-maximum scores) cannot tell apart.
#[inline(always)]
pub(crate) unsafe fn exp256(x: __m256) -> __m256 {
    let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.336_54)), _mm256_set1_ps(88.376_26));
    let n =
        _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut y = _mm256_set1_ps(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
    }
    let y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0)));
    let pow2n = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127))));
    _mm256_mul_ps(y, pow2n)
}

/// Eight values of `ty` at `p` as f32.
#[inline(always)]
unsafe fn kv8(f16: bool, p: *const u8) -> __m256 {
    if f16 {
        f16x8(p)
    } else {
        _mm256_loadu_ps(p as *const f32)
    }
}

/// The attention kernel (see `crate::attention`) with 8-lane FMAs: scores by `dot256`, a
/// vectorised soft-max, then the values weighted 32 output dimensions at a time (four
/// accumulators stay in registers while every position's slice of the value rows streams by).
/// Head widths that are not a multiple of 8 take the reference.
#[inline(always)]
pub(crate) unsafe fn attend_avx2(a: &Attend<'_>, scratch: &mut Vec<f32>, out: &mut [f32]) {
    let (d, len) = (a.d, a.len);
    if !d.is_multiple_of(8) {
        return attend_reference(a, scratch, out);
    }
    let f16 = a.ty == KvType::F16;
    let eb = a.ty.value_bytes();
    let row = d * eb;
    scratch.clear();
    scratch.resize(d + len, 0.0);
    let (qr, scores) = scratch.split_at_mut(d);
    let (kp, vp) = (a.keys.as_ptr(), a.values.as_ptr());
    for (qg, og) in a.q.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        for i in (0..d).step_by(8) {
            let v = _mm256_loadu_ps(qg.as_ptr().add(i));
            let v = if f16 { _mm256_cvtph_ps(_mm256_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT }>(v)) } else { v };
            _mm256_storeu_ps(qr.as_mut_ptr().add(i), v);
        }
        for (p, s) in scores.iter_mut().enumerate() {
            let k = std::slice::from_raw_parts(kp.add(p * row), row);
            let dot = if f16 { dot256!(k, qr, 2, |p| f16x8(p)) } else { dot256!(k, qr, 4, |p| _mm256_loadu_ps(p as *const f32)) };
            *s = dot * a.scale;
        }
        // Soft-max: maximum, e^(s - max) and their sum, then the probabilities (rounded to the
        // cache type, as GGML rounds them for the product with F16 values).
        let sp = scores.as_mut_ptr();
        let n8 = len / 8 * 8;
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        for i in (0..n8).step_by(8) {
            m = _mm256_max_ps(m, _mm256_loadu_ps(sp.add(i)));
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), m);
        let max = lanes.iter().chain(&scores[n8..]).copied().fold(f32::NEG_INFINITY, f32::max);
        for i in (0..n8).step_by(8) {
            _mm256_storeu_ps(sp.add(i), exp256(_mm256_sub_ps(_mm256_loadu_ps(sp.add(i)), _mm256_set1_ps(max))));
        }
        for s in &mut scores[n8..] {
            *s = (*s - max).exp();
        }
        let inv = (1.0 / scores.iter().map(|&e| f64::from(e)).sum::<f64>()) as f32;
        for i in (0..n8).step_by(8) {
            let w = _mm256_mul_ps(_mm256_loadu_ps(sp.add(i)), _mm256_set1_ps(inv));
            let w = if f16 { _mm256_cvtph_ps(_mm256_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT }>(w)) } else { w };
            _mm256_storeu_ps(sp.add(i), w);
        }
        for s in &mut scores[n8..] {
            *s = crate::attention::round_to(a.ty, *s * inv);
        }
        let mut c = 0;
        while c + 32 <= d {
            let mut acc = [_mm256_setzero_ps(); 4];
            for (p, &w) in scores.iter().enumerate() {
                let (w, v) = (_mm256_set1_ps(w), vp.add(p * row + c * eb));
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(w, kv8(f16, v.add(8 * k * eb)), *a);
                }
            }
            for (k, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(og.as_mut_ptr().add(c + 8 * k), *a);
            }
            c += 32;
        }
        while c < d {
            let mut acc = _mm256_setzero_ps();
            for (p, &w) in scores.iter().enumerate() {
                acc = _mm256_fmadd_ps(_mm256_set1_ps(w), kv8(f16, vp.add(p * row + c * eb)), acc);
            }
            _mm256_storeu_ps(og.as_mut_ptr().add(c), acc);
            c += 8;
        }
    }
}
