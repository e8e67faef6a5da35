//! kiln-quant: llama.cpp's (GGML's) block formats, for running quantized models on the CPU.
//!
//! In: weight rows stored in a GGML type (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
//! Q5_K, Q6_K) and f32 activations. Out: dequantized rows, quantized rows, and matrix products.
//! [`GgmlType`] is the type table (ids as in GGUF files, block sizes, bytes per block); the file
//! format itself lives in kiln-gguf. This crate only sees the bytes of rows.
//!
//! # Formats
//!
//! | type | values/block | bytes | value |
//! |------|-----|-----|-------|
//! | Q4_0 | 32 | 18 | `(q - 8) d`, q 4-bit |
//! | Q4_1 | 32 | 20 | `q d + m` |
//! | Q5_0 | 32 | 22 | `(q - 16) d`, q 5-bit (fifth bits in a u32) |
//! | Q5_1 | 32 | 24 | `q d + m` |
//! | Q8_0 | 32 | 34 | `q d`, q int8 |
//! | Q4_K | 256 | 144 | `(d sc_j) q - dmin m_j`, 8 sub-blocks of 32 with 6-bit `sc`, `m` |
//! | Q5_K | 256 | 176 | as Q4_K with 5-bit q |
//! | Q6_K | 256 | 210 | `(d sc_j) (q - 32)`, 16 sub-blocks of 16 with int8 `sc` |
//! | Q8_K | 256 | 292 | f32 `d`, int8 q, int16 sums of 16 (activations only) |
//!
//! `d`, `dmin`, `m` are f16. Byte layouts are documented in each format's module ([`q4_0`],
//! [`q4_1`], [`q5_0`], [`q5_1`], [`q8_0`], [`k_quants`]).
//!
//! # The reference path
//!
//! [`dequantize_row`] and [`quantize_row`] are the definitions: plain scalar code, one module per
//! format. Dequantization equals gguf-py's `gguf.quants.dequantize` bit for bit for every type
//! (F16 included, NaN payloads too); quantization to F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0
//! writes the same bytes as `gguf.quants.quantize` (same f32 operations, same rounding: truncation
//! after `+ 0.5`/`+ 8.5`/`+ 16.5`, round-half-away for Q8_0). tests/gguf_py_fixtures.rs checks
//! both against files written by `scripts/make_quant_fixtures.py`. gguf-py cannot quantize
//! k-quants; [`k_quantize`] is kiln's own search (relative RMS error on Gaussian rows: Q4_K 0.070,
//! Q5_K 0.035, Q6_K 0.017), with [`quantize_row_weighted`] for importance weights.
//!
//! # Products
//!
//! [`matmul`] computes `x W^T` for a [`QMatrix`] and `n` activation rows, as llama.cpp does:
//! - the activations are quantized once per product ([`act`]): to int8 blocks of 32 with an f32
//!   scale and block sum for the 32-block types, to Q8_K for the k-quants (float weights use the
//!   f32 activations directly);
//! - each weight row is dotted with integer arithmetic (`vpmaddubsw`/`vpmaddwd`, or `vpdpbusd`)
//!   per block, and the per-block integer sums are scaled and accumulated in f32. The scalar
//!   `vec_dot` functions in the format modules define the result; SIMD tiers equal them exactly
//!   where every partial sum is an integer below 2^24 and otherwise differ only by f32
//!   summation order (tolerance `1e-5 * sum |w_i a_i|`);
//! - output rows are split into tiles (weight rows x up to 8 activation rows, 32 for float
//!   weights) that the threads of a persistent [`Pool`] take from an atomic counter; within a
//!   tile, four-row kernels unpack each weight block once for four activation rows, and float
//!   weights go through a register- and cache-blocked tile product (3 weight rows x 4
//!   activation rows per step, one FMA chain per output). Results do not depend on the thread
//!   count or on `n` (row `j` of an `n`-row product equals the one-row product of `x[j]`, bit
//!   for bit).
//!
//! [`PackedMatrix`] holds Q4_K, Q6_K, Q5_0, Q8_0 and Q4_0 matrices with eight rows interleaved
//! block by block ([`packed`]; kiln-model packs GGUF weights at load) and [`matmul_packed`]
//! multiplies them: one SIMD register holds eight rows, so activation bytes are loaded once per
//! eight rows and the eight results come out as one vector (1.2x to 2.4x faster than the
//! row-major kernels, and equal to the scalar references bit for bit).
//!
//! # Kernel tiers
//!
//! [`simd`] picks, once, the best of `scalar`, `avx2` (AVX2+FMA+F16C) and `avx512` (AVX-512
//! F/BW/VL+VNNI) that the CPU supports, or the tier named by `KILN_SIMD=scalar|avx2|avx512`
//! (a tier the CPU lacks falls back, with a warning). AMX is never used. A SIMD tier is checked
//! against the reference once before use and dropped, with an error log, if it disagrees.
//! [`matmul_with_tier`] forces a tier for tests and benchmarks.
//!
//! # Example
//!
//! ```
//! use kiln_quant::{matmul, GgmlType, Pool, QMatrix};
//!
//! let (rows, cols) = (4, 256);
//! let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.01).collect();
//! let w = QMatrix::quantize(GgmlType::Q4K, rows, cols, &w).unwrap();
//! let x = vec![0.5f32; cols];
//! let mut out = vec![0f32; rows];
//! matmul(&w, &x, 1, &mut out, &Pool::new(2)).unwrap();
//! ```
//!
//! Throughput: `cargo run --release -p kiln-quant --example matvec` (the 1.3B model's shapes,
//! GFLOP/s and weight GB/s per type, tier and thread count; `--model` times a whole decode token);
//! `--features candle-compare --example candle_compare` compares with candle's `QMatMul`.
#![deny(missing_docs)]

