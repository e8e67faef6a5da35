//! Matrix products of quantized weights with f32 activations: `out = x W^T` for a weight
//! matrix [`QMatrix`] of `rows` output features by `cols` input features and `n` activation rows.
//!
//! Method (llama.cpp's): the activations are quantized once per product (to Q8 blocks for the
//! 32-block weight types, Q8_K for the k-quants; float weights take them as f32), in parallel
//! over activation rows when `n > 1`; then the output is cut into tiles of weight rows by
//! activation rows, which the pool's threads take from an atomic counter. Each tile walks its
//! weight rows once and dots each against every activation row of the tile, so a weight row is
//! read from memory once per tile and reused from L1 (decode, `n = 1`: tiles are just row
//! chunks, small enough that both threads stay busy to the end). Within a tile, the quantized
//! types' four-row kernels unpack each weight block once for four activation rows; their
//! per-row arithmetic equals the one-row kernel's, so results do not depend on `n` or on the
//! thread count.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::act::{quantize_q8_row, quantize_q8k_row, Q8Act, Q8KAct};
use crate::packed::{PackedMatrix, PACK_ROWS};
use crate::pool::{Pool, SharedMut};
use crate::simd::{self, Kernels, Tier};
use crate::{GgmlType, QuantError};

/// A weight matrix in a GGML type: `rows` rows (output features) of `cols` values (input
/// features), row-major, each row `ty.row_bytes(cols)` bytes. Borrowed (e.g. from a memory-mapped
/// GGUF file) or owned.
#[derive(Debug, Clone)]
pub struct QMatrix<'a> {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Cow<'a, [u8]>,
}

impl<'a> QMatrix<'a> {
    /// Wraps `data` as a `rows` x `cols` matrix of type `ty`.
    pub fn new(ty: GgmlType, rows: usize, cols: usize, data: impl Into<Cow<'a, [u8]>>) -> Result<QMatrix<'a>, QuantError> {
        if ty == GgmlType::Q8K {
            return Err(QuantError::Unsupported { op: "a weight matrix", ty });
        }
        let row_bytes = ty.row_bytes(cols).ok_or(QuantError::NotBlockMultiple { ty, len: cols, block: ty.block_size() })?;
        let data = data.into();
        if data.len() != rows * row_bytes {
            return Err(QuantError::ByteLength { ty, values: rows * cols, expected: rows * row_bytes, got: data.len() });
        }
        Ok(QMatrix { ty, rows, cols, row_bytes, data })
    }

    /// Quantizes row-major f32 `values` (`rows * cols`) to `ty` (see [`crate::quantize_row`]).
    pub fn quantize(ty: GgmlType, rows: usize, cols: usize, values: &[f32]) -> Result<QMatrix<'static>, QuantError> {
        if values.len() != rows * cols {
            return Err(QuantError::ValueLength { what: "matrix values", expected: rows * cols, got: values.len() });
        }
        let row_bytes = ty.row_bytes(cols).ok_or(QuantError::NotBlockMultiple { ty, len: cols, block: ty.block_size() })?;
        let mut data = vec![0u8; rows * row_bytes];
        for (x, out) in values.chunks_exact(cols.max(1)).zip(data.chunks_exact_mut(row_bytes.max(1))) {
            crate::quantize_row(ty, x, out)?;
        }
        QMatrix::new(ty, rows, cols, data)
    }

    /// The element type.
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

    /// The raw bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Bytes of row `r`.
    pub fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// The whole matrix as f32 (the reference dequantization).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, o) in out.chunks_exact_mut(self.cols.max(1)).enumerate().take(self.rows) {
            crate::dequantize_row(self.ty, self.row(r), o).expect("shape checked at construction");
        }
        out
    }

    /// An owned copy.
    pub fn into_owned(self) -> QMatrix<'static> {
        QMatrix { data: Cow::Owned(self.data.into_owned()), ..self }
    }
}

/// `out[j * w.rows() + r] = dot(W[r], x[j])` for `j < n`: `x` holds `n` rows of `w.cols()` f32
/// values, `out` `n` rows of `w.rows()`. Uses the active kernel tier (see [`simd`]).
pub fn matmul(w: &QMatrix<'_>, x: &[f32], n: usize, out: &mut [f32], pool: &Pool) -> Result<(), QuantError> {
    matmul_on(simd::active_kernels(), w, x, n, out, pool)
}

/// [`matmul`] with a forced kernel tier (tests and benchmarks); errors when this CPU lacks it.
pub fn matmul_with_tier(tier: Tier, w: &QMatrix<'_>, x: &[f32], n: usize, out: &mut [f32], pool: &Pool) -> Result<(), QuantError> {
    let k = simd::kernels(tier).ok_or(QuantError::TierUnavailable(tier))?;
    matmul_on(k, w, x, n, out, pool)
}

