//! Weight matrices repacked for decode: eight rows interleaved block by block, so that one SIMD
//! register holds bytes of eight output rows and every lane of the result is one row's dot
//! product (llama.cpp's CPU "repack" buffers follow the same idea).
//!
//! Why: a row-major kernel spends much of its time per block on work that does not scale with
//! the weights (unpacking scales and fifth bits, broadcasting the activation's block scale, a
//! horizontal sum per row at the end), and reloads the activation bytes for every row. With
//! eight rows side by side the activation bytes are loaded once per eight rows (as 4-byte
//! broadcasts), scales and high bits are stored ready to use, and the eight results come out as
//! one vector. Products of packed Q4_K matrices are about 1.7x faster on AVX2 when the weights
//! are in cache (`examples/matvec.rs --packed --hot`), 2.3x in prefill.
//!
//! Packing is a permutation plus a re-arrangement of scale and high bits, with the same total
//! size: [`PackedMatrix::row_bytes`] gives back every row's original GGML bytes, and the
//! products equal the row-major scalar references ([`crate::k_quants::vec_dot_q4k`],
//! [`crate::k_quants::vec_dot_q6k`], [`crate::q5_0::vec_dot`]) bit for bit: same integer sums
//! per block, same f32 operations in the same order.
//!
//! In every layout, a group of eight rows is stored block after block (block `i` of the group at
//! `i * R8_BYTES`), and "4-byte chunk `c`, row `r`" means the row's bytes `4 c .. 4 c + 4` of
//! that field, stored at `field + 32 c + 4 r`: a 32-byte load at `field + 32 c` holds chunk `c`
//! of all eight rows.
//!
//! # Q4_K (`Q4K_R8_BYTES` = 1184)
//!
//! | offset | bytes | content |
//! |---|---|---|
//! | 0 | 16 | `d` of rows 0..8 (f16) |
//! | 16 | 16 | `dmin` of rows 0..8 (f16) |
//! | 32 | 64 | scale of sub-block `s`, row `r` at `32 + 8 s + r` (u8, 0..64) |
//! | 96 | 64 | mins of sub-blocks `2p`, `2p + 1` for row `r` at `96 + 16 p + 2 r` (u8 pairs) |
//! | 160 | 1024 | the 128 nibble bytes in 4-byte chunks `c` (0..32) |
//!
//! The 12 bytes of 6-bit scales and mins per row become 16 unpacked bytes, so a packed Q4_K
//! matrix is 2.8% larger than its rows (8 x 144 = 1152); the other layouts keep the size.
//!
//! Chunk `8 q + g` (`q` 0..4 a 32-byte quarter of the nibbles, `g` 0..8) has in its low nibbles
//! values `64 q + 4 g .. + 4` (sub-block `2 q`) and in its high nibbles values
//! `64 q + 32 + 4 g .. + 4` (sub-block `2 q + 1`).
//!
//! # Q6_K (`Q6K_R8_BYTES` = 1680 = 8 x 210)
//!
//! | offset | bytes | content |
//! |---|---|---|
//! | 0 | 16 | `d` of rows 0..8 (f16) |
//! | 16 | 128 | scales of sub-blocks `2p`, `2p + 1` for row `r` at `16 + 16 p + 2 r` (i8 pairs) |
//! | 144 | 1024 | `ql` (128 bytes per row) in 4-byte chunks |
//! | 1168 | 512 | `qh` (64 bytes per row) in 4-byte chunks |
//!
//! # Q5_0 (`Q5_0_R8_BYTES` = 176 = 8 x 22)
//!
//! | offset | bytes | content |
//! |---|---|---|
//! | 0 | 16 | `d` of rows 0..8 (f16) |
//! | 16 | 32 | fifth bits as a bit plane: bit `k` of row `r`'s byte `b` (at `16 + 4 r + b`) is the fifth bit of value `4 (k / 2) + b + 16 (k % 2)` |
//! | 48 | 128 | the 16 nibble bytes in 4-byte chunks `g` (0..4): low nibbles values `4 g .. + 4`, high nibbles `16 + 4 g .. + 4` |
//!
//! # Q8_0 (`Q8_0_R8_BYTES` = 272 = 8 x 34) and Q4_0 (`Q4_0_R8_BYTES` = 144 = 8 x 18)
//!
//! `d` of rows 0..8 (f16) at 0, then the value bytes (32 int8 or 16 nibble bytes per row) in
//! 4-byte chunks at 16.
//!
//! The bit plane makes a nibble's fifth bits one shift and one mask away: for chunk `g`'s low
//! (`k = 2 g`) or high (`k = 2 g + 1`) nibbles, shifting the plane so that bit `k` lands on bit 4
//! and masking with 0x10 gives every byte's fifth bit in place.
use crate::act::{Q8KRow, Q8Row};
use crate::k_quants::{pack_scales_mins, unpack_scales_mins};
use crate::matmul::QMatrix;
use crate::{GgmlType, QuantError};

