//! x86 integer dot-product bodies for every quantized weight type against int8 activations,
//! written once and compiled twice: inside AVX2 functions (`Avx2`: `vpmaddubsw` + `vpmaddwd`)
//! and inside AVX-512 functions (`Vnni`: `vpdpbusd` on 256-bit vectors, EVEX encodings).
//!
//! The bodies are `#[inline(always)]` without target features of their own; they only run
//! inlined into the `#[target_feature]` wrappers in `avx2.rs`/`avx512.rs`, which the dispatcher
//! hands out only after detecting the features. Callers guarantee the slice lengths (the
//! wrappers assert them), so the bodies use unchecked pointer arithmetic and unaligned loads.
//!
//! All integer sums are exact: weights are at most 6 bits unsigned (or |w| <= 128 after the
//! sign trick) and activations lie in -127..=127, so `vpmaddubsw`'s i16 pair sums never
//! saturate. Only the f32 accumulation order differs from the scalar reference.

use std::arch::x86_64::*;

use crate::act::{Q8KRow, Q8Row};

/// The one instruction-set difference between the two tiers' integer kernels.
pub(crate) trait Isa {
    /// Eight i32 lanes, each the sum of four adjacent `u[k] * s[k]` (u8 times i8).
    unsafe fn dot_u8i8(u: __m256i, s: __m256i) -> __m256i;
}

/// AVX2: `vpmaddubsw` (u8 x i8 pairs to i16) then `vpmaddwd` by ones.
pub(crate) struct Avx2;

impl Isa for Avx2 {
    #[inline(always)]
    unsafe fn dot_u8i8(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }
}

/// AVX-512 VNNI: one `vpdpbusd`.
pub(crate) struct Vnni;

impl Isa for Vnni {
    #[inline(always)]
    unsafe fn dot_u8i8(u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
    }
}

/// Signed x signed: |w| as unsigned times a with w's sign (exact for a != -128).
#[inline(always)]
unsafe fn dot_i8i8<I: Isa>(w: __m256i, a: __m256i) -> __m256i {
    I::dot_u8i8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w))
}

#[inline(always)]
pub(crate) unsafe fn hsum_ps(v: __m256) -> f32 {
    let x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    hsum_ps128(x)
}

#[inline(always)]
pub(crate) unsafe fn hsum_ps128(x: __m128) -> f32 {
    let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    let x = _mm_add_ss(x, _mm_movehdup_ps(x));
    _mm_cvtss_f32(x)
}

/// The little-endian f16 at `p` as f32, for one scale per block.
///
/// Not `vcvtph2ps` on a single value: LLVM sees that only lane 0 matters and inserts the value
/// into whatever register is free (often an accumulator), a false dependency that chained every
/// block behind the previous FMA. Instead: move the f16 bits into an f32's exponent/mantissa
/// position and multiply by 2^112, exact for every finite f16 (subnormals included); infinities
/// and NaNs take the reference conversion.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    let h = u16::from_le_bytes([*p, *p.add(1)]);
    if h & 0x7C00 == 0x7C00 {
        return crate::float::f16_to_f32(h);
    }
    let bits = (u32::from(h & 0x8000) << 16) | (u32::from(h & 0x7FFF) << 13);
    f32::from_bits(bits) * f32::from_bits(0x7780_0000) // 2^112
}

/// The 8 f16 scales at `p`, `p + stride`, ... (one per block) with one `vcvtph2ps`.
#[inline(always)]
unsafe fn scales8(p: *const u8, stride: usize) -> __m256 {
    let h = |k: usize| i16::from_le_bytes([*p.add(k * stride), *p.add(k * stride + 1)]);
    _mm256_cvtph_ps(_mm_setr_epi16(h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7)))
}

#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

#[inline(always)]
unsafe fn load_i8(p: *const i8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

#[inline(always)]
unsafe fn read_u32(p: *const u8) -> u32 {
    u32::from_le_bytes([*p, *p.add(1), *p.add(2), *p.add(3)])
}

/// 16 bytes of nibbles as 32 bytes: low nibbles (values 0..16) then high nibbles (16..32).
#[inline(always)]
unsafe fn nibbles_32(p: *const u8) -> __m256i {
    let q = _mm_loadu_si128(p as *const __m128i);
    _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16::<4>(q), q), _mm256_set1_epi8(0x0F))
}

