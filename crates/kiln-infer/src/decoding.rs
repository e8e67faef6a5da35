//! One sequence being generated: the state machine the engine ([`crate::engine`]) drives for each
//! request. The prompt is prefilled once (after whatever prefix a slot's cache already holds),
//! then each step's logits are sampled and the stop rules checked (EOS ids, stop strings, token
//! budget, the model's position limit, infilling's dedent and time rules). Text is streamed to a
//! callback as it becomes final: text that might still turn into a stop string is held back
//! until it cannot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use kiln_tokenizer::{TextStream, Tokenizer};
use serde::Serialize;

use crate::model::{CausalLm, KvCache};
use crate::sampling::{Sampler, SamplingParams};
use crate::{InferError, Result};

/// Everything that shapes one generation besides the prompt.
#[derive(Debug, Clone, Default)]
pub struct GenerateParams {
    /// Most new tokens to produce.
    pub max_new_tokens: usize,
    /// Token choice.
    pub sampling: SamplingParams,
    /// Ids that end generation (not included in the text).
    pub eos_ids: Vec<u32>,
    /// Strings that end generation; the text is cut before the first one found.
    pub stop: Vec<String>,
    /// Infilling: a generated line (after the first newline) indented by fewer than this many
    /// columns (a tab counts 4) ends the middle, and is cut: code after the cursor's block is
    /// already in the suffix (llama.cpp's `n_indent`).
    pub min_indent: Option<usize>,
    /// Stop this many milliseconds after the first generated newline: an editor wants the
    /// current line fast and tolerates a short block (llama.cpp's `t_max_predict_ms`).
    pub max_ms_after_newline: Option<u64>,
}

/// Bytes at the end of `text` not to stream yet: a partial stop string, or (with
/// `min_indent`) a started line that is still only whitespace, which may yet be dedented and cut.
fn hold_len(text: &str, params: &GenerateParams) -> usize {
    let mut hold = held_back(text, &params.stop);
    if params.min_indent.is_some() {
        if let Some(i) = text.rfind('\n') {
            if text[i + 1..].trim().is_empty() {
                hold = hold.max(text.len() - (i + 1));
            }
        }
    }
    hold
}

/// Columns of leading whitespace of `line` (a tab counts 4).
fn indent_of(line: &str) -> usize {
    line.chars().take_while(|c| *c == ' ' || *c == '\t').map(|c| if c == '\t' { 4 } else { 1 }).sum()
}

/// Where a line indented less than `min` starts in `text`, looking only at lines that follow a
/// newline and already hold a non-blank character (a blank line never ends the middle).
fn dedent_cut(text: &str, min: usize) -> Option<usize> {
    let mut start = text.find('\n')? + 1;
    loop {
        let rest = &text[start..];
        let line = rest.split('\n').next().unwrap_or("");
        if line.trim().is_empty() {
            // Blank (or still only whitespace): undecided unless a later line exists.
        } else if indent_of(line) < min {
            return Some(start);
        }
        match rest.find('\n') {
            Some(i) => start += i + 1,
            None => return None,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An EOS id was produced.
    Eos,
    /// A stop string appeared.
    Stop,
    /// `max_new_tokens` were produced.
    Length,
    /// The model's max_position_embeddings was reached.
    ContextFull,
    /// The caller cancelled (a client went away).
    Cancelled,
}

impl FinishReason {
    /// The OpenAI API's name for it (`stop` or `length`).
    pub fn openai(self) -> &'static str {
        match self {
            Self::Eos | Self::Stop | Self::Cancelled => "stop",
            Self::Length | Self::ContextFull => "length",
        }
    }
}

/// Wall-clock figures of one generation.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    /// Prompt tokens (all of them, reused or processed).
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV state came from a prefix cache (not processed again).
    pub cached_tokens: usize,
    /// Milliseconds for the prefill (including the first token's sampling).
    pub prefill_ms: f64,
    /// Tokens produced after the first one.
    pub decode_tokens: usize,
    /// Milliseconds for those.
    pub decode_ms: f64,
}

impl Timings {
    /// Decode speed in tokens per second (0 when nothing was decoded).
    pub fn decode_tokens_per_s(&self) -> f64 {
        if self.decode_ms > 0.0 {
            self.decode_tokens as f64 * 1000.0 / self.decode_ms
        } else {
            0.0
        }
    }
}

/// The result of one generation.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    /// The prompt as token ids.
    pub prompt_ids: Vec<u32>,
    /// Generated ids, ending with the EOS id when one ended generation (as in the sequence
    /// transformers' `generate()` returns).
    pub ids: Vec<u32>,
    /// Generated text, special tokens skipped, cut before a stop string.
    pub text: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Timings.
    pub timings: Timings,
}

/// A KV cache and the token ids it holds: what an engine slot keeps between requests so that
/// the next prompt sharing a prefix (the next keystroke) skips that prefix.
pub struct PrefixCache {
    cache: Box<dyn KvCache>,
    ids: Vec<u32>,
}

impl PrefixCache {
    /// An empty cache for `model`.
    pub fn new(model: &dyn CausalLm) -> Self {
        Self { cache: model.new_cache(), ids: Vec::new() }
    }

