//! The playground: a page at `GET /` to try the model in a browser (prompt and suffix, a file
//! picker over the `--repo` files, streamed output with timings, the context files sent, a
//! `/metrics` panel), and the two read-only endpoints it needs for the picker:
//! `GET /v1/repo/files` and `GET /v1/repo/file?path=...`.
//!
//! The page is one self-contained HTML file built into the binary (no CDN, no build step). It
//! holds no data: it is served without a key, and every request it makes goes through the same
//! API-key check as any client's; on a 401 it asks for the key (kept in the tab's
//! sessionStorage) and shows nothing else.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{ApiError, AppState};

/// The page, built into the binary.
const PAGE: &str = include_str!("../../assets/playground.html");

/// `GET /`: the playground page.
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page only talks to this server; nothing from elsewhere may load or run.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:",
            ),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}

fn repo(state: &AppState) -> Result<&kiln_infer::repo::RepoIndex, ApiError> {
    state.repo.as_ref().ok_or_else(|| {
        ApiError::status(StatusCode::NOT_FOUND, "this server has no repository; start it with `kiln serve --repo PATH` to pick files")
    })
}

/// `GET /v1/repo/files`: the repository's files (path, language, bytes), in path order.
pub async fn repo_files(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let repo = repo(&state)?;
    let mut files: Vec<Value> = repo
        .repo()
        .files
        .iter()
        .map(|f| json!({"path": f.path, "language": f.language.map(|l| l.name()), "bytes": f.text.len()}))
        .collect();
    files.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    Ok(Json(json!({"files": files})))
}

/// The query of `GET /v1/repo/file`.
#[derive(Debug, Deserialize)]
pub struct FileQuery {
    /// Path relative to the repository root.
    pub path: Option<String>,
}

/// `GET /v1/repo/file?path=REL`: one file's text from the snapshot (nothing is read from disk).
pub async fn repo_file(State(state): State<Arc<AppState>>, Query(q): Query<FileQuery>) -> Result<Json<Value>, ApiError> {
    let repo = repo(&state)?;
    let raw = q.path.ok_or_else(|| ApiError::field("path", "give ?path=FILE, relative to the repository root"))?;
    let path = kiln_infer::repo::normalize_path(&raw)
        .map_err(|e| ApiError::field("path", e.to_string().trim_start_matches("bad request: ").to_string()))?;
    let text = repo.text_of(&path).ok_or_else(|| {
        ApiError::status(StatusCode::NOT_FOUND, format!("the repository has no file `{path}` (GET /v1/repo/files lists them)"))
    })?;
    Ok(Json(json!({"path": path, "text": text})))
}
