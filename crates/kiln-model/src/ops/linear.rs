//! The batch-invariant projection used when decoding: every output one fixed-order dot product,
//! so a row's result does not depend on the batch it is in.

use candle_core::{bail, Result, Tensor};
use rayon::prelude::*;

use super::{dot, fusable, with_f32};

/// `y (rows, out) = x (rows, in) · wᵀ` for w (out, in), every output element one [`dot`] of
/// fixed lane order: a row's result does not depend on how many other rows are in the call.
/// That is what lets a server batch the decode steps of several sequences and still give each
/// exactly what it gets alone. Parallel over blocks of outputs; each block of `w` is read once
/// for all rows (decoding is bound by reading the weights).
pub fn linear_rows_f32(x: &[f32], w: &[f32], y: &mut [f32], rows: usize, input: usize, out: usize) {
    assert!(x.len() == rows * input && w.len() == out * input && y.len() == rows * out, "linear_rows_f32: mismatched shapes");
    if rows == 0 || out == 0 {
        return;
    }
    const BLOCK: usize = 32; // outputs per task
    let mut yt = vec![0f32; out * rows]; // (out, rows): each task writes a contiguous block
    yt.par_chunks_mut(BLOCK * rows).enumerate().for_each(|(b, block)| {
        let o0 = b * BLOCK;
        for (j, ys) in block.chunks_mut(rows).enumerate() {
            let wr = &w[(o0 + j) * input..(o0 + j + 1) * input];
            for (r, yv) in ys.iter_mut().enumerate() {
                *yv = dot_fast(&x[r * input..(r + 1) * input], wr);
            }
        }
    });
    for (j, col) in yt.chunks(rows).enumerate() {
        for (r, &v) in col.iter().enumerate() {
            y[r * out + j] = v;
        }
    }
}

/// `x (S, in) · wᵀ` for `w (out, in)`, f32 on the CPU: [`linear_rows_f32`] on tensors.
pub fn linear_rows(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (rows, input) = x.dims2()?;
    let (out, w_in) = w.dims2()?;
    if w_in != input || !fusable(&[x, w]) {
        bail!("linear_rows: x {:?} and w {:?} must be f32 CPU (S, in) and (out, in)", x.dims(), w.dims());
    }
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    let mut y = vec![0f32; rows * out];
    with_f32(&x, |xs| {
        with_f32(&w, |ws| {
            linear_rows_f32(xs, ws, &mut y, rows, input, out);
            Ok(())
        })
    })?;
    Tensor::from_vec(y, (rows, out), x.device())
}

/// [`dot`] compiled for AVX2 where the CPU has it (the same operations in the same order, so
/// the same bits as long as one build runs on one machine).
#[inline]
fn dot_fast(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
            dot(a, b)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot(a, b)
}
