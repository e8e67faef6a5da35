//! Activation quantization: each product quantizes its f32 activations ONCE, then every weight
//! row is dotted against the int8 copy with integer arithmetic (llama.cpp's method).
//!
//! Two layouts, chosen by the weight type:
//! - [`Q8Act`] (for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights): blocks of 32 int8 with an f32 scale
//!   `d` and `s = d * sum(q)` (the block sum that Q4_1/Q5_1's offset term needs; llama.cpp's
//!   Q8_1 keeps the same two numbers as f16).
//! - [`Q8KAct`] (for Q4_K, Q5_K, Q6_K weights): blocks of 256 int8 with an f32 scale and the 16
//!   int16 sums of 16 consecutive values (GGML's Q8_K; the sums give the k-quants' min and offset
//!   terms without touching the values again).
//!
//! Both are symmetric: `q = round(x * 127 / max|x|)` (ties to even), so `q` lies in -127..=127
//! and never -128 (the SIMD kernels rely on that: `maddubs` pair sums stay within i16). The
//! scales are what llama.cpp's x86 code stores: Q8_0/Q8_1's `d = max|x| / 127` and `s` rounded
//! to f16, Q8_K's f32 `d = 1 / (127 / max|x|)`; with them a product's result equals llama.cpp's.
//! Storage is struct-of-arrays, row after row, so a row's blocks are contiguous.

/// Adding and subtracting 1.5 * 2^23 rounds an f32 with |x| < 2^22 to the nearest integer, ties
/// to even, in two exact-rounding additions that vectorize on every x86-64 (no SSE4.1 `round`).
const ROUND_MAGIC: f32 = 12_582_912.0;

#[inline(always)]
fn round_even(v: f32) -> f32 {
    (v + ROUND_MAGIC) - ROUND_MAGIC
}

/// Quantizes one block symmetrically to int8 with `q = round(x * 127 / max|x|)`; returns
/// `max|x|` and the sum of the quants. (llama.cpp's x86 code multiplies by `127 / max|x|`, not by
/// `1 / (max|x| / 127)`: the two differ in the last bit now and then, which moves a value that
/// sits at a half step.)
#[inline]
fn quantize_block(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let mut amax = 0f32;
    for &v in x {
        let a = v.abs();
        // `>` (not f32::max) so the loop vectorizes; a NaN never wins.
        amax = if a > amax { a } else { amax };
    }
    let id = if amax == 0.0 { 0.0 } else { 127.0 / amax };
    let mut sum = 0i32;
    for (o, &v) in q.iter_mut().zip(x) {
        let r = round_even(v * id).clamp(-127.0, 127.0) as i32;
        *o = r as i8;
        sum += r;
    }
    (amax, sum)
}

/// f32 activations quantized to 32-value int8 blocks (the partner of the 32-block weight types).
#[derive(Debug, Clone, Default)]
pub struct Q8Act {
    pub(crate) qs: Vec<i8>,
    pub(crate) d: Vec<f32>,
    pub(crate) s: Vec<f32>,
    pub(crate) sums: Vec<i16>,
    rows: usize,
    cols: usize,
}

/// One activation row of a [`Q8Act`]: `qs.len() == 32 * d.len() == 32 * s.len() == 32 * sums.len()`.
#[derive(Debug, Clone, Copy)]
pub struct Q8Row<'a> {
    /// The int8 values.
    pub qs: &'a [i8],
    /// Per-block scales.
    pub d: &'a [f32],
    /// Per-block `d * sum(q)`.
    pub s: &'a [f32],
    /// Per-block `sum(q)` (exact; the packed Q5_0 kernel's offset term).
    pub sums: &'a [i16],
}

impl Q8Act {
    /// Block size.
    pub const BLOCK: usize = 32;

