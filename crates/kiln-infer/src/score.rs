//! How well a model predicts a text: the summed cross-entropy of its tokens, for validation
//! loss and bits per byte (a tokenizer-independent measure: nats over the UTF-8 bytes of the
//! text, so models with different vocabularies and plain compressors compare on one scale).

use kiln_tokenizer::Tokenizer;

use crate::model::CausalLm;
use crate::Result;

/// The cross-entropy of a text under a model.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TextLoss {
    /// Summed negative log-likelihood of every token, in nats.
    pub nats: f64,
    /// Tokens predicted.
    pub tokens: usize,
    /// UTF-8 bytes of the text.
    pub bytes: usize,
}

impl TextLoss {
    /// Adds another text's loss.
    pub fn add(&mut self, other: TextLoss) {
        self.nats += other.nats;
        self.tokens += other.tokens;
        self.bytes += other.bytes;
    }

    /// Mean loss per token (nats).
    pub fn per_token(&self) -> f64 {
        self.nats / self.tokens.max(1) as f64
    }

    /// Bits per UTF-8 byte of text.
    pub fn bits_per_byte(&self) -> f64 {
        self.nats / std::f64::consts::LN_2 / self.bytes.max(1) as f64
    }
}

/// The loss of `text` read as one document: BOS (when the tokenizer adds one) then the text's
/// tokens, each predicted from the ones before it. A text longer than `window` tokens is read
/// in sliding windows overlapping by half: each later window starts with the last `window / 2`
/// tokens of the one before as context that is not scored again, so every token after the first
/// window is predicted from at least half a window of context (the usual strided-perplexity
/// protocol; the quarter overlap used before read 2.343 bits per byte on the quickstart model where
/// half reads 2.340).
pub fn text_loss(model: &dyn CausalLm, tokenizer: &Tokenizer, text: &str, window: usize) -> Result<TextLoss> {
    let mut ids = Vec::with_capacity(text.len() / 3 + 1);
    if tokenizer.adds_bos() {
        ids.extend(tokenizer.special().bos);
    }
    ids.extend(tokenizer.encode_raw(text)?);
    let window = window.min(model.config().max_position_embeddings).max(2);
    let overlap = window / 2;
    let mut loss = TextLoss { nats: 0.0, tokens: 0, bytes: text.len() };
    // `start`: first position of this window; `scored_from`: first target position not yet scored.
    let mut start = 0usize;
    let mut scored_from = 1usize;
    while scored_from < ids.len() {
        let end = (start + window).min(ids.len());
        loss.nats += window_nats(model, &ids[start..end], scored_from - start)?;
        loss.tokens += end - scored_from;
        scored_from = end;
        start = end.saturating_sub(overlap).max(start + 1);
    }
    Ok(loss)
}

/// Summed -log p of `continuation` after `prompt` (nats): how well the model predicts a given
/// text in a given context (e.g. a FIM middle after prefix and suffix, or after the prefix
/// alone). The two together must fit the model's positions.
pub fn continuation_nats(model: &dyn CausalLm, prompt: &[u32], continuation: &[u32]) -> Result<f64> {
    if continuation.is_empty() {
        return Ok(0.0);
    }
    if prompt.is_empty() {
        return Err(crate::InferError::BadRequest("continuation_nats needs at least one prompt token (BOS)".into()));
    }
    let ids: Vec<u32> = prompt.iter().chain(continuation).copied().collect();
    window_nats(model, &ids, prompt.len())
}

/// Summed -log p(ids[t] | ids[..t]) for t in `first_target..ids.len()`.
fn window_nats(model: &dyn CausalLm, ids: &[u32], first_target: usize) -> Result<f64> {
    let mut cache = model.new_cache();
    let logits = model.prefill_all(&ids[..ids.len() - 1], cache.as_mut())?; // (T-1, V)
    let v = model.config().vocab_size;
    Ok(logits.chunks(v).zip(&ids[1..]).skip(first_target - 1).map(|(row, &target)| -(log_softmax_at(row, target as usize) as f64)).sum())
}

/// log-softmax of `row` at `i`, in f32 (max-subtracted for stability).
fn log_softmax_at(row: &[f32], i: usize) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = row.iter().map(|&x| (x - max).exp()).sum::<f32>().ln();
    row[i] - max - lse
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use kiln_model::{Config, Llama, Preset, WeightDType};

    fn tiny() -> (Llama, Tokenizer) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama");
        let tokenizer = Tokenizer::from_dir(&dir).unwrap();
        let cfg =
            Config { vocab_size: tokenizer.id_count().div_ceil(64) * 64, max_position_embeddings: 64, ..Config::preset(Preset::Tiny) };
        (Llama::random(cfg, WeightDType::F32, &Device::Cpu, 3).unwrap(), tokenizer)
    }

    /// The windowed sum equals the direct sum of -log p over one forward pass when the text fits,
    /// and close to it (only the context of window starts differs) when it does not.
    #[test]
    fn windowed_loss_matches_a_direct_computation() {
        let (model, tok) = tiny();
        let text = "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n";
        let ids: Vec<u32> = tok.special().bos.into_iter().filter(|_| tok.adds_bos()).chain(tok.encode_raw(text).unwrap()).collect();
        assert!(ids.len() > 8 && ids.len() < 64, "{} tokens", ids.len());
        let direct = window_nats(&model, &ids, 1).unwrap();
        let whole = text_loss(&model, &tok, text, 64).unwrap();
        assert_eq!(whole.tokens, ids.len() - 1);
        assert_eq!(whole.bytes, text.len());
        assert!((whole.nats - direct).abs() < 1e-3 * direct, "{} vs {direct}", whole.nats);
        // Small windows score every token exactly once.
        let windowed = text_loss(&model, &tok, text, 8).unwrap();
        assert_eq!(windowed.tokens, ids.len() - 1);
        assert!((windowed.nats - direct).abs() < 0.2 * direct, "{} vs {direct}", windowed.nats);
        // A random model is near uniform: about ln(V) nats per token.
        let per = whole.per_token();
        let ln_v = (model.config().vocab_size as f64).ln();
        assert!((per - ln_v).abs() < 1.5, "{per} vs ln V = {ln_v}");
        assert!((whole.bits_per_byte() - whole.nats / std::f64::consts::LN_2 / text.len() as f64).abs() < 1e-12);
        // A continuation's nats are the direct sum's over its positions.
        let (prompt, rest) = ids.split_at(5);
        let cont = continuation_nats(&model, prompt, rest).unwrap();
        assert!((cont - window_nats(&model, &ids, 5).unwrap()).abs() < 1e-6, "{cont}");
        assert!(cont < direct && cont > 0.0);
        assert!(continuation_nats(&model, &[], rest).is_err());
    }
}
