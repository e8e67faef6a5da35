//! `POST /infill`: llama.cpp's infilling endpoint. `input_extra` files go before the cursor's
//! file (dropped oldest first when they do not fit); the response carries llama.cpp's
//! `timings`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiln_infer::prompt::{self, ContextFile};
use kiln_infer::{FinishReason, GenerateParams, Generation};
use serde::Deserialize;
use serde_json::{json, Value};

use super::params::{check_length, max_tokens, repo_context, sampling, stops, with_language_stops};
use super::read_json;
use super::stream::{stream_generation, StreamEvent};
use crate::{generate, ApiError, AppState, CancelOnDrop, Job, Outcome};

/// One file of llama.cpp's `input_extra`.
#[derive(Debug, Deserialize)]
pub struct ExtraChunk {
    /// Path (default `tmp`, as llama.cpp).
    pub filename: Option<String>,
    /// Its text.
    pub text: String,
}

/// `POST /infill` (llama.cpp). Unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub struct InfillRequest {
    /// Code before the cursor (required).
    pub input_prefix: Option<String>,
    /// Code after the cursor (required).
    pub input_suffix: Option<String>,
    /// Other files, placed before the cursor's file in the prompt.
    #[serde(default)]
    pub input_extra: Vec<ExtraChunk>,
    /// Text already typed in the middle (placed after the FIM end marker).
    pub prompt: Option<String>,
    /// kiln: the file being edited, relative to the `--repo` root (see [`CompletionRequest::file`](super::CompletionRequest::file)).
    pub file: Option<String>,
    /// kiln: see [`CompletionRequest::language_stops`](super::CompletionRequest::language_stops).
    pub language_stops: Option<bool>,
    /// kiln: see [`CompletionRequest::language`](super::CompletionRequest::language).
    pub language: Option<String>,
    /// Most new tokens; -1 (the default): until EOS or the context is full.
    pub n_predict: Option<i64>,
    /// Default 0.8, as llama.cpp.
    pub temperature: Option<f64>,
    /// Default 40.
    pub top_k: Option<i64>,
    /// Default 0.95.
    pub top_p: Option<f64>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// Stop strings.
    pub stop: Option<Vec<String>>,
    /// SSE streaming.
    pub stream: Option<bool>,
    /// Reuse a slot's KV cache for the longest common prefix (default true, as llama.cpp).
    pub cache_prompt: Option<bool>,
    /// A generated line indented by fewer columns ends the middle (0: off, the default).
    pub n_indent: Option<i64>,
    /// Stop this many ms after the first generated newline (0: off, the default).
    pub t_max_predict_ms: Option<i64>,
}

/// The generation job, whether `input_extra` was cut, and the paths of the context files placed
/// before the cursor's file (repository context, then the client's chunks).
fn infill_params(state: &AppState, r: &InfillRequest) -> Result<(Job, bool, Vec<String>), ApiError> {
    let prefix = r.input_prefix.as_deref().ok_or_else(|| ApiError::field("input_prefix", "input_prefix is required"))?;
    let suffix = r.input_suffix.as_deref().ok_or_else(|| ApiError::field("input_suffix", "input_suffix is required"))?;
    let mut extra: Vec<ContextFile> = r
        .input_extra
        .iter()
        .map(|c| ContextFile { path: c.filename.clone().unwrap_or_else(|| "tmp".into()), text: c.text.clone() })
        .collect();
    let tok = &state.model.tokenizer;
    let max_new = max_tokens(state, "n_predict", r.n_predict, -1)?;
    // Chunks that do not fit go first, oldest first (llama.cpp's order); the text near the
    // cursor is never cut.
    let max_pos = state.model.model.config().max_position_embeddings;
    let room = max_pos.saturating_sub(max_new.min(max_pos / 4) + 1);
    let mut near = prompt::repo_fim_ids(tok, &extra, None, prefix, suffix)?.0.len();
    let mut truncated = false;
    while near > room && !extra.is_empty() {
        extra.remove(0);
        truncated = true;
        near = prompt::repo_fim_ids(tok, &extra, None, prefix, suffix)?.0.len();
    }
    // Repository context first (dependency order), then the client's chunks, then the file.
    let (mut context, path) = repo_context(state, r.file.as_deref(), near, max_new)?;
    context.extend(extra);
    let context_files: Vec<String> = context.iter().map(|c| c.path.clone()).collect();
    let (mut ids, _context_tokens) = prompt::repo_fim_ids(tok, &context, path.as_deref(), prefix, suffix)?;
    if let Some(typed) = r.prompt.as_deref().filter(|p| !p.is_empty()) {
        ids.extend(tok.encode_raw(typed).map_err(kiln_infer::InferError::from)?);
    }
    check_length(state, &ids)?;
    let params = GenerateParams {
        max_new_tokens: max_new,
        sampling: sampling(r.temperature.unwrap_or(0.8), Some(r.top_p.unwrap_or(0.95)), Some(r.top_k.unwrap_or(40)), r.seed)?,
        eos_ids: state.model.eos_ids.clone(),
        stop: with_language_stops(stops(r.stop.clone().unwrap_or_default())?, r.language_stops, r.language.as_deref(), r.file.as_deref())?,
        min_indent: match r.n_indent {
            Some(n) if n < 0 => return Err(ApiError::field("n_indent", format!("n_indent must be >= 0, got {n}"))),
            Some(n) if n > 0 => Some(n as usize),
            _ => None,
        },
        max_ms_after_newline: match r.t_max_predict_ms {
            Some(t) if t < 0 => return Err(ApiError::field("t_max_predict_ms", format!("t_max_predict_ms must be >= 0, got {t}"))),
            Some(t) if t > 0 => Some(t as u64),
            _ => None,
        },
    };
    Ok((Job { ids, params, cache_prompt: r.cache_prompt.unwrap_or(true) }, truncated, context_files))
}

