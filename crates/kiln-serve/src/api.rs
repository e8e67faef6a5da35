//! The endpoints: request schemas, validation (every bad field is a 400 naming it), prompt
//! building, and the response shapes of OpenAI and llama.cpp.

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use kiln_infer::prompt::{self, ContextFile};
use kiln_infer::{FinishReason, GenerateParams, Generation, SamplingParams};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::{generate, ApiError, AppState, CancelOnDrop, Job, Outcome};

/// Reads the body (413 above the limit) and parses it (400 naming the position and field).
async fn read_json<T: DeserializeOwned>(state: &AppState, req: Request) -> Result<T, ApiError> {
    let limit = state.cfg.max_body_bytes;
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| ApiError::status(StatusCode::PAYLOAD_TOO_LARGE, format!("the request body is over {limit} bytes")))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("the body is not valid JSON for this endpoint: {e}")))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A string or a list of strings (OpenAI's `stop`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// OpenAI's `prompt`: text, one-element text list, or token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptInput {
    /// Text.
    Text(String),
    /// Texts (kiln takes exactly one).
    Texts(Vec<String>),
    /// Token ids.
    Ids(Vec<u32>),
    /// Several id lists (refused: one prompt per request).
    IdLists(Vec<Vec<u32>>),
}

/// `POST /v1/completions` (OpenAI legacy completions, with `suffix`). Unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    /// Ignored (one model per server); listed by `/v1/models`.
    pub model: Option<String>,
    /// The text before the cursor (or the whole prompt).
    pub prompt: Option<PromptInput>,
    /// The text after the cursor: makes this a fill-in-the-middle request.
    pub suffix: Option<String>,
    /// kiln: the file being edited, relative to the `--repo` root; its imports (dependency
    /// ordered) and its path comment go before the prompt.
    pub file: Option<String>,
    /// kiln: add the language's stop words (a blank line, a newline + a top-level keyword);
    /// the language comes from `language` or from `file`'s extension.
    pub language_stops: Option<bool>,
    /// kiln: the language for `language_stops` (`Python`, `Rust`, ...).
    pub language: Option<String>,
    /// Most new tokens (default 16, as OpenAI).
    pub max_tokens: Option<i64>,
    /// 0..=2 (default 1, as OpenAI; 0 is greedy).
    pub temperature: Option<f64>,
    /// Nucleus sampling, (0, 1].
    pub top_p: Option<f64>,
    /// Top-k (an extension many servers accept).
    pub top_k: Option<i64>,
    /// Completions per prompt, 1..=8.
    pub n: Option<i64>,
    /// SSE streaming.
    pub stream: Option<bool>,
    /// `{"include_usage": true}` adds a usage chunk before `[DONE]`.
    pub stream_options: Option<Value>,
    /// Stop strings (at most 16).
    pub stop: Option<OneOrMany>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// Refused when true.
    pub echo: Option<bool>,
    /// Refused when set.
    pub logprobs: Option<Value>,
    /// Refused above 1.
    pub best_of: Option<i64>,
    /// Refused when non-zero.
    pub presence_penalty: Option<f64>,
    /// Refused when non-zero.
    pub frequency_penalty: Option<f64>,
    /// Refused when non-empty.
    pub logit_bias: Option<Value>,
}

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
    /// kiln: the file being edited, relative to the `--repo` root (see [`CompletionRequest::file`]).
    pub file: Option<String>,
    /// kiln: see [`CompletionRequest::language_stops`].
    pub language_stops: Option<bool>,
    /// kiln: see [`CompletionRequest::language`].
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

/// Checks and converts the sampling fields.
fn sampling(temperature: f64, top_p: Option<f64>, top_k: Option<i64>, seed: Option<u64>) -> Result<SamplingParams, ApiError> {
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::field("temperature", format!("temperature must be between 0 and 2, got {temperature}")));
    }
    if let Some(p) = top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ApiError::field("top_p", format!("top_p must be in (0, 1], got {p}")));
        }
    }
    let top_k = match top_k {
        Some(k) if k < 0 => return Err(ApiError::field("top_k", format!("top_k must be >= 0, got {k}"))),
        Some(k) => Some(k as usize),
        None => None,
    };
    Ok(SamplingParams {
        temperature: temperature as f32,
        top_k,
        top_p: top_p.map(|p| p as f32),
        repetition_penalty: 1.0,
        seed: seed.unwrap_or(0),
    })
}

