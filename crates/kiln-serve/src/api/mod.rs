//! The endpoints: request schemas, validation (every bad field is a 400 naming it), prompt
//! building, and the response shapes of OpenAI and llama.cpp.
//!
//! One module per endpoint family, plus what they share:
//!
//! - `completions`: `POST /v1/completions` (OpenAI legacy completions; a `suffix` makes it
//!   fill-in-the-middle): its request type, validation, prompt building, responses.
//! - `infill`: `POST /infill` (llama.cpp): its request type, `input_extra` truncation,
//!   llama.cpp's response with `timings`.
//! - `chat`: `POST /v1/chat/completions` (OpenAI chat with the instruct template).
//! - `info`: `GET /v1/models`, `GET /health`, `GET /metrics`.
//! - `playground`: the page at `GET /` and the repository file list/text it picks from.
//! - `openai`: what the two OpenAI endpoints share: `stop` as one string or many, `n`
//!   choices run one after another, the `usage` object.
//! - `params`: checks and conversions of the generation fields the endpoints take (sampling,
//!   stops, language stops, max tokens, prompt length, repository context).
//! - `stream`: SSE streaming: a generation whose text arrives piece by piece, turned into
//!   events by each endpoint's renderer.
//!
//! Each request type lives with the one endpoint that reads it, so an endpoint's module reads
//! top to bottom as wire format, validation, handler; all are re-exported here, at the paths
//! they always had. This module itself keeps the two helpers every endpoint uses: reading a
//! JSON body and the clock for `created`.

mod chat;
mod completions;
mod infill;
mod info;
mod openai;
mod params;
mod playground;
mod stream;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::{ApiError, AppState};

pub use chat::{chat_completions, ChatMessage, ChatRequest};
pub use completions::{completions, CompletionRequest, PromptInput};
pub use infill::{infill, ExtraChunk, InfillRequest};
pub use info::{health, metrics, models};
pub use openai::OneOrMany;
pub use playground::{page, repo_file, repo_files, FileQuery};
pub use stream::{GenerationStream, StreamEvent};

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
