//! kiln-infer: text generation over any model behind the [`CausalLm`] seam and a kiln-tokenizer
//! vocabulary.
//!
//! In: a model ([`CausalLm`]: kiln-model's float [`kiln_model::Llama`] today; quantized and CUDA
//! models implement the same trait), a [`kiln_tokenizer::Tokenizer`], prompts (plain text, or a
//! prefix and suffix for fill-in-the-middle, with repository context) and [`GenerateParams`].
//! Out: [`Generation`]s with the ids, the text (streamed as it is produced) and why each stopped.
//!
//! Pieces: [`model`] (the seam), [`engine`] (the one decoding loop: slots, continuous batching,
//! prefix cache, cancellation), [`decoding`] (one sequence's state machine and stop rules),
//! [`sampling`], [`prompt`] (FIM and chat prompt ids), [`repo`] (repository context),
//! [`score`] (cross-entropy of a text, bits per byte), [`loaded`] (a model directory on disk).
#![deny(missing_docs)]

pub mod decoding;
pub mod engine;
pub mod loaded;
pub mod model;
pub mod prompt;
pub mod repo;
pub mod sampling;
pub mod score;

pub use decoding::{FinishReason, GenerateParams, Generation, PrefixCache, Timings};
pub use engine::{Engine, Job, Request, Sink};
pub use loaded::LoadedModel;
pub use model::{CausalLm, KvCache};
pub use sampling::{Sampler, SamplingParams};
pub use score::{continuation_nats, text_loss, TextLoss};

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
    /// A model step or sampling failed mid-generation.
    #[error("decoding failed: {0}")]
    Decode(String),
    /// A bug: state handed to the wrong model.
    #[error("internal error: {0}")]
    Internal(String),
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
