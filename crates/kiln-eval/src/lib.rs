//! kiln-eval: measuring code models with the paper's protocols, running the generated code in a
//! sandbox.
//!
//! In: a benchmark file (`../shared/benchmarks`) and completions (from a model, or the
//! canonical solutions to check the harness). Out: per-sample results and scores. Pieces:
//! [`metrics`] (pass@k, edit similarity), [`sandbox`] (isolated execution), [`humaneval`]
//! (DeepSeek-Coder's HumanEval protocol), [`infilling`] (HumanEval single-line infilling), [`run`] (scoring many samples with N workers).
//!
//! [`client`] takes completions from an OpenAI-compatible server instead of a local model.
//!
//! [`mbpp`] is DeepSeek's 3-shot MBPP. [`task`] is the generic shape every benchmark is turned
//! into (id, language, prompt or prefix/suffix, stop strings, test-program builder), so one
//! completion / scoring / reporting loop serves them all; [`record`] keeps scored samples on
//! disk (resumable runs) and computes pass@k, exact match and the per-language breakdown.
//!
//! Not here yet (issue #8): MultiPL-E and the repository-level benchmark.
#![deny(missing_docs)]

pub mod client;
pub mod humaneval;
pub mod infilling;
pub mod mbpp;
pub mod metrics;
pub mod record;
pub mod run;
pub mod sandbox;
pub mod task;

use std::io::Read;
use std::path::{Path, PathBuf};

/// Reads a benchmark file of JSON lines, gzipped or not; `fields` names what each line needs
/// (for the error message).
pub fn load_jsonl<T: serde::de::DeserializeOwned>(path: &Path, fields: &str) -> Result<Vec<T>, EvalError> {
    let bad = |m: String| EvalError::Data { path: path.to_path_buf(), message: m };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut s).map_err(|e| bad(format!("not a readable gzip file: {e}")))?;
        s
    } else {
        String::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| bad(format!("line {}: {e} (each line needs {fields})", i + 1))))
        .collect()
}

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
    /// `--out` holds a run made with other settings.
    #[error("{dir}: holds a run with {setting} = {was}, this run has {setting} = {now}; use another --out directory, or the same settings to resume")]
    Mismatch {
        /// The run directory.
        dir: PathBuf,
        /// The first differing setting.
        setting: String,
        /// Its value in `run.json`.
        was: String,
        /// Its value now.
        now: String,
    },
    /// A program could not be started (python3 missing, no temporary directory).
    #[error("cannot run generated code: {0} (is python3 installed, with numpy?)")]
    Exec(#[from] std::io::Error),
}
