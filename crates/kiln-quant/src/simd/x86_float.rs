//! x86 dot products of F32/F16/BF16 weight rows with f32 activations: AVX2+FMA+F16C bodies
//! (8 lanes) and AVX-512 bodies (16 lanes). F16 converts with `vcvtph2ps`, BF16 by shifting into
//! the top half of an f32 (exact), so only the summation order differs from the reference.
//! Like `x86_int`, these are `#[inline(always)]` bodies for the `#[target_feature]` wrappers.

use std::arch::x86_64::*;

use super::x86_int::hsum_ps;

/// Four independent FMA chains over 8-lane chunks, then 8-lane steps (`$x.len()` a multiple of 8).
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
    _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
}

#[inline(always)]
unsafe fn bf16x8(p: *const u8) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i))))
}

#[inline(always)]
pub(crate) unsafe fn f32_avx2(w: &[u8], x: &[f32]) -> f32 {
    let n8 = x.len() / 8 * 8;
    let head = dot256!(&w[..n8 * 4], &x[..n8], 4, |p| _mm256_loadu_ps(p as *const f32));
    head + crate::float::vec_dot_f32(&w[n8 * 4..], &x[n8..])
}

#[inline(always)]
pub(crate) unsafe fn f16_avx2(w: &[u8], x: &[f32]) -> f32 {
    let n8 = x.len() / 8 * 8;
    let head = dot256!(&w[..n8 * 2], &x[..n8], 2, |p| f16x8(p));
    head + crate::float::vec_dot_f16(&w[n8 * 2..], &x[n8..])
}

#[inline(always)]
pub(crate) unsafe fn bf16_avx2(w: &[u8], x: &[f32]) -> f32 {
    let n8 = x.len() / 8 * 8;
    let head = dot256!(&w[..n8 * 2], &x[..n8], 2, |p| bf16x8(p));
    head + crate::float::vec_dot_bf16(&w[n8 * 2..], &x[n8..])
}

/// 16-lane version of `dot256`: four FMA chains, then 16-lane steps, then the 8-lane body.
macro_rules! dot512 {
    ($w:expr, $x:expr, $elem:expr, |$p:ident| $load:expr) => {{
        let (w, x): (&[u8], &[f32]) = ($w, $x);
        let n = x.len();
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let $p = wp.add((i + 16 * k) * $elem);
                *a = _mm512_fmadd_ps($load, _mm512_loadu_ps(xp.add(i + 16 * k)), *a);
            }
            i += 64;
        }
        while i + 16 <= n {
            let $p = wp.add(i * $elem);
            acc[0] = _mm512_fmadd_ps($load, _mm512_loadu_ps(xp.add(i)), acc[0]);
            i += 16;
        }
        (_mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]))), i)
    }};
}

#[inline(always)]
pub(crate) unsafe fn f32_avx512(w: &[u8], x: &[f32]) -> f32 {
    let (head, i) = dot512!(w, x, 4, |p| _mm512_loadu_ps(p as *const f32));
    head + f32_avx2(&w[i * 4..], &x[i..])
}

#[inline(always)]
pub(crate) unsafe fn f16_avx512(w: &[u8], x: &[f32]) -> f32 {
    let (head, i) = dot512!(w, x, 2, |p| _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)));
    head + f16_avx2(&w[i * 2..], &x[i..])
}

#[inline(always)]
pub(crate) unsafe fn bf16_avx512(w: &[u8], x: &[f32]) -> f32 {
    let (head, i) =
        dot512!(w, x, 2, |p| _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i)))));
    head + bf16_avx2(&w[i * 2..], &x[i..])
}
