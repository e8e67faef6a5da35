//! Training a byte-level BPE tokenizer the way DeepSeek-Coder did (paper §3.2, spec §3): the
//! Hugging Face `tokenizers` BPE trainer behind DeepSeek's pre-tokenizer ([`crate::layout`]),
//! then DeepSeek's role tokens appended as added tokens.
//!
//! Differences from the release, on purpose:
//! * The trainer starts from the full 256-symbol byte alphabet, so every byte has an id of its
//!   own. DeepSeek's trained vocabulary lacked the 13 bytes that never occur in UTF-8 and
//!   appended them later as added tokens (ids 32000..32012), which is what makes a literal `ü` in
//!   the input encode differently from the same `ü` inside BPE; a kiln tokenizer has no such
//!   quirk.
//! * Ids: `vocab_size` BPE ids (alphabet + merges) first, then the nine role tokens in the
//!   release's order (BOS, EOS, FIM hole/begin/end, pad, User, Assistant, EOT), so a 32,000
//!   vocabulary gives 32,009 ids.
//! * Role-token strings that occur in the training text are removed before counting, so they
//!   never shape merges (at encode time they are matched whole, before BPE).
//!
//! Memory: the trainer keeps one count per distinct pre-tokenized word, not the text; texts are
//! consumed from the iterator as they come (e.g. one corpus shard at a time).

use serde_json::Value;
use tokenizers::models::bpe::BpeTrainerBuilder;
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;

use crate::layout::{role_tokens, tokenizer_config_json, tokenizer_json, Added};
use crate::TokenizerError;

/// Settings of a training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// BPE ids: the 256 byte symbols plus merges (the paper: 32,000). Role tokens come on top.
    pub vocab_size: usize,
    /// A pair must occur this often to be merged.
    pub min_frequency: u64,
    /// `model_max_length` written to tokenizer_config.json.
    pub model_max_length: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { vocab_size: 32_000, min_frequency: 2, model_max_length: 16_384 }
    }
}

/// A trained tokenizer: `tokenizer.json` and `tokenizer_config.json` values.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The `tokenizer.json` value.
    pub tokenizer: Value,
    /// The `tokenizer_config.json` value.
    pub config: Value,
    /// BPE ids learned (may be below `vocab_size` on a small corpus).
    pub bpe_ids: usize,
    /// Texts consumed.
    pub texts: u64,
}

/// Removes the role-token strings from a training text (see the module doc).
fn without_role_tokens(text: String) -> String {
    if !text.contains('<') {
        return text;
    }
    let mut t = text;
    for (role, _) in role_tokens() {
        if t.contains(role) {
            t = t.replace(role, "\n");
        }
    }
    t
}

/// Trains on `texts`. Deterministic: the same texts in the same order give the same tokenizer.
pub fn train_bpe<I>(texts: I, opts: &TrainOptions) -> Result<Trained, TokenizerError>
where
    I: Iterator<Item = String> + Send,
{
    let roles = role_tokens();
    if opts.vocab_size < 256 + 1 {
        return Err(TokenizerError::Codec(format!("vocab size {} is too small: the byte alphabet alone takes 256 ids", opts.vocab_size)));
    }
    // A tokenizer with DeepSeek's pre-tokenizer and an empty BPE model, to be trained.
    let empty = tokenizer_json(&[], &[], &[]);
    let mut tok: tokenizers::Tokenizer =
        serde_json::from_value(empty).map_err(|e| TokenizerError::Codec(format!("building the untrained tokenizer: {e}")))?;
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(opts.vocab_size)
        .min_frequency(opts.min_frequency)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let count = std::sync::atomic::AtomicU64::new(0);
    let texts = texts.map(|t| {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        without_role_tokens(t)
    });
    tok.train(&mut trainer, texts).map_err(|e| TokenizerError::Codec(format!("BPE training: {e}")))?;
    let texts = count.into_inner();
    if texts == 0 {
        return Err(TokenizerError::Codec("no training text: the corpus is empty".into()));
    }
    // Read the learned vocabulary and merges back from the trained model's JSON.
    let trained: Value = serde_json::to_value(&tok).map_err(|e| TokenizerError::Codec(e.to_string()))?;
    let model = &trained["model"];
    let mut vocab: Vec<(String, u32)> = model["vocab"]
        .as_object()
        .map(|m| m.iter().filter_map(|(t, id)| Some((t.clone(), id.as_u64()? as u32))).collect())
        .unwrap_or_default();
    vocab.sort_by_key(|(_, id)| *id);
    let merges: Vec<String> = model["merges"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| match m {
                    Value::String(s) => Some(s.clone()),
                    Value::Array(pair) => Some(format!("{} {}", pair.first()?.as_str()?, pair.get(1)?.as_str()?)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let first = vocab.len() as u32;
    let added: Vec<Added> = roles
        .iter()
        .enumerate()
        .map(|(i, (content, special))| Added { id: first + i as u32, content: content.to_string(), special: *special })
        .collect();
    tracing::info!(texts, bpe = vocab.len(), merges = merges.len(), "tokenizer trained");
    Ok(Trained {
        bpe_ids: vocab.len(),
        tokenizer: tokenizer_json(&vocab, &merges, &added),
        config: tokenizer_config_json(&added, crate::special::EOS, opts.model_max_length),
        texts,
    })
}
