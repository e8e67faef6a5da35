//! The server's side of generation: one thread runs kiln-infer's [`Engine`] (continuous
//! batching, slots with prefix caches, cancellation) over the jobs the HTTP handlers send, and
//! each job's [`Reply`] carries its text and result back to its handler. Decoding itself lives in
//! kiln-infer; what stays here is HTTP's concern: the slot permit, the metrics, the channels.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use kiln_infer::{Engine, Generation, LoadedModel, Sink};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use crate::metrics::Metrics;
use crate::{ApiError, Outcome};

/// A request handed to the engine thread.
pub type EngineJob = kiln_infer::Job<Reply>;

/// Where one request's text and result go.
pub struct Reply {
    /// Text pieces, for streaming.
    pub pieces: Option<mpsc::UnboundedSender<String>>,
    /// The result.
    pub done: oneshot::Sender<Result<Outcome, ApiError>>,
    /// The slot this request holds (released before the answer is sent).
    pub permit: OwnedSemaphorePermit,
    /// Milliseconds it waited for the slot.
    pub queued_ms: f64,
    /// Set when the client is gone (a closed stream).
    pub cancel: Arc<AtomicBool>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// When the request reached the engine's queue (time to first token counts from here).
    pub submitted: Instant,
    /// No text has been sent yet.
    pub first: bool,
}

impl Sink for Reply {
    fn text(&mut self, piece: &str) {
        if self.first {
            self.metrics.first_token(self.submitted.elapsed().as_secs_f64());
            self.first = false;
        }
        if let Some(tx) = &self.pieces {
            if tx.send(piece.to_string()).is_err() {
                self.cancel.store(true, Ordering::Relaxed);
            }
        }
    }

    fn done(self, result: kiln_infer::Result<Generation>) {
        let result = match result {
            Ok(generation) => {
                let m = &self.metrics;
                m.prompt_tokens.fetch_add(generation.prompt_ids.len() as u64, Ordering::Relaxed);
                m.generated_tokens.fetch_add(generation.ids.len() as u64, Ordering::Relaxed);
                m.cached_tokens.fetch_add(generation.timings.cached_tokens as u64, Ordering::Relaxed);
                Ok(Outcome { generation, queued_ms: self.queued_ms })
            }
            Err(e) => Err(e.into()),
        };
        // The slot and the queue permit are released before the answer goes out: a client that
        // has its answer and then asks /health must not still see its own slot busy (the http
        // test `a_client_that_leaves_mid_stream_frees_its_slot` caught that race).
        let Reply { done, permit, .. } = self;
        drop(permit);
        let _ = done.send(result);
    }
}

/// The engine thread's loop: returns when every sender is gone and nothing runs.
pub fn run(model: Arc<LoadedModel>, jobs: Receiver<EngineJob>, metrics: Arc<Metrics>, max_batch: usize, cache_min_tokens: usize) {
    let engine = match Engine::new(model.model.as_ref(), &model.tokenizer) {
        Ok(e) => e.with_max_batch(max_batch).with_min_reuse(cache_min_tokens),
        Err(e) => {
            for j in jobs {
                let _ = j.sink.done.send(Err(ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())));
            }
            return;
        }
    };
    engine.run(|idle| if idle { jobs.recv().ok() } else { jobs.try_recv().ok() }, |n| metrics.active.store(n as u64, Ordering::Relaxed));
}