fn stops(stop: Vec<String>) -> Result<Vec<String>, ApiError> {
    if stop.len() > 16 {
        return Err(ApiError::field("stop", format!("at most 16 stop strings, got {}", stop.len())));
    }
    if stop.iter().any(|s| s.is_empty()) {
        return Err(ApiError::field("stop", "stop strings must not be empty"));
    }
    Ok(stop)
}

/// The stop words `language_stops` asks for, added to `stop`.
fn with_language_stops(
    mut stop: Vec<String>,
    on: Option<bool>,
    language: Option<&str>,
    file: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    if on != Some(true) {
        return Ok(stop);
    }
    let Some(name) = language.or(file) else {
        return Err(ApiError::field("language_stops", "language_stops needs `language` or `file` to know the language"));
    };
    let words = prompt::language_stops(name)
        .ok_or_else(|| ApiError::field(if language.is_some() { "language" } else { "file" }, format!("unknown language `{name}`")))?;
    for w in words {
        if !stop.contains(&w) {
            stop.push(w);
        }
    }
    Ok(stop)
}

/// Checks the prompt fits the context (413 otherwise: kiln never cuts text near the cursor).
fn check_length(state: &AppState, ids: &[u32]) -> Result<(), ApiError> {
    let max = state.model.model.config().max_position_embeddings;
    if ids.len() >= max {
        return Err(ApiError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the prompt is {} tokens and the model's context is {max}: shorten the prompt (or the input_extra files)", ids.len()),
        ));
    }
    Ok(())
}

fn max_tokens(state: &AppState, field: &str, v: Option<i64>, default: i64) -> Result<usize, ApiError> {
    let max = state.model.model.config().max_position_embeddings;
    match v.unwrap_or(default) {
        -1 if field == "n_predict" => Ok(max),
        n if n < 1 => Err(ApiError::field(field, format!("{field} must be at least 1, got {n}"))),
        n if n as u64 > max as u64 => Err(ApiError::field(field, format!("{field} is {n}, above the model's context of {max} tokens"))),
        n => Ok(n as usize),
    }
}

/// The repository context for a request naming `file`: its dependencies from `--repo`, in at
/// most the tokens the prompt near the cursor (`used` tokens) and `max_new` new tokens leave,
/// and the file's normalised path (its header goes before the prefix). The context is what
/// gets cut, never the text near the cursor.
fn repo_context(state: &AppState, file: Option<&str>, used: usize, max_new: usize) -> Result<(Vec<ContextFile>, Option<String>), ApiError> {
    let Some(file) = file else { return Ok((Vec::new(), None)) };
    let path = kiln_infer::repo::normalize_path(file)
        .map_err(|e| ApiError::field("file", e.to_string().trim_start_matches("bad request: ").to_string()))?;
    let Some(repo) = &state.repo else { return Ok((Vec::new(), Some(path))) };
    let max_pos = state.model.model.config().max_position_embeddings;
    let reserve = max_new.min(max_pos / 4) + 16;
    let budget = max_pos.saturating_sub(used + reserve);
    if budget < 16 {
        return Ok((Vec::new(), Some(path)));
    }
    Ok((repo.context_for(&path, budget, &state.model.tokenizer)?, Some(path)))
}

