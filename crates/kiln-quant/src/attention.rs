//! Attention over a KV cache stored as F32 or F16 values: the decode-time kernel (one query row
//! against every cached position of one KV head), with the same run-time dispatch as the matrix
//! products.
//!
//! Why here: at a context depth of a few thousand tokens a decode step spends more time reading
//! keys and values than weights (the 1.3B model's f32 cache at 2,048 positions is 0.8 GB per
//! token, its Q4_K_M weights 0.87 GB), so the cache is kept in F16 by default, as llama.cpp keeps
//! it (`-ctk f16 -ctv f16`), and read by SIMD kernels with F16C conversions.
//!
//! Numerics of [`KvType::F16`] follow llama.cpp's non-flash path: the query is rounded to f16
//! before its dot products with the keys (GGML converts the right-hand side of an F16 product to
//! F16), scores are scaled then soft-maxed (exponentials in f32, their sum in f64, multiplied by
//! its inverse), and the probabilities are rounded to f16 before they weight the values. [`KvType::F32`] keeps every operand in f32.
//!
//! The scalar reference ([`attend_with_tier`] with [`Tier::Scalar`]) defines the result; the SIMD
//! tiers differ only by summation order and a polynomial `exp` (relative error below 2e-7).

use crate::simd::{self, Tier};
use crate::{float, QuantError};

/// The element type of a KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvType {
    /// f32 keys and values (exact; twice the memory and bandwidth).
    F32,
    /// f16 keys and values (llama.cpp's default).
    F16,
}

impl KvType {
    /// The name llama.cpp's `--cache-type-k` takes (`f32`, `f16`).
    pub fn name(self) -> &'static str {
        match self {
            KvType::F32 => "f32",
            KvType::F16 => "f16",
        }
    }

    /// Parses a name (case-insensitive).
    pub fn parse(s: &str) -> Option<KvType> {
        [KvType::F32, KvType::F16].into_iter().find(|t| t.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Bytes per stored value.
    pub fn value_bytes(self) -> usize {
        match self {
            KvType::F32 => 4,
            KvType::F16 => 2,
        }
    }

    /// Writes `src` into `dst` (`src.len() * value_bytes()` bytes), f16 rounding to nearest even.
    pub fn store(self, src: &[f32], dst: &mut [u8]) {
        assert_eq!(dst.len(), src.len() * self.value_bytes(), "KV store: {} values into {} bytes", src.len(), dst.len());
        match self {
            KvType::F32 => float::quantize_f32(src, dst),
            KvType::F16 => float::quantize_f16(src, dst),
        }
    }
}

impl std::str::FromStr for KvType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        KvType::parse(s).ok_or_else(|| format!("unknown KV cache type `{s}`: use f16 (the default for GGUF models) or f32"))
    }
}

impl std::fmt::Display for KvType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One attention problem: `q` holds `q.len() / d` query heads that share one KV head, whose first
/// `len` positions are `keys` and `values` (`len x d` values each, row-major).
#[derive(Debug, Clone, Copy)]
pub struct Attend<'a> {
    /// Storage type of `keys` and `values`.
    pub ty: KvType,
    /// Query heads, `group x d` f32 values (RoPE applied).
    pub q: &'a [f32],
    /// Head width.
    pub d: usize,
    /// Cached keys (at least `len x d` values of `ty`).
    pub keys: &'a [u8],
    /// Cached values (at least `len x d` values of `ty`).
    pub values: &'a [u8],
    /// Positions attended to (the causal prefix, the query's own position included).
    pub len: usize,
    /// Score scale (`1 / sqrt(d)`).
    pub scale: f32,
}