/// Rows interleaved per group.
pub const PACK_ROWS: usize = 8;

/// Bytes of one eight-row Q4_K block.
pub const Q4K_R8_BYTES: usize = 16 + 16 + 64 + 64 + 1024;
/// Bytes of one eight-row Q6_K block.
pub const Q6K_R8_BYTES: usize = 8 * 210;
/// Bytes of one eight-row Q5_0 block.
pub const Q5_0_R8_BYTES: usize = 8 * 22;
/// Bytes of one eight-row Q8_0 block.
pub const Q8_0_R8_BYTES: usize = 8 * 34;
/// Bytes of one eight-row Q4_0 block.
pub const Q4_0_R8_BYTES: usize = 8 * 18;

/// Where 4-byte chunk `c` of row `r` sits in a chunked field starting at `field`.
#[inline(always)]
const fn chunk_at(field: usize, c: usize, r: usize) -> usize {
    field + 32 * c + 4 * r
}

/// A weight matrix whose rows are interleaved in groups of [`PACK_ROWS`] (see the module docs).
/// Owned: packing copies the bytes out of a memory map.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

/// A packed layout: bytes per eight-row block and the block converters.
struct Layout {
    r8_bytes: usize,
    pack: fn(&[u8], usize, &mut [u8]),
    unpack: fn(&[u8], usize, &mut [u8]),
}

fn layout(ty: GgmlType) -> Option<Layout> {
    match ty {
        GgmlType::Q4K => Some(Layout { r8_bytes: Q4K_R8_BYTES, pack: pack_q4k_block, unpack: unpack_q4k_block }),
        GgmlType::Q6K => Some(Layout { r8_bytes: Q6K_R8_BYTES, pack: pack_q6k_block, unpack: unpack_q6k_block }),
        GgmlType::Q5_0 => Some(Layout { r8_bytes: Q5_0_R8_BYTES, pack: pack_q5_0_block, unpack: unpack_q5_0_block }),
        GgmlType::Q8_0 => Some(Layout { r8_bytes: Q8_0_R8_BYTES, pack: pack_plain_block, unpack: unpack_plain_block }),
        GgmlType::Q4_0 => Some(Layout { r8_bytes: Q4_0_R8_BYTES, pack: pack_plain_block, unpack: unpack_plain_block }),
        _ => None,
    }
}

impl PackedMatrix {
    /// Whether `ty` has a packed layout (Q4_K, Q6_K, Q5_0, Q8_0, Q4_0).
    pub fn supports(ty: GgmlType) -> bool {
        layout(ty).is_some()
    }

