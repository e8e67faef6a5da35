//! Quantizers for Q4_K, Q5_K and Q6_K (gguf-py has none; this one is kiln's own design, derived
//! from the formats, not from llama.cpp's code).
//!
//! Method, per super-block of 256 values with per-value importance weights `w` (1 for plain
//! squared error):
//! 1. Sub-block fit. For each sub-block (32 values for Q4_K/Q5_K, 16 for Q6_K) find a real scale
//!    (and for Q4_K/Q5_K a non-negative min) minimising `sum w (s q - m - x)^2` over integer `q`
//!    in range: try 21 grid scales around the range-filling one, for each assign `q` by
//!    rounding and solve the 2x2 (1x1 for Q6_K) weighted least-squares problem for `s` and `m`
//!    given `q`; keep the best, then alternate re-assigning `q` and re-solving while the error
//!    drops. Q6_K tries both signs of the scale, so the largest-magnitude value can use the -32
//!    end of the asymmetric -32..=31 range.
//! 2. Super-block scales. `d = max(s) / 63` (Q6_K: `max|s| / 127`), `dmin = max(m) / 63`, rounded
//!    to f16; each sub-block's 6-bit (Q6_K: int8) scale and min start at the nearest integer and
//!    are then chosen among their +-1 neighbours by the exact error of the dequantized values
//!    (the same f32 arithmetic as dequantization), with `q` re-assigned for each candidate.
//! 3. Refit. Given the integer scales and quants, solve least squares for `d` and `dmin`,
//!    round to f16 and redo step 2's choice; the better of the two rounds is written.
//!
//! On Gaussian rows this gives relative RMS errors of 0.070 (Q4_K), 0.035 (Q5_K) and 0.017
//! (Q6_K) (llama.cpp's reference quantizer: about 0.07-0.09 and 0.02); tests/quality.rs pins
//! upper bounds.

use crate::float::{f16_to_f32, f32_to_f16, put_f16};
use crate::k_quants::{pack_q4k_nibbles, pack_q5k_values, pack_q6k_values, pack_scales_mins, QK_K};

/// Rounds to the nearest f16 value (finite: clamped to the f16 range), as f32.
fn f16_round(v: f32) -> f32 {
    f16_to_f32(f32_to_f16(v.min(65504.0)))
}

/// Weighted least squares for `x ~ s q + b` given `q`; `b` is forced to 0 when it would be
/// positive (the formats' offsets are `-dmin * m` with `m >= 0`). Returns `(s, b)`.
fn solve_affine(x: &[f32], w: &[f32], q: &[u8]) -> Option<(f32, f32)> {
    let (mut sw, mut swx, mut sq, mut sqq, mut sqx) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for ((&xv, &wv), &qv) in x.iter().zip(w).zip(q) {
        let (xv, wv, qv) = (f64::from(xv), f64::from(wv), f64::from(qv));
        sw += wv;
        swx += wv * xv;
        sq += wv * qv;
        sqq += wv * qv * qv;
        sqx += wv * qv * xv;
    }
    let det = sw * sqq - sq * sq;
    let (mut s, mut b) = if det > 0.0 { ((sw * sqx - sq * swx) / det, (sqq * swx - sq * sqx) / det) } else { (0.0, 0.0) };
    if b > 0.0 || det <= 0.0 {
        b = 0.0;
        s = if sqq > 0.0 { sqx / sqq } else { 0.0 };
    }
    (s > 0.0).then_some((s as f32, b as f32))
}

fn assign_affine(x: &[f32], s: f32, b: f32, nmax: u8, q: &mut [u8]) {
    let is = 1.0 / s;
    for (qv, &xv) in q.iter_mut().zip(x) {
        *qv = ((xv - b) * is).round().clamp(0.0, f32::from(nmax)) as u8;
    }
}

fn err_affine(x: &[f32], w: &[f32], q: &[u8], s: f32, b: f32) -> f32 {
    x.iter().zip(w).zip(q).map(|((&xv, &wv), &qv)| wv * (s * f32::from(qv) + b - xv).powi(2)).sum()
}