impl Attend<'_> {
    fn check(&self, out: &[f32]) -> Result<(), QuantError> {
        let (d, row) = (self.d, self.d * self.ty.value_bytes());
        if d == 0 || !self.q.len().is_multiple_of(d) || self.q.is_empty() {
            return Err(QuantError::ValueLength {
                what: "attention queries (a whole number of heads)",
                expected: d.max(1),
                got: self.q.len(),
            });
        }
        if out.len() != self.q.len() {
            return Err(QuantError::ValueLength { what: "attention output", expected: self.q.len(), got: out.len() });
        }
        if self.len == 0 || self.keys.len() < self.len * row || self.values.len() < self.len * row {
            return Err(QuantError::ValueLength {
                what: "cached keys and values (bytes)",
                expected: self.len.max(1) * row,
                got: self.keys.len().min(self.values.len()),
            });
        }
        Ok(())
    }
}

/// `out[g] = softmax(scale * q[g] . K^T) V` for each query head `g` of `a`, with the active
/// kernel tier. `scratch` is reused between calls (no allocation once it is large enough).
pub fn attend(a: &Attend<'_>, scratch: &mut Vec<f32>, out: &mut [f32]) -> Result<(), QuantError> {
    a.check(out)?;
    (simd::active_kernels().attend)(a, scratch, out);
    Ok(())
}

/// [`attend`] with a forced kernel tier (tests and benchmarks); errors when this CPU lacks it.
pub fn attend_with_tier(tier: Tier, a: &Attend<'_>, scratch: &mut Vec<f32>, out: &mut [f32]) -> Result<(), QuantError> {
    let k = simd::kernels(tier).ok_or(QuantError::TierUnavailable(tier))?;
    a.check(out)?;
    (k.attend)(a, scratch, out);
    Ok(())
}

/// The reference definition (the scalar tier). Lengths were checked by the caller.
pub(crate) fn attend_reference(a: &Attend<'_>, scratch: &mut Vec<f32>, out: &mut [f32]) {
    let (d, len) = (a.d, a.len);
    let row = d * a.ty.value_bytes();
    let dot: fn(&[u8], &[f32]) -> f32 = match a.ty {
        KvType::F32 => float::vec_dot_f32,
        KvType::F16 => float::vec_dot_f16,
    };
    scratch.clear();
    scratch.resize(2 * d + len, 0.0);
    let (qr, rest) = scratch.split_at_mut(d);
    let (v, scores) = rest.split_at_mut(d);
    for (qg, og) in a.q.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        for (r, &x) in qr.iter_mut().zip(qg) {
            *r = round_to(a.ty, x);
        }
        for (p, s) in scores.iter_mut().enumerate() {
            *s = dot(&a.keys[p * row..(p + 1) * row], qr) * a.scale;
        }
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
        }
        // Summed in f64 and inverted once, as GGML's soft-max does.
        let inv = (1.0 / scores.iter().map(|&e| f64::from(e)).sum::<f64>()) as f32;
        og.fill(0.0);
        for (p, &e) in scores.iter().enumerate() {
            let w = round_to(a.ty, e * inv);
            dequantize(a.ty, &a.values[p * row..(p + 1) * row], v);
            og.iter_mut().zip(v.iter()).for_each(|(o, x)| *o += w * x);
        }
    }
}

/// `x` as the cache type would hold it.
#[inline]
pub(crate) fn round_to(ty: KvType, x: f32) -> f32 {
    match ty {
        KvType::F32 => x,
        KvType::F16 => half::f16::from_f32(x).to_f32(),
    }
}