fn completion_params(state: &AppState, r: &CompletionRequest) -> Result<(Vec<u32>, GenerateParams, usize), ApiError> {
    if r.echo == Some(true) {
        return Err(ApiError::field("echo", "echo is not supported; send the prompt yourself"));
    }
    if r.logprobs.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(ApiError::field("logprobs", "logprobs are not supported yet"));
    }
    if r.best_of.is_some_and(|b| b != 1) {
        return Err(ApiError::field("best_of", "best_of other than 1 is not supported"));
    }
    for (name, v) in [("presence_penalty", r.presence_penalty), ("frequency_penalty", r.frequency_penalty)] {
        if v.is_some_and(|v| v != 0.0) {
            return Err(ApiError::field(name, format!("{name} is not supported; leave it at 0")));
        }
    }
    if r.logit_bias.as_ref().is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty())) {
        return Err(ApiError::field("logit_bias", "logit_bias is not supported"));
    }
    let n = r.n.unwrap_or(1);
    if !(1..=8).contains(&n) {
        return Err(ApiError::field("n", format!("n must be 1..=8, got {n}")));
    }
    if n > 1 && r.stream == Some(true) {
        return Err(ApiError::field("n", "streaming supports n = 1 only"));
    }
    let max_new = max_tokens(state, "max_tokens", r.max_tokens, 16)?;
    let ids = match (&r.prompt, &r.suffix) {
        (None, _) => return Err(ApiError::field("prompt", "prompt is required")),
        (Some(PromptInput::Text(p)), suffix) => text_ids(state, p, suffix.as_deref(), r.file.as_deref(), max_new)?,
        (Some(PromptInput::Texts(ps)), suffix) if ps.len() == 1 => text_ids(state, &ps[0], suffix.as_deref(), r.file.as_deref(), max_new)?,
        (Some(PromptInput::Ids(_)), _) if r.file.is_some() => {
            return Err(ApiError::field("file", "repository context needs a text prompt"))
        }
        (Some(PromptInput::Texts(_)) | Some(PromptInput::IdLists(_)), _) => {
            return Err(ApiError::field("prompt", "one prompt per request (send a string)"))
        }
        (Some(PromptInput::Ids(_)), Some(_)) => return Err(ApiError::field("suffix", "a suffix needs a text prompt")),
        (Some(PromptInput::Ids(ids)), None) => {
            let v = state.model.model.config().vocab_size;
            if let Some(bad) = ids.iter().find(|&&i| i as usize >= v) {
                return Err(ApiError::field("prompt", format!("token id {bad} is outside the vocabulary ({v} ids)")));
            }
            ids.clone()
        }
    };
    if ids.is_empty() {
        return Err(ApiError::field("prompt", "the prompt is empty"));
    }
    check_length(state, &ids)?;
    let stop = stops(match &r.stop {
        None => vec![],
        Some(OneOrMany::One(s)) => vec![s.clone()],
        Some(OneOrMany::Many(v)) => v.clone(),
    })?;
    let stop = with_language_stops(stop, r.language_stops, r.language.as_deref(), r.file.as_deref())?;
    let params = GenerateParams {
        max_new_tokens: max_new,
        sampling: sampling(r.temperature.unwrap_or(1.0), r.top_p, r.top_k, r.seed)?,
        eos_ids: state.model.eos_ids.clone(),
        stop,
        ..Default::default()
    };
    Ok((ids, params, n as usize))
}

fn text_ids(state: &AppState, prompt_text: &str, suffix: Option<&str>, file: Option<&str>, max_new: usize) -> Result<Vec<u32>, ApiError> {
    let tok = &state.model.tokenizer;
    if file.is_none() {
        return Ok(match suffix {
            Some(s) => prompt::fim_ids(tok, prompt_text, s)?,
            None => prompt::completion_ids(tok, prompt_text)?,
        });
    }
    let near = tok.encode_raw(prompt_text).map_err(kiln_infer::InferError::from)?.len()
        + suffix.map(|s| tok.encode_raw(s).map(|i| i.len()).unwrap_or(s.len())).unwrap_or(0);
    let (context, path) = repo_context(state, file, near + 8, max_new)?;
    Ok(match suffix {
        Some(s) => prompt::repo_fim_ids(tok, &context, path.as_deref(), prompt_text, s)?.0,
        None => prompt::repo_completion_ids(tok, &context, path.as_deref(), prompt_text)?.0,
    })
}

/// OpenAI's usage object (`prompt_tokens_details.cached_tokens`: the reused prefix).
fn usage(prompt: usize, completion: usize, cached: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": cached}})
}

