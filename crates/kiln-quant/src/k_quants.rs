//! The k-quants Q4_K, Q5_K and Q6_K: 256-value super-blocks with per-sub-block scales, their
//! layouts, dequantization (equal to gguf-py's bit for bit) and scalar reference dot products
//! against [`Q8KRow`] activations. The quantizers live in `k_quantize`.
//!
//! Q4_K (144 bytes): f16 `d`, f16 `dmin`, 12 bytes packing eight 6-bit scales `sc` and eight
//! 6-bit mins `m` (one per sub-block of 32), 128 bytes of nibbles: bytes `32c..32c+32` hold
//! sub-block `2c` in their low nibbles and `2c+1` in their high nibbles.
//! `w = (d * sc) * q - (dmin * m)`.
//!
//! Q5_K (176 bytes): as Q4_K with 32 bytes of fifth bits between the scales and the nibbles: bit
//! `j` of byte `k` is the fifth bit of value `k` of sub-block `j`.
//!
//! Q6_K (210 bytes): 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales (one
//! per sub-block of 16), f16 `d`. Each half `h` of 128 values uses `ql[64h..64h+64]` and
//! `qh[32h..32h+32]`: value `128h + r` has low nibble `ql[64h + r % 64] >> (4 * (r / 64))` and high
//! bits `qh[32h + r % 32] >> (2 * (r / 32))`. `w = (d * sc) * (q - 32)`.

use crate::act::Q8KRow;
use crate::float::f16_at;

/// Values per super-block.
pub const QK_K: usize = 256;
/// Bytes per Q4_K block.
pub const Q4K_BYTES: usize = 144;
/// Bytes per Q5_K block.
pub const Q5K_BYTES: usize = 176;
/// Bytes per Q6_K block.
pub const Q6K_BYTES: usize = 210;

/// Unpacks the eight 6-bit scales and eight 6-bit mins of a Q4_K/Q5_K block (12 bytes).
pub fn unpack_scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut m) = ([0u8; 8], [0u8; 8]);
    for k in 0..4 {
        sc[k] = s[k] & 0x3F;
        m[k] = s[4 + k] & 0x3F;
        sc[4 + k] = (s[8 + k] & 0x0F) | ((s[k] >> 2) & 0x30);
        m[4 + k] = (s[8 + k] >> 4) | ((s[4 + k] >> 2) & 0x30);
    }
    (sc, m)
}

/// Packs eight 6-bit scales and mins (each below 64) into the 12-byte Q4_K/Q5_K field.
pub fn pack_scales_mins(sc: &[u8; 8], m: &[u8; 8], s: &mut [u8]) {
    for k in 0..4 {
        s[k] = sc[k] | ((sc[4 + k] >> 4) << 6);
        s[4 + k] = m[k] | ((m[4 + k] >> 4) << 6);
        s[8 + k] = (sc[4 + k] & 0x0F) | ((m[4 + k] & 0x0F) << 4);
    }
}

/// The 4-bit value `e` (0..256) of a Q4_K block's nibbles.
#[inline]
fn q4k_nibble(qs: &[u8], e: usize) -> u8 {
    let (j, k) = (e / 32, e % 32);
    let byte = qs[32 * (j / 2) + k];
    if j % 2 == 0 {
        byte & 0x0F
    } else {
        byte >> 4
    }
}

/// The 6-bit value `e` (0..256) of a Q6_K block (0..64; the weight uses `q - 32`).
#[inline]
fn q6k_value(b: &[u8], e: usize) -> u8 {
    let (h, r) = (e / 128, e % 128);
    let low = (b[64 * h + r % 64] >> (4 * (r / 64))) & 0x0F;
    let high = (b[128 + 32 * h + r % 32] >> (2 * (r / 32))) & 0x03;
    low | (high << 4)
}

/// Dequantizes one Q4_K block.
pub fn dequantize_q4k(b: &[u8], out: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, m) = unpack_scales_mins(&b[4..16]);
    for (e, o) in out.iter_mut().enumerate().take(QK_K) {
        let j = e / 32;
        *o = (d * f32::from(sc[j])) * f32::from(q4k_nibble(&b[16..], e)) - dmin * f32::from(m[j]);
    }
}

/// Dequantizes one Q5_K block.
pub fn dequantize_q5k(b: &[u8], out: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, m) = unpack_scales_mins(&b[4..16]);
    for (e, o) in out.iter_mut().enumerate().take(QK_K) {
        let j = e / 32;
        let q = q4k_nibble(&b[48..], e) | (((b[16 + e % 32] >> j) & 1) << 4);
        *o = (d * f32::from(sc[j])) * f32::from(q) - dmin * f32::from(m[j]);
    }
}

/// Dequantizes one Q6_K block.
pub fn dequantize_q6k(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 208);
    for (e, o) in out.iter_mut().enumerate().take(QK_K) {
        let sc = b[192 + e / 16] as i8;
        *o = (d * f32::from(sc)) * (i32::from(q6k_value(b, e)) - 32) as f32;
    }
}

