//! `POST /v1/completions`: OpenAI's legacy completions. A `suffix` makes the request
//! fill-in-the-middle (DeepSeek-Coder's PSM layout); `file` adds repository context.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiln_infer::prompt;
use kiln_infer::GenerateParams;
use serde::Deserialize;
use serde_json::{json, Value};

use super::openai::{run_n, totals, usage, OneOrMany};
use super::params::{check_length, max_tokens, repo_context, sampling, stops, with_language_stops};
use super::stream::{stream_generation, StreamEvent};
use super::{read_json, unix_now};
use crate::{ApiError, AppState, Job};

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