/// The 32 bits of `qh` as 32 bytes, 0x10 where the bit is set (the fifth bit of Q5 values).
#[inline(always)]
unsafe fn fifth_bits(qh: u32) -> __m256i {
    let v = _mm256_set1_epi32(qh as i32);
    let spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    let v = _mm256_shuffle_epi8(v, spread);
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// The kernels below take `N` activation rows (1 for decode, 4 in prefill tiles) and unpack each
/// weight block once for all of them. Each row's arithmetic is the same whatever `N` is, so a
/// product's bits do not depend on how activation rows were grouped.
///
/// `grouped!` walks the blocks of a 32-block row in groups of 8: the 8 weight scales (f16 at the
/// start of each `$bytes`-byte block) are converted with one `vcvtph2ps` and multiplied by each
/// row's 8 activation scales; `$prep` prepares block `$i`'s weights once, `$body` gives their
/// eight i32 partial dots with row `$j`, scaled into one of two accumulators per row
/// (independent FMA chains). Leftover blocks go one at a time.
macro_rules! grouped {
    ($nb:expr, $wp:expr, $bytes:expr, $xs:expr, $i:ident, $w:ident = $prep:block, $j:ident => $body:block) => {{
        let (nb, wp, xs): (usize, *const u8, &[Q8Row<'_>; N]) = ($nb, $wp, $xs);
        let mut acc = [[_mm256_setzero_ps(); 2]; N];
        let mut g = 0;
        while g + 8 <= nb {
            let wd = scales8(wp.add(g * $bytes), $bytes);
            let mut ds = [[0f32; 8]; N];
            for (d, x) in ds.iter_mut().zip(xs) {
                _mm256_storeu_ps(d.as_mut_ptr(), _mm256_mul_ps(wd, _mm256_loadu_ps(x.d.as_ptr().add(g))));
            }
            for k in 0..8 {
                let $i = g + k;
                let $w = $prep;
                for $j in 0..N {
                    let p: __m256i = $body;
                    acc[$j][k & 1] = _mm256_fmadd_ps(_mm256_set1_ps(ds[$j][k]), _mm256_cvtepi32_ps(p), acc[$j][k & 1]);
                }
            }
            g += 8;
        }
        while g < nb {
            let $i = g;
            let $w = $prep;
            let dw = f16_at(wp.add(g * $bytes));
            for $j in 0..N {
                let p: __m256i = $body;
                acc[$j][0] = _mm256_fmadd_ps(_mm256_set1_ps(dw * *xs[$j].d.get_unchecked(g)), _mm256_cvtepi32_ps(p), acc[$j][0]);
            }
            g += 1;
        }
        let mut out = [0f32; N];
        for (o, a) in out.iter_mut().zip(&acc) {
            *o = hsum_ps(_mm256_add_ps(a[0], a[1]));
        }
        out
    }};
}

/// `sum_i m_i * s_i` for Q4_1/Q5_1: the f16 offsets at byte 2 of each block times the
/// activation block sums, 8 blocks per `vcvtph2ps`.
#[inline(always)]
unsafe fn offsets(wp: *const u8, bytes: usize, xs: *const f32, nb: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut g = 0;
    while g + 8 <= nb {
        acc = _mm256_fmadd_ps(scales8(wp.add(g * bytes + 2), bytes), _mm256_loadu_ps(xs.add(g)), acc);
        g += 8;
    }
    let mut sum = hsum_ps(acc);
    while g < nb {
        sum += f16_at(wp.add(g * bytes + 2)) * *xs.add(g);
        g += 1;
    }
    sum
}

#[inline(always)]
pub(crate) unsafe fn q8_0<I: Isa, const N: usize>(w: &[u8], xs: &[Q8Row<'_>; N]) -> [f32; N] {
    let wp = w.as_ptr();
    grouped!(xs[0].d.len(), wp, 34, xs, i, q = { load(wp.add(i * 34 + 2)) }, j => {
        dot_i8i8::<I>(q, load_i8(xs[j].qs.as_ptr().add(i * 32)))
    })
}

#[inline(always)]
pub(crate) unsafe fn q4_0<I: Isa, const N: usize>(w: &[u8], xs: &[Q8Row<'_>; N]) -> [f32; N] {
    let wp = w.as_ptr();
    grouped!(xs[0].d.len(), wp, 18, xs, i, q = { _mm256_sub_epi8(nibbles_32(wp.add(i * 18 + 2)), _mm256_set1_epi8(8)) }, j => {
        dot_i8i8::<I>(q, load_i8(xs[j].qs.as_ptr().add(i * 32)))
    })
}

#[inline(always)]
pub(crate) unsafe fn q5_0<I: Isa, const N: usize>(w: &[u8], xs: &[Q8Row<'_>; N]) -> [f32; N] {
    let wp = w.as_ptr();
    grouped!(xs[0].d.len(), wp, 22, xs, i, q = {
        let b = wp.add(i * 22);
        // (q | fifth) - 16 == q - (16 where the fifth bit is clear).
        _mm256_sub_epi8(nibbles_32(b.add(6)), _mm256_andnot_si256(fifth_bits(read_u32(b.add(2))), _mm256_set1_epi8(0x10)))
    }, j => {
        dot_i8i8::<I>(q, load_i8(xs[j].qs.as_ptr().add(i * 32)))
    })
}

#[inline(always)]
pub(crate) unsafe fn q4_1<I: Isa, const N: usize>(w: &[u8], xs: &[Q8Row<'_>; N]) -> [f32; N] {
    let (wp, nb) = (w.as_ptr(), xs[0].d.len());
    let mut out = grouped!(nb, wp, 20, xs, i, q = { nibbles_32(wp.add(i * 20 + 4)) }, j => {
        I::dot_u8i8(q, load_i8(xs[j].qs.as_ptr().add(i * 32)))
    });
    for (o, x) in out.iter_mut().zip(xs) {
        *o += offsets(wp, 20, x.s.as_ptr(), nb);
    }
    out
}

#[inline(always)]
pub(crate) unsafe fn q5_1<I: Isa, const N: usize>(w: &[u8], xs: &[Q8Row<'_>; N]) -> [f32; N] {
    let (wp, nb) = (w.as_ptr(), xs[0].d.len());
    let mut out = grouped!(nb, wp, 24, xs, i, q = {
        let b = wp.add(i * 24);
        _mm256_or_si256(nibbles_32(b.add(8)), fifth_bits(read_u32(b.add(4))))
    }, j => {
        I::dot_u8i8(q, load_i8(xs[j].qs.as_ptr().add(i * 32)))
    });
    for (o, x) in out.iter_mut().zip(xs) {
        *o += offsets(wp, 24, x.s.as_ptr(), nb);
    }
    out
}

/// `vpshufb` masks broadcasting i16 word `j` of a 128-bit lane to the whole 256-bit vector.
static WORD_SPLAT: [[u8; 32]; 8] = {
    let mut m = [[0u8; 32]; 8];
    let mut j = 0;
    while j < 8 {
        let mut k = 0;
        while k < 32 {
            m[j][k] = (2 * j + k % 2) as u8;
            k += 1;
        }
        j += 1;
    }
    m
};

/// `vpshufb` masks putting i16 word `2k` in the low lane and `2k + 1` in the high lane.
static WORD_PAIR: [[u8; 32]; 4] = {
    let mut m = [[0u8; 32]; 4];
    let mut k = 0;
    while k < 4 {
        let mut b = 0;
        while b < 32 {
            let word = if b < 16 { 2 * k } else { 2 * k + 1 };
            m[k][b] = (2 * word + b % 2) as u8;
            b += 1;
        }
        k += 1;
    }
    m
};

#[inline(always)]
unsafe fn mask(m: &[u8; 32]) -> __m256i {
    _mm256_loadu_si256(m.as_ptr() as *const __m256i)
}

/// Q4_K/Q5_K scales and mins (12 bytes at `p`) as two u64 of eight bytes each.
#[inline(always)]
unsafe fn scales_mins(p: *const u8) -> (u64, u64) {
    let (s0, s1, s2) = (read_u32(p), read_u32(p.add(4)), read_u32(p.add(8)));
    let sc_hi = (s2 & 0x0F0F_0F0F) | ((s0 >> 2) & 0x3030_3030);
    let mn_hi = ((s2 >> 4) & 0x0F0F_0F0F) | ((s1 >> 2) & 0x3030_3030);
    (u64::from(s0 & 0x3F3F_3F3F) | (u64::from(sc_hi) << 32), u64::from(s1 & 0x3F3F_3F3F) | (u64::from(mn_hi) << 32))
}

/// `sum_j mins_j * (bsums[2j] + bsums[2j + 1])` as four i32 lanes (upper four lanes zero).
#[inline(always)]
unsafe fn min_terms(mins: __m128i, bsums: *const i16) -> __m256i {
    let bs = _mm256_loadu_si256(bsums as *const __m256i);
    let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256::<1>(bs));
    _mm256_zextsi128_si256(_mm_madd_epi16(mins, pairs))
}

/// The shared Q4_K/Q5_K body (`five`: Q5_K's fifth bits at bytes 16..48, nibbles at 48..).
#[inline(always)]
unsafe fn q45k<const N: usize>(w: &[u8], xs: &[Q8KRow<'_>; N], bytes: usize, qs_off: usize, five: bool) -> [f32; N] {
    let nb = xs[0].d.len();
    let m4 = _mm256_set1_epi8(0x0F);
    let one = _mm256_set1_epi8(1);
    let mut acc = [_mm256_setzero_ps(); N];
    for i in 0..nb {
        let b = w.as_ptr().add(i * bytes);
        let (d, dmin) = (f16_at(b), f16_at(b.add(2)));
        let (sc, mn) = scales_mins(b.add(4));
        let mn = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mn as i64));
        let sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64)));
        let mut qh = if five { load(b.add(16)) } else { _mm256_setzero_si256() };
        let mut sumi = [_mm256_setzero_si256(); N];
        for c in 0..4 {
            let q = load(b.add(qs_off + 32 * c));
            let mut lo = _mm256_and_si256(q, m4);
            let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
            if five {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16::<4>(_mm256_and_si256(qh, one)));
                qh = _mm256_srli_epi16::<1>(qh);
                hi = _mm256_or_si256(hi, _mm256_slli_epi16::<4>(_mm256_and_si256(qh, one)));
                qh = _mm256_srli_epi16::<1>(qh);
            }
            let (s0, s1) = (_mm256_shuffle_epi8(sc, mask(&WORD_SPLAT[2 * c])), _mm256_shuffle_epi8(sc, mask(&WORD_SPLAT[2 * c + 1])));
            for (j, x) in xs.iter().enumerate() {
                let a = x.qs.as_ptr().add(i * 256 + 64 * c);
                let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load_i8(a)), s0);
                let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load_i8(a.add(32))), s1);
                sumi[j] = _mm256_add_epi32(sumi[j], _mm256_add_epi32(p0, p1));
            }
        }
        for (j, x) in xs.iter().enumerate() {
            let dx = *x.d.get_unchecked(i);
            let pm = min_terms(mn, x.bsums.as_ptr().add(16 * i));
            // The block's value first, then one add: the accumulator chain stays one add long.
            let mins = _mm256_mul_ps(_mm256_set1_ps(dx * dmin), _mm256_cvtepi32_ps(pm));
            acc[j] = _mm256_add_ps(acc[j], _mm256_fmsub_ps(_mm256_set1_ps(dx * d), _mm256_cvtepi32_ps(sumi[j]), mins));
        }
    }
    let mut out = [0f32; N];
    for (o, a) in out.iter_mut().zip(acc) {
        *o = hsum_ps(a);
    }
    out
}