    /// Packs `m`; `None` when its type has no packed layout or its row count is not a multiple
    /// of [`PACK_ROWS`] (such a matrix is multiplied row by row as it is).
    pub fn pack(m: &QMatrix<'_>) -> Option<PackedMatrix> {
        let l = layout(m.ty())?;
        if !m.rows().is_multiple_of(PACK_ROWS) {
            return None;
        }
        let (rows, cols, block) = (m.rows(), m.cols(), m.ty().block_bytes());
        let nb = cols / m.ty().block_size();
        let mut data = vec![0u8; rows / PACK_ROWS * nb * l.r8_bytes];
        for (g, group) in data.chunks_exact_mut(nb * l.r8_bytes).enumerate() {
            let src: [&[u8]; PACK_ROWS] = std::array::from_fn(|r| m.row(g * PACK_ROWS + r));
            for (i, dst) in group.chunks_exact_mut(l.r8_bytes).enumerate() {
                for (r, row) in src.iter().enumerate() {
                    (l.pack)(&row[i * block..(i + 1) * block], r, dst);
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

    fn layout(&self) -> Layout {
        layout(self.ty).expect("only packable types are packed")
    }

    /// The bytes of eight-row group `g` (rows `8 g .. 8 g + 8`).
    pub(crate) fn group(&self, g: usize) -> &[u8] {
        let len = self.data.len() / (self.rows / PACK_ROWS);
        &self.data[g * len..(g + 1) * len]
    }

    /// Row `r` in its original GGML layout (`ty.row_bytes(cols)` bytes).
    pub fn row_bytes(&self, r: usize) -> Vec<u8> {
        let l = self.layout();
        let block = self.ty.block_bytes();
        let mut out = vec![0u8; self.cols / self.ty.block_size() * block];
        for (src, dst) in self.group(r / PACK_ROWS).chunks_exact(l.r8_bytes).zip(out.chunks_exact_mut(block)) {
            (l.unpack)(src, r % PACK_ROWS, dst);
        }
        out
    }

    /// Row `r` dequantized (the reference dequantization of [`PackedMatrix::row_bytes`]).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<(), QuantError> {
        crate::dequantize_row(self.ty, &self.row_bytes(r), out)
    }
}

/// Copies a row's field `row` (a multiple of 4 bytes) into the chunked field at `field` as row `r`.
fn to_chunks(row: &[u8], packed: &mut [u8], field: usize, r: usize) {
    for (c, chunk) in row.chunks_exact(4).enumerate() {
        let at = chunk_at(field, c, r);
        packed[at..at + 4].copy_from_slice(chunk);
    }
}

/// The inverse of [`to_chunks`].
fn from_chunks(packed: &[u8], row: &mut [u8], field: usize, r: usize) {
    for (c, chunk) in row.chunks_exact_mut(4).enumerate() {
        let at = chunk_at(field, c, r);
        chunk.copy_from_slice(&packed[at..at + 4]);
    }
}

/// Writes row `r`'s 144-byte Q4_K block `b` into the eight-row block `dst`.
fn pack_q4k_block(b: &[u8], r: usize, dst: &mut [u8]) {
    dst[2 * r..2 * r + 2].copy_from_slice(&b[0..2]);
    dst[16 + 2 * r..16 + 2 * r + 2].copy_from_slice(&b[2..4]);
    let (sc, m) = unpack_scales_mins(&b[4..16]);
    for s in 0..8 {
        dst[32 + 8 * s + r] = sc[s];
        dst[96 + 16 * (s / 2) + 2 * r + s % 2] = m[s];
    }
    to_chunks(&b[16..144], dst, 160, r);
}

/// The inverse of [`pack_q4k_block`].
fn unpack_q4k_block(src: &[u8], r: usize, b: &mut [u8]) {
    b[0..2].copy_from_slice(&src[2 * r..2 * r + 2]);
    b[2..4].copy_from_slice(&src[16 + 2 * r..16 + 2 * r + 2]);
    let sc: [u8; 8] = std::array::from_fn(|s| src[32 + 8 * s + r]);
    let m: [u8; 8] = std::array::from_fn(|s| src[96 + 16 * (s / 2) + 2 * r + s % 2]);
    pack_scales_mins(&sc, &m, &mut b[4..16]);
    from_chunks(src, &mut b[16..144], 160, r);
}

/// Writes row `r`'s 210-byte Q6_K block `b` into the eight-row block `dst`.
fn pack_q6k_block(b: &[u8], r: usize, dst: &mut [u8]) {
    dst[2 * r..2 * r + 2].copy_from_slice(&b[208..210]);
    for s in 0..16 {
        dst[16 + 16 * (s / 2) + 2 * r + s % 2] = b[192 + s];
    }
    to_chunks(&b[0..128], dst, 144, r);
    to_chunks(&b[128..192], dst, 1168, r);
}

/// The inverse of [`pack_q6k_block`].
fn unpack_q6k_block(src: &[u8], r: usize, b: &mut [u8]) {
    b[208..210].copy_from_slice(&src[2 * r..2 * r + 2]);
    for s in 0..16 {
        b[192 + s] = src[16 + 16 * (s / 2) + 2 * r + s % 2];
    }
    from_chunks(src, &mut b[0..128], 144, r);
    from_chunks(src, &mut b[128..192], 1168, r);
}

/// Bit `k` of plane byte `b`: the fifth bit of value `4 (k / 2) + b + 16 (k % 2)`.
#[inline]
fn q5_plane_value(k: usize, b: usize) -> usize {
    4 * (k / 2) + b + 16 * (k % 2)
}

/// Writes row `r`'s 22-byte Q5_0 block `b` into the eight-row block `dst`.
fn pack_q5_0_block(b: &[u8], r: usize, dst: &mut [u8]) {
    dst[2 * r..2 * r + 2].copy_from_slice(&b[0..2]);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for byte in 0..4 {
        dst[16 + 4 * r + byte] = (0..8).fold(0u8, |acc, k| acc | ((((qh >> q5_plane_value(k, byte)) & 1) as u8) << k));
    }
    to_chunks(&b[6..22], dst, 48, r);
}

/// The inverse of [`pack_q5_0_block`].
fn unpack_q5_0_block(src: &[u8], r: usize, b: &mut [u8]) {
    b[0..2].copy_from_slice(&src[2 * r..2 * r + 2]);
    let mut qh = 0u32;
    for byte in 0..4 {
        for k in 0..8 {
            qh |= u32::from((src[16 + 4 * r + byte] >> k) & 1) << q5_plane_value(k, byte);
        }
    }
    b[2..6].copy_from_slice(&qh.to_le_bytes());
    from_chunks(src, &mut b[6..22], 48, r);
}

/// Writes row `r`'s Q8_0 or Q4_0 block `b` (f16 `d`, then the values) into the eight-row block
/// `dst`: the scales, then the value bytes in 4-byte chunks.
fn pack_plain_block(b: &[u8], r: usize, dst: &mut [u8]) {
    dst[2 * r..2 * r + 2].copy_from_slice(&b[0..2]);
    to_chunks(&b[2..], dst, 16, r);
}

/// The inverse of [`pack_plain_block`].
fn unpack_plain_block(src: &[u8], r: usize, b: &mut [u8]) {
    b[0..2].copy_from_slice(&src[2 * r..2 * r + 2]);
    from_chunks(src, &mut b[2..], 16, r);
}

#[inline]
fn f16_pair(b: &[u8], at: usize) -> f32 {
    crate::float::f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
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
                let mut dot = 0i32;
                for k in 0..32 {
                    let byte = b[chunk_at(160, 8 * (s / 2) + k / 4, r) + k % 4];
                    let q = if s % 2 == 1 { byte >> 4 } else { byte & 0x0F };
                    dot += i32::from(q) * i32::from(a[32 * s + k]);
                }
                sumi += i32::from(b[32 + 8 * s + r]) * dot;
                let m = b[96 + 16 * (s / 2) + 2 * r + s % 2];
                summ += i32::from(m) * (i32::from(bs[2 * s]) + i32::from(bs[2 * s + 1]));
            }
            *acc += x.d[i] * (f16_pair(b, 2 * r) * sumi as f32 - f16_pair(b, 16 + 2 * r) * summ as f32);
        }
    }
    sum
}

