//! The generation engine: one thread that owns the decoding of every running request and steps
//! them together (continuous batching). Each step feeds every running sequence's next token
//! through one `Llama::decode_batch` call, so the weights are read once per step for all of
//! them; new requests join between steps (their prompt processed on its own first), finished
//! ones leave. On the f32 CPU path a sequence's tokens are the same bits alone or batched.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::StatusCode;
use kiln_infer::{Decoding, Generator, LoadedModel, PrefixCache};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use crate::metrics::Metrics;
use crate::{ApiError, Job, Outcome};

/// A request handed to the engine.
pub struct EngineJob {
    /// What to generate.
    pub job: Job,
    /// Set when the client is gone.
    pub cancel: Arc<AtomicBool>,
    /// Text pieces, for streaming.
    pub pieces: Option<mpsc::UnboundedSender<String>>,
    /// The result.
    pub done: oneshot::Sender<Result<Outcome, ApiError>>,
    /// The slot this request holds (released when it is dropped with the job).
    pub permit: OwnedSemaphorePermit,
    /// Milliseconds it waited for the slot.
    pub queued_ms: f64,
}

/// What the engine thread shares with the server.
pub struct EngineShared {
    /// The model.
    pub model: Arc<LoadedModel>,
    /// KV caches of the free slots, each remembering its last request's tokens.
    pub caches: Mutex<Vec<PrefixCache>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Shortest shared prefix worth reusing.
    pub cache_min_tokens: usize,
}

impl EngineShared {
    /// Takes the free cache sharing the longest prefix with `prompt` (llama.cpp picks slots by
    /// prompt similarity too).
    fn take_cache(&self, prompt: &[u32]) -> PrefixCache {
        let mut free = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        match (0..free.len()).max_by_key(|&i| free[i].common_prefix(prompt)) {
            Some(i) => free.swap_remove(i),
            None => PrefixCache::new(&self.model.model),
        }
    }

    fn return_cache(&self, cache: PrefixCache) {
        self.caches.lock().unwrap_or_else(|e| e.into_inner()).push(cache);
    }
}

/// One running request.
struct Running<'a> {
    d: Decoding<'a>,
    job: EngineJob,
    started: Instant,
    first: bool,
}

/// Sends a piece of text to the client, marking the request cancelled when the client is gone.
fn emitter<'j>(job: &'j EngineJob, metrics: &'j Metrics, started: Instant, first: &'j mut bool) -> impl FnMut(&str) + 'j {
    move |piece: &str| {
        if *first {
            metrics.first_token(started.elapsed().as_secs_f64());
            *first = false;
        }
        if let Some(tx) = &job.pieces {
            if tx.send(piece.to_string()).is_err() {
                job.cancel.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// The engine loop; returns when every sender is gone and nothing runs.
pub fn run(shared: Arc<EngineShared>, jobs: Receiver<EngineJob>, max_batch: usize) {
    let model = shared.model.clone();
    let generator = match Generator::new(&model.model, &model.tokenizer) {
        Ok(g) => g,
        Err(e) => {
            for j in jobs {
                let _ = j.done.send(Err(e.to_string()).map_err(|m| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, m)));
            }
            return;
        }
    };
    let mut running: Vec<Running> = Vec::new();
    loop {
        // Admit new requests up to the batch size; block only when idle.
        while running.len() < max_batch.max(1) {
            let job = if running.is_empty() {
                match jobs.recv() {
                    Ok(j) => j,
                    Err(_) => return,
                }
            } else {
                match jobs.try_recv() {
                    Ok(j) => j,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            };
            let started = Instant::now();
            let mut first = true;
            let prefix = shared.take_cache(&job.job.ids);
            let min_reuse = if job.job.cache_prompt { shared.cache_min_tokens.max(1) } else { usize::MAX };
            let result = {
                let mut emit = emitter(&job, &shared.metrics, started, &mut first);
                generator.start(prefix, min_reuse, &job.job.ids, &job.job.params, &job.cancel, &mut emit)
            };
            match result {
                Ok(d) => running.push(Running { d, job, started, first }),
                Err(e) => {
                    shared.return_cache(PrefixCache::new(&model.model));
                    let _ = job.done.send(Err(e.into()));
                }
            }
        }
        shared.metrics.active.store(running.len() as u64, Ordering::Relaxed);
        // One decode step for every sequence that goes on.
        let inputs: Vec<Option<u32>> = running.iter_mut().map(|r| r.d.next_input(&r.job.cancel)).collect();
        let tokens: Vec<u32> = inputs.iter().flatten().copied().collect();
        if !tokens.is_empty() {
            let mut caches: Vec<&mut kiln_model::Cache> =
                running.iter_mut().zip(&inputs).filter(|(_, i)| i.is_some()).map(|(r, _)| r.d.cache_mut()).collect();
            let step = model.model.decode_batch(&tokens, &mut caches).and_then(|l| Ok(l.to_vec2::<f32>()?));
            drop(caches);
            match step {
                Ok(rows) => {
                    let mut rows = rows.into_iter();
                    for (r, _) in running.iter_mut().zip(&inputs).filter(|(_, i)| i.is_some()) {
                        let mut logits = rows.next().expect("one row per sequence");
                        let Running { d, job, started, first } = r;
                        let mut emit = emitter(job, &shared.metrics, *started, first);
                        if let Err(e) = d.accept(&mut logits, &mut emit) {
                            tracing::error!(error = %e, "decoding failed");
                            job.cancel.store(true, Ordering::Relaxed);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "batched decode step failed");
                    running.iter().for_each(|r| r.job.cancel.store(true, Ordering::Relaxed));
                }
            }
        }
        // Retire what has ended, from the back so that swap_remove only moves checked entries.
        for i in (0..running.len()).rev() {
            if inputs.get(i).is_some_and(|x| x.is_some()) {
                continue;
            }
            let Running { d, job, started, mut first } = running.swap_remove(i);
            let outcome = {
                let mut emit = emitter(&job, &shared.metrics, started, &mut first);
                d.finish(&mut emit)
            };
            let result = match outcome {
                Ok((generation, cache)) => {
                    shared.return_cache(cache);
                    shared.metrics.prompt_tokens.fetch_add(generation.prompt_ids.len() as u64, Ordering::Relaxed);
                    shared.metrics.generated_tokens.fetch_add(generation.ids.len() as u64, Ordering::Relaxed);
                    shared.metrics.cached_tokens.fetch_add(generation.timings.cached_tokens as u64, Ordering::Relaxed);
                    Ok(Outcome { generation, queued_ms: job.queued_ms })
                }
                Err(e) => {
                    shared.return_cache(PrefixCache::new(&model.model));
                    Err(e.into())
                }
            };
            // The slot and the queue permit are released before the answer goes out: a client
            // that has its answer and then asks /health must not still see its own slot busy
            // (the http test `a_client_that_leaves_mid_stream_frees_its_slot` caught that race).
            shared.metrics.active.store(running.len() as u64, Ordering::Relaxed);
            let EngineJob { done, permit, .. } = job;
            drop(permit);
            let _ = done.send(result);
        }
        shared.metrics.active.store(running.len() as u64, Ordering::Relaxed);
    }
}