    /// Quantizes `rows` rows of `cols` values (`cols` a multiple of 32).
    pub fn quantize(x: &[f32], rows: usize, cols: usize) -> Q8Act {
        let mut a = Q8Act::zeroed(rows, cols);
        for r in 0..rows {
            a.quantize_row(r, &x[r * cols..(r + 1) * cols]);
        }
        a
    }

    /// An all-zero buffer for `rows` rows of `cols` values.
    pub fn zeroed(rows: usize, cols: usize) -> Q8Act {
        assert!(cols.is_multiple_of(Self::BLOCK), "Q8 activations need a multiple of 32 values per row");
        let nb = cols / Self::BLOCK;
        Q8Act { qs: vec![0; rows * cols], d: vec![0.0; rows * nb], s: vec![0.0; rows * nb], sums: vec![0; rows * nb], rows, cols }
    }

    /// Quantizes `x` into row `r`.
    pub fn quantize_row(&mut self, r: usize, x: &[f32]) {
        let (cols, nb) = (self.cols, self.cols / Self::BLOCK);
        let (qs, d, s, sums) = (
            &mut self.qs[r * cols..(r + 1) * cols],
            &mut self.d[r * nb..(r + 1) * nb],
            &mut self.s[r * nb..(r + 1) * nb],
            &mut self.sums[r * nb..(r + 1) * nb],
        );
        quantize_q8_row(x, qs, d, s, sums);
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> Q8Row<'_> {
        let (cols, nb) = (self.cols, self.cols / Self::BLOCK);
        Q8Row {
            qs: &self.qs[r * cols..(r + 1) * cols],
            d: &self.d[r * nb..(r + 1) * nb],
            s: &self.s[r * nb..(r + 1) * nb],
            sums: &self.sums[r * nb..(r + 1) * nb],
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// Quantizes one row into caller-provided Q8 buffers (`qs.len() == x.len()`, one `d`/`s`/`sums`
/// per 32).
pub(crate) fn quantize_q8_row(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32], sums: &mut [i16]) {
    for ((((xb, qb), db), sb), ib) in
        x.chunks_exact(32).zip(qs.chunks_exact_mut(32)).zip(d.iter_mut()).zip(s.iter_mut()).zip(sums.iter_mut())
    {
        let (amax, sum) = quantize_block(xb, qb);
        // |sum| <= 32 * 127.
        *ib = sum as i16;
        let scale = amax / 127.0;
        // Kept at f16 precision, as GGML's Q8_0/Q8_1 blocks store them: the products then equal
        // llama.cpp's (an f32 scale differs from its f16 one by up to 2^-11, enough to change a
        // greedy choice between close logits).
        *db = half::f16::from_f32(scale).to_f32();
        *sb = half::f16::from_f32(scale * sum as f32).to_f32();
    }
}

/// f32 activations quantized to GGML's Q8_K: 256-value int8 blocks with an f32 scale and the
/// int16 sums of each 16 consecutive values (the partner of the k-quant weight types).
#[derive(Debug, Clone, Default)]
pub struct Q8KAct {
    pub(crate) qs: Vec<i8>,
    pub(crate) d: Vec<f32>,
    pub(crate) bsums: Vec<i16>,
    rows: usize,
    cols: usize,
}

/// One activation row of a [`Q8KAct`]: `qs.len() == 256 * d.len() == 16 * bsums.len()`.
#[derive(Debug, Clone, Copy)]
pub struct Q8KRow<'a> {
    /// The int8 values.
    pub qs: &'a [i8],
    /// Per-block scales.
    pub d: &'a [f32],
    /// Sums of each 16 consecutive values.
    pub bsums: &'a [i16],
}

impl Q8KAct {
    /// Block size.
    pub const BLOCK: usize = 256;

    /// Quantizes `rows` rows of `cols` values (`cols` a multiple of 256).
    pub fn quantize(x: &[f32], rows: usize, cols: usize) -> Q8KAct {
        let mut a = Q8KAct::zeroed(rows, cols);
        for r in 0..rows {
            a.quantize_row(r, &x[r * cols..(r + 1) * cols]);
        }
        a
    }

