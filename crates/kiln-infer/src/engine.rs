//! The decoding engine: the one place where a model turns prompts into text.
//!
//! Every caller goes through [`Engine::run`]: `kiln generate` (a batch of one,
//! [`Engine::generate`]), `kiln eval --model` (a list of prompts, [`Engine::generate_batch`]) and
//! `kiln serve` (requests arriving on a channel while others decode). The loop:
//!
//! 1. **Admit** requests up to the batch size (blocking only when nothing runs). Each takes the
//!    free slot whose cached tokens share the longest prefix with its prompt (llama.cpp picks
//!    slots by prompt similarity too), reuses that prefix when allowed, prefills the rest on its
//!    own and samples its first token ([`Decoding::start`]).
//! 2. **Step**: every running sequence's next token goes through one [`CausalLm::decode`] call,
//!    so the weights are read once per step for all of them; each sequence samples from its own
//!    row with its own sampler, seed and stop rules.
//! 3. **Retire** what has ended (stop rule, budget, context full, cancelled): its cache goes back
//!    to the free slots holding its tokens, the running count is reported, then the result is
//!    handed over (so a caller that has its answer never sees its own slot busy).
//!
//! On the f32 CPU path a sequence's tokens are the same bits alone or batched (the model's
//! promise, tested in kiln-model and in this crate's tests), so results do not depend on what
//! else runs.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use kiln_tokenizer::Tokenizer;

use crate::decoding::{Decoding, GenerateParams, Generation, PrefixCache};
use crate::model::{CausalLm, KvCache};
use crate::{InferError, Result};

/// One generation asked of the engine.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The prompt's token ids.
    pub ids: Vec<u32>,
    /// Sampling and stopping.
    pub params: GenerateParams,
    /// Reuse a free slot's cached prefix when it shares at least [`Engine::min_reuse`] tokens with
    /// the prompt (llama.cpp's `cache_prompt`). Off, the whole prompt is processed: its result
    /// does not depend on what ran before.
    pub cache_prompt: bool,
}

/// Where a request's results go: the server's channels to an HTTP handler, a slot of
/// [`Engine::generate_batch`]'s output, [`Engine::generate`]'s callback.
pub trait Sink {
    /// A piece of final text, as soon as it is final (pieces add up to the generation's text).
    fn text(&mut self, piece: &str);
    /// The end: the generation, or why there is none. Called once, after the request's slot is
    /// free again.
    fn done(self, result: Result<Generation>);
}

/// A request in flight: what to generate, the flag that cancels it, where results go.
pub struct Job<S: Sink> {
    /// What to generate.
    pub request: Request,
    /// Set when the caller has gone away: the generation stops before its next token (finish
    /// reason `cancelled`) and frees its slot.
    pub cancel: Arc<AtomicBool>,
    /// Where the text and the result go.
    pub sink: S,
}

/// One running request.
struct Running<'a, S: Sink> {
    d: Decoding<'a>,
    job: Job<S>,
    /// A failed model step or sampling: the request ends with this error.
    failed: Option<InferError>,
}

/// Drives a [`CausalLm`] for any number of requests: slots with prefix caches, continuous
/// batching, cancellation, the per-sequence [`Decoding`] state machine.
pub struct Engine<'a> {
    model: &'a dyn CausalLm,
    tokenizer: &'a Tokenizer,
    /// Sequences decoded together at most (the server's `max_concurrency`).
    max_batch: usize,
    /// Shortest shared prefix worth reusing for a request with `cache_prompt`.
    min_reuse: usize,
    /// Caches of the free slots, each remembering its last request's tokens.
    free: Mutex<Vec<PrefixCache>>,
}

impl<'a> Engine<'a> {
    /// An engine for `model` and `tokenizer` decoding one sequence at a time; fails if the
    /// tokenizer can emit ids the model has no row for.
    pub fn new(model: &'a dyn CausalLm, tokenizer: &'a Tokenizer) -> Result<Self> {
        crate::check_vocab(model.config(), tokenizer)?;
        Ok(Self { model, tokenizer, max_batch: 1, min_reuse: 1, free: Mutex::new(Vec::new()) })
    }

