//! Q4_0: 32 values per 18-byte block: f16 scale `d`, then 16 bytes whose low nibbles are values
//! 0..16 and high nibbles values 16..32; `w = (q - 8) * d`.
//!
//! The quantizer is gguf-py's (`gguf.quants.Q4_0`), step for step in f32, so it writes the same
//! bytes: `d = max / -8` where `max` is the first value of largest magnitude (so it maps to
//! q = 0), `q = min(trunc(x / d + 8.5), 15)`.

use crate::act::Q8Row;
use crate::float::{f16_at, put_f16};

/// Values per block.
pub const BLOCK: usize = 32;
/// Bytes per block.
pub const BYTES: usize = 18;

/// Dequantizes one block.
pub fn dequantize_block(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..16 {
        let q = b[2 + j];
        out[j] = d * (i32::from(q & 0x0F) - 8) as f32;
        out[j + 16] = d * (i32::from(q >> 4) - 8) as f32;
    }
}

/// The first value of largest magnitude, with its sign (numpy's `argmax(abs(x))`).
pub(crate) fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (x[0].abs(), x[0]);
    for &v in &x[1..] {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// Quantizes one block of 32 values.
pub fn quantize_block(x: &[f32], out: &mut [u8]) {
    let d = signed_absmax(x) / -8.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let q = |v: f32| ((v * id + 8.5).trunc() as u8).min(15);
    put_f16(out, 0, d);
    for j in 0..16 {
        out[2 + j] = q(x[j]) | (q(x[j + 16]) << 4);
    }
}

/// Scalar reference dot product of a Q4_0 row with Q8 activations: per block the integer sum of
/// `(q - 8) * a`, scaled by `d_w * d_a` and summed in f32 in block order.
pub fn vec_dot(w: &[u8], x: Q8Row<'_>) -> f32 {
    let mut sum = 0f32;
    for (i, b) in w.chunks_exact(BYTES).enumerate() {
        let a = &x.qs[i * BLOCK..(i + 1) * BLOCK];
        let mut isum = 0i32;
        for j in 0..16 {
            isum += (i32::from(b[2 + j] & 0x0F) - 8) * i32::from(a[j]);
            isum += (i32::from(b[2 + j] >> 4) - 8) * i32::from(a[j + 16]);
        }
        sum += f16_at(b, 0) * x.d[i] * isum as f32;
    }
    sum
}