#[inline(always)]
pub(crate) unsafe fn q4k<I: Isa, const N: usize>(w: &[u8], xs: &[Q8KRow<'_>; N]) -> [f32; N] {
    q45k(w, xs, 144, 16, false)
}

#[inline(always)]
pub(crate) unsafe fn q5k<I: Isa, const N: usize>(w: &[u8], xs: &[Q8KRow<'_>; N]) -> [f32; N] {
    q45k(w, xs, 176, 48, true)
}

#[inline(always)]
pub(crate) unsafe fn q6k<I: Isa, const N: usize>(w: &[u8], xs: &[Q8KRow<'_>; N]) -> [f32; N] {
    let nb = xs[0].d.len();
    let m4 = _mm256_set1_epi8(0x0F);
    let m3 = _mm256_set1_epi8(0x03);
    let mut acc = [_mm256_setzero_ps(); N];
    for i in 0..nb {
        let b = w.as_ptr().add(i * 210);
        let d = f16_at(b.add(208));
        let sc_lo = _mm_cvtepi8_epi16(_mm_loadl_epi64(b.add(192) as *const __m128i));
        let sc_hi = _mm_cvtepi8_epi16(_mm_loadl_epi64(b.add(200) as *const __m128i));
        // The -32 offset: 32 * sum_j sc_j * bsum_j, subtracted once per block.
        let sc_all = _mm256_set_m128i(sc_hi, sc_lo);
        let mut sumi = [_mm256_setzero_si256(); N];
        for (j, x) in xs.iter().enumerate() {
            let bs = _mm256_loadu_si256(x.bsums.as_ptr().add(16 * i) as *const __m256i);
            sumi[j] = _mm256_sub_epi32(sumi[j], _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc_all, bs)));
        }
        for h in 0..2 {
            let sc = _mm256_broadcastsi128_si256(if h == 0 { sc_lo } else { sc_hi });
            let ql0 = load(b.add(64 * h));
            let ql1 = load(b.add(64 * h + 32));
            let qh = load(b.add(128 + 32 * h));
            for (k, pair) in WORD_PAIR.iter().enumerate() {
                let low = match k {
                    0 => _mm256_and_si256(ql0, m4),
                    1 => _mm256_and_si256(ql1, m4),
                    2 => _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4),
                    _ => _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
                };
                let high = match k {
                    0 => qh,
                    1 => _mm256_srli_epi16::<2>(qh),
                    2 => _mm256_srli_epi16::<4>(qh),
                    _ => _mm256_srli_epi16::<6>(qh),
                };
                let q = _mm256_or_si256(low, _mm256_slli_epi16::<4>(_mm256_and_si256(high, m3)));
                let s = _mm256_shuffle_epi8(sc, mask(pair));
                for (j, x) in xs.iter().enumerate() {
                    let p = _mm256_maddubs_epi16(q, load_i8(x.qs.as_ptr().add(i * 256 + 128 * h + 32 * k)));
                    sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(p, s));
                }
            }
        }
        for (j, x) in xs.iter().enumerate() {
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(*x.d.get_unchecked(i) * d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
    let mut out = [0f32; N];
    for (o, a) in out.iter_mut().zip(acc) {
        *o = hsum_ps(a);
    }
    out
}

/// `vpshufb` mask widening eight scale bytes (broadcast to both 128-bit lanes) to i16 pairs:
/// 32-bit lane `r` gets `(sc[r], sc[r])`, the pair `vpmaddwd` multiplies a row's two i16 sums by.
static SCALE_PAIRS: [u8; 32] = {
    let mut m = [0x80u8; 32];
    let mut r = 0;
    while r < 8 {
        let at = 4 * r;
        m[at] = r as u8;
        m[at + 2] = r as u8;
        r += 1;
    }
    m
};

/// Eight interleaved Q4_K rows (the [`crate::packed`] layout) against `N` Q8_K activation rows:
/// `out[j][r]` is row `r`'s dot product with activation `j`.
///
/// Per sub-block of 32 values, each 32-byte load holds 4 nibble bytes (8 values) of every row;
/// the activation's matching 4 bytes are broadcast to all eight lanes, `vpmaddubsw` gives i16
/// pairs per row, and the eight loads of a sub-block are summed in i16 (at most
/// 8 * 2 * 15 * 127 = 30480, no overflow) before one `vpmaddwd` by the row's scale. The block's
/// per-row integer sums are then those of the scalar reference, scaled with the same f32
/// operations, so the result equals it bit for bit.
#[inline(always)]
pub(crate) unsafe fn q4k_r8<const N: usize>(w: &[u8], xs: &[Q8KRow<'_>; N]) -> [[f32; 8]; N] {
    use crate::packed::Q4K_R8_BYTES;
    let nb = xs[0].d.len();
    let m4 = _mm256_set1_epi8(0x0F);
    let pairs = mask(&SCALE_PAIRS);
    let mut acc = [_mm256_setzero_ps(); N];
    for i in 0..nb {
        let b = w.as_ptr().add(i * Q4K_R8_BYTES);
        let mut sumi = [_mm256_setzero_si256(); N];
        for s in 0..8 {
            let sc = _mm256_shuffle_epi8(_mm256_set1_epi64x(std::ptr::read_unaligned(b.add(32 + 8 * s) as *const i64)), pairs);
            let mut sum16 = [_mm256_setzero_si256(); N];
            for g in 0..8 {
                let q = load(b.add(160 + 32 * (8 * (s / 2) + g)));
                let v = if s % 2 == 0 { _mm256_and_si256(q, m4) } else { _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4) };
                for (j, x) in xs.iter().enumerate() {
                    let a = _mm256_set1_epi32(std::ptr::read_unaligned(x.qs.as_ptr().add(i * 256 + 32 * s + 4 * g) as *const i32));
                    sum16[j] = _mm256_add_epi16(sum16[j], _mm256_maddubs_epi16(v, a));
                }
            }
            for j in 0..N {
                sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(sum16[j], sc));
            }
        }
        let d = _mm256_cvtph_ps(_mm_loadu_si128(b as *const __m128i));
        let dmin = _mm256_cvtph_ps(_mm_loadu_si128(b.add(16) as *const __m128i));
        for (j, x) in xs.iter().enumerate() {
            // The activation's eight sub-block sums (pairs of its sums of 16), as i32 pairs
            // (sub-blocks 2p, 2p + 1) broadcast for `vpmaddwd` against the mins pairs.
            let bs = _mm256_loadu_si256(x.bsums.as_ptr().add(16 * i) as *const __m256i);
            let sums = _mm256_broadcastsi128_si256(_mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256::<1>(bs)));
            let mins = |p: usize| _mm256_cvtepu8_epi16(_mm_loadu_si128(b.add(96 + 16 * p) as *const __m128i));
            let summ = _mm256_add_epi32(
                _mm256_add_epi32(
                    _mm256_madd_epi16(mins(0), _mm256_shuffle_epi32::<0x00>(sums)),
                    _mm256_madd_epi16(mins(1), _mm256_shuffle_epi32::<0x55>(sums)),
                ),
                _mm256_add_epi32(
                    _mm256_madd_epi16(mins(2), _mm256_shuffle_epi32::<0xAA>(sums)),
                    _mm256_madd_epi16(mins(3), _mm256_shuffle_epi32::<0xFF>(sums)),
                ),
            );
            let t = _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(sumi[j])), _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(summ)));
            acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(_mm256_set1_ps(*x.d.get_unchecked(i)), t));
        }
    }
    let mut out = [[0f32; 8]; N];
    for (o, a) in out.iter_mut().zip(acc) {
        _mm256_storeu_ps(o.as_mut_ptr(), a);
    }
    out
}

