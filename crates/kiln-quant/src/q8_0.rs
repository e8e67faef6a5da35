//! Q8_0: 32 values per 34-byte block: f16 scale `d`, then 32 int8; `w = q * d`.
//!
//! The quantizer is gguf-py's (bit-exact with ggml's reference): `d = max|x| / 127` and
//! `q = round(x / d)` with ties away from zero (`np_roundf`), in f32; `d` is stored as f16 but
//! the quants are computed with the f32 `d`.

use crate::act::Q8Row;
use crate::float::{f16_at, put_f16};

/// Values per block.
pub const BLOCK: usize = 32;
/// Bytes per block.
pub const BYTES: usize = 34;

/// Dequantizes one block.
pub fn dequantize_block(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    for (o, &q) in out.iter_mut().zip(&b[2..BYTES]) {
        *o = f32::from(q as i8) * d;
    }
}

/// Quantizes one block of 32 values.
pub fn quantize_block(x: &[f32], out: &mut [u8]) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    put_f16(out, 0, d);
    for (o, &v) in out[2..BYTES].iter_mut().zip(x) {
        // f32::round rounds half away from zero, as np_roundf does.
        *o = ((v * id).round() as i8) as u8;
    }
}

/// Scalar reference dot product with Q8 activations: per block `d_w * d_a * sum(q * a)`.
pub fn vec_dot(w: &[u8], x: Q8Row<'_>) -> f32 {
    let mut sum = 0f32;
    for (i, b) in w.chunks_exact(BYTES).enumerate() {
        let a = &x.qs[i * BLOCK..(i + 1) * BLOCK];
        let isum: i32 = b[2..BYTES].iter().zip(a).map(|(&q, &v)| i32::from(q as i8) * i32::from(v)).sum();
        sum += f16_at(b, 0) * x.d[i] * isum as f32;
    }
    sum
}