pub mod act;
pub mod attention;
mod error;
pub mod float;
pub mod k_quantize;
pub mod k_quants;
pub mod matmul;
pub mod packed;
pub mod pool;
pub mod q4_0;
pub mod q4_1;
pub mod q5_0;
pub mod q5_1;
pub mod q8_0;
pub mod simd;
pub mod types;

pub use attention::{attend, Attend, KvType};
pub use error::QuantError;
pub use matmul::{matmul, matmul_packed, matmul_packed_with_tier, matmul_with_tier, QMatrix};
pub use packed::PackedMatrix;
pub use pool::Pool;
pub use simd::{active_tier, Tier};
pub use types::GgmlType;

/// Checks that `bytes` holds exactly `values` values of `ty`.
fn check_bytes(ty: GgmlType, values: usize, bytes: usize) -> Result<(), QuantError> {
    let expected = ty.row_bytes(values).ok_or(QuantError::NotBlockMultiple { ty, len: values, block: ty.block_size() })?;
    if bytes != expected {
        return Err(QuantError::ByteLength { ty, values, expected, got: bytes });
    }
    Ok(())
}

/// Dequantizes `out.len()` values of type `ty` from `bytes` (the scalar reference path: equal to
/// gguf-py's `gguf.quants.dequantize` bit for bit). Q8_K (an activation-only type) is not
/// supported.
pub fn dequantize_row(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    check_bytes(ty, out.len(), bytes.len())?;
    // The float types are blocks of one value.
    let per_block: fn(&[u8], &mut [f32]) = match ty {
        GgmlType::F32 => float::dequantize_f32,
        GgmlType::F16 => float::dequantize_f16,
        GgmlType::Bf16 => float::dequantize_bf16,
        GgmlType::Q4_0 => q4_0::dequantize_block,
        GgmlType::Q4_1 => q4_1::dequantize_block,
        GgmlType::Q5_0 => q5_0::dequantize_block,
        GgmlType::Q5_1 => q5_1::dequantize_block,
        GgmlType::Q8_0 => q8_0::dequantize_block,
        GgmlType::Q4K => k_quants::dequantize_q4k,
        GgmlType::Q5K => k_quants::dequantize_q5k,
        GgmlType::Q6K => k_quants::dequantize_q6k,
        GgmlType::Q8K => return Err(QuantError::Unsupported { op: "dequantize", ty }),
    };
    for (b, o) in bytes.chunks_exact(ty.block_bytes()).zip(out.chunks_exact_mut(ty.block_size())) {
        per_block(b, o);
    }
    Ok(())
}

/// Quantizes `values` to type `ty` into `out` (exactly `ty.row_bytes(values.len())` bytes).
///
/// F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 produce the same bytes as gguf-py's
/// `gguf.quants.quantize`. Q4_K, Q5_K and Q6_K use kiln's own search ([`k_quantize`]) minimising
/// plain squared error. Q8_K is not supported (activations use [`act::Q8KAct`]).
pub fn quantize_row(ty: GgmlType, values: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    match ty {
        GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => {
            let ones = vec![1f32; values.len()];
            quantize_row_weighted(ty, values, &ones, out)
        }
        _ => {
            check_bytes(ty, values.len(), out.len())?;
            let per_block: fn(&[f32], &mut [u8]) = match ty {
                GgmlType::F32 => float::quantize_f32,
                GgmlType::F16 => float::quantize_f16,
                GgmlType::Bf16 => float::quantize_bf16,
                GgmlType::Q4_0 => q4_0::quantize_block,
                GgmlType::Q4_1 => q4_1::quantize_block,
                GgmlType::Q5_0 => q5_0::quantize_block,
                GgmlType::Q5_1 => q5_1::quantize_block,
                GgmlType::Q8_0 => q8_0::quantize_block,
                _ => return Err(QuantError::Unsupported { op: "quantize", ty }),
            };
            for (x, o) in values.chunks_exact(ty.block_size()).zip(out.chunks_exact_mut(ty.block_bytes())) {
                per_block(x, o);
            }
            Ok(())
        }
    }
}

/// Quantizes `values` to a k-quant (Q4_K, Q5_K, Q6_K) minimising `sum importance * error^2`
/// (an importance matrix's per-column weights, or any non-negative weights).
pub fn quantize_row_weighted(ty: GgmlType, values: &[f32], importance: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    check_bytes(ty, values.len(), out.len())?;
    if importance.len() != values.len() {
        return Err(QuantError::ValueLength { what: "importance", expected: values.len(), got: importance.len() });
    }
    let per_block: fn(&[f32], &[f32], &mut [u8]) = match ty {
        GgmlType::Q4K => k_quantize::quantize_q4k_block,
        GgmlType::Q5K => k_quantize::quantize_q5k_block,
        GgmlType::Q6K => k_quantize::quantize_q6k_block,
        _ => return Err(QuantError::Unsupported { op: "weighted quantization", ty }),
    };
    for ((x, w), o) in values.chunks_exact(256).zip(importance.chunks_exact(256)).zip(out.chunks_exact_mut(ty.block_bytes())) {
        per_block(x, w, o);
    }
    Ok(())
}