/// `vpshufb` masks taking, from i16 pairs `(a, b)` per 32-bit lane, `(a, a)` (index 0) or
/// `(b, b)` (index 1): a row's scale for the first or second sub-block of a stored pair.
static PAIR_DUP: [[u8; 32]; 2] = {
    let mut m = [[0u8; 32]; 2];
    let mut t = 0;
    while t < 2 {
        let mut k = 0;
        while k < 32 {
            let lane = (k % 16) / 4 * 4;
            m[t][k] = (lane + 2 * t + k % 2) as u8;
            k += 1;
        }
        t += 1;
    }
    m
};

/// Bits `from..from + 2` (`from` even, 0..8) of every byte moved to bits 4..6 (`mask` keeps the
/// destination bits).
#[inline(always)]
unsafe fn bits_to_4(v: __m256i, from: usize, mask: __m256i) -> __m256i {
    let moved = match from {
        0 => _mm256_slli_epi16::<4>(v),
        1 => _mm256_slli_epi16::<3>(v),
        2 => _mm256_slli_epi16::<2>(v),
        3 => _mm256_slli_epi16::<1>(v),
        4 => v,
        5 => _mm256_srli_epi16::<1>(v),
        6 => _mm256_srli_epi16::<2>(v),
        _ => _mm256_srli_epi16::<3>(v),
    };
    _mm256_and_si256(moved, mask)
}

