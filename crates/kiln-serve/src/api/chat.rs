//! `POST /v1/chat/completions`: OpenAI chat for the instruct checkpoints, rendered with
//! DeepSeek-Coder instruct's template and stopping at `<|EOT|>`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use kiln_infer::prompt;
use kiln_infer::GenerateParams;
use serde::Deserialize;
use serde_json::{json, Value};

use super::openai::{run_n, totals, usage, OneOrMany};
use super::params::{check_length, max_tokens, sampling, stops};
use super::stream::{stream_generation, StreamEvent};
use super::{read_json, unix_now};
use crate::{ApiError, AppState, Job};

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