/// Quantized activations, per weight-type family.
enum Acts<'x> {
    F32(&'x [f32]),
    Q8(Q8Act),
    Q8K(Q8KAct),
}

fn matmul_on(k: &Kernels, w: &QMatrix<'_>, x: &[f32], n: usize, out: &mut [f32], pool: &Pool) -> Result<(), QuantError> {
    let (rows, cols) = (w.rows, w.cols);
    check_lengths(rows, cols, x, n, out)?;
    if n == 0 || rows == 0 {
        return Ok(());
    }
    let rounded: Vec<f32>;
    let acts = match w.ty.block_size() {
        // GGML multiplies F16 (BF16) weights by activations rounded to F16 (BF16): do the same,
        // so that a model's products equal llama.cpp's (the difference, ~1e-4 relative, is
        // amplified by the int8 rounding of the next quantized product).
        1 if w.ty == GgmlType::F16 => {
            rounded = x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
            Acts::F32(&rounded)
        }
        1 if w.ty == GgmlType::Bf16 => {
            rounded = x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect();
            Acts::F32(&rounded)
        }
        1 => Acts::F32(x),
        32 => Acts::Q8(quantize_q8_parallel(x, n, cols, pool)),
        _ => Acts::Q8K(quantize_q8k_parallel(x, n, cols, pool)),
    };
    let plan = if matches!(acts, Acts::F32(_)) {
        Plan::new(rows, n, pool.threads(), ROW_CHUNK).with_act_chunk(FLOAT_ACT_CHUNK)
    } else {
        Plan::new(rows, n, pool.threads(), ROW_CHUNK)
    };
    let next = AtomicUsize::new(0);
    let dst = SharedMut::new(out);
    pool.run(&|_| loop {
        let t = next.fetch_add(1, Ordering::Relaxed);
        if t >= plan.tasks() {
            break;
        }
        let (r0, r1, j0, j1) = plan.task(t);
        // SAFETY: tasks cover disjoint (row, activation) ranges; each output element is written
        // by exactly one task, through this pointer only, while `out` is borrowed mutably.
        let put = |j: usize, r: usize, v: f32| unsafe { *dst.slice(j * rows + r, 1).get_unchecked_mut(0) = v };
        match &acts {
            Acts::F32(x) => {
                // One tile product over the task's rows and activations; its layout is the
                // tile's own (`n` rows of `rows`), copied out row by row.
                let tile = simd::scalar::float_tile_kernel(k, w.ty);
                let (tr, tn) = (r1 - r0, j1 - j0);
                let mut local = vec![0f32; tr * tn];
                tile(&w.data[r0 * w.row_bytes..r1 * w.row_bytes], tr, &x[j0 * cols..j1 * cols], tn, &mut local);
                for (j, o) in (j0..j1).zip(local.chunks_exact(tr)) {
                    // SAFETY: as for `put`.
                    unsafe { dst.slice(j * rows + r0, tr).copy_from_slice(o) };
                }
            }
            Acts::Q8(a) => {
                let (dot, dot4) = (simd::scalar::q8_kernel(k, w.ty), simd::scalar::q8x4_kernel(k, w.ty));
                dot_tile(|r| w.row(r), (r0, r1), (j0, j1), |j| a.row(j), dot, dot4, put);
            }
            Acts::Q8K(a) => {
                let (dot, dot4) = (simd::scalar::q8k_kernel(k, w.ty), simd::scalar::q8kx4_kernel(k, w.ty));
                dot_tile(|r| w.row(r), (r0, r1), (j0, j1), |j| a.row(j), dot, dot4, put);
            }
        }
    });
    Ok(())
}

/// One task's tile of a quantized product: weight rows (or packed eight-row groups) `r0..r1`
/// from `weights` against activation rows
/// `j0..j1`, four activation rows per pass over a weight row where there are four (the weight
/// bytes are read once for the four), the rest one by one. Generic over the activation layout
/// (Q8 blocks or Q8_K) so both families share it.
#[inline(always)]
fn dot_tile<'w, R: Copy, T: Copy>(
    weights: impl Fn(usize) -> &'w [u8],
    (r0, r1): (usize, usize),
    (j0, j1): (usize, usize),
    act: impl Fn(usize) -> R,
    dot: fn(&[u8], R) -> T,
    dot4: fn(&[u8], &[R; 4]) -> [T; 4],
    put: impl Fn(usize, usize, T),
) {
    for r in r0..r1 {
        let wr = weights(r);
        let mut j = j0;
        while j + 4 <= j1 {
            let o = dot4(wr, &[act(j), act(j + 1), act(j + 2), act(j + 3)]);
            (0..4).for_each(|t| put(j + t, r, o[t]));
            j += 4;
        }
        (j..j1).for_each(|j| put(j, r, dot(wr, act(j))));
    }
}