/// Eight interleaved Q6_K rows (the [`crate::packed`] layout) against `N` Q8_K activation rows.
///
/// Each 32-byte load of `ql` and `qh` holds 4 bytes of every row; their 6-bit values (at most
/// 63) times 4 broadcast activation bytes give i16 pairs per row, two loads are summed in i16
/// (at most 2 * 2 * 63 * 127 = 32004) and multiplied by the sub-block's scale with
/// `vpmaddwd`. The -32 offset is `32 * sum_j sc_j * bsum_j`, subtracted once per block. Same
/// integers and f32 operations as the scalar reference.
#[inline(always)]
pub(crate) unsafe fn q6k_r8<const N: usize>(w: &[u8], xs: &[Q8KRow<'_>; N]) -> [[f32; 8]; N] {
    use crate::packed::Q6K_R8_BYTES;
    let nb = xs[0].d.len();
    let m4 = _mm256_set1_epi8(0x0F);
    let m30 = _mm256_set1_epi8(0x30);
    let dup = [mask(&PAIR_DUP[0]), mask(&PAIR_DUP[1])];
    let mut acc = [_mm256_setzero_ps(); N];
    for i in 0..nb {
        let b = w.as_ptr().add(i * Q6K_R8_BYTES);
        // Row r's scales of sub-blocks 2p, 2p + 1 as i16 pairs in lane r.
        let scales = |p: usize| _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(16 + 16 * p) as *const __m128i));
        let mut sumi = [_mm256_setzero_si256(); N];
        for (j, x) in xs.iter().enumerate() {
            let bs = x.bsums.as_ptr().add(16 * i) as *const i32;
            let mut off = _mm256_setzero_si256();
            for p in 0..8 {
                off = _mm256_add_epi32(off, _mm256_madd_epi16(scales(p), _mm256_set1_epi32(std::ptr::read_unaligned(bs.add(p)))));
            }
            sumi[j] = _mm256_sub_epi32(sumi[j], _mm256_slli_epi32::<5>(off));
        }
        for h in 0..2 {
            for k in 0..4 {
                let sc2 = scales(4 * h + k);
                for (t, dup_t) in dup.iter().enumerate() {
                    let sc = _mm256_shuffle_epi8(sc2, *dup_t);
                    for pair in 0..2 {
                        let mut sum16 = [_mm256_setzero_si256(); N];
                        for u in 0..2 {
                            let g = 4 * t + 2 * pair + u;
                            let ql = load(b.add(144 + 32 * (16 * h + 8 * (k % 2) + g)));
                            let low = if k < 2 { _mm256_and_si256(ql, m4) } else { _mm256_and_si256(_mm256_srli_epi16::<4>(ql), m4) };
                            let qh = load(b.add(1168 + 32 * (8 * h + g)));
                            let v = _mm256_or_si256(low, bits_to_4(qh, 2 * k, m30));
                            for (j, x) in xs.iter().enumerate() {
                                let at = i * 256 + 128 * h + 32 * k + 4 * g;
                                let a = _mm256_set1_epi32(std::ptr::read_unaligned(x.qs.as_ptr().add(at) as *const i32));
                                sum16[j] = _mm256_add_epi16(sum16[j], _mm256_maddubs_epi16(v, a));
                            }
                        }
                        for j in 0..N {
                            sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(sum16[j], sc));
                        }
                    }
                }
            }
        }
        let d = _mm256_cvtph_ps(_mm_loadu_si128(b as *const __m128i));
        for (j, x) in xs.iter().enumerate() {
            let t = _mm256_mul_ps(d, _mm256_cvtepi32_ps(sumi[j]));
            acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(_mm256_set1_ps(*x.d.get_unchecked(i)), t));
        }
    }
    let mut out = [[0f32; 8]; N];
    for (o, a) in out.iter_mut().zip(acc) {
        _mm256_storeu_ps(o.as_mut_ptr(), a);
    }
    out
}

