//! The error type of kiln-data. Every variant names the file, field or token involved and, where
//! there is one, the way out, because these errors reach a person running `kiln data ...`.

use std::path::PathBuf;

/// Why a kiln-data operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Reading or writing a file failed (missing file, permissions, disk full).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading the corpus (manifest or Parquet shard) failed.
    #[error(transparent)]
    Corpus(#[from] kiln_corpus::CorpusError),
    /// The tokenizer could not be loaded.
    #[error(transparent)]
    Tokenizer(#[from] kiln_tokenizer::TokenizerError),
    /// Tokenizing one document failed.
    #[error("tokenizing {what}: {source}")]
    Tokenize {
        /// Which document (sample id) or piece.
        what: String,
        /// The tokenizer's error.
        #[source]
        source: kiln_tokenizer::TokenizerError,
    },
    /// The tokenizer lacks a special token that the requested layout needs.
    #[error("the tokenizer has no {token} token ({role}); use a DeepSeek-Coder tokenizer.json, or add it as an added token{hint}")]
    MissingSpecialToken {
        /// The token string, e.g. `<｜fim▁hole｜>`.
        token: &'static str,
        /// What it is used for.
        role: &'static str,
        /// Extra advice (may be empty), e.g. how to avoid needing the token.
        hint: &'static str,
    },
    /// A configuration value is out of range.
    #[error("{field} = {value}: {message}")]
    Config {
        /// The field or flag, e.g. `fim.rate`.
        field: &'static str,
        /// The offending value, as text.
        value: String,
        /// What the valid range is.
        message: String,
    },
    /// A token id does not fit the dataset's on-disk integer type.
    #[error("{path}: token id {id} does not fit {dtype} (max {max}); create the dataset with DType::for_vocab(tokenizer.id_count()), which picks int32 for vocabularies of 65,500 ids or more")]
    IdOutOfRange {
        /// The `.bin` being written.
        path: PathBuf,
        /// The id.
        id: u32,
        /// The dtype name.
        dtype: &'static str,
        /// The largest id the dtype holds.
        max: u64,
    },
    /// A sequence is longer than a Megatron index can describe (int32 length).
    #[error("{path}: a sequence of {len} tokens exceeds the Megatron index limit of 2^31-1 tokens; split it")]
    SequenceTooLong {
        /// The `.bin` being written.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// A Megatron `.idx`/`.bin` pair (or an SFT `.mask`) is damaged, mismatched or not in the
    /// expected format.
    #[error("{path}: {message} (rewrite the dataset with `kiln data pack`, or check that .bin and .idx come from the same run)")]
    BadDataset {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A sequence index past the end of a dataset.
    #[error("{path}: sequence {index} does not exist (the dataset has {len})")]
    OutOfRange {
        /// The `.idx` file.
        path: PathBuf,
        /// The index asked for.
        index: usize,
        /// The number of sequences.
        len: usize,
    },
    /// The corpus has no samples to pack.
    #[error("{dir}: the corpus has no samples (manifest lists {shards} shard(s)); build it with `kiln corpus build` and check its stats")]
    EmptyCorpus {
        /// The corpus directory.
        dir: PathBuf,
        /// Shards in the manifest.
        shards: usize,
    },
    /// A packed dataset has no windows to load.
    #[error("{path}: no windows (the corpus split was smaller than one window; lower --seq-len or add data)")]
    EmptyDataset {
        /// The `.idx` file.
        path: PathBuf,
    },
    /// A loader cursor does not belong to this dataset.
    #[error("cursor position {position} is past the {windows} windows of {path}; was the cursor saved for another dataset?")]
    BadCursor {
        /// The `.idx` file.
        path: PathBuf,
        /// The saved position.
        position: u64,
        /// Windows in the dataset.
        windows: usize,
    },
    /// A packed output directory's `meta.json` is missing or damaged.
    #[error("{path}: {message}")]
    Meta {
        /// The `meta.json` file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// An SFT dataset holds no conversation.
    #[error("{path}: no SFT samples (write conversations with `kiln data sft`)")]
    EmptySft {
        /// The dataset prefix.
        path: PathBuf,
    },
    /// An SFT loader cursor does not belong to this dataset.
    #[error("data cursor {position} is past the {samples} SFT samples: resumed with other data?")]
    SftCursor {
        /// The saved position.
        position: u64,
        /// Samples in the dataset.
        samples: usize,
    },
    /// An SFT input file gave no training conversation.
    #[error("{path}: no training conversations")]
    NoConversations {
        /// The JSONL file.
        path: PathBuf,
    },
    /// A line of an input file is not what it must be.
    #[error("{path}:{line}: {message}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An SFT conversation does not have the shape the template needs.
    #[error("SFT conversation: {0}")]
    Conversation(String),
    /// Text produced a control token id although literal special-token strings are escaped; a
    /// bug or an unexpected tokenizer.
    #[error("{what}: text encoded to control token id {id}; the tokenizer maps plain text to a special token (report this with the tokenizer.json)")]
    ControlIdInText {
        /// The piece of text.
        what: String,
        /// The id.
        id: u32,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, DataError>;

/// Attaches a path to an I/O error (for `map_err`).
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
    let path = path.into();
    move |source| DataError::Io { path, source }
}
