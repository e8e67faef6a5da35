//! kiln-eval: measuring code models with the paper's protocols, running the generated code in a
//! sandbox.
//!
//! In: a benchmark file (`../shared/benchmarks`) and completions (from a model, or the
//! canonical solutions to check the harness). Out: per-sample results and scores. Pieces:
//! [`metrics`] (pass@k, edit similarity), [`sandbox`] (isolated execution), [`humaneval`]
//! (DeepSeek-Coder's HumanEval protocol), [`run`] (scoring many samples with N workers).
//!
//! [`client`] takes completions from an OpenAI-compatible server instead of a local model.
//!
//! Not here yet (issue #8): MBPP, MultiPL-E, infilling, the repository-level benchmark and
//! resumable runs.
#![deny(missing_docs)]

pub mod client;
pub mod humaneval;
pub mod metrics;
pub mod run;
pub mod sandbox;

use std::path::PathBuf;

/// Errors of evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A benchmark file is missing or malformed.
    #[error("{path}: {message}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The completions endpoint failed, timed out or answered garbage.
    #[error("endpoint {0}")]
    Endpoint(String),
    /// A program could not be started (python3 missing, no temporary directory).
    #[error("cannot run generated code: {0} (is python3 installed, with numpy?)")]
    Exec(#[from] std::io::Error),
}
