//! Q4_1: 32 values per 20-byte block: f16 scale `d`, f16 offset `m`, then 16 bytes of nibbles
//! (low nibbles values 0..16, high nibbles 16..32); `w = q * d + m`.
//!
//! The quantizer is gguf-py's: `d = (max - min) / 15`, `m = min`,
//! `q = min(trunc((x - min) / d + 0.5), 15)`, all in f32.

use crate::act::Q8Row;
use crate::float::{f16_at, put_f16};

/// Values per block.
pub const BLOCK: usize = 32;
/// Bytes per block.
pub const BYTES: usize = 20;

/// Dequantizes one block.
pub fn dequantize_block(b: &[u8], out: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for j in 0..16 {
        let q = b[4 + j];
        out[j] = d * f32::from(q & 0x0F) + m;
        out[j + 16] = d * f32::from(q >> 4) + m;
    }
}

/// The smallest and largest value (numpy's `min`/`max` for NaN-free input).
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// Quantizes one block of 32 values.
pub fn quantize_block(x: &[f32], out: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let q = |v: f32| (((v - min) * id + 0.5).trunc() as u8).min(15);
    put_f16(out, 0, d);
    put_f16(out, 2, min);
    for j in 0..16 {
        out[4 + j] = q(x[j]) | (q(x[j + 16]) << 4);
    }
}

/// Scalar reference dot product with Q8 activations: per block
/// `d_w * d_a * sum(q * a) + m_w * s_a` (where `s_a = d_a * sum(a)`), summed in block order.
pub fn vec_dot(w: &[u8], x: Q8Row<'_>) -> f32 {
    let mut sum = 0f32;
    for (i, b) in w.chunks_exact(BYTES).enumerate() {
        let a = &x.qs[i * BLOCK..(i + 1) * BLOCK];
        let mut isum = 0i32;
        for j in 0..16 {
            isum += i32::from(b[4 + j] & 0x0F) * i32::from(a[j]);
            isum += i32::from(b[4 + j] >> 4) * i32::from(a[j + 16]);
        }
        sum += f16_at(b, 0) * x.d[i] * isum as f32 + f16_at(b, 2) * x.s[i];
    }
    sum
}