/// Step 1 for Q4_K/Q5_K: the best real `(s, m)` for one sub-block, `x ~ s q - m`, `q` in
/// `0..=nmax`, `s >= 0`, `m >= 0`.
fn fit_affine(x: &[f32], w: &[f32], nmax: u8) -> (f32, f32) {
    let lo = x.iter().fold(0f32, |a, &v| a.min(v));
    let hi = x.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    // Also catches NaN input: no fit, only the offset.
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return (0.0, -lo);
    }
    let mut q = [0u8; 32];
    let q = &mut q[..x.len()];
    let mut best = (f32::INFINITY, 0f32, lo);
    for step in -10..=10 {
        let s0 = (hi - lo) / (f32::from(nmax) + 0.1 * step as f32);
        assign_affine(x, s0, lo, nmax, q);
        if let Some((s, b)) = solve_affine(x, w, q) {
            let e = err_affine(x, w, q, s, b);
            if e < best.0 {
                best = (e, s, b);
            }
        }
    }
    if !best.0.is_finite() {
        return ((hi - lo) / f32::from(nmax), -lo);
    }
    for _ in 0..4 {
        assign_affine(x, best.1, best.2, nmax, q);
        match solve_affine(x, w, q) {
            Some((s, b)) => {
                let e = err_affine(x, w, q, s, b);
                if e < best.0 * 0.9999 {
                    best = (e, s, b);
                } else {
                    break;
                }
            }
            None => break,
        }
    }
    (best.1, -best.2)
}

/// A Q4_K/Q5_K super-block's f16-exact units and value range.
#[derive(Clone, Copy)]
struct Units {
    d: f32,
    dmin: f32,
    nmax: u8,
}

/// A Q4_K/Q5_K super-block's integer choices and their total weighted squared error.
struct Affine {
    units: Units,
    sc: [u8; 8],
    mc: [u8; 8],
    q: [u8; QK_K],
    err: f32,
}

/// The exact (dequantization-arithmetic) error of one Q4_K/Q5_K sub-block with integer scale
/// `sc` and min `mc`; fills `q` with the best quants for them.
fn subblock_affine(x: &[f32], w: &[f32], u: Units, sc: u8, mc: u8, q: &mut [u8]) -> f32 {
    let (s, m) = (u.d * f32::from(sc), u.dmin * f32::from(mc));
    let is = if s > 0.0 { 1.0 / s } else { 0.0 };
    let mut err = 0f32;
    for ((qv, &xv), &wv) in q.iter_mut().zip(x).zip(w) {
        *qv = ((xv + m) * is).round().clamp(0.0, f32::from(u.nmax)) as u8;
        err += wv * (s * f32::from(*qv) - m - xv).powi(2);
    }
    err
}

/// Integer scales/mins and quants for one Q4_K/Q5_K super-block given its units and the real
/// sub-block fits `(s, m)`.
fn choose_affine(x: &[f32], w: &[f32], units: Units, fits: &[(f32, f32); 8]) -> Affine {
    let mut a = Affine { units, sc: [0; 8], mc: [0; 8], q: [0; QK_K], err: 0.0 };
    let mut tmp = [0u8; 32];
    for j in 0..8 {
        let (xs, ws) = (&x[32 * j..32 * j + 32], &w[32 * j..32 * j + 32]);
        let near = |v: f32, unit: f32| if unit > 0.0 { (v / unit).round().clamp(0.0, 63.0) as i32 } else { 0 };
        let (s0, m0) = (near(fits[j].0, units.d), near(fits[j].1, units.dmin));
        let mut best = (f32::INFINITY, 0u8, 0u8);
        for s in (s0 - 1).max(0)..=(s0 + 1).min(63) {
            for m in (m0 - 1).max(0)..=(m0 + 1).min(63) {
                let e = subblock_affine(xs, ws, units, s as u8, m as u8, &mut tmp);
                if e < best.0 {
                    best = (e, s as u8, m as u8);
                }
            }
        }
        a.sc[j] = best.1;
        a.mc[j] = best.2;
        a.err += subblock_affine(xs, ws, units, best.1, best.2, &mut a.q[32 * j..32 * j + 32]);
    }
    a
}

