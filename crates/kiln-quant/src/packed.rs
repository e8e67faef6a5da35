//! Weight matrices repacked for decode: eight rows interleaved block by block, so that one SIMD
//! register holds bytes of eight output rows and every lane of the result is one row's dot
//! product (llama.cpp's CPU "repack" buffers follow the same idea).
//!
//! Why: a row-major k-quant kernel spends a third of its time per 256-value block on work that
//! does not scale with the weights (unpacking the 6-bit scales, broadcasting the activation's
//! block scale and sums, and a horizontal sum per row at the end), and reloads the activation
//! bytes for every row. With eight rows side by side the activation bytes are loaded once per
//! eight rows (as 4-byte broadcasts), the scales are stored unpacked, and the eight results come
//! out as one vector. On the 1.3B model's Q4_K matrices this makes the decode product about
//! 1.5x faster on AVX2 (see `examples/matvec.rs --packed`).
//!
//! Packing is a permutation plus the unpacking of the 6-bit scales: [`PackedMatrix::row_bytes`]
//! gives back every row's original GGML bytes, and the products equal the row-major scalar
//! reference ([`crate::k_quants::vec_dot_q4k`]) bit for bit (same integer sums per block, same f32
//! operations in the same order).
//!
//! # Q4_K layout (`Q4K_R8_BYTES` = 1184 bytes per eight-row block)
//!
//! For each group of eight rows, block after block (block `i` of the group at
//! `i * Q4K_R8_BYTES`):
//!
//! | offset | bytes | content |
//! |---|---|---|
//! | 0 | 16 | `d` of rows 0..8 (f16) |
//! | 16 | 16 | `dmin` of rows 0..8 (f16) |
//! | 32 | 64 | scale of sub-block `s`, row `r` at `32 + 8 s + r` (u8, 0..64) |
//! | 96 | 64 | mins of sub-blocks `2p`, `2p + 1` for row `r` at `96 + 16 p + 2 r` (u8 pairs) |
//! | 160 | 1024 | nibble bytes: chunk `c` (0..4), group `g` (0..8), row `r`: the row's bytes `32 c + 4 g .. + 4` at `160 + 32 (8 c + g) + 4 r` |
//!
//! A 32-byte load at `160 + 32 (8 c + g)` thus holds four nibble bytes of every row: its low
//! nibbles are values `64 c + 4 g .. + 4` (sub-block `2 c`), its high nibbles values
//! `64 c + 32 + 4 g .. + 4` (sub-block `2 c + 1`) of each row.

use crate::act::Q8KRow;
use crate::k_quants::{pack_scales_mins, unpack_scales_mins};
use crate::matmul::QMatrix;
use crate::{GgmlType, QuantError};

/// Rows interleaved per group.
pub const PACK_ROWS: usize = 8;

/// Bytes of one eight-row Q4_K block.
pub const Q4K_R8_BYTES: usize = 8 * 144 + 32;

