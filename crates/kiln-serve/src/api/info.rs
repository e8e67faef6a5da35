//! The endpoints about the server rather than generation: `GET /v1/models`, `GET /health`,
//! `GET /metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::unix_now;
use crate::AppState;

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