    /// Length of the common prefix of the held ids and `prompt`.
    pub fn common_prefix(&self, prompt: &[u32]) -> usize {
        self.ids.iter().zip(prompt).take_while(|(a, b)| a == b).count()
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of some stop string: those
/// bytes may still become a stop string and must not be streamed yet.
fn held_back(text: &str, stop: &[String]) -> usize {
    let mut hold = 0;
    for s in stop {
        for (i, _) in s.char_indices().skip(1) {
            if text.ends_with(&s[..i]) {
                hold = hold.max(i);
            }
        }
    }
    hold
}

/// One sequence being generated, a token at a time: [`Decoding::start`] prefills the prompt and
/// samples the first token; then feed [`Decoding::next_input`] to the model (alone or in a
/// batched [`CausalLm::decode`] with others, using [`Decoding::cache_mut`]), hand the logits to
/// [`Decoding::accept`], and [`Decoding::finish`] when `next_input` says `None`. The engine
/// ([`crate::engine::Engine`]) is the one driver of this loop.
pub(crate) struct Decoding<'a> {
    max_positions: usize,
    params: GenerateParams,
    sampler: Sampler,
    prefix: PrefixCache,
    history: Vec<u32>,
    prompt_len: usize,
    stream: TextStream<'a>,
    text: String, // all final text, stop strings not yet cut
    sent: usize,  // bytes of `text` handed to on_text
    ids: Vec<u32>,
    timings: Timings,
    start: Instant,
    decode_start: Option<Instant>,
    first_newline: Option<(Instant, u64)>,
    finish: Option<FinishReason>,
    last: Option<u32>, // the sampled token not yet fed to the model
}

impl<'a> Decoding<'a> {
    /// Starts a generation: checks the request, reuses the longest common token prefix of
    /// `prefix`'s ids and `prompt_ids` from its KV cache when it is at least `min_reuse` tokens
    /// long (the last prompt token is always processed: its logits give the first new token),
    /// processes the rest of the prompt and samples the first token. `timings.cached_tokens`
    /// says how many were reused. The logits after a reused prefix can differ from a cold run's
    /// in the last bits (other matrix shapes), as in llama.cpp.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        model: &dyn CausalLm,
        tokenizer: &'a Tokenizer,
        mut prefix: PrefixCache,
        min_reuse: usize,
        prompt_ids: &[u32],
        params: &GenerateParams,
        cancel: &AtomicBool,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Decoding<'a>> {
        params.sampling.validate().map_err(InferError::BadRequest)?;
        if prompt_ids.is_empty() {
            return Err(InferError::BadRequest("the prompt is empty (no tokens); give some text or keep BOS on".into()));
        }
        let max_pos = model.config().max_position_embeddings;
        if prompt_ids.len() > max_pos {
            return Err(kiln_model::ModelError::TooLong { len: prompt_ids.len(), max: max_pos }.into());
        }
        let common =
            prefix.ids.iter().zip(prompt_ids).take_while(|(a, b)| a == b).count().min(prompt_ids.len() - 1).min(prefix.cache.len());
        let reuse = if common >= min_reuse { common } else { 0 };
        prefix.cache.truncate(reuse);
        prefix.ids.truncate(reuse);
        let mut d = Decoding {
            max_positions: max_pos,
            params: params.clone(),
            sampler: Sampler::new(params.sampling.clone()),
            prefix,
            history: prompt_ids.to_vec(),
            prompt_len: prompt_ids.len(),
            stream: TextStream::new(tokenizer, true),
            text: String::new(),
            sent: 0,
            ids: Vec::new(),
            timings: Timings { prompt_tokens: prompt_ids.len(), cached_tokens: reuse, ..Default::default() },
            start: Instant::now(),
            decode_start: None,
            first_newline: None,
            finish: None,
            last: None,
        };
        if d.can_continue(cancel) {
            let mut logits = model.prefill(&prompt_ids[reuse..], d.prefix.cache.as_mut())?; // (V,) after T - reused tokens
            d.accept(&mut logits, on_text)?;
        }
        Ok(d)
    }
}

