//! kiln-gguf: kiln's one reader and writer of GGUF, llama.cpp's model file format.
//!
//! In: a `.gguf` file, often downloaded and so untrusted. Out: its metadata ([`Value`]s by key)
//! and zero-copy views of its tensors ([`TensorView`]: name, [`GgmlType`], dims, bytes). The
//! [`GgufWriter`] writes the same format (version 3) atomically.
//!
//! # Layout (all integers little-endian)
//!
//! ```text
//! header       b"GGUF"  u32 version (2 or 3)  u64 tensor_count  u64 kv_count
//! metadata     kv_count times: string key, u32 value type, value
//!                string = u64 byte length + UTF-8 bytes (no terminator)
//!                value  = the scalar (bool is one byte), a string, or an array:
//!                         u32 element type, u64 length, elements (an element that is itself an
//!                         array is again u32 type, u64 length, elements)
//! tensor infos tensor_count times: string name, u32 n_dims (<= 4), n_dims x u64 dims,
//!                u32 GGML type id, u64 offset (from the data section start)
//! padding      zeros up to the next multiple of the alignment
//! data         tensor bytes at their offsets; each offset a multiple of the alignment
//!                (writers, kiln's included, also pad after the last tensor)
//! ```
//!
//! The alignment is the `general.alignment` key (a `u32` power of two) or 32. Version 1 (32-bit
//! lengths, before August 2023) and big-endian files are refused with a message saying so.
//!
//! # Conventions
//!
//! * **Dims are innermost first**, as GGML stores them: `dims[0]` (`ne[0]`) is the row length,
//!   the contiguous dimension. A PyTorch/numpy weight of shape `[out, in]` is stored with dims
//!   `[in, out]`. gguf-py's `GGUFReader` reports the same order in `ReaderTensor.shape`, while
//!   its `ReaderTensor.data` numpy array has the reversed (row-major) shape; for quantized types
//!   `data` is `uint8` with the last axis in bytes (`[rows, row_bytes]`).
//! * A quantized row is `dims[0] / block_size` blocks; `dims[0]` must be a multiple of the block
//!   size (GGML's rule), which the reader checks.
//! * Metadata keeps the file's order and exact types (an `i32` stays an `i32`); the typed getters
//!   ([`GgufFile::get_u32`], ...) convert integers losslessly and name the key and the expected
//!   type when they cannot.
//!
//! # Untrusted input
//!
//! Every count, length, dimension product, offset and size is checked (checked or 128-bit
//! arithmetic) against the bytes left in the file before anything is allocated or sliced, so a
//! claimed 2^60 metadata entries is refused at once, and memory stays proportional to the file.
//! No input makes the reader panic; every error names the file ([`GgufError`]). Tensor data is
//! checked to lie inside the file at open for every type GGML knows; a tensor of a type kiln
//! cannot compute with (Q2_K, IQ*, ...) is reported when it is asked for, so the metadata (say, a
//! vocabulary) of any GGUF stays readable. A fuzz test (`tests/fuzz.rs`,
//! `scripts/fuzz_gguf.sh`) mutates real files to hold the reader to this.
#![deny(missing_docs)]

mod error;
mod ggml_ids;
mod reader;
mod value;
mod writer;

pub use error::{ErrorKind, GgufError, Result};
pub use ggml_ids::type_name;
pub use kiln_quant::GgmlType;
pub use reader::{GgufFile, TensorInfo, TensorView};
pub use value::{Array, Value, ValueType};
pub use writer::{GgufWriter, MAX_TENSOR_NAME, WRITE_VERSION};

/// The first four bytes of every GGUF file.
pub const MAGIC: &[u8; 4] = b"GGUF";

/// The data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The key that sets the alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// The most dimensions a GGUF tensor has (GGML's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

#[cfg(test)]
mod tests;
