//! kiln-eval: measuring code models with the paper's protocols, running the generated code in a
//! sandbox.
//!
//! In: a benchmark file (the copies built into kiln, [`DataFile::Bundled`], or the user's) and completions (from a model, or the
//! canonical solutions to check the harness). Out: per-sample results and scores. Pieces:
//! [`metrics`] (pass@k, edit similarity), [`sandbox`] (isolated execution), [`humaneval`]
//! (DeepSeek-Coder's HumanEval protocol), [`infilling`] (HumanEval single-line infilling),
//! [`multipl_e`] (HumanEval in C++, Java, JS, TS, C#, Bash, PHP, Go and Rust, each with its own
//! compile/run commands and pass rule), [`run`] (scoring many samples with N workers).
//!
//! [`repo_bench`] is the repository-level completion benchmark (CrossCodeEval-style, built from
//! held-out repositories): with and without the imported files as context.
//!
//! [`client`] takes completions from an OpenAI-compatible server instead of a local model.
//!
//! [`harness`] is the one loop every execution benchmark goes through (completions from the
//! canonical solutions, a model or an endpoint; sandboxed scoring; resumable run directory).
//!
//! [`mbpp`] is DeepSeek's 3-shot MBPP. [`task`] is the generic shape every benchmark is turned
//! into (id, language, prompt or prefix/suffix, stop strings, test-program builder), so one
//! completion / scoring / reporting loop serves them all; [`record`] keeps scored samples on
//! disk (resumable runs) and computes pass@k, exact match and the per-language breakdown.
//!
//! [`compression`] gives zstd anchors for a model's bits per byte.
#![deny(missing_docs)]

pub mod client;
pub mod compression;
pub mod harness;
pub mod humaneval;
pub mod infilling;
pub mod mbpp;
pub mod metrics;
pub mod multipl_e;
pub mod record;
pub mod repo_bench;
pub mod run;
pub mod sandbox;
pub mod task;

use std::io::Read;
use std::path::{Path, PathBuf};

/// A benchmark file: one the user named, or the copy built into kiln (kiln-benchdata), so that
/// every benchmark runs from any directory without a data checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataFile {
    /// A file on disk.
    Path(PathBuf),
    /// A file embedded in the binary.
    Bundled(kiln_benchdata::BundledFile),
}

impl DataFile {
    /// How errors and run records name it: the path, or `bundled:humaneval/HumanEval.jsonl.gz`.
    pub fn label(&self) -> PathBuf {
        match self {
            DataFile::Path(p) => p.clone(),
            DataFile::Bundled(f) => PathBuf::from(f.label()),
        }
    }

    /// The file's bytes.
    pub fn read(&self) -> Result<std::borrow::Cow<'static, [u8]>, EvalError> {
        match self {
            DataFile::Path(p) => std::fs::read(p).map(Into::into).map_err(|e| EvalError::Data { path: p.clone(), message: e.to_string() }),
            DataFile::Bundled(f) => Ok(f.bytes.into()),
        }
    }

    /// The user's file when given, else the bundled copy.
    pub fn or_bundled(path: Option<&Path>, bundled: kiln_benchdata::BundledFile) -> DataFile {
        path.map_or(DataFile::Bundled(bundled), |p| DataFile::Path(p.to_path_buf()))
    }
}

impl std::fmt::Display for DataFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.label().display())
    }
}

/// Reads a benchmark file of JSON lines, gzipped or not; `fields` names what each line needs
/// (for the error message).
pub fn load_jsonl<T: serde::de::DeserializeOwned>(path: &Path, fields: &str) -> Result<Vec<T>, EvalError> {
    load_data_jsonl(&DataFile::Path(path.to_path_buf()), fields)
}

/// [`load_jsonl`] of a file on disk or a bundled one.
pub fn load_data_jsonl<T: serde::de::DeserializeOwned>(data: &DataFile, fields: &str) -> Result<Vec<T>, EvalError> {
    let bad = |m: String| EvalError::Data { path: data.label(), message: m };
    let bytes = data.read()?;
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut s).map_err(|e| bad(format!("not a readable gzip file: {e}")))?;
        s
    } else {
        String::from_utf8(bytes.into_owned()).map_err(|_| bad("not UTF-8".into()))?
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
    /// The source of completions (a model, an endpoint) could not be opened.
    #[error("{0}")]
    Source(String),
    /// A language's compiler or interpreter is not installed.
    #[error("multipl-e {language}: `{command}` not found on PATH; install its toolchain ({install}) or leave {language} out")]
    Toolchain {
        /// The language (`cpp`, ...).
        language: String,
        /// The missing command.
        command: String,
        /// The install command naming the Debian package(s).
        install: String,
    },
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
    /// Something the test programs need is missing here (python3, a module of the prelude);
    /// found before the first problem, with what to install.
    #[error("preflight: {0}")]
    Preflight(String),
    /// A program could not be started (python3 missing, no temporary directory).
    #[error("cannot run generated code: {0} (is python3 installed, with numpy?)")]
    Exec(#[from] std::io::Error),
}
