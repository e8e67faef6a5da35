//! Q5_0: 32 values per 22-byte block: f16 scale `d`, a little-endian u32 `qh` whose bit j is the
//! fifth bit of value j, then 16 bytes of low nibbles (values 0..16 low, 16..32 high);
//! `w = (q - 16) * d`.
//!
//! The quantizer is gguf-py's: `d = max / -16` (`max` the first value of largest magnitude),
//! `q = min(trunc(x / d + 16.5), 31)`, in f32.

use crate::act::Q8Row;
use crate::float::{f16_at, put_f16};
use crate::q4_0::signed_absmax;

/// Values per block.
pub const BLOCK: usize = 32;
/// Bytes per block.
pub const BYTES: usize = 22;

/// The 5-bit value `j` of a block (0..32).
#[inline]
pub(crate) fn q5(b: &[u8], qh: u32, qs_off: usize, j: usize) -> u8 {
    let low = if j < 16 { b[qs_off + j] & 0x0F } else { b[qs_off + j - 16] >> 4 };
    low | ((((qh >> j) & 1) as u8) << 4)
}

/// Dequantizes one block.
pub fn dequantize_block(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for (j, o) in out.iter_mut().enumerate().take(BLOCK) {
        *o = d * (i32::from(q5(b, qh, 6, j)) - 16) as f32;
    }
}

/// Quantizes one block of 32 values.
pub fn quantize_block(x: &[f32], out: &mut [u8]) {
    let d = signed_absmax(x) / -16.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let q = |v: f32| ((v * id + 16.5).trunc() as u8).min(31);
    put_f16(out, 0, d);
    pack5(x.iter().map(|&v| q(v)), out, 2);
}

/// Packs 32 five-bit values: `qh` (4 bytes) at `off`, the nibbles after it.
pub(crate) fn pack5(q: impl Iterator<Item = u8>, out: &mut [u8], off: usize) {
    let q: Vec<u8> = q.collect();
    let mut qh = 0u32;
    for (j, &v) in q.iter().enumerate() {
        qh |= u32::from(v >> 4) << j;
    }
    out[off..off + 4].copy_from_slice(&qh.to_le_bytes());
    for j in 0..16 {
        out[off + 4 + j] = (q[j] & 0x0F) | (q[j + 16] << 4);
    }
}

/// Scalar reference dot product with Q8 activations: per block `d_w * d_a * sum((q - 16) * a)`.
pub fn vec_dot(w: &[u8], x: Q8Row<'_>) -> f32 {
    let mut sum = 0f32;
    for (i, b) in w.chunks_exact(BYTES).enumerate() {
        let a = &x.qs[i * BLOCK..(i + 1) * BLOCK];
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let isum: i32 = (0..BLOCK).map(|j| (i32::from(q5(b, qh, 6, j)) - 16) * i32::from(a[j])).sum();
        sum += f16_at(b, 0) * x.d[i] * isum as f32;
    }
    sum
}
