//! Errors as HTTP responses: the status that says who must act, and an OpenAI-style JSON body
//! (`{"error": {"message", "type", "param", "code"}}`) that names the field and the fix.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error returned to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
}

impl ApiError {
    /// 400 naming `param`.
    pub fn field(param: &str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into(), param: Some(param.to_string()) }
    }
    /// 400 about the request as a whole.
    pub fn bad(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into(), param: None }
    }
    /// Any status.
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), param: None }
    }

    /// OpenAI's error `type` for the status.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 404 | 413 | 422 => "invalid_request_error",
            401 | 403 => "authentication_error",
            429 => "rate_limit_error",
            503 => "overloaded_error",
            _ => "server_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, message = %self.message, "request failed");
        }
        let body = json!({"error": {"message": self.message, "type": self.kind(), "param": self.param, "code": self.status.as_u16()}});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<kiln_infer::InferError> for ApiError {
    fn from(e: kiln_infer::InferError) -> Self {
        use kiln_infer::InferError as E;
        match &e {
            E::BadRequest(m) => ApiError::bad(m.clone()),
            E::MissingSpecialToken(_) => ApiError::status(StatusCode::NOT_IMPLEMENTED, e.to_string()),
            E::Model(kiln_model::ModelError::TooLong { .. }) => {
                ApiError::status(StatusCode::PAYLOAD_TOO_LARGE, format!("{e}; shorten the prompt"))
            }
            E::Model(kiln_model::ModelError::TokenOutOfRange { .. }) => ApiError::field("prompt", e.to_string()),
            _ => ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}