/// Eight interleaved Q5_0 (`FIVE`) or Q4_0 rows (the [`crate::packed`] layouts) against `N` Q8
/// activation rows.
///
/// The 5-bit (4-bit) values, unsigned, times broadcast activation bytes; low and high nibbles
/// of two chunks summed in i16 (at most 4 * 2 * 31 * 127 = 31496), widened with `vpmaddwd`; the
/// -16 (-8) offset is `16 * sum(a)` (`8 * sum(a)`) per block from the activation's integer block
/// sums. Same integers and f32 operations as the scalar reference.
#[inline(always)]
pub(crate) unsafe fn q4_5_0_r8<const FIVE: bool, const N: usize>(w: &[u8], xs: &[Q8Row<'_>; N]) -> [[f32; 8]; N] {
    let (bytes, qs) = if FIVE { (crate::packed::Q5_0_R8_BYTES, 48) } else { (crate::packed::Q4_0_R8_BYTES, 16) };
    let nb = xs[0].d.len();
    let m4 = _mm256_set1_epi8(0x0F);
    let m10 = _mm256_set1_epi8(0x10);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); N];
    for i in 0..nb {
        let b = w.as_ptr().add(i * bytes);
        let plane = if FIVE { load(b.add(16)) } else { _mm256_setzero_si256() };
        let mut isum = [_mm256_setzero_si256(); N];
        for pair in 0..2 {
            let mut sum16 = [_mm256_setzero_si256(); N];
            for u in 0..2 {
                let g = 2 * pair + u;
                let q = load(b.add(qs + 32 * g));
                let mut lo = _mm256_and_si256(q, m4);
                let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
                if FIVE {
                    lo = _mm256_or_si256(lo, bits_to_4(plane, 2 * g, m10));
                    hi = _mm256_or_si256(hi, bits_to_4(plane, 2 * g + 1, m10));
                }
                for (j, x) in xs.iter().enumerate() {
                    let a = x.qs.as_ptr().add(i * 32 + 4 * g);
                    let a_lo = _mm256_set1_epi32(std::ptr::read_unaligned(a as *const i32));
                    let a_hi = _mm256_set1_epi32(std::ptr::read_unaligned(a.add(16) as *const i32));
                    sum16[j] = _mm256_add_epi16(sum16[j], _mm256_add_epi16(_mm256_maddubs_epi16(lo, a_lo), _mm256_maddubs_epi16(hi, a_hi)));
                }
            }
            for j in 0..N {
                isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(sum16[j], ones));
            }
        }
        let d = _mm256_cvtph_ps(_mm_loadu_si128(b as *const __m128i));
        let zero_point = if FIVE { 16 } else { 8 };
        for (j, x) in xs.iter().enumerate() {
            let offset = _mm256_set1_epi32(zero_point * i32::from(*x.sums.get_unchecked(i)));
            let dd = _mm256_mul_ps(d, _mm256_set1_ps(*x.d.get_unchecked(i)));
            acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(dd, _mm256_cvtepi32_ps(_mm256_sub_epi32(isum[j], offset))));
        }
    }
    let mut out = [[0f32; 8]; N];
    for (o, a) in out.iter_mut().zip(acc) {
        _mm256_storeu_ps(o.as_mut_ptr(), a);
    }
    out
}

