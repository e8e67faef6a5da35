//! F32, F16 and BF16 elements: conversions that match numpy and gguf-py bit for bit.
//!
//! numpy's float16 casts are software conversions that keep a NaN's payload (and do not set the
//! quiet bit); `half` and the F16C instructions quiet signalling NaNs. The reference path follows
//! numpy, so `dequantize_row(F16)` equals `gguf.quants.dequantize` on every bit pattern. The SIMD
//! dot products convert with F16C, which differs only in NaN payloads, never in numbers.

/// f16 bits to f32, as numpy does it (exact for every finite value; NaN payloads kept).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    if h & 0x7C00 == 0x7C00 && h & 0x03FF != 0 {
        let sign = u32::from(h & 0x8000) << 16;
        return f32::from_bits(sign | 0x7F80_0000 | (u32::from(h & 0x03FF) << 13));
    }
    half::f16::from_bits(h).to_f32()
}

/// f32 to f16 bits, rounding to nearest even, as numpy's `astype(np.float16)` does (values beyond
/// the f16 range become infinities; a NaN keeps the top of its payload and stays a NaN).
#[inline]
pub fn f32_to_f16(x: f32) -> u16 {
    if x.is_nan() {
        let bits = x.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        let mut ret = 0x7C00u16 + ((bits & 0x007F_FFFF) >> 13) as u16;
        if ret == 0x7C00 {
            ret += 1;
        }
        return sign + ret;
    }
    half::f16::from_f32(x).to_bits()
}

/// bf16 bits to f32 (exact: the upper half of the f32).
#[inline]
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// f32 to bf16 bits as gguf-py (and ggml's `ggml_compute_fp32_to_bf16`) do it: NaNs are made
/// quiet, everything else rounds to nearest even.
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    let n = x.to_bits();
    if n & 0x7FFF_FFFF > 0x7F80_0000 {
        return (((n & 0xFFFF_0000) | (64 << 16)) >> 16) as u16;
    }
    ((u64::from(n) + (0x7FFF + u64::from((n >> 16) & 1))) >> 16) as u16
}

/// The little-endian f16 at `b[off..off + 2]`, as f32.
#[inline]
pub(crate) fn f16_at(b: &[u8], off: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[off], b[off + 1]]))
}

/// Writes `x` as a little-endian f16 at `b[off..off + 2]`.
#[inline]
pub(crate) fn put_f16(b: &mut [u8], off: usize, x: f32) {
    b[off..off + 2].copy_from_slice(&f32_to_f16(x).to_le_bytes());
}

/// Decodes little-endian F32/F16/BF16 bytes.
pub(crate) fn dequantize_f32(bytes: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}

pub(crate) fn dequantize_f16(bytes: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
    }
}

pub(crate) fn dequantize_bf16(bytes: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = bf16_to_f32(u16::from_le_bytes([c[0], c[1]]));
    }
}

pub(crate) fn quantize_f32(x: &[f32], out: &mut [u8]) {
    for (v, c) in x.iter().zip(out.chunks_exact_mut(4)) {
        c.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn quantize_f16(x: &[f32], out: &mut [u8]) {
    for (v, c) in x.iter().zip(out.chunks_exact_mut(2)) {
        c.copy_from_slice(&f32_to_f16(*v).to_le_bytes());
    }
}

pub(crate) fn quantize_bf16(x: &[f32], out: &mut [u8]) {
    for (v, c) in x.iter().zip(out.chunks_exact_mut(2)) {
        c.copy_from_slice(&f32_to_bf16(*v).to_le_bytes());
    }
}

/// Scalar reference dot product of a weight row stored as F32/F16/BF16 with f32 activations:
/// the products summed left to right in f32.
pub(crate) fn vec_dot_f32(w: &[u8], x: &[f32]) -> f32 {
    let mut sum = 0f32;
    for (c, v) in w.chunks_exact(4).zip(x) {
        sum += f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * v;
    }
    sum
}

pub(crate) fn vec_dot_f16(w: &[u8], x: &[f32]) -> f32 {
    let mut sum = 0f32;
    for (c, v) in w.chunks_exact(2).zip(x) {
        sum += f16_to_f32(u16::from_le_bytes([c[0], c[1]])) * v;
    }
    sum
}

pub(crate) fn vec_dot_bf16(w: &[u8], x: &[f32]) -> f32 {
    let mut sum = 0f32;
    for (c, v) in w.chunks_exact(2).zip(x) {
        sum += bf16_to_f32(u16::from_le_bytes([c[0], c[1]])) * v;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trips_every_pattern() {
        // NaNs included: numpy keeps the payload both ways, and f16 payloads fit in f32.
        for h in 0..=u16::MAX {
            assert_eq!(f32_to_f16(f16_to_f32(h)), h, "{h:#06x}");
        }
    }

    #[test]
    fn bf16_rounds_to_nearest_even_and_quiets_nan() {
        assert_eq!(f32_to_bf16(f32::from_bits(0x3F80_8000)), 0x3F80, "tie to even (down)");
        assert_eq!(f32_to_bf16(f32::from_bits(0x3F81_8000)), 0x3F82, "tie to even (up)");
        assert_eq!(f32_to_bf16(f32::from_bits(0x7F80_0001)), 0x7FC0, "signalling NaN made quiet");
        assert_eq!(f32_to_bf16(f32::INFINITY), 0x7F80);
        assert_eq!(bf16_to_f32(0xBF80), -1.0);
    }
}
