//! Fused ops with forward AND backward, as candle custom ops (f32 on the CPU).
//!
//! candle's own fused `rms_norm`, `softmax_last_dim`, `rope` and `sdpa` have no backward, and the
//! composed ops that do (narrow/cat/neg/mul, max/sub/exp/sum/div, ...) make one pass over memory
//! and one backward node each. Each op here makes one pass forward and one backward, parallel over
//! rows or heads (rayon), with plain loops the compiler vectorises (reductions over 16 fixed
//! lanes, an `exp` without libm calls). [`causal_attention`] is one kernel per head: a
//! register-tiled multiply-add microkernel compiled for AVX2+FMA (chosen at run time) that only
//! computes the causal half, with the softmax in between. Every op:
//!
//! - runs its kernel when all its float inputs are f32 on the CPU, and otherwise the composed
//!   reference op (`*_reference`), which is also what the tests check the kernels against, in
//!   value and in gradient;
//! - takes contiguous inputs (it makes them so) and returns a contiguous result;
//! - is deterministic: the same inputs give the same bits whatever the thread count.
//!
//! One file per op family: [`rms_norm()`] (`rms_norm.rs`), [`rope()`] (`rope.rs`),
//! [`causal_softmax`] (`softmax.rs`), [`causal_attention`] and its kernel (`attention.rs`),
//! [`swiglu()`] (`swiglu.rs`), [`cross_entropy()`] (`cross_entropy.rs`) and the batch-invariant
//! projection [`linear_rows`] (`linear.rs`); the shared helpers (storage access, row
//! parallelism, the fixed-lane reductions and `exp`) are here.

mod attention;
mod cross_entropy;
mod linear;
mod rms_norm;
mod rope;
mod softmax;
mod swiglu;
#[cfg(test)]
mod test_util;

use candle_core::{bail, CpuStorage, DType, Layout, Result, Tensor};
use rayon::prelude::*;

pub use attention::{
    causal_attention, causal_attention_bwd_f32, causal_attention_f32, causal_attention_matmul, causal_attention_reference,
};
pub use cross_entropy::{cross_entropy, cross_entropy_grad_inplace_f32, cross_entropy_reference, cross_entropy_rows};
pub use linear::{linear_rows, linear_rows_f32};
pub use rms_norm::{rms_norm, rms_norm_bwd_f32, rms_norm_f32, rms_norm_reference};
pub use rope::{rope, rope_reference, rope_row_f32};
pub use softmax::{causal_softmax, causal_softmax_reference};
pub use swiglu::{swiglu, swiglu_bwd_f32, swiglu_f32, swiglu_reference};

/// Elements per parallel task: below this a kernel runs on the calling thread.
const GRAIN: usize = 1 << 14;
/// Lanes of the vectorised reductions (fixed, so results are independent of the ISA).
const LANES: usize = 16;

/// Whether the fused kernels apply: every tensor f32 and on the CPU.
pub fn fusable(ts: &[&Tensor]) -> bool {
    ts.iter().all(|t| t.dtype() == DType::F32 && t.device().is_cpu())
}

/// The contiguous f32 data of a storage + layout.
fn f32s<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{op}: expected a contiguous input"),
    }
}

fn u32s<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [u32]> {
    let data = s.as_slice::<u32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{op}: expected a contiguous input"),
    }
}

/// Calls `f(row_index, row)` for every `row_len`-long row of `out`, in parallel when large.
fn for_rows<F>(out: &mut [f32], row_len: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    if row_len == 0 || out.is_empty() {
        return;
    }
    if out.len() <= GRAIN {
        out.chunks_mut(row_len).enumerate().for_each(|(i, r)| f(i, r));
        return;
    }
    let per = (GRAIN / row_len).max(1);
    out.par_chunks_mut(per * row_len).enumerate().for_each(|(c, chunk)| {
        chunk.chunks_mut(row_len).enumerate().for_each(|(k, r)| f(c * per + k, r));
    });
}