fn dequantize(ty: KvType, bytes: &[u8], out: &mut [f32]) {
    match ty {
        KvType::F32 => float::dequantize_f32(bytes, out),
        KvType::F16 => float::dequantize_f16(bytes, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::scalar::Lcg;

    fn case(g: &mut Lcg, ty: KvType, group: usize, d: usize, len: usize) -> (Vec<f32>, Vec<u8>, Vec<u8>) {
        let q: Vec<f32> = (0..group * d).map(|_| g.gauss()).collect();
        let kv = |g: &mut Lcg| {
            let vals: Vec<f32> = (0..len * d).map(|_| g.gauss()).collect();
            let mut b = vec![0u8; vals.len() * ty.value_bytes()];
            ty.store(&vals, &mut b);
            b
        };
        let k = kv(g);
        (q, k, kv(g))
    }

    /// Every tier this CPU has agrees with the reference on odd shapes (GQA groups, head widths
    /// that are and are not multiples of the vector width, one position and many), and the
    /// reference agrees with an f64 computation of the same rounded operands.
    #[test]
    fn tiers_agree_with_the_reference_and_with_f64() {
        let mut g = Lcg(11);
        for ty in [KvType::F32, KvType::F16] {
            for (group, d, len) in [(1, 128, 1), (1, 128, 2049), (4, 64, 37), (2, 12, 5), (3, 8, 300), (1, 40, 9)] {
                let (q, keys, values) = case(&mut g, ty, group, d, len);
                let a = Attend { ty, q: &q, d, keys: &keys, values: &values, len, scale: 1.0 / (d as f32).sqrt() };
                let mut want = vec![0f32; q.len()];
                attend_with_tier(Tier::Scalar, &a, &mut Vec::new(), &mut want).unwrap();
                // f64 of the same operands.
                let row = d * ty.value_bytes();
                let mut kf = vec![0f32; len * d];
                let mut vf = vec![0f32; len * d];
                dequantize(ty, &keys[..len * row], &mut kf);
                dequantize(ty, &values[..len * row], &mut vf);
                for (h, qg) in q.chunks_exact(d).enumerate() {
                    let s: Vec<f64> = (0..len)
                        .map(|p| {
                            qg.iter().zip(&kf[p * d..(p + 1) * d]).map(|(a, b)| f64::from(round_to(ty, *a)) * f64::from(*b)).sum::<f64>()
                                * f64::from(a.scale)
                        })
                        .collect();
                    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for i in 0..d {
                        let o: f64 = (0..len).map(|p| e[p] / sum * f64::from(vf[p * d + i])).sum();
                        // f16 rounding of the probabilities: up to 2^-11 relative each.
                        let tol = if ty == KvType::F16 { 2e-3 } else { 2e-5 };
                        assert!(
                            (f64::from(want[h * d + i]) - o).abs() <= tol * (1.0 + o.abs()),
                            "{ty} reference ({group},{d},{len}) [{h},{i}]: {} vs {o}",
                            want[h * d + i]
                        );
                    }
                }
                for tier in Tier::ALL.into_iter().filter(|t| t.available()) {
                    let mut got = vec![0f32; q.len()];
                    let mut scratch = vec![7.0; 3];
                    attend_with_tier(tier, &a, &mut scratch, &mut got).unwrap();
                    for (i, (x, y)) in got.iter().zip(&want).enumerate() {
                        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{tier} {ty} ({group},{d},{len}) [{i}]: {x} vs {y}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        let q = vec![0f32; 16];
        let kv = vec![0u8; 16 * 2 * 3];
        let mut out = vec![0f32; 16];
        let a = Attend { ty: KvType::F16, q: &q, d: 16, keys: &kv, values: &kv, len: 4, scale: 1.0 };
        assert!(attend(&a, &mut Vec::new(), &mut out).is_err(), "4 positions in 3 positions' bytes");
        let a = Attend { len: 3, ..a };
        attend(&a, &mut Vec::new(), &mut out).unwrap();
        assert!(attend(&Attend { d: 5, ..a }, &mut Vec::new(), &mut out).is_err(), "16 values are not heads of 5");
        assert!(attend(&a, &mut Vec::new(), &mut out[..8]).is_err());
        assert!(attend(&Attend { len: 0, ..a }, &mut Vec::new(), &mut out).is_err());
        assert_eq!(KvType::parse("F16"), Some(KvType::F16));
        assert_eq!(KvType::parse("q8_0"), None);
    }
}
