//! GGUF files for the vocabulary import. kiln has one GGUF parser, kiln-gguf; this module
//! re-exports what [`crate::layout::import_gguf`] uses so the `kiln_tokenizer::gguf` paths stay.
//!
//! A GGUF file's metadata (`tokenizer.ggml.tokens`, `.merges`, `.token_type`, ...) is read with
//! every length checked against the file's size before anything is allocated, so a damaged or
//! hostile file gives an error naming it, never a huge allocation or a panic (see kiln-gguf).

use std::path::Path;

pub use kiln_gguf::{Array, GgufError, GgufFile, Value};

/// The metadata of a GGUF file: the parsed file (metadata by key in file order, tensor table).
pub type Metadata = GgufFile;

/// Reads the metadata of the GGUF file at `path` (memory-mapped; tensor data is not read).
pub fn read_metadata(path: &Path) -> Result<Metadata, GgufError> {
    GgufFile::open(path)
}

/// Parses GGUF metadata from `bytes`; `path` is for error messages.
pub fn parse_metadata(bytes: &[u8], path: &Path) -> Result<Metadata, GgufError> {
    GgufFile::parse(bytes.to_vec(), path)
}