/// A weight matrix whose rows are interleaved in groups of [`PACK_ROWS`] (see the module docs).
/// Owned: packing copies the bytes out of a memory map.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl PackedMatrix {
    /// Whether `ty` has a packed layout.
    pub fn supports(ty: GgmlType) -> bool {
        ty == GgmlType::Q4K
    }

    /// Packs `m`; `None` when its type has no packed layout or its row count is not a multiple
    /// of [`PACK_ROWS`] (such a matrix is multiplied row by row as it is).
    pub fn pack(m: &QMatrix<'_>) -> Option<PackedMatrix> {
        if !Self::supports(m.ty()) || !m.rows().is_multiple_of(PACK_ROWS) {
            return None;
        }
        let (rows, cols) = (m.rows(), m.cols());
        let nb = cols / 256;
        let mut data = vec![0u8; rows / PACK_ROWS * nb * Q4K_R8_BYTES];
        for (g, group) in data.chunks_exact_mut(nb * Q4K_R8_BYTES).enumerate() {
            let src: [&[u8]; PACK_ROWS] = std::array::from_fn(|r| m.row(g * PACK_ROWS + r));
            for (i, dst) in group.chunks_exact_mut(Q4K_R8_BYTES).enumerate() {
                for (r, row) in src.iter().enumerate() {
                    pack_q4k_block(&row[i * 144..(i + 1) * 144], r, dst);
                }
            }
        }
        Some(PackedMatrix { ty: m.ty(), rows, cols, data })
    }

    /// The element type of the original rows.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Blocks per row.
    fn blocks(&self) -> usize {
        self.cols / 256
    }

    /// The bytes of eight-row group `g` (rows `8 g .. 8 g + 8`).
    pub(crate) fn group(&self, g: usize) -> &[u8] {
        let len = self.blocks() * Q4K_R8_BYTES;
        &self.data[g * len..(g + 1) * len]
    }

    /// Row `r` in its original GGML layout (`ty.row_bytes(cols)` bytes).
    pub fn row_bytes(&self, r: usize) -> Vec<u8> {
        let group = self.group(r / PACK_ROWS);
        let mut out = vec![0u8; self.blocks() * 144];
        for (src, dst) in group.chunks_exact(Q4K_R8_BYTES).zip(out.chunks_exact_mut(144)) {
            unpack_q4k_block(src, r % PACK_ROWS, dst);
        }
        out
    }

    /// Row `r` dequantized (the reference dequantization of [`PackedMatrix::row_bytes`]).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<(), QuantError> {
        crate::dequantize_row(self.ty, &self.row_bytes(r), out)
    }
}

/// Writes row `r`'s 144-byte Q4_K block `b` into the eight-row block `dst`.
fn pack_q4k_block(b: &[u8], r: usize, dst: &mut [u8]) {
    dst[2 * r..2 * r + 2].copy_from_slice(&b[0..2]);
    dst[16 + 2 * r..16 + 2 * r + 2].copy_from_slice(&b[2..4]);
    let (sc, m) = unpack_scales_mins(&b[4..16]);
    for s in 0..8 {
        dst[32 + 8 * s + r] = sc[s];
    }
    for p in 0..4 {
        dst[96 + 16 * p + 2 * r] = m[2 * p];
        dst[96 + 16 * p + 2 * r + 1] = m[2 * p + 1];
    }
    for c in 0..4 {
        for g in 0..8 {
            let at = 160 + 32 * (8 * c + g) + 4 * r;
            dst[at..at + 4].copy_from_slice(&b[16 + 32 * c + 4 * g..16 + 32 * c + 4 * g + 4]);
        }
    }
}

/// The inverse of [`pack_q4k_block`]: row `r`'s 144-byte block from the eight-row block `src`.
fn unpack_q4k_block(src: &[u8], r: usize, b: &mut [u8]) {
    b[0..2].copy_from_slice(&src[2 * r..2 * r + 2]);
    b[2..4].copy_from_slice(&src[16 + 2 * r..16 + 2 * r + 2]);
    let sc: [u8; 8] = std::array::from_fn(|s| src[32 + 8 * s + r]);
    let m: [u8; 8] = std::array::from_fn(|s| src[96 + 16 * (s / 2) + 2 * r + s % 2]);
    pack_scales_mins(&sc, &m, &mut b[4..16]);
    for c in 0..4 {
        for g in 0..8 {
            let at = 160 + 32 * (8 * c + g) + 4 * r;
            b[16 + 32 * c + 4 * g..16 + 32 * c + 4 * g + 4].copy_from_slice(&src[at..at + 4]);
        }
    }
}