/// Eight interleaved Q8_0 rows (the [`crate::packed`] layout) against `N` Q8 activation rows:
/// `|w|` times the activation with `w`'s sign (`vpmaddubsw` pairs of at most 2 * 128 * 127 =
/// 32512, widened at once with `vpmaddwd`). Same integers and f32 operations as the scalar
/// reference.
#[inline(always)]
pub(crate) unsafe fn q8_0_r8<const N: usize>(w: &[u8], xs: &[Q8Row<'_>; N]) -> [[f32; 8]; N] {
    let nb = xs[0].d.len();
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); N];
    for i in 0..nb {
        let b = w.as_ptr().add(i * crate::packed::Q8_0_R8_BYTES);
        let mut isum = [_mm256_setzero_si256(); N];
        for g in 0..8 {
            let q = load(b.add(16 + 32 * g));
            let magnitude = _mm256_sign_epi8(q, q);
            for (j, x) in xs.iter().enumerate() {
                let a = _mm256_set1_epi32(std::ptr::read_unaligned(x.qs.as_ptr().add(i * 32 + 4 * g) as *const i32));
                let p = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(a, q));
                isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(p, ones));
            }
        }
        let d = _mm256_cvtph_ps(_mm_loadu_si128(b as *const __m128i));
        for (j, x) in xs.iter().enumerate() {
            let dd = _mm256_mul_ps(d, _mm256_set1_ps(*x.d.get_unchecked(i)));
            acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(dd, _mm256_cvtepi32_ps(isum[j])));
        }
    }
    let mut out = [[0f32; 8]; N];
    for (o, a) in out.iter_mut().zip(acc) {
        _mm256_storeu_ps(o.as_mut_ptr(), a);
    }
    out
}