    /// An all-zero buffer for `rows` rows of `cols` values.
    pub fn zeroed(rows: usize, cols: usize) -> Q8KAct {
        assert!(cols.is_multiple_of(Self::BLOCK), "Q8_K activations need a multiple of 256 values per row");
        let nb = cols / Self::BLOCK;
        Q8KAct { qs: vec![0; rows * cols], d: vec![0.0; rows * nb], bsums: vec![0; rows * cols / 16], rows, cols }
    }

    /// Quantizes `x` into row `r`.
    pub fn quantize_row(&mut self, r: usize, x: &[f32]) {
        let (cols, nb) = (self.cols, self.cols / Self::BLOCK);
        quantize_q8k_row(
            x,
            &mut self.qs[r * cols..(r + 1) * cols],
            &mut self.d[r * nb..(r + 1) * nb],
            &mut self.bsums[r * cols / 16..(r + 1) * cols / 16],
        );
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> Q8KRow<'_> {
        let (cols, nb) = (self.cols, self.cols / Self::BLOCK);
        Q8KRow {
            qs: &self.qs[r * cols..(r + 1) * cols],
            d: &self.d[r * nb..(r + 1) * nb],
            bsums: &self.bsums[r * cols / 16..(r + 1) * cols / 16],
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// Quantizes one row into caller-provided Q8_K buffers.
pub(crate) fn quantize_q8k_row(x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16]) {
    for (((xb, qb), db), sb) in x.chunks_exact(256).zip(qs.chunks_exact_mut(256)).zip(d.iter_mut()).zip(bsums.chunks_exact_mut(16)) {
        let (amax, _) = quantize_block(xb, qb);
        // GGML's Q8_K keeps an f32 scale, the inverse of the multiplier.
        *db = if amax == 0.0 { 0.0 } else { 1.0 / (127.0 / amax) };
        for (s, q16) in sb.iter_mut().zip(qb.chunks_exact(16)) {
            *s = q16.iter().map(|&v| i16::from(v)).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_blocks_are_symmetric_and_carry_their_sums() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.5) * 0.37).collect();
        let a = Q8Act::quantize(&x, 2, 32);
        for r in 0..2 {
            let row = a.row(r);
            let amax = x[r * 32..(r + 1) * 32].iter().fold(0f32, |m, v| m.max(v.abs()));
            assert_eq!(row.d[0], half::f16::from_f32(amax / 127.0).to_f32());
            assert!(row.qs.iter().any(|&q| q.abs() == 127));
            assert!(row.qs.iter().all(|&q| q != -128));
            let sum: i32 = row.qs.iter().map(|&q| i32::from(q)).sum();
            // s is d * sum(q) with the unrounded d, then rounded to f16 (GGML's Q8_1).
            assert_eq!(row.s[0], half::f16::from_f32(amax / 127.0 * sum as f32).to_f32());
            // Half a step, plus what the f16 rounding of d (2^-11 relative) adds at |q| = 127.
            for (q, v) in row.qs.iter().zip(&x[r * 32..]) {
                assert!((f32::from(*q) * row.d[0] - v).abs() <= row.d[0] * (0.5 + 127.0 / 2048.0) + 1e-6);
            }
        }
    }

    #[test]
    fn q8k_block_sums_and_zero_blocks() {
        let mut x: Vec<f32> = (0..512).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01).collect();
        x[256..].iter_mut().for_each(|v| *v = 0.0);
        let a = Q8KAct::quantize(&x, 1, 512);
        let row = a.row(0);
        for (j, s) in row.bsums.iter().enumerate() {
            assert_eq!(*s, row.qs[16 * j..16 * j + 16].iter().map(|&q| i16::from(q)).sum::<i16>());
        }
        assert_eq!(row.d[1], 0.0);
        assert!(row.qs[256..].iter().all(|&q| q == 0));
    }
}