/// Activation rows per task for float weights: their rows are 2 to 4 bytes a value, so a tile
/// of 32 activation rows reads each weight byte once per 32 outputs (8 would leave a 1.3B f32
/// prefill bound by memory bandwidth); 32 rows of 2048 values (256 KB) stay in L2.
const FLOAT_ACT_CHUNK: usize = 32;

/// Weight rows per task: at least 16 (the atomic counter's cost), at most 64 (load balance).
const ROW_CHUNK: (usize, usize) = (16, 64);

/// How a product is cut into tasks: tiles of `row_chunk` weight rows (or eight-row groups, for a
/// packed matrix) by `act_chunk` activation rows, numbered activation tile fastest (consecutive
/// tasks share weight rows).
#[derive(Debug, Clone, Copy)]
struct Plan {
    rows: usize,
    n: usize,
    row_chunk: usize,
    act_chunk: usize,
    act_tiles: usize,
    row_tiles: usize,
}

impl Plan {
    /// `rows` units of weight rows, `n` activation rows; `(min, max)` units per task.
    fn new(rows: usize, n: usize, threads: usize, (min, max): (usize, usize)) -> Plan {
        // Activation tiles of up to 8 rows (8 Q8 rows of 2048 are 16 KB: they stay in L1
        // while a weight row is dotted against each); weight tiles small enough for about 8
        // tasks per thread (load balance), within the given bounds.
        let act_chunk = n.min(8);
        let act_tiles = n.div_ceil(act_chunk);
        let per_thread = 8 * threads.max(1);
        let row_chunk = (rows * act_tiles).div_ceil(per_thread * act_tiles).clamp(min, max).min(rows);
        let row_tiles = rows.div_ceil(row_chunk);
        Plan { rows, n, row_chunk, act_chunk, act_tiles, row_tiles }
    }

    /// The same plan with activation tiles of up to `chunk` rows.
    fn with_act_chunk(self, chunk: usize) -> Plan {
        let act_chunk = self.n.min(chunk);
        Plan { act_chunk, act_tiles: self.n.div_ceil(act_chunk), ..self }
    }

    fn tasks(&self) -> usize {
        self.row_tiles * self.act_tiles
    }

    /// Task `t`'s weight rows `r0..r1` and activation rows `j0..j1`.
    fn task(&self, t: usize) -> (usize, usize, usize, usize) {
        let (rt, at) = (t / self.act_tiles, t % self.act_tiles);
        let r0 = rt * self.row_chunk;
        let j0 = at * self.act_chunk;
        (r0, (r0 + self.row_chunk).min(self.rows), j0, (j0 + self.act_chunk).min(self.n))
    }
}

/// `out[j * w.rows() + r] = dot(W[r], x[j])` for a packed matrix (see [`crate::packed`]): the
/// same result as [`matmul`] of the unpacked matrix on the scalar tier, on every tier.
pub fn matmul_packed(w: &PackedMatrix, x: &[f32], n: usize, out: &mut [f32], pool: &Pool) -> Result<(), QuantError> {
    matmul_packed_on(simd::active_kernels(), w, x, n, out, pool)
}

/// [`matmul_packed`] with a forced kernel tier (tests and benchmarks).
pub fn matmul_packed_with_tier(tier: Tier, w: &PackedMatrix, x: &[f32], n: usize, out: &mut [f32], pool: &Pool) -> Result<(), QuantError> {
    let k = simd::kernels(tier).ok_or(QuantError::TierUnavailable(tier))?;
    matmul_packed_on(k, w, x, n, out, pool)
}

/// Eight-row groups per task (16 to 64 rows, as for row-major matrices).
const GROUP_CHUNK: (usize, usize) = (2, 8);

fn matmul_packed_on(k: &Kernels, w: &PackedMatrix, x: &[f32], n: usize, out: &mut [f32], pool: &Pool) -> Result<(), QuantError> {
    let (rows, cols) = (w.rows(), w.cols());
    check_lengths(rows, cols, x, n, out)?;
    if n == 0 || rows == 0 {
        return Ok(());
    }
    let plan = Plan::new(rows / PACK_ROWS, n, pool.threads(), GROUP_CHUNK);
    match w.ty() {
        ty if ty.block_size() == 32 => {
            let acts = quantize_q8_parallel(x, n, cols, pool);
            let (dot, dot4) = simd::scalar::packed_q8_kernels(k, ty);
            packed_tiles(w, &plan, pool, |j| acts.row(j), dot, dot4, out);
        }
        ty => {
            let acts = quantize_q8k_parallel(x, n, cols, pool);
            let (dot, dot4) = if ty == GgmlType::Q4K { (k.q4k_r8, k.q4k_r8x4) } else { (k.q6k_r8, k.q6k_r8x4) };
            packed_tiles(w, &plan, pool, |j| acts.row(j), dot, dot4, out);
        }
    }
    Ok(())
}