/// Least squares for the super-block `d`, `dmin` given integer scales, mins and quants.
fn refit_affine(x: &[f32], w: &[f32], a: &Affine) -> Option<(f32, f32)> {
    // x ~ d * A - dmin * B with A = sc * q, B = mc.
    let (mut saa, mut sab, mut sbb, mut sax, mut sbx) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for e in 0..QK_K {
        let (av, bv) = (f64::from(a.sc[e / 32]) * f64::from(a.q[e]), f64::from(a.mc[e / 32]));
        let (xv, wv) = (f64::from(x[e]), f64::from(w[e]));
        saa += wv * av * av;
        sab += wv * av * bv;
        sbb += wv * bv * bv;
        sax += wv * av * xv;
        sbx += wv * bv * xv;
    }
    let det = saa * sbb - sab * sab;
    if det <= 0.0 {
        return None;
    }
    // Unknowns d and c = -dmin: [saa sab; sab sbb] [d; c] = [sax; sbx].
    let d = (sbb * sax - sab * sbx) / det;
    let c = (saa * sbx - sab * sax) / det;
    (d > 0.0 && c <= 0.0).then_some((d as f32, (-c) as f32))
}

/// Quantizes one Q4_K (`nmax = 15`) or Q5_K (`nmax = 31`) super-block.
fn quantize_q45k(x: &[f32], w: &[f32], nmax: u8) -> Affine {
    let mut fits = [(0f32, 0f32); 8];
    for (j, f) in fits.iter_mut().enumerate() {
        *f = fit_affine(&x[32 * j..32 * j + 32], &w[32 * j..32 * j + 32], nmax);
    }
    let max_s = fits.iter().fold(0f32, |a, f| a.max(f.0));
    let max_m = fits.iter().fold(0f32, |a, f| a.max(f.1));
    let first = choose_affine(x, w, Units { d: f16_round(max_s / 63.0), dmin: f16_round(max_m / 63.0), nmax }, &fits);
    let Some((d2, dmin2)) = refit_affine(x, w, &first) else {
        return first;
    };
    // Re-derive the real sub-block values so the +-1 search is centred under the new units.
    let u = first.units;
    let fits2: [(f32, f32); 8] = std::array::from_fn(|j| (f32::from(first.sc[j]) * u.d, f32::from(first.mc[j]) * u.dmin));
    let second = choose_affine(x, w, Units { d: f16_round(d2), dmin: f16_round(dmin2), nmax }, &fits2);
    if second.err < first.err {
        second
    } else {
        first
    }
}

fn write_q45k_header(a: &Affine, out: &mut [u8]) {
    put_f16(out, 0, a.units.d);
    put_f16(out, 2, a.units.dmin);
    pack_scales_mins(&a.sc, &a.mc, &mut out[4..16]);
}

/// Quantizes 256 values to one Q4_K block (144 bytes) minimising `sum w (x - dequant)^2`.
pub fn quantize_q4k_block(x: &[f32], w: &[f32], out: &mut [u8]) {
    let a = quantize_q45k(x, w, 15);
    write_q45k_header(&a, out);
    pack_q4k_nibbles(&a.q, &mut out[16..144]);
}

/// Quantizes 256 values to one Q5_K block (176 bytes) minimising `sum w (x - dequant)^2`.
pub fn quantize_q5k_block(x: &[f32], w: &[f32], out: &mut [u8]) {
    let a = quantize_q45k(x, w, 31);
    write_q45k_header(&a, out);
    pack_q5k_values(&a.q, out);
}

/// Step 1 for Q6_K: the best real (signed) scale for one sub-block of 16, `x ~ s q`, `q` in
/// -32..=31.
fn fit_symmetric(x: &[f32], w: &[f32]) -> f32 {
    let max = crate::q4_0::signed_absmax(x);
    if max == 0.0 {
        return 0.0;
    }
    let solve = |q: &[i8]| {
        let (mut sqx, mut sqq) = (0f64, 0f64);
        for ((&qv, &xv), &wv) in q.iter().zip(x).zip(w) {
            sqx += f64::from(wv) * f64::from(qv) * f64::from(xv);
            sqq += f64::from(wv) * f64::from(qv) * f64::from(qv);
        }
        if sqq > 0.0 {
            (sqx / sqq) as f32
        } else {
            0.0
        }
    };
    let assign = |s: f32, q: &mut [i8]| {
        let is = 1.0 / s;
        for (qv, &xv) in q.iter_mut().zip(x) {
            *qv = (xv * is).round().clamp(-32.0, 31.0) as i8;
        }
    };
    let err = |q: &[i8], s: f32| -> f32 { q.iter().zip(x).zip(w).map(|((&qv, &xv), &wv)| wv * (s * f32::from(qv) - xv).powi(2)).sum() };
    let mut q = [0i8; 16];
    let mut best = (f32::INFINITY, 0f32);
    for step in -8..=8 {
        for target in [-32.0f32, 31.0] {
            // `max` lands on (about) `target`: the negative end gives one more level.
            let s0 = max / (target + 0.25 * step as f32 * target.signum());
            assign(s0, &mut q);
            let s = solve(&q);
            if s != 0.0 {
                let e = err(&q, s);
                if e < best.0 {
                    best = (e, s);
                }
            }
        }
    }
    for _ in 0..4 {
        assign(best.1, &mut q);
        let s = solve(&q);
        let e = if s != 0.0 { err(&q, s) } else { f32::INFINITY };
        if e < best.0 * 0.9999 {
            best = (e, s);
        } else {
            break;
        }
    }
    best.1
}

