//! Typed errors of kiln-model. Every variant names the file, field or tensor at fault and, where
//! there is one, the way to fix it.

use std::path::PathBuf;

/// Errors raised while reading configs, loading or saving weights, or running the network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model directory or a file it must contain does not exist.
    #[error("{path}: not found ({what}); a model directory needs config.json plus model.safetensors or model.safetensors.index.json (Hugging Face layout)")]
    MissingFile {
        /// The path that was looked for.
        path: PathBuf,
        /// What the file is for.
        what: &'static str,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// config.json is not valid JSON or lacks a required field.
    #[error("{path}: invalid config: {message}")]
    ConfigParse {
        /// The config file.
        path: PathBuf,
        /// What serde said.
        message: String,
    },
    /// A config field has a value kiln cannot run.
    #[error("{path}: field `{field}`: {message}")]
    ConfigField {
        /// The config file (or `<preset>` for a built-in preset).
        path: PathBuf,
        /// The offending field.
        field: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A safetensors file is damaged (truncated, bad header) or holds an unsupported dtype.
    #[error("{path}: not a readable safetensors file ({message}); re-download or re-export it")]
    BadSafetensors {
        /// The weights file.
        path: PathBuf,
        /// The parser's complaint.
        message: String,
    },
    /// model.safetensors.index.json is malformed or points at files that are missing.
    #[error("{path}: bad shard index: {message}")]
    BadIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Tensors the config requires are absent from the checkpoint.
    #[error("{dir}: checkpoint lacks {count} tensor(s) the config requires, e.g. {examples}; is config.json (num_hidden_layers, tie_word_embeddings) the one that belongs to these weights?")]
    MissingTensors {
        /// The model directory.
        dir: PathBuf,
        /// How many are missing.
        count: usize,
        /// The first few missing names.
        examples: String,
    },
    /// A tensor's shape disagrees with the config.
    #[error("{file}: tensor `{name}` has shape {found:?} but config.json implies {expected:?}")]
    TensorShape {
        /// The shard that holds the tensor.
        file: PathBuf,
        /// Tensor name (HF naming).
        name: String,
        /// Shape derived from config.json.
        expected: Vec<usize>,
        /// Shape stored in the file.
        found: Vec<usize>,
    },
    /// The input is longer than the model's position range.
    #[error("sequence of {len} tokens exceeds max_position_embeddings {max}; shorten the prompt or lower --max-tokens")]
    TooLong {
        /// Requested total length.
        len: usize,
        /// The model's limit.
        max: usize,
    },
    /// A token id is outside the embedding table.
    #[error("token id {id} is outside the model's vocabulary of {vocab_size}; the tokenizer does not belong to this model")]
    TokenOutOfRange {
        /// The offending id.
        id: u32,
        /// Rows of the embedding table.
        vocab_size: usize,
    },
    /// A GGUF file cannot be used as a model (the message names the file and what is wrong).
    #[error("{0}")]
    Gguf(String),
    /// Weights (or a step's inputs) do not fit the config's shapes.
    #[error("weights do not fit the config: {0}")]
    Shape(String),
    /// A tensor operation failed (shape or dtype bug, device error).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, ModelError>;
