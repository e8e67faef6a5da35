//! kiln-quant: llama.cpp's (GGML's) block formats, for running quantized models on the CPU.
//!
//! In: weight rows stored in a GGML type (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
//! Q5_K, Q6_K) and f32 activations. Out: dequantized rows, quantized rows, and matrix products.
//! [`GgmlType`] is the type table (ids as in GGUF files, block sizes, bytes per block); the file
//! format itself lives in kiln-gguf.
#![deny(missing_docs)]

pub mod act;
mod error;
pub mod float;
pub mod k_quantize;
pub mod k_quants;
pub mod matmul;
pub mod pool;
pub mod q4_0;
pub mod q4_1;
pub mod q5_0;
pub mod q5_1;
pub mod q8_0;
pub mod simd;
pub mod types;

pub use error::QuantError;
pub use matmul::{matmul, matmul_with_tier, QMatrix};
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
    let per_block: fn(&[u8], &mut [f32]) = match ty {
        GgmlType::F32 => return Ok(float::dequantize_f32(bytes, out)),
        GgmlType::F16 => return Ok(float::dequantize_f16(bytes, out)),
        GgmlType::Bf16 => return Ok(float::dequantize_bf16(bytes, out)),
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
                GgmlType::F32 => return Ok(float::quantize_f32(values, out)),
                GgmlType::F16 => return Ok(float::quantize_f16(values, out)),
                GgmlType::Bf16 => return Ok(float::quantize_bf16(values, out)),
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