fn subblock_symmetric(x: &[f32], w: &[f32], d: f32, sc: i8, q: &mut [u8]) -> f32 {
    let s = d * f32::from(sc);
    let is = if s != 0.0 { 1.0 / s } else { 0.0 };
    let mut err = 0f32;
    for ((qv, &xv), &wv) in q.iter_mut().zip(x).zip(w) {
        let v = (xv * is).round().clamp(-32.0, 31.0) as i32;
        *qv = (v + 32) as u8;
        err += wv * (s * v as f32 - xv).powi(2);
    }
    err
}

fn choose_symmetric(x: &[f32], w: &[f32], d: f32, fits: &[f32; 16], sc: &mut [i8; 16], q: &mut [u8; QK_K]) -> f32 {
    let mut total = 0f32;
    let mut tmp = [0u8; 16];
    for j in 0..16 {
        let (xs, ws) = (&x[16 * j..16 * j + 16], &w[16 * j..16 * j + 16]);
        let s0 = if d > 0.0 { (fits[j] / d).round().clamp(-128.0, 127.0) as i32 } else { 0 };
        let mut best = (f32::INFINITY, 0i8);
        for s in (s0 - 1).max(-128)..=(s0 + 1).min(127) {
            let e = subblock_symmetric(xs, ws, d, s as i8, &mut tmp);
            if e < best.0 {
                best = (e, s as i8);
            }
        }
        sc[j] = best.1;
        total += subblock_symmetric(xs, ws, d, best.1, &mut q[16 * j..16 * j + 16]);
    }
    total
}

/// Quantizes 256 values to one Q6_K block (210 bytes) minimising `sum w (x - dequant)^2`.
pub fn quantize_q6k_block(x: &[f32], w: &[f32], out: &mut [u8]) {
    let fits: [f32; 16] = std::array::from_fn(|j| fit_symmetric(&x[16 * j..16 * j + 16], &w[16 * j..16 * j + 16]));
    let max = fits.iter().fold(0f32, |a, s| a.max(s.abs()));
    let mut d = f16_round(max / 127.0);
    let (mut sc, mut q) = ([0i8; 16], [0u8; QK_K]);
    let err = choose_symmetric(x, w, d, &fits, &mut sc, &mut q);
    // Refit d given the integer scales and quants.
    let (mut sax, mut saa) = (0f64, 0f64);
    for e in 0..QK_K {
        let a = f64::from(sc[e / 16]) * (f64::from(q[e]) - 32.0);
        sax += f64::from(w[e]) * a * f64::from(x[e]);
        saa += f64::from(w[e]) * a * a;
    }
    if saa > 0.0 && sax > 0.0 {
        let d2 = f16_round((sax / saa) as f32);
        let fits2: [f32; 16] = std::array::from_fn(|j| f32::from(sc[j]) * d);
        let (mut sc2, mut q2) = ([0i8; 16], [0u8; QK_K]);
        if choose_symmetric(x, w, d2, &fits2, &mut sc2, &mut q2) < err {
            (d, sc, q) = (d2, sc2, q2);
        }
    }
    pack_q6k_values(&q, out);
    for (o, s) in out[192..208].iter_mut().zip(sc) {
        *o = s as u8;
    }
    put_f16(out, 208, d);
}
