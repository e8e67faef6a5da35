//! What the two OpenAI endpoints (`/v1/completions`, `/v1/chat/completions`) share: `stop` as
//! one string or many, `n` choices generated one after another, and the `usage` object.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::{generate, ApiError, AppState, CancelOnDrop, Job, Outcome};

/// A string or a list of strings (OpenAI's `stop`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// OpenAI's usage object (`prompt_tokens_details.cached_tokens`: the reused prefix).
pub(super) fn usage(prompt: usize, completion: usize, cached: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": cached}})
}

/// Runs `n` generations of `job` one after another (seeds `seed`, `seed + 1`, ...), each in a
/// slot; all are cancelled if the client goes away (the future is dropped).
pub(super) async fn run_n(state: &Arc<AppState>, job: &Job, n: usize) -> Result<Vec<Outcome>, ApiError> {
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut j = Job { ids: job.ids.clone(), params: job.params.clone(), cache_prompt: job.cache_prompt };
        j.params.sampling.seed = j.params.sampling.seed.wrapping_add(i as u64);
        let wait = Instant::now();
        let permit = state.acquire_slot().await?;
        out.push(generate(state, permit, j, cancel.clone(), None, wait.elapsed().as_secs_f64() * 1000.0).await?);
    }
    Ok(out)
}

/// (prompt tokens, completion tokens over all choices, cached prompt tokens) for `usage`.
pub(super) fn totals(outcomes: &[Outcome]) -> (usize, usize, usize) {
    let last = outcomes.last().map(|o| (o.generation.prompt_ids.len(), o.generation.timings.cached_tokens)).unwrap_or((0, 0));
    (last.0, outcomes.iter().map(|o| o.generation.ids.len()).sum(), last.1)
}