/// The scalar reference product of an eight-row Q6_K group with one Q8_K activation row (as
/// [`crate::k_quants::vec_dot_q6k`] per row).
pub(crate) fn dot_q6k_r8(w: &[u8], x: Q8KRow<'_>) -> [f32; PACK_ROWS] {
    let mut sum = [0f32; PACK_ROWS];
    for (i, b) in w.chunks_exact(Q6K_R8_BYTES).enumerate() {
        let a = &x.qs[i * 256..(i + 1) * 256];
        let bs = &x.bsums[i * 16..(i + 1) * 16];
        for (r, acc) in sum.iter_mut().enumerate() {
            let mut sumi = 0i32;
            for j in 0..16 {
                let mut dot = 0i32;
                for (e, &ae) in a.iter().enumerate().skip(16 * j).take(16) {
                    let (h, v) = (e / 128, e % 128);
                    let ql = b[chunk_at(144, 16 * h + (v % 64) / 4, r) + v % 4];
                    let qh = b[chunk_at(1168, 8 * h + (v % 32) / 4, r) + v % 4];
                    let q = ((ql >> (4 * (v / 64))) & 0x0F) | (((qh >> (2 * (v / 32))) & 0x03) << 4);
                    dot += i32::from(q) * i32::from(ae);
                }
                let sc = b[16 + 16 * (j / 2) + 2 * r + j % 2] as i8;
                sumi += i32::from(sc) * (dot - 32 * i32::from(bs[j]));
            }
            *acc += x.d[i] * (f16_pair(b, 2 * r) * sumi as f32);
        }
    }
    sum
}