/// The scalar reference product of an eight-row Q4_K group with one Q8_K activation row: per
/// row, the same integer sums and f32 operations as [`crate::k_quants::vec_dot_q4k`].
pub(crate) fn dot_q4k_r8(w: &[u8], x: Q8KRow<'_>) -> [f32; PACK_ROWS] {
    let mut sum = [0f32; PACK_ROWS];
    for (i, b) in w.chunks_exact(Q4K_R8_BYTES).enumerate() {
        let a = &x.qs[i * 256..(i + 1) * 256];
        let bs = &x.bsums[i * 16..(i + 1) * 16];
        for (r, acc) in sum.iter_mut().enumerate() {
            let (mut sumi, mut summ) = (0i32, 0i32);
            for s in 0..8 {
                let (c, high) = (s / 2, s % 2 == 1);
                let mut dot = 0i32;
                for k in 0..32 {
                    let byte = b[160 + 32 * (8 * c + k / 4) + 4 * r + k % 4];
                    let q = if high { byte >> 4 } else { byte & 0x0F };
                    dot += i32::from(q) * i32::from(a[32 * s + k]);
                }
                sumi += i32::from(b[32 + 8 * s + r]) * dot;
                let m = b[96 + 16 * (s / 2) + 2 * r + s % 2];
                summ += i32::from(m) * (i32::from(bs[2 * s]) + i32::from(bs[2 * s + 1]));
            }
            let d = crate::float::f16_to_f32(u16::from_le_bytes([b[2 * r], b[2 * r + 1]]));
            let dmin = crate::float::f16_to_f32(u16::from_le_bytes([b[16 + 2 * r], b[16 + 2 * r + 1]]));
            *acc += x.d[i] * (d * sumi as f32 - dmin * summ as f32);
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::scalar::Lcg;

    fn random_q4k(g: &mut Lcg, rows: usize, cols: usize) -> QMatrix<'static> {
        let mut data: Vec<u8> = (0..rows * cols / 256 * 144).map(|_| g.byte()).collect();
        for b in data.chunks_exact_mut(144) {
            // Finite f16 scales (random bytes would include infinities and NaNs).
            b[0..2].copy_from_slice(&crate::float::f32_to_f16(0.001 * (1 + g.small(50).unsigned_abs()) as f32).to_le_bytes());
            b[2..4].copy_from_slice(&crate::float::f32_to_f16(0.0005 * (1 + g.small(50).unsigned_abs()) as f32).to_le_bytes());
        }
        QMatrix::new(GgmlType::Q4K, rows, cols, data).unwrap()
    }

    #[test]
    fn packing_round_trips_every_row_byte_for_byte() {
        let mut g = Lcg(11);
        // Raw random bytes: every 12-byte scale field is a valid encoding, NaN scales included.
        let data: Vec<u8> = (0..16 * 3 * 144).map(|_| g.byte()).collect();
        let m = QMatrix::new(GgmlType::Q4K, 16, 768, data).unwrap();
        let p = PackedMatrix::pack(&m).unwrap();
        assert_eq!(p.bytes(), 2 * 3 * Q4K_R8_BYTES);
        for r in 0..16 {
            assert_eq!(p.row_bytes(r), m.row(r), "row {r}");
        }
        let mut a = vec![0f32; 768];
        let mut b = vec![0f32; 768];
        p.dequantize_row(5, &mut a).unwrap();
        crate::dequantize_row(GgmlType::Q4K, m.row(5), &mut b).unwrap();
        assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }

    #[test]
    fn only_q4k_with_whole_groups_is_packed() {
        let mut g = Lcg(3);
        assert!(PackedMatrix::pack(&random_q4k(&mut g, 12, 256)).is_none());
        let q8 = QMatrix::new(GgmlType::Q8_0, 8, 32, vec![0u8; 8 * 34]).unwrap();
        assert!(PackedMatrix::pack(&q8).is_none());
        assert!(PackedMatrix::pack(&random_q4k(&mut g, 8, 256)).is_some());
    }

    #[test]
    fn the_reference_product_equals_the_row_major_reference_bit_for_bit() {
        let mut g = Lcg(7);
        let m = random_q4k(&mut g, 8, 1024);
        let p = PackedMatrix::pack(&m).unwrap();
        let x: Vec<f32> = (0..1024).map(|_| g.gauss()).collect();
        let a = crate::act::Q8KAct::quantize(&x, 1, 1024);
        let got = dot_q4k_r8(p.group(0), a.row(0));
        for (r, v) in got.iter().enumerate() {
            let want = crate::k_quants::vec_dot_q4k(m.row(r), a.row(0));
            assert_eq!(v.to_bits(), want.to_bits(), "row {r}: {v} vs {want}");
        }
    }
}
