//! kiln-serve: completion and infilling over HTTP, compatible with the clients people already
//! have.
//!
//! - `POST /v1/completions`: OpenAI's legacy completions, *with* `suffix` (a request with one is
//!   a fill-in-the-middle request in DeepSeek-Coder's PSM layout), streaming as SSE ending in
//!   `data: [DONE]`.
//! - `POST /v1/chat/completions`: OpenAI chat for the instruct checkpoints, rendered with
//!   DeepSeek-Coder instruct's template, stopping at `<|EOT|>`; streaming too.
//! - `POST /infill`: llama.cpp's endpoint: `input_prefix`, `input_suffix`, `input_extra`
//!   (files placed before the cursor's file, as kiln's repository-level training samples are
//!   laid out), `prompt`, `n_predict`, `stream`, with llama.cpp's `timings` in the response.
//! - `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus).
//! - `GET /`: a playground page to try the model in a browser (built into the binary), with
//!   `GET /v1/repo/files` and `GET /v1/repo/file?path=` for its file picker over `--repo`.
//!
//! Requests run on a fixed number of generation slots (`max_concurrency`); up to `max_queue`
//! more wait for one, beyond that the server answers 429. The running requests decode together
//! (kiln-infer's engine, run by [`engine`] on its own thread: continuous batching, one batched
//! decode per step), and on the CPU a result is
//! the same bits whatever else is running. Each slot keeps the KV cache of its
//! last request; a request takes the free slot sharing the longest token prefix with its prompt
//! and processes only the rest (a prefix of at least `cache_min_tokens`; `cache_prompt: false`
//! on `/infill` turns reuse off). A client that goes away (closed
//! connection, dropped stream) cancels its generation before the next token and frees its slot.
//! Unknown JSON fields are ignored (clients send many); fields whose meaning kiln does not
//! implement (`echo`, `logprobs`, `best_of`, penalties, `logit_bias`) are rejected with a 400
//! rather than silently ignored.
#![deny(missing_docs)]

pub mod api;
pub mod engine;
pub mod error;
pub mod metrics;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kiln_infer::{Generation, LoadedModel};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

pub use error::ApiError;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The name `/v1/models` lists and responses carry.
    pub model_name: String,
    /// Bearer tokens accepted; empty: no authentication.
    pub api_keys: Vec<String>,
    /// Generations running at once.
    pub max_concurrency: usize,
    /// Requests waiting for a slot before the server answers 429.
    pub max_queue: usize,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Shortest common token prefix worth reusing from a slot's KV cache (shorter ones are
    /// processed again, which keeps short prompts' results independent of what ran before).
    pub cache_min_tokens: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            model_name: "kiln".into(),
            api_keys: Vec::new(),
            max_concurrency: 1,
            max_queue: 64,
            max_body_bytes: 8 << 20,
            cache_min_tokens: 32,
        }
    }
}

/// What every handler shares: the model, the slots, the metrics.
pub struct AppState {
    /// The loaded model.
    pub model: Arc<LoadedModel>,
    /// The repository whose files give context to requests naming a `file` (`--repo`).
    pub repo: Option<kiln_infer::repo::RepoIndex>,
    /// Settings.
    pub cfg: ServeConfig,
    slots: Arc<Semaphore>,
    /// Request counters, queue depth, latencies.
    pub metrics: Arc<metrics::Metrics>,
    /// Jobs for the engine thread (continuous batching).
    engine: std::sync::mpsc::Sender<engine::EngineJob>,
    next_id: AtomicU64,
}

impl AppState {
    /// State for `model` under `cfg`.
    pub fn new(model: LoadedModel, cfg: ServeConfig) -> Arc<Self> {
        Self::new_with_repo(model, cfg, None)
    }

