//! The crate's error type: shape and length mismatches between a type, a row length and a buffer.

use crate::GgmlType;

/// What went wrong in a kiln-quant call.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuantError {
    /// The row length is not a whole number of the type's blocks.
    #[error("a row of {len} values is not a whole number of {ty} blocks ({block} values each)")]
    NotBlockMultiple {
        /// The type.
        ty: GgmlType,
        /// The row length in values.
        len: usize,
        /// The type's block size.
        block: usize,
    },
    /// A byte buffer does not have the length the type and shape imply.
    #[error("{ty} data for {values} values needs {expected} bytes, got {got}")]
    ByteLength {
        /// The type.
        ty: GgmlType,
        /// How many values the buffer should hold.
        values: usize,
        /// The bytes those values take.
        expected: usize,
        /// The bytes given.
        got: usize,
    },
    /// An f32 buffer does not have the length the shape implies.
    #[error("{what}: expected {expected} f32 values, got {got}")]
    ValueLength {
        /// Which buffer.
        what: &'static str,
        /// The length the shape implies.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A forced kernel tier this CPU cannot run.
    #[error("this CPU cannot run the {0} kernels")]
    TierUnavailable(crate::simd::Tier),
    /// The operation is not defined for this type.
    #[error("{op} is not supported for {ty}")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The type.
        ty: GgmlType,
    },
}
