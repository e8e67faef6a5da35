//! kiln-infer: text generation over a kiln-model network and a kiln-tokenizer vocabulary.
//!
//! In: a loaded [`kiln_model::Llama`], a [`kiln_tokenizer::Tokenizer`], a prompt (plain text, or a
//! prefix and suffix for fill-in-the-middle) and [`GenerateParams`]. Out: a [`Generation`] with the
//! ids, the text (streamed to a callback as it is produced) and why it stopped.
#![deny(missing_docs)]

pub mod generate;
pub mod loaded;
pub mod prompt;
pub mod repo;
pub mod sampling;
pub mod score;

pub use generate::{Decoding, FinishReason, GenerateParams, Generation, Generator, PrefixCache, Timings};
pub use loaded::LoadedModel;
pub use sampling::{Sampler, SamplingParams};
pub use score::{text_loss, TextLoss};

use kiln_model::Config;
use kiln_tokenizer::Tokenizer;

/// Errors of generation.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The request itself is invalid (a parameter out of range, an empty prompt).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Tokenizer and model do not belong together.
    #[error("tokenizer has {tokenizer_ids} ids but the model's vocab_size is {vocab_size}: the tokenizer.json does not belong to this config.json")]
    VocabMismatch {
        /// Ids the tokenizer can produce.
        tokenizer_ids: usize,
        /// Rows in the model's embedding.
        vocab_size: usize,
    },
    /// The tokenizer lacks the tokens a prompt layout needs.
    #[error("the tokenizer has no `{0}` token, so it cannot build fill-in-the-middle prompts (DeepSeek-Coder base models have it; instruct models cannot infill)")]
    MissingSpecialToken(&'static str),
    /// A repository could not be read for context.
    #[error("repository: {0}")]
    Repo(String),
    /// A model directory is missing or damaged.
    #[error("{0}")]
    ModelDir(String),
    /// From the model.
    #[error(transparent)]
    Model(#[from] kiln_model::ModelError),
    /// From the tokenizer.
    #[error(transparent)]
    Tokenizer(#[from] kiln_tokenizer::TokenizerError),
}

impl From<candle_core::Error> for InferError {
    fn from(e: candle_core::Error) -> Self {
        Self::Model(e.into())
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, InferError>;

/// Fails if the tokenizer can produce an id the model's embedding has no row for.
pub fn check_vocab(cfg: &Config, tokenizer: &Tokenizer) -> Result<()> {
    let tokenizer_ids = tokenizer.id_count();
    if tokenizer_ids > cfg.vocab_size {
        return Err(InferError::VocabMismatch { tokenizer_ids, vocab_size: cfg.vocab_size });
    }
    Ok(())
}
