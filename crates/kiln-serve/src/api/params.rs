//! Checks and conversions of the generation fields the endpoints share: sampling, stop
//! strings, the language's stop words, the new-token limit, the prompt's length against the
//! context, and the repository context for a request naming `file`. Every bad field is a 400
//! naming it (an over-long prompt is a 413).

use axum::http::StatusCode;
use kiln_infer::prompt::{self, ContextFile};
use kiln_infer::SamplingParams;

use crate::{ApiError, AppState};

/// Checks and converts the sampling fields.
pub(super) fn sampling(temperature: f64, top_p: Option<f64>, top_k: Option<i64>, seed: Option<u64>) -> Result<SamplingParams, ApiError> {
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

pub(super) fn stops(stop: Vec<String>) -> Result<Vec<String>, ApiError> {
    if stop.len() > 16 {
        return Err(ApiError::field("stop", format!("at most 16 stop strings, got {}", stop.len())));
    }
    if stop.iter().any(|s| s.is_empty()) {
        return Err(ApiError::field("stop", "stop strings must not be empty"));
    }
    Ok(stop)
}

/// The stop words `language_stops` asks for, added to `stop`.
pub(super) fn with_language_stops(
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
pub(super) fn check_length(state: &AppState, ids: &[u32]) -> Result<(), ApiError> {
    let max = state.model.model.config().max_position_embeddings;
    if ids.len() >= max {
        return Err(ApiError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the prompt is {} tokens and the model's context is {max}: shorten the prompt (or the input_extra files)", ids.len()),
        ));
    }
    Ok(())
}

pub(super) fn max_tokens(state: &AppState, field: &str, v: Option<i64>, default: i64) -> Result<usize, ApiError> {
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
pub(super) fn repo_context(
    state: &AppState,
    file: Option<&str>,
    used: usize,
    max_new: usize,
) -> Result<(Vec<ContextFile>, Option<String>), ApiError> {
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
