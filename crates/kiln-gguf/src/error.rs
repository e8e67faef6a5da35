//! Errors of the reader and the writer. Every error is a [`GgufError`]: the file it concerns
//! plus an [`ErrorKind`] saying what is wrong, where (byte offsets, key and tensor names) and how
//! to fix it. Putting the path in the wrapper means no error can be built without it.

use std::path::PathBuf;

/// An error about one GGUF file: displays as `FILE: what is wrong`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct GgufError {
    /// The file read or written.
    pub path: PathBuf,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl GgufError {
    /// An error about `path`.
    pub fn new(path: impl Into<PathBuf>, kind: ErrorKind) -> Self {
        Self { path: path.into(), kind }
    }
}

/// Result alias for this crate.
pub type Result<T, E = GgufError> = std::result::Result<T, E>;

/// What is wrong with a GGUF file (see [`GgufError`] for the file).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Opening, mapping, writing or renaming failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done (`open`, `memory-map`, `write`, ...).
        action: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file does not start with the GGUF magic.
    #[error("not a GGUF file (it starts with {found}, a GGUF file starts with the magic \"GGUF\" at byte 0)")]
    NotGguf {
        /// The first bytes, escaped, or a note that the file is shorter than the magic.
        found: String,
    },
    /// A GGUF version kiln does not read.
    #[error("GGUF version {version} is not supported: {hint}")]
    UnsupportedVersion {
        /// The version in the header.
        version: u32,
        /// What to do about it.
        hint: &'static str,
    },
    /// The file ends inside a structure.
    #[error(
        "truncated at byte {offset}: {what} needs {needed} bytes but the file has only {left} left (file size {file_len}): \
         the file is cut short; download or convert it again"
    )]
    Truncated {
        /// Where the structure starts.
        offset: u64,
        /// What was being read.
        what: String,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left in the file from `offset`.
        left: u64,
        /// Size of the file.
        file_len: u64,
    },
    /// A count or length larger than the rest of the file could hold: refused before allocating.
    #[error(
        "{what} at byte {offset} claims {count} entries, which cannot fit in the {left} bytes left \
         (at most {max}): the file is damaged or truncated"
    )]
    CountTooLarge {
        /// Where the count is.
        offset: u64,
        /// What is being counted.
        what: String,
        /// The count in the file.
        count: u64,
        /// Bytes left after the count.
        left: u64,
        /// The most entries that many bytes could hold.
        max: u64,
    },
    /// A structure that is present but invalid (not UTF-8, an unknown value type, too deep).
    #[error("{what} at byte {offset}: the file is damaged or was written by a buggy tool")]
    Malformed {
        /// Where it is.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A problem inside the value of one metadata key.
    #[error("metadata key `{key}`: {source}")]
    InKey {
        /// The key.
        key: String,
        /// What is wrong with its value.
        source: Box<ErrorKind>,
    },
    /// The same metadata key twice (llama.cpp and gguf-py refuse this too).
    #[error("metadata key `{key}` appears twice (second at byte {offset}); keys must be unique")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Where the second one is.
        offset: u64,
    },
    /// `general.alignment` is not a nonzero power of two stored as `u32`.
    #[error("`general.alignment` is {found}; it must be a u32 power of two (llama.cpp's default is 32)")]
    BadAlignment {
        /// The value found.
        found: String,
    },
    /// A problem inside one tensor's entry in the tensor table.
    #[error("tensor #{index} `{name}` (info at byte {offset}): {what}")]
    BadTensorInfo {
        /// Position in the tensor table.
        index: u64,
        /// Its name (empty if the name itself could not be read).
        name: String,
        /// Where its info starts.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The same tensor name twice.
    #[error("tensor `{name}` appears twice in the tensor table; names must be unique")]
    DuplicateTensor {
        /// The name.
        name: String,
    },
    /// A tensor's data is outside the file.
    #[error(
        "tensor `{name}` data [{start} .. {end}) runs past the end of the file ({file_len} bytes): \
         the file is truncated; download or convert it again"
    )]
    TensorOutOfBounds {
        /// The tensor.
        name: String,
        /// Absolute offset of its first byte (u128: a damaged offset may exceed u64 when added up).
        start: u128,
        /// Absolute offset one past its last byte.
        end: u128,
        /// Size of the file.
        file_len: u64,
    },
    /// A tensor type kiln cannot compute with.
    #[error(
        "tensor `{name}` has type id {type_id} ({type_name}), which kiln does not support; requantize with \
         llama-quantize to Q4_K_M, Q5_K_M, Q6_K or Q8_0 (or convert to F16/BF16/F32); kiln reads {supported}"
    )]
    UnsupportedType {
        /// The tensor.
        name: String,
        /// Its type id.
        type_id: u32,
        /// GGML's name for the id, or `unknown to GGML`.
        type_name: &'static str,
        /// The types kiln reads, listed.
        supported: String,
    },
    /// A metadata key that was asked for is absent.
    #[error("metadata key `{key}` is missing (expected {expected})")]
    MissingKey {
        /// The key.
        key: String,
        /// The type that was wanted.
        expected: &'static str,
    },
    /// A metadata value of another type than asked for.
    #[error("metadata key `{key}` is {found}, expected {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// The type that was wanted.
        expected: &'static str,
        /// What the file has (type, and the value when it is a number out of range).
        found: String,
    },
    /// A tensor that was asked for is absent.
    #[error("no tensor named `{name}` (the file has {count} tensors)")]
    NoSuchTensor {
        /// The name asked for.
        name: String,
        /// How many tensors the file has.
        count: usize,
    },
    /// The writer was given something it cannot write.
    #[error("cannot write: {what}")]
    InvalidInput {
        /// What is wrong.
        what: String,
    },
}