/// Runs `n` generations of `job` one after another (seeds `seed`, `seed + 1`, ...), each in a
/// slot; all are cancelled if the client goes away (the future is dropped).
async fn run_n(state: &Arc<AppState>, job: &Job, n: usize) -> Result<Vec<Outcome>, ApiError> {
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
fn totals(outcomes: &[Outcome]) -> (usize, usize, usize) {
    let last = outcomes.last().map(|o| (o.generation.prompt_ids.len(), o.generation.timings.cached_tokens)).unwrap_or((0, 0));
    (last.0, outcomes.iter().map(|o| o.generation.ids.len()).sum(), last.1)
}

/// `POST /v1/completions`.
pub async fn completions(State(state): State<Arc<AppState>>, req: Request) -> Result<Response, ApiError> {
    let r: CompletionRequest = read_json(&state, req).await?;
    let (ids, params, n) = completion_params(&state, &r)?;
    let (id, created, model) = (state.id("cmpl"), unix_now(), state.cfg.model_name.clone());
    if r.stream == Some(true) {
        let include_usage = r.stream_options.as_ref().and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
        let chunk = move |text: &str, finish: Option<&str>| json!({"id": id, "object": "text_completion", "created": created, "model": model, "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}]});
        let stream = stream_generation(&state, Job { ids, params, cache_prompt: true }).await?;
        let events = stream.into_events(move |ev| match ev {
            StreamEvent::Piece(p) => vec![Event::default().data(chunk(&p, None).to_string())],
            StreamEvent::Done(Ok(o)) => {
                let g = &o.generation;
                let mut out = vec![Event::default().data(chunk("", Some(g.finish_reason.openai())).to_string())];
                if include_usage {
                    let mut u = chunk("", None);
                    u["choices"] = json!([]);
                    u["usage"] = usage(g.prompt_ids.len(), g.ids.len(), g.timings.cached_tokens);
                    out.push(Event::default().data(u.to_string()));
                }
                out.push(Event::default().data("[DONE]"));
                out
            }
            StreamEvent::Done(Err(e)) => vec![
                Event::default().data(json!({"error": {"message": e.message, "code": e.status.as_u16()}}).to_string()),
                Event::default().data("[DONE]"),
            ],
        });
        return Ok(Sse::new(events).into_response());
    }
    let outcomes = run_n(&state, &Job { ids, params, cache_prompt: true }, n).await?;
    let choices: Vec<Value> = outcomes
        .iter()
        .enumerate()
        .map(
            |(i, o)| json!({"text": o.generation.text, "index": i, "logprobs": null, "finish_reason": o.generation.finish_reason.openai()}),
        )
        .collect();
    let (prompt_tokens, completion_tokens, cached_tokens) = totals(&outcomes);
    Ok(Json(json!({
        "id": id, "object": "text_completion", "created": created, "model": model,
        "choices": choices, "usage": usage(prompt_tokens, completion_tokens, cached_tokens),
    }))
    .into_response())
}

fn infill_params(state: &AppState, r: &InfillRequest) -> Result<(Job, bool), ApiError> {
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
    Ok((Job { ids, params, cache_prompt: r.cache_prompt.unwrap_or(true) }, truncated))
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

/// The full llama.cpp `/completion`-shaped response of a finished generation.
fn llama_response(state: &AppState, o: &Outcome, truncated: bool) -> Value {
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
    let (job, truncated) = infill_params(&state, &r)?;
    if r.stream == Some(true) {
        let st = state.clone();
        let stream = stream_generation(&state, job).await?;
        let events = stream.into_events(move |ev| match ev {
            StreamEvent::Piece(p) => vec![Event::default().data(json!({"content": p, "tokens": [], "stop": false}).to_string())],
            StreamEvent::Done(Ok(o)) => {
                let mut last = llama_response(&st, &o, truncated);
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
    Ok(Json(llama_response(&state, &o, truncated)).into_response())
}

/// What a streaming generation yields.
pub enum StreamEvent {
    /// Final text, in order.
    Piece(String),
    /// The end.
    Done(Result<Outcome, ApiError>),
}

/// A running streamed generation.
pub struct GenerationStream {
    pieces: mpsc::UnboundedReceiver<String>,
    done: oneshot::Receiver<Result<Outcome, ApiError>>,
}

/// Starts a generation whose text arrives piece by piece; waits for a slot first, so a full
/// queue is still a plain 429 response rather than an error inside a stream.
async fn stream_generation(state: &Arc<AppState>, job: Job) -> Result<GenerationStream, ApiError> {
    let wait = Instant::now();
    let permit = state.acquire_slot().await?;
    let queued_ms = wait.elapsed().as_secs_f64() * 1000.0;
    let (tx, rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = oneshot::channel();
    let st = state.clone();
    tokio::spawn(async move {
        let r = generate(&st, permit, job, Arc::new(AtomicBool::new(false)), Some(tx), queued_ms).await;
        let _ = done_tx.send(r);
    });
    Ok(GenerationStream { pieces: rx, done: done_rx })
}

impl GenerationStream {
    /// SSE events: `render` turns each piece, then the end, into events. Dropping the stream
    /// (the client went away) closes the piece channel, which cancels the generation.
    fn into_events(
        self,
        render: impl Fn(StreamEvent) -> Vec<Event> + Send + 'static,
    ) -> impl Stream<Item = Result<Event, Infallible>> + Send {
        let state = (Some(self), Vec::<Event>::new());
        stream::unfold((state, render), |((mut gen, mut pending), render)| async move {
            loop {
                if let Some(ev) = pending.pop() {
                    return Some((Ok(ev), ((gen, pending), render)));
                }
                let g = gen.as_mut()?;
                match g.pieces.recv().await {
                    Some(p) => pending = render(StreamEvent::Piece(p)),
                    None => {
                        let g = gen.take()?;
                        let done = g.done.await.unwrap_or_else(|_| {
                            Err(ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, "generation task ended without a result"))
                        });
                        pending = render(StreamEvent::Done(done));
                    }
                }
                pending.reverse(); // popped from the back
            }
        })
    }
}

/// One chat message: `content` is a string or a list of `{"type": "text", "text": …}` parts.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    /// system, user or assistant.
    pub role: String,
    /// The text.
    pub content: Value,
}

/// `POST /v1/chat/completions` (OpenAI), for the instruct checkpoints. Unknown fields ignored.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// Ignored (one model per server).
    pub model: Option<String>,
    /// The conversation, rendered with DeepSeek-Coder instruct's template.
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
    /// Most new tokens (default: until EOT or the context is full).
    pub max_tokens: Option<i64>,
    /// OpenAI's newer name for `max_tokens`.
    pub max_completion_tokens: Option<i64>,
    /// 0..=2 (default 1).
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Completions (1..=8).
    pub n: Option<i64>,
    /// SSE streaming.
    pub stream: Option<bool>,
    /// `{"include_usage": true}` adds a usage chunk.
    pub stream_options: Option<Value>,
    /// Stop strings.
    pub stop: Option<OneOrMany>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// Refused when non-empty.
    pub tools: Option<Value>,
    /// Refused when set to anything but text.
    pub response_format: Option<Value>,
    /// Refused when true.
    pub logprobs: Option<bool>,
}

fn chat_job(state: &AppState, r: &ChatRequest) -> Result<(Job, usize), ApiError> {
    use kiln_tokenizer::special::{chat_prompt, Role};
    if r.tools.as_ref().is_some_and(|t| t.as_array().is_some_and(|a| !a.is_empty())) {
        return Err(ApiError::field("tools", "tool calls are not supported"));
    }
    if r.response_format.as_ref().is_some_and(|f| f.get("type").and_then(Value::as_str).is_some_and(|t| t != "text")) {
        return Err(ApiError::field("response_format", "only text responses are supported"));
    }
    if r.logprobs == Some(true) {
        return Err(ApiError::field("logprobs", "logprobs are not supported yet"));
    }
    if r.messages.is_empty() {
        return Err(ApiError::field("messages", "messages is required and must not be empty"));
    }
    let mut msgs = Vec::with_capacity(r.messages.len());
    for (i, m) in r.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::field(
                    &format!("messages[{i}].role"),
                    format!("role `{other}` is not one of system, user, assistant"),
                ))
            }
        };
        let text = match &m.content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .map(|p| match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => Ok(t),
                    _ => Err(ApiError::field(&format!("messages[{i}].content"), "only text parts are supported")),
                })
                .collect::<Result<Vec<_>, _>>()?
                .concat(),
            _ => return Err(ApiError::field(&format!("messages[{i}].content"), "content must be a string or a list of text parts")),
        };
        msgs.push((role, text));
    }
    let borrowed: Vec<(Role, &str)> = msgs.iter().map(|(r, t)| (*r, t.as_str())).collect();
    let tok = &state.model.tokenizer;
    let ids = prompt::completion_ids(tok, &chat_prompt(&borrowed, true))?;
    check_length(state, &ids)?;
    let n = r.n.unwrap_or(1);
    if !(1..=8).contains(&n) {
        return Err(ApiError::field("n", format!("n must be 1..=8, got {n}")));
    }
    if n > 1 && r.stream == Some(true) {
        return Err(ApiError::field("n", "streaming supports n = 1 only"));
    }
    let (field, limit) = match (r.max_completion_tokens, r.max_tokens) {
        (Some(v), _) => ("max_completion_tokens", Some(v)),
        (None, v) => ("max_tokens", v),
    };
    let max = state.model.model.config().max_position_embeddings as i64;
    // The instruct models end a reply with <|EOT|>; stop there even when the checkpoint's
    // generation_config names only EOS.
    let mut eos_ids = state.model.eos_ids.clone();
    eos_ids.extend(tok.special().eot);
    let params = GenerateParams {
        max_new_tokens: max_tokens(state, field, limit, max)?,
        sampling: sampling(r.temperature.unwrap_or(1.0), r.top_p, None, r.seed)?,
        eos_ids,
        stop: stops(match &r.stop {
            None => vec![],
            Some(OneOrMany::One(s)) => vec![s.clone()],
            Some(OneOrMany::Many(v)) => v.clone(),
        })?,
        ..Default::default()
    };
    Ok((Job { ids, params, cache_prompt: true }, n as usize))
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(State(state): State<Arc<AppState>>, req: Request) -> Result<Response, ApiError> {
    let r: ChatRequest = read_json(&state, req).await?;
    let (job, n) = chat_job(&state, &r)?;
    let (id, created, model) = (state.id("chatcmpl"), unix_now(), state.cfg.model_name.clone());
    if r.stream == Some(true) {
        let include_usage = r.stream_options.as_ref().and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
        let chunk = move |delta: Value, finish: Option<&str>| json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        let stream = stream_generation(&state, job).await?;
        let first = Event::default().data(chunk(json!({"role": "assistant", "content": ""}), None).to_string());
        let events = stream.into_events(move |ev| match ev {
            StreamEvent::Piece(p) => vec![Event::default().data(chunk(json!({"content": p}), None).to_string())],
            StreamEvent::Done(Ok(o)) => {
                let g = &o.generation;
                let mut out = vec![Event::default().data(chunk(json!({}), Some(g.finish_reason.openai())).to_string())];
                if include_usage {
                    let mut u = chunk(json!({}), None);
                    u["choices"] = json!([]);
                    u["usage"] = usage(g.prompt_ids.len(), g.ids.len(), g.timings.cached_tokens);
                    out.push(Event::default().data(u.to_string()));
                }
                out.push(Event::default().data("[DONE]"));
                out
            }
            StreamEvent::Done(Err(e)) => vec![
                Event::default().data(json!({"error": {"message": e.message, "code": e.status.as_u16()}}).to_string()),
                Event::default().data("[DONE]"),
            ],
        });
        let events = stream::once(async move { Ok::<_, Infallible>(first) }).chain(events);
        return Ok(Sse::new(events).into_response());
    }
    let outcomes = run_n(&state, &job, n).await?;
    let choices: Vec<Value> = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| json!({"index": i, "message": {"role": "assistant", "content": o.generation.text}, "logprobs": null, "finish_reason": o.generation.finish_reason.openai()}))
        .collect();
    let (prompt_tokens, completion_tokens, cached_tokens) = totals(&outcomes);
    Ok(Json(json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": choices, "usage": usage(prompt_tokens, completion_tokens, cached_tokens),
    }))
    .into_response())
}

/// `GET /v1/models`.
pub async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let cfg = state.model.model.config();
    Json(json!({"object": "list", "data": [{
        "id": state.cfg.model_name, "object": "model", "created": unix_now(), "owned_by": "kiln",
        "meta": {"n_ctx_train": cfg.max_position_embeddings, "n_vocab": cfg.vocab_size, "n_params": cfg.num_parameters()},
    }]}))
}

/// `GET /health`.
pub async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    use std::sync::atomic::Ordering;
    Json(
        json!({"status": "ok", "slots_busy": state.metrics.active.load(Ordering::Relaxed), "queued": state.metrics.queued.load(Ordering::Relaxed)}),
    )
}

/// `GET /metrics` (Prometheus text format).
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
