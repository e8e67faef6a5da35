//! kiln-quant: llama.cpp's (GGML's) block formats, for running quantized models on the CPU.
//!
//! In: weight rows stored in a GGML type (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
//! Q5_K, Q6_K) and f32 activations. Out: dequantized rows, quantized rows, and matrix products.
//! [`GgmlType`] is the type table (ids as in GGUF files, block sizes, bytes per block); the file
//! format itself lives in kiln-gguf.
#![deny(missing_docs)]

pub mod types;

pub use types::GgmlType;
