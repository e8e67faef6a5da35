//! Q5_1: 32 values per 24-byte block: f16 scale `d`, f16 offset `m`, u32 fifth bits `qh`, then
//! 16 bytes of low nibbles; `w = q * d + m`.
//!
//! The quantizer is gguf-py's: `d = (max - min) / 31`, `m = min`,
//! `q = min(trunc((x - min) / d + 0.5), 31)`, in f32.

use crate::act::Q8Row;
use crate::float::{f16_at, put_f16};
use crate::q4_1::min_max;
use crate::q5_0::{pack5, q5};

/// Values per block.
pub const BLOCK: usize = 32;
/// Bytes per block.
pub const BYTES: usize = 24;

/// Dequantizes one block.
pub fn dequantize_block(b: &[u8], out: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for (j, o) in out.iter_mut().enumerate().take(BLOCK) {
        *o = d * f32::from(q5(b, qh, 8, j)) + m;
    }
}

/// Quantizes one block of 32 values.
pub fn quantize_block(x: &[f32], out: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let q = |v: f32| (((v - min) * id + 0.5).trunc() as u8).min(31);
    put_f16(out, 0, d);
    put_f16(out, 2, min);
    pack5(x.iter().map(|&v| q(v)), out, 4);
}

/// Scalar reference dot product with Q8 activations: per block
/// `d_w * d_a * sum(q * a) + m_w * s_a`.
pub fn vec_dot(w: &[u8], x: Q8Row<'_>) -> f32 {
    let mut sum = 0f32;
    for (i, b) in w.chunks_exact(BYTES).enumerate() {
        let a = &x.qs[i * BLOCK..(i + 1) * BLOCK];
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let isum: i32 = (0..BLOCK).map(|j| i32::from(q5(b, qh, 8, j)) * i32::from(a[j])).sum();
        sum += f16_at(b, 0) * x.d[i] * isum as f32 + f16_at(b, 2) * x.s[i];
    }
    sum
}