/// llama.cpp's `stop_type`.
fn stop_type(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Eos => "eos",
        FinishReason::Stop => "word",
        FinishReason::Length | FinishReason::ContextFull => "limit",
        FinishReason::Cancelled => "none",
    }
}

/// The full llama.cpp `/completion`-shaped response of a finished generation, plus kiln's
/// `context_files` (the files placed before the cursor's file).
fn llama_response(state: &AppState, o: &Outcome, truncated: bool, context_files: &[String]) -> Value {
    let g: &Generation = &o.generation;
    let t = &g.timings;
    let predicted = g.ids.len();
    let processed = t.prompt_tokens - t.cached_tokens; // as llama.cpp: the prompt tokens evaluated now
    let per = |ms: f64, n: usize| if n > 0 { ms / n as f64 } else { 0.0 };
    let rate = |ms: f64, n: usize| if ms > 0.0 { n as f64 * 1000.0 / ms } else { 0.0 };
    json!({
        "index": 0, "content": g.text, "tokens": [], "id_slot": 0, "stop": true,
        "model": state.cfg.model_name, "tokens_predicted": predicted, "tokens_evaluated": g.prompt_ids.len(),
        "has_new_line": g.text.contains('\n'), "truncated": truncated,
        "stop_type": stop_type(g.finish_reason), "stopping_word": "", "tokens_cached": t.cached_tokens,
        "context_files": context_files,
        "timings": {
            "prompt_n": processed, "prompt_ms": t.prefill_ms,
            "prompt_per_token_ms": per(t.prefill_ms, processed), "prompt_per_second": rate(t.prefill_ms, processed),
            "predicted_n": predicted, "predicted_ms": t.decode_ms,
            "predicted_per_token_ms": per(t.decode_ms, t.decode_tokens), "predicted_per_second": rate(t.decode_ms, t.decode_tokens),
            "queued_ms": o.queued_ms,
        },
    })
}

/// `POST /infill`.
pub async fn infill(State(state): State<Arc<AppState>>, req: Request) -> Result<Response, ApiError> {
    let r: InfillRequest = read_json(&state, req).await?;
    let (job, truncated, context_files) = infill_params(&state, &r)?;
    if r.stream == Some(true) {
        let st = state.clone();
        let stream = stream_generation(&state, job).await?;
        let events = stream.into_events(move |ev| match ev {
            StreamEvent::Piece(p) => vec![Event::default().data(json!({"content": p, "tokens": [], "stop": false}).to_string())],
            StreamEvent::Done(Ok(o)) => {
                let mut last = llama_response(&st, &o, truncated, &context_files);
                last["content"] = json!("");
                vec![Event::default().data(last.to_string())]
            }
            StreamEvent::Done(Err(e)) => {
                vec![Event::default().data(json!({"error": {"message": e.message, "code": e.status.as_u16()}}).to_string())]
            }
        });
        return Ok(Sse::new(events).into_response());
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let wait = Instant::now();
    let permit = state.acquire_slot().await?;
    let o = generate(&state, permit, job, cancel, None, wait.elapsed().as_secs_f64() * 1000.0).await?;
    Ok(Json(llama_response(&state, &o, truncated, &context_files)).into_response())
}