impl Decoding<'_> {
    /// The checks before each model step; sets the finish reason when one fails.
    fn can_continue(&mut self, cancel: &AtomicBool) -> bool {
        if self.finish.is_some() {
            return false;
        }
        self.finish = if cancel.load(Ordering::Relaxed) {
            Some(FinishReason::Cancelled)
        } else if self.ids.len() >= self.params.max_new_tokens {
            Some(FinishReason::Length)
        } else if self.history.len() >= self.max_positions {
            // The next token would sit at position history.len(): it must exist in the model.
            Some(FinishReason::ContextFull)
        } else {
            None
        };
        self.finish.is_none()
    }

    /// True once a stop rule, the budget, the context or a cancellation has ended it.
    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    /// The token to feed next, or `None` when the generation has ended.
    pub fn next_input(&mut self, cancel: &AtomicBool) -> Option<u32> {
        if self.can_continue(cancel) {
            self.last
        } else {
            None
        }
    }

    /// The KV cache the next token goes into.
    pub fn cache_mut(&mut self) -> &mut dyn KvCache {
        self.prefix.cache.as_mut()
    }

    /// Takes the logits after the last input: samples, checks the stop rules, streams text.
    pub fn accept(&mut self, logits: &mut [f32], on_text: &mut dyn FnMut(&str)) -> Result<()> {
        let next = self.sampler.sample(logits, &self.history);
        if self.decode_start.is_none() {
            self.timings.prefill_ms = self.start.elapsed().as_secs_f64() * 1000.0;
            self.decode_start = Some(Instant::now());
        }
        self.last = None;
        self.ids.push(next);
        if self.params.eos_ids.contains(&next) {
            // Kept in `ids` (as transformers' generate() keeps it), never in the text.
            self.finish = Some(FinishReason::Eos);
            return Ok(());
        }
        self.history.push(next);
        let piece = self.stream.push(next)?;
        self.text.push_str(&piece);
        let p = &self.params;
        if let Some(cut) = p.stop.iter().filter_map(|s| self.text.find(s.as_str())).min() {
            self.text.truncate(cut);
            self.finish = Some(FinishReason::Stop);
            return Ok(());
        }
        if let Some(cut) = p.min_indent.and_then(|n| dedent_cut(&self.text, n)) {
            self.text.truncate(cut);
            self.finish = Some(FinishReason::Stop);
            return Ok(());
        }
        if let (Some(limit), None) = (p.max_ms_after_newline, self.first_newline) {
            if self.text.contains('\n') {
                self.first_newline = Some((Instant::now(), limit));
            }
        }
        if let Some((at, limit)) = self.first_newline {
            if at.elapsed().as_millis() as u64 >= limit {
                self.finish = Some(FinishReason::Length);
                return Ok(());
            }
        }
        let safe = self.text.len() - hold_len(&self.text, p);
        if safe > self.sent {
            on_text(&self.text[self.sent..safe]);
            self.sent = safe;
        }
        self.last = Some(next);
        Ok(())
    }

    /// Ends the generation: flushes the text, returns it and the prefix cache (holding the
    /// prompt and the generated tokens that were fed), for the next request to reuse.
    pub fn finish(mut self, on_text: &mut dyn FnMut(&str)) -> Result<(Generation, PrefixCache)> {
        let mut finish = self.finish.unwrap_or(FinishReason::Length);
        if finish != FinishReason::Stop {
            self.text.push_str(&self.stream.finish()?);
            if let Some(cut) = self.params.min_indent.and_then(|n| dedent_cut(&self.text, n)) {
                self.text.truncate(cut);
                finish = FinishReason::Stop;
            }
        }
        if self.text.len() > self.sent {
            on_text(&self.text[self.sent..]);
        }
        if let Some(t) = self.decode_start {
            self.timings.decode_ms = t.elapsed().as_secs_f64() * 1000.0;
            self.timings.decode_tokens = self.ids.len().saturating_sub(1);
        }
        let held = self.prefix.cache.len().min(self.history.len());
        self.prefix.ids = self.history[..held].to_vec();
        tracing::debug!(new_tokens = self.ids.len(), ?finish, decode_tps = self.timings.decode_tokens_per_s(), "generation done");
        let prompt_ids = self.history[..self.prompt_len].to_vec();
        Ok((Generation { prompt_ids, ids: self.ids, text: self.text, finish_reason: finish, timings: self.timings }, self.prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::held_back;

    #[test]
    fn whitespace_of_a_new_line_is_held_back_when_dedent_stops() {
        use super::{hold_len, GenerateParams};
        let p = GenerateParams { min_indent: Some(4), ..Default::default() };
        assert_eq!(hold_len("x\n  ", &p), 2, "the indentation is not known yet");
        assert_eq!(hold_len("x\n    y", &p), 0);
        assert_eq!(hold_len("x\n", &p), 0);
        assert_eq!(hold_len("x\n  ", &GenerateParams::default()), 0, "off without min_indent");
    }

    #[test]
    fn a_dedented_line_ends_the_middle() {
        use super::dedent_cut;
        // The first line continues the cursor's line: never cut, whatever its indentation.
        assert_eq!(dedent_cut("x + 1", 4), None);
        assert_eq!(dedent_cut("x + 1\n    y = 2\n", 4), None);
        let t = "x + 1\n    y = 2\n\nprint(y)";
        assert_eq!(dedent_cut(t, 4), Some(t.find("print").unwrap()));
        assert_eq!(dedent_cut("a\n\tb\n", 4), None, "a tab is 4 columns");
        assert_eq!(dedent_cut("a\n  \n", 4), None, "blank lines do not count");
        assert_eq!(dedent_cut("a\n  b", 4), Some(2));
    }

    #[test]
    fn holds_back_partial_stop_strings_only() {
        let stop = vec!["\ndef".to_string(), "###".to_string()];
        assert_eq!(held_back("x = 1\nde", &stop), 3);
        assert_eq!(held_back("x = 1\n", &stop), 1);
        assert_eq!(held_back("a ##", &stop), 2);
        assert_eq!(held_back("x = 1", &stop), 0);
    }
}