/// Calls `f(offset, chunk_a, chunk_b)` over matching chunks of two equal-length outputs.
fn for_chunks2<F>(a: &mut [f32], b: &mut [f32], f: F)
where
    F: Fn(usize, &mut [f32], &mut [f32]) + Sync + Send,
{
    if a.len() <= GRAIN {
        f(0, a, b);
        return;
    }
    a.par_chunks_mut(GRAIN).zip(b.par_chunks_mut(GRAIN)).enumerate().for_each(|(c, (x, y))| f(c * GRAIN, x, y));
}

/// e^x to ~1 ulp (Cephes expf), in straight-line code that vectorises (libm's `expf` does not).
/// Arguments below -87 give ~1e-38 instead of 0, above 88 give ~1.6e38; NaN stays NaN.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC; // round(x / ln 2)
    let ni = t.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4; // x - n ln 2, in two parts
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 0.5;
    let y = p * (r * r) + r + 1.0;
    y * f32::from_bits(((ni + 127) << 23) as u32)
}

fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    let m = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    acc.iter().fold(m, |m, &v| if v > m { v } else { m })
}

fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (mut ca, mut cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum::<f32>()
}

/// `sum(x²)` of f32 data: 16-lane partial sums per block of `GRAIN`, blocks summed in order
/// (deterministic whatever the thread count).
pub fn sum_of_squares_f32(x: &[f32]) -> f32 {
    if x.len() <= GRAIN {
        return dot(x, x);
    }
    let parts: Vec<f32> = x.par_chunks(GRAIN).map(|c| dot(c, c)).collect();
    parts.iter().sum()
}

/// `out[j] = exp(x[j] * scale - shift)`; returns the sum of `out`.
fn exp_into(out: &mut [f32], x: &[f32], scale: f32, shift: f32) -> f32 {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = exp(v * scale - shift);
    }
    sum(out)
}

/// The f32 data of a contiguous CPU tensor, under its read lock.
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cs) => f(f32s(cs, layout, "causal_attention")?),
        _ => bail!("expected a CPU tensor"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use test_util::randn;

    #[test]
    fn exp_is_accurate_and_keeps_nan() {
        for i in -87_000..=87_900 {
            let x = i as f32 * 1e-3 + 1.3e-4;
            let (a, b) = (exp(x), x.exp());
            assert!(((a - b) / b).abs() <= 3e-7, "exp({x}) = {a}, libm {b}");
        }
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        assert!(exp(f32::NAN).is_nan());
    }

    /// The public functions run the kernels on f32 and the references on other dtypes, and both
    /// carry gradients.
    #[test]
    fn dispatch_by_dtype() {
        let x = randn(&[2, 3, 4, 8], 1.0, 1);
        let (cos, sin) = (randn(&[4, 4], 1.0, 2).cos().unwrap(), randn(&[4, 4], 1.0, 2).sin().unwrap());
        let w = randn(&[8], 1.0, 3);
        for dtype in [DType::F32, DType::F64] {
            let (x, cos, sin, w) =
                (x.to_dtype(dtype).unwrap(), cos.to_dtype(dtype).unwrap(), sin.to_dtype(dtype).unwrap(), w.to_dtype(dtype).unwrap());
            let xv = Var::from_tensor(&x).unwrap();
            let y = rms_norm(&rope(xv.as_tensor(), &cos, &sin).unwrap(), &w, 1e-5).unwrap();
            let y = swiglu(&y, &y).unwrap();
            let y = causal_attention(&y, &y, &y, 0.5).unwrap();
            let y =
                cross_entropy(&y.reshape((24, 8)).unwrap().to_dtype(dtype).unwrap(), &Tensor::zeros(24, DType::U32, &Device::Cpu).unwrap())
                    .unwrap();
            let g = y.backward().unwrap();
            let gx = g.get(xv.as_tensor()).expect("gradient reaches x");
            assert_eq!(gx.dtype(), dtype);
            assert!(gx.abs().unwrap().sum_all().unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap() > 0.0);
        }
    }
}