/// The scalar reference product of an eight-row Q5_0 group with one Q8 activation row (as
/// [`crate::q5_0::vec_dot`] per row).
pub(crate) fn dot_q5_0_r8(w: &[u8], x: Q8Row<'_>) -> [f32; PACK_ROWS] {
    let mut sum = [0f32; PACK_ROWS];
    for (i, b) in w.chunks_exact(Q5_0_R8_BYTES).enumerate() {
        let a = &x.qs[i * 32..(i + 1) * 32];
        for (r, acc) in sum.iter_mut().enumerate() {
            let mut isum = 0i32;
            for k in 0..8 {
                for byte in 0..4 {
                    let e = q5_plane_value(k, byte);
                    let nib = b[chunk_at(48, k / 2, r) + byte];
                    let low = if k % 2 == 0 { nib & 0x0F } else { nib >> 4 };
                    let q = low | (((b[16 + 4 * r + byte] >> k) & 1) << 4);
                    isum += (i32::from(q) - 16) * i32::from(a[e]);
                }
            }
            *acc += f16_pair(b, 2 * r) * x.d[i] * isum as f32;
        }
    }
    sum
}

/// The scalar reference product of an eight-row Q8_0 group with one Q8 activation row (as
/// [`crate::q8_0::vec_dot`] per row).
pub(crate) fn dot_q8_0_r8(w: &[u8], x: Q8Row<'_>) -> [f32; PACK_ROWS] {
    let mut sum = [0f32; PACK_ROWS];
    for (i, b) in w.chunks_exact(Q8_0_R8_BYTES).enumerate() {
        let a = &x.qs[i * 32..(i + 1) * 32];
        for (r, acc) in sum.iter_mut().enumerate() {
            let isum: i32 = a.iter().enumerate().map(|(e, &v)| i32::from(b[chunk_at(16, e / 4, r) + e % 4] as i8) * i32::from(v)).sum();
            *acc += f16_pair(b, 2 * r) * x.d[i] * isum as f32;
        }
    }
    sum
}