/// Scalar reference Q4_K dot product with Q8_K activations. Per block, in integers:
/// `sumi = sum_j sc_j * sum_{k in j} q_k a_k` and `summ = sum_j m_j * sum_{k in j} a_k` (from the
/// activation's sums of 16); then `d_a * (d * sumi - dmin * summ)` summed in block order.
pub fn vec_dot_q4k(w: &[u8], x: Q8KRow<'_>) -> f32 {
    dot_q45k(w, x, Q4K_BYTES, |b, e| q4k_nibble(&b[16..], e))
}

/// Scalar reference Q5_K dot product with Q8_K activations (as Q4_K with 5-bit values).
pub fn vec_dot_q5k(w: &[u8], x: Q8KRow<'_>) -> f32 {
    dot_q45k(w, x, Q5K_BYTES, |b, e| q4k_nibble(&b[48..], e) | (((b[16 + e % 32] >> (e / 32)) & 1) << 4))
}

fn dot_q45k(w: &[u8], x: Q8KRow<'_>, bytes: usize, value: impl Fn(&[u8], usize) -> u8) -> f32 {
    let mut sum = 0f32;
    for (i, b) in w.chunks_exact(bytes).enumerate() {
        let a = &x.qs[i * QK_K..(i + 1) * QK_K];
        let bs = &x.bsums[i * 16..(i + 1) * 16];
        let (sc, m) = unpack_scales_mins(&b[4..16]);
        let (mut sumi, mut summ) = (0i32, 0i32);
        for j in 0..8 {
            let dot: i32 = (32 * j..32 * j + 32).map(|e| i32::from(value(b, e)) * i32::from(a[e])).sum();
            sumi += i32::from(sc[j]) * dot;
            summ += i32::from(m[j]) * (i32::from(bs[2 * j]) + i32::from(bs[2 * j + 1]));
        }
        sum += x.d[i] * (f16_at(b, 0) * sumi as f32 - f16_at(b, 2) * summ as f32);
    }
    sum
}

/// Scalar reference Q6_K dot product with Q8_K activations: per block, in integers,
/// `sumi = sum_j sc_j * (sum_{k in j} q_k a_k - 32 * sum_{k in j} a_k)` over the 16 sub-blocks,
/// then `d_a * d * sumi` summed in block order.
pub fn vec_dot_q6k(w: &[u8], x: Q8KRow<'_>) -> f32 {
    let mut sum = 0f32;
    for (i, b) in w.chunks_exact(Q6K_BYTES).enumerate() {
        let a = &x.qs[i * QK_K..(i + 1) * QK_K];
        let bs = &x.bsums[i * 16..(i + 1) * 16];
        let mut sumi = 0i32;
        for j in 0..16 {
            let dot: i32 = (16 * j..16 * j + 16).map(|e| i32::from(q6k_value(b, e)) * i32::from(a[e])).sum();
            sumi += i32::from(b[192 + j] as i8) * (dot - 32 * i32::from(bs[j]));
        }
        sum += x.d[i] * (f16_at(b, 208) * sumi as f32);
    }
    sum
}

/// Writes a Q6_K block's 6-bit values `q` (each 0..64) into its `ql`/`qh` bytes.
pub(crate) fn pack_q6k_values(q: &[u8; QK_K], b: &mut [u8]) {
    b[..192].fill(0);
    for (e, &v) in q.iter().enumerate() {
        let (h, r) = (e / 128, e % 128);
        b[64 * h + r % 64] |= (v & 0x0F) << (4 * (r / 64));
        b[128 + 32 * h + r % 32] |= (v >> 4) << (2 * (r / 32));
    }
}

/// Writes a Q4_K block's 4-bit values (each 0..16) into its 128 nibble bytes.
pub(crate) fn pack_q4k_nibbles(q: &[u8; QK_K], qs: &mut [u8]) {
    for c in 0..4 {
        for k in 0..32 {
            qs[32 * c + k] = (q[64 * c + k] & 0x0F) | ((q[64 * c + 32 + k] & 0x0F) << 4);
        }
    }
}

/// Writes a Q5_K block's 5-bit values (each 0..32): fifth bits at `b[16..48]`, nibbles after.
pub(crate) fn pack_q5k_values(q: &[u8; QK_K], b: &mut [u8]) {
    pack_q4k_nibbles(q, &mut b[48..176]);
    for k in 0..32 {
        b[16 + k] = (0..8).fold(0u8, |acc, j| acc | ((q[32 * j + k] >> 4) << j));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_packing_round_trips() {
        let sc = [0u8, 63, 17, 40, 63, 1, 32, 48];
        let m = [63u8, 0, 5, 33, 16, 62, 31, 7];
        let mut s = [0u8; 12];
        pack_scales_mins(&sc, &m, &mut s);
        assert_eq!(unpack_scales_mins(&s), (sc, m));
    }
}