    /// Decodes up to `max_batch` sequences together (at least 1).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Reuses a cached prefix only when it is at least `tokens` long (at least 1): shorter ones
    /// are processed again, which keeps short prompts' results independent of what ran before.
    pub fn with_min_reuse(mut self, tokens: usize) -> Self {
        self.min_reuse = tokens.max(1);
        self
    }

    /// The shortest prefix [`Request::cache_prompt`] reuses.
    pub fn min_reuse(&self) -> usize {
        self.min_reuse
    }

    /// The model.
    pub fn model(&self) -> &'a dyn CausalLm {
        self.model
    }

    /// Generates after `prompt_ids` alone (a batch of one), calling `on_text` with each piece of
    /// final text.
    pub fn generate(&self, prompt_ids: &[u32], params: &GenerateParams, on_text: impl FnMut(&str)) -> Result<Generation> {
        self.generate_cancellable(prompt_ids, params, Arc::new(AtomicBool::new(false)), on_text)
    }

    /// [`Engine::generate`] that stops (finish reason `cancelled`) before the next token once
    /// `cancel` is set.
    pub fn generate_cancellable(
        &self,
        prompt_ids: &[u32],
        params: &GenerateParams,
        cancel: Arc<AtomicBool>,
        on_text: impl FnMut(&str),
    ) -> Result<Generation> {
        struct One<F: FnMut(&str)> {
            on_text: F,
            out: Option<Result<Generation>>,
        }
        impl<F: FnMut(&str)> Sink for &mut One<F> {
            fn text(&mut self, piece: &str) {
                (self.on_text)(piece)
            }
            fn done(self, result: Result<Generation>) {
                self.out = Some(result);
            }
        }
        let mut one = One { on_text, out: None };
        let request = Request { ids: prompt_ids.to_vec(), params: params.clone(), cache_prompt: false };
        let mut job = Some(Job { request, cancel, sink: &mut one });
        self.run(|_| job.take(), |_| {});
        one.out.unwrap_or_else(|| Err(InferError::Decode("the engine ended without a result".into())))
    }

    /// Generates every request, up to the batch size at once (a finished sequence's place is
    /// taken by the next request at once); results in the order of `requests`. The same text
    /// as generating each alone.
    pub fn generate_batch(&self, requests: Vec<Request>) -> Vec<Result<Generation>> {
        struct Slot<'r>(&'r mut Option<Result<Generation>>);
        impl Sink for Slot<'_> {
            fn text(&mut self, _: &str) {}
            fn done(self, result: Result<Generation>) {
                *self.0 = Some(result);
            }
        }
        let mut out: Vec<Option<Result<Generation>>> = (0..requests.len()).map(|_| None).collect();
        let cancel = Arc::new(AtomicBool::new(false));
        let mut jobs =
            requests.into_iter().zip(out.iter_mut()).map(|(request, slot)| Job { request, cancel: cancel.clone(), sink: Slot(slot) });
        self.run(|_| jobs.next(), |_| {});
        drop(jobs);
        out.into_iter().map(|r| r.unwrap_or_else(|| Err(InferError::Decode("not generated".into())))).collect()
    }

    /// The engine loop. `next(idle)` hands over the next request: when `idle` (nothing runs) it
    /// may block until one arrives, and `None` then ends the loop; when not idle it must not
    /// block, and `None` means none is waiting. `on_running(n)` hears the number of running
    /// requests whenever it changes.
    pub fn run<S: Sink>(&self, mut next: impl FnMut(bool) -> Option<Job<S>>, mut on_running: impl FnMut(usize)) {
        let mut running: Vec<Running<'a, S>> = Vec::new();
        loop {
            // Admit new requests up to the batch size; block only when idle.
            while running.len() < self.max_batch {
                let idle = running.is_empty();
                let Some(job) = next(idle) else {
                    if idle {
                        return;
                    }
                    break;
                };
                if let Some(r) = self.admit(job) {
                    running.push(r);
                }
            }
            on_running(running.len());
            self.step(&mut running);
            // Retire what has ended, from the back so that swap_remove only moves checked entries.
            for i in (0..running.len()).rev() {
                if running[i].failed.is_none() && !running[i].d.is_finished() {
                    continue;
                }
                let Running { d, mut job, failed } = running.swap_remove(i);
                let result = match failed {
                    Some(e) => Err(e),
                    None => d.finish(&mut |p| job.sink.text(p)).map(|(generation, cache)| {
                        self.give_back(cache);
                        generation
                    }),
                };
                // The slot is free before the answer goes out: a client that has its answer and
                // then asks the server's /health must not still see its own slot busy.
                on_running(running.len());
                job.sink.done(result);
            }
        }
    }

    /// Starts `job` (prefill and first token); on failure it is answered at once.
    fn admit<S: Sink>(&self, mut job: Job<S>) -> Option<Running<'a, S>> {
        let prefix = self.take_cache(&job.request.ids);
        let min_reuse = if job.request.cache_prompt { self.min_reuse } else { usize::MAX };
        let Job { request, cancel, sink } = &mut job;
        match Decoding::start(self.model, self.tokenizer, prefix, min_reuse, &request.ids, &request.params, cancel, &mut |p| sink.text(p)) {
            Ok(d) => Some(Running { d, job, failed: None }),
            Err(e) => {
                job.sink.done(Err(e));
                None
            }
        }
    }

    /// One decode step for every sequence that goes on. A sequence whose sampling fails, or all
    /// of them when the model step fails, end with the error.
    fn step<S: Sink>(&self, running: &mut [Running<'a, S>]) {
        let inputs: Vec<Option<u32>> =
            running.iter_mut().map(|r| if r.failed.is_some() { None } else { r.d.next_input(&r.job.cancel) }).collect();
        let tokens: Vec<u32> = inputs.iter().flatten().copied().collect();
        if tokens.is_empty() {
            return;
        }
        let mut caches: Vec<&mut dyn KvCache> =
            running.iter_mut().zip(&inputs).filter(|(_, i)| i.is_some()).map(|(r, _)| r.d.cache_mut()).collect();
        let step = self.model.decode(&tokens, &mut caches);
        drop(caches);
        let vocab = self.model.config().vocab_size;
        match step {
            Ok(mut logits) if logits.len() == tokens.len() * vocab => {
                let stepped = running.iter_mut().zip(&inputs).filter(|(_, i)| i.is_some()).map(|(r, _)| r);
                for (r, row) in stepped.zip(logits.chunks_mut(vocab)) {
                    let Running { d, job, failed } = r;
                    if let Err(e) = d.accept(row, &mut |p| job.sink.text(p)) {
                        tracing::error!(error = %e, "sampling failed");
                        *failed = Some(InferError::Decode(e.to_string()));
                    }
                }
            }
            other => {
                let message = match other {
                    Ok(l) => format!("the model returned {} logits for {} sequences of {vocab} ids", l.len(), tokens.len()),
                    Err(e) => e.to_string(),
                };
                tracing::error!(error = %message, "batched decode step failed");
                for (r, _) in running.iter_mut().zip(&inputs).filter(|(_, i)| i.is_some()) {
                    r.failed = Some(InferError::Decode(message.clone()));
                }
            }
        }
    }

    /// Takes the free cache sharing the longest prefix with `prompt`, or a new one.
    fn take_cache(&self, prompt: &[u32]) -> PrefixCache {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        match (0..free.len()).max_by_key(|&i| free[i].common_prefix(prompt)) {
            Some(i) => free.swap_remove(i),
            None => PrefixCache::new(self.model),
        }
    }

    fn give_back(&self, cache: PrefixCache) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        // One cache per slot is enough; extra ones (from generate_batch's wider batches) go.
        if free.len() < self.max_batch {
            free.push(cache);
        }
    }
}