/// The tasks of a packed product: each takes a tile of eight-row groups by activation rows,
/// four activation rows per pass over a group where there are four.
fn packed_tiles<R: Copy>(
    w: &PackedMatrix,
    plan: &Plan,
    pool: &Pool,
    act: impl Fn(usize) -> R + Sync,
    dot: fn(&[u8], R) -> [f32; PACK_ROWS],
    dot4: fn(&[u8], &[R; 4]) -> [[f32; PACK_ROWS]; 4],
    out: &mut [f32],
) {
    let rows = w.rows();
    let next = AtomicUsize::new(0);
    let dst = SharedMut::new(out);
    pool.run(&|_| loop {
        let t = next.fetch_add(1, Ordering::Relaxed);
        if t >= plan.tasks() {
            break;
        }
        let (g0, g1, j0, j1) = plan.task(t);
        // SAFETY: tasks cover disjoint (group, activation) ranges, so each 8-value output run
        // is written by one task only, through this pointer, while `out` is borrowed mutably.
        let put = |j: usize, g: usize, v: [f32; PACK_ROWS]| unsafe { dst.slice(j * rows + g * PACK_ROWS, PACK_ROWS).copy_from_slice(&v) };
        dot_tile(|g| w.group(g), (g0, g1), (j0, j1), &act, dot, dot4, put);
    });
}

/// The activation and output lengths of an `n`-row product with a `rows` x `cols` matrix.
fn check_lengths(rows: usize, cols: usize, x: &[f32], n: usize, out: &[f32]) -> Result<(), QuantError> {
    if x.len() != n * cols {
        return Err(QuantError::ValueLength { what: "activations", expected: n * cols, got: x.len() });
    }
    if out.len() != n * rows {
        return Err(QuantError::ValueLength { what: "output", expected: n * rows, got: out.len() });
    }
    Ok(())
}

/// Activation rows per quantization task.
const QUANT_ROWS: usize = 4;

fn quantize_q8_parallel(x: &[f32], n: usize, cols: usize, pool: &Pool) -> Q8Act {
    let mut a = Q8Act::zeroed(n, cols);
    if n == 1 {
        a.quantize_row(0, x);
        return a;
    }
    let nb = cols / 32;
    let (qs, d, s, sums) = (SharedMut::new(&mut a.qs), SharedMut::new(&mut a.d), SharedMut::new(&mut a.s), SharedMut::new(&mut a.sums));
    // SAFETY: row j's ranges are disjoint from every other row's; each row is claimed once.
    each_row(n, pool, &|j| unsafe {
        quantize_q8_row(
            &x[j * cols..(j + 1) * cols],
            qs.slice(j * cols, cols),
            d.slice(j * nb, nb),
            s.slice(j * nb, nb),
            sums.slice(j * nb, nb),
        )
    });
    a
}

fn quantize_q8k_parallel(x: &[f32], n: usize, cols: usize, pool: &Pool) -> Q8KAct {
    let mut a = Q8KAct::zeroed(n, cols);
    if n == 1 {
        a.quantize_row(0, x);
        return a;
    }
    let nb = cols / 256;
    let (qs, d, bs) = (SharedMut::new(&mut a.qs), SharedMut::new(&mut a.d), SharedMut::new(&mut a.bsums));
    // SAFETY: as above.
    each_row(n, pool, &|j| unsafe {
        quantize_q8k_row(&x[j * cols..(j + 1) * cols], qs.slice(j * cols, cols), d.slice(j * nb, nb), bs.slice(j * nb * 16, nb * 16))
    });
    a
}

/// Calls `f(j)` once for every activation row `j` in `0..n`, rows claimed [`QUANT_ROWS`] at a
/// time by the pool's threads.
fn each_row(n: usize, pool: &Pool, f: &(dyn Fn(usize) + Sync)) {
    let next = AtomicUsize::new(0);
    pool.run(&|_| loop {
        let j0 = next.fetch_add(QUANT_ROWS, Ordering::Relaxed);
        if j0 >= n {
            break;
        }
        (j0..(j0 + QUANT_ROWS).min(n)).for_each(f);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_every_output_once() {
        for (rows, n, threads) in [(1, 1, 2), (17, 1, 2), (2048, 1, 2), (2048, 512, 2), (5504, 33, 3), (100, 7, 1), (64, 2, 16)] {
            let p = Plan::new(rows, n, threads, ROW_CHUNK);
            let mut seen = vec![0u8; rows * n];
            for t in 0..p.tasks() {
                let (r0, r1, j0, j1) = p.task(t);
                assert!(r0 < r1 && j0 < j1, "{p:?} task {t}");
                for j in j0..j1 {
                    for r in r0..r1 {
                        seen[j * rows + r] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "{p:?}");
        }
    }
}