/// The scalar reference product of an eight-row Q4_0 group with one Q8 activation row (as
/// [`crate::q4_0::vec_dot`] per row).
pub(crate) fn dot_q4_0_r8(w: &[u8], x: Q8Row<'_>) -> [f32; PACK_ROWS] {
    let mut sum = [0f32; PACK_ROWS];
    for (i, b) in w.chunks_exact(Q4_0_R8_BYTES).enumerate() {
        let a = &x.qs[i * 32..(i + 1) * 32];
        for (r, acc) in sum.iter_mut().enumerate() {
            let mut isum = 0i32;
            for k in 0..16 {
                let byte = b[chunk_at(16, k / 4, r) + k % 4];
                isum += (i32::from(byte & 0x0F) - 8) * i32::from(a[k]) + (i32::from(byte >> 4) - 8) * i32::from(a[k + 16]);
            }
            *acc += f16_pair(b, 2 * r) * x.d[i] * isum as f32;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::scalar::Lcg;

    /// Random rows of `ty` with finite f16 scales in every scale field.
    fn random_rows(g: &mut Lcg, ty: GgmlType, rows: usize, cols: usize) -> QMatrix<'static> {
        let mut data: Vec<u8> = (0..rows * ty.row_bytes(cols).unwrap()).map(|_| g.byte()).collect();
        let fields: &[usize] = match ty {
            GgmlType::Q4K => &[0, 2],
            GgmlType::Q6K => &[208],
            _ => &[0],
        };
        for b in data.chunks_exact_mut(ty.block_bytes()) {
            for &f in fields {
                let v = 0.0005 * (1 + g.small(50).unsigned_abs()) as f32;
                b[f..f + 2].copy_from_slice(&crate::float::f32_to_f16(v).to_le_bytes());
            }
        }
        QMatrix::new(ty, rows, cols, data).unwrap()
    }

    const TYPES: [GgmlType; 5] = [GgmlType::Q4K, GgmlType::Q6K, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q4_0];

    #[test]
    fn packing_round_trips_every_row_byte_for_byte() {
        let mut g = Lcg(11);
        for ty in TYPES {
            // Raw random bytes: every scale field, NaN scales included, must survive.
            let cols = 3 * ty.block_size();
            let data: Vec<u8> = (0..16 * ty.row_bytes(cols).unwrap()).map(|_| g.byte()).collect();
            let m = QMatrix::new(ty, 16, cols, data).unwrap();
            let p = PackedMatrix::pack(&m).unwrap();
            assert_eq!(p.bytes(), 2 * 3 * layout(ty).unwrap().r8_bytes, "{ty}");
            for r in 0..16 {
                assert_eq!(p.row_bytes(r), m.row(r), "{ty} row {r}");
            }
            let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
            p.dequantize_row(13, &mut a).unwrap();
            crate::dequantize_row(ty, m.row(13), &mut b).unwrap();
            assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{ty}");
        }
    }

    #[test]
    fn only_packable_types_with_whole_groups_are_packed() {
        let mut g = Lcg(3);
        assert!(PackedMatrix::pack(&random_rows(&mut g, GgmlType::Q4K, 12, 256)).is_none());
        let q5k = QMatrix::new(GgmlType::Q5K, 8, 256, vec![0u8; 8 * 176]).unwrap();
        assert!(PackedMatrix::pack(&q5k).is_none());
        let f16 = QMatrix::new(GgmlType::F16, 8, 32, vec![0u8; 8 * 64]).unwrap();
        assert!(PackedMatrix::pack(&f16).is_none());
        for ty in TYPES {
            assert!(PackedMatrix::pack(&random_rows(&mut g, ty, 8, 256)).is_some(), "{ty}");
        }
    }

    #[test]
    fn the_reference_products_equal_the_row_major_references_bit_for_bit() {
        let mut g = Lcg(7);
        for ty in TYPES {
            let m = random_rows(&mut g, ty, 8, 1024);
            let p = PackedMatrix::pack(&m).unwrap();
            let x: Vec<f32> = (0..1024).map(|_| g.gauss()).collect();
            let (got, want): ([f32; 8], [f32; 8]) = match ty {
                GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4_0 => {
                    let a = crate::act::Q8Act::quantize(&x, 1, 1024);
                    type Packed = fn(&[u8], Q8Row<'_>) -> [f32; 8];
                    type Rows = fn(&[u8], Q8Row<'_>) -> f32;
                    let (packed, rows): (Packed, Rows) = match ty {
                        GgmlType::Q5_0 => (dot_q5_0_r8, crate::q5_0::vec_dot),
                        GgmlType::Q8_0 => (dot_q8_0_r8, crate::q8_0::vec_dot),
                        _ => (dot_q4_0_r8, crate::q4_0::vec_dot),
                    };
                    (packed(p.group(0), a.row(0)), std::array::from_fn(|r| rows(m.row(r), a.row(0))))
                }
                _ => {
                    let a = crate::act::Q8KAct::quantize(&x, 1, 1024);
                    type Packed = fn(&[u8], Q8KRow<'_>) -> [f32; 8];
                    type Rows = fn(&[u8], Q8KRow<'_>) -> f32;
                    let (packed, rows): (Packed, Rows) = if ty == GgmlType::Q4K {
                        (dot_q4k_r8, crate::k_quants::vec_dot_q4k)
                    } else {
                        (dot_q6k_r8, crate::k_quants::vec_dot_q6k)
                    };
                    (packed(p.group(0), a.row(0)), std::array::from_fn(|r| rows(m.row(r), a.row(0))))
                }
            };
            assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "{ty}: {got:?} vs {want:?}");
        }
    }
}