    /// State for `model` under `cfg`, adding context from `repo` to requests that name a file.
    pub fn new_with_repo(model: LoadedModel, cfg: ServeConfig, repo: Option<kiln_infer::repo::RepoIndex>) -> Arc<Self> {
        let n = cfg.max_concurrency.max(1);
        let slots = Arc::new(Semaphore::new(n));
        let model = Arc::new(model);
        let metrics = Arc::new(metrics::Metrics::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let (engine_model, engine_metrics, min_reuse) = (model.clone(), metrics.clone(), cfg.cache_min_tokens);
        std::thread::Builder::new()
            .name("kiln-engine".into())
            .spawn(move || engine::run(engine_model, rx, engine_metrics, n, min_reuse))
            .expect("the engine thread starts");
        Arc::new(Self { model, repo, cfg, slots, metrics, engine: tx, next_id: AtomicU64::new(1) })
    }

    /// A fresh response id with `prefix` (`cmpl-…`).
    pub fn id(&self, prefix: &str) -> String {
        format!("{prefix}-{:016x}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Waits for a generation slot, or refuses with 429 when `max_queue` requests already wait.
    pub async fn acquire_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        let waiting = self.metrics.queued.fetch_add(1, Ordering::SeqCst);
        if waiting as usize >= self.cfg.max_queue {
            self.metrics.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::status(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{} requests are already waiting for a generation slot; retry later", self.cfg.max_queue),
            ));
        }
        let permit = self.slots.clone().acquire_owned().await;
        self.metrics.queued.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|_| ApiError::status(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"))
    }
}

/// Sets its flag when dropped: a handler's future is dropped when the client disconnects, and
/// the generation it started sees the flag before its next token.
pub struct CancelOnDrop(pub Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One generation job's outcome, with the slot wait and time to first token.
pub struct Outcome {
    /// The generation.
    pub generation: Generation,
    /// Milliseconds spent waiting for a slot.
    pub queued_ms: f64,
}

/// How one generation runs: the prompt ids, sampling and stopping, and whether a slot's cached
/// prefix may be reused (llama.cpp's `cache_prompt`): kiln-infer's engine request.
pub use kiln_infer::Request as Job;

/// Runs one generation on the engine (batched with whatever else runs) while holding
/// `permit`. Text pieces go to `pieces` when given (streaming); a closed receiver cancels the
/// generation, as does `cancel`.
pub async fn generate(
    state: &Arc<AppState>,
    permit: OwnedSemaphorePermit,
    job: Job,
    cancel: Arc<AtomicBool>,
    pieces: Option<mpsc::UnboundedSender<String>>,
    queued_ms: f64,
) -> Result<Outcome, ApiError> {
    let (done, result) = tokio::sync::oneshot::channel();
    let reply = engine::Reply {
        pieces,
        done,
        permit,
        queued_ms,
        cancel: cancel.clone(),
        metrics: state.metrics.clone(),
        submitted: Instant::now(),
        first: true,
    };
    let sent = state.engine.send(kiln_infer::Job { request: job, cancel, sink: reply });
    if sent.is_err() {
        return Err(ApiError::status(StatusCode::SERVICE_UNAVAILABLE, "the generation engine has stopped"));
    }
    result.await.map_err(|_| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, "the generation engine dropped the request"))?
}

async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // `/health` for probes; `/` is the playground page, which holds no data (its requests
    // carry the key like any client's, and it asks for one on a 401).
    if state.cfg.api_keys.is_empty() || matches!(req.uri().path(), "/health" | "/") {
        return next.run(req).await;
    }
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(key) if state.cfg.api_keys.iter().any(|k| k == key) => next.run(req).await,
        Some(_) => ApiError::status(StatusCode::UNAUTHORIZED, "invalid API key").into_response(),
        None => ApiError::status(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <key>` header (this server was started with --api-key-file)",
        )
        .into_response(),
    }
}

async fn count(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let known =
        ["/v1/completions", "/v1/chat/completions", "/infill", "/v1/models", "/health", "/metrics", "/", "/v1/repo/files", "/v1/repo/file"];
    let endpoint = if known.contains(&path.as_str()) { path.as_str() } else { "other" };
    state.metrics.request(endpoint, resp.status().as_u16(), start.elapsed().as_secs_f64());
    resp
}

async fn not_found(req: Request) -> ApiError {
    ApiError::status(StatusCode::NOT_FOUND, format!("no route {} {}; kiln serves POST /v1/completions, POST /v1/chat/completions, POST /infill, GET /v1/models, GET /health, GET /metrics, GET / (the playground), GET /v1/repo/files, GET /v1/repo/file?path=", req.method(), req.uri().path()))
}

/// The HTTP routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/completions", post(api::completions))
        .route("/infill", post(api::infill))
        .route("/v1/chat/completions", post(api::chat_completions))
        .route("/v1/models", get(api::models))
        .route("/health", get(api::health))
        .route("/metrics", get(api::metrics))
        .route("/", get(api::page))
        .route("/v1/repo/files", get(api::repo_files))
        .route("/v1/repo/file", get(api::repo_file))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, then lets running requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
