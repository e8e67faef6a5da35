//! kiln-experiment: the paper's ablations, and the levers of a small training budget, in
//! miniature on anyone's code (`kiln experiment`).
//!
//! A grid of [`grid::Question`]s (FIM rate and layout, the order of a repository's files, model
//! size at equal wall-clock, LR schedule, peak LR), each answered by a few [`grid::Arm`]s that
//! differ from quickstart's run (the baseline arm) in one setting. Every arm is trained from
//! scratch with several seeds on the same corpus, tokenizer and held-out repositories, and scored
//! on: held-out bits per byte (left to right), FIM middles with and without the suffix, single-
//! line infilling, and cross-file lines with and without the imported files (plus a synthetic
//! control where the cross-file symbol is a random name).
//!
//! Layout of the output folder: `experiment.json` (the grid), `base/` (quickstart's sources,
//! corpus, tokenizer and default pack), `packs/<variant>/` (other data variants),
//! `arms/<arm>/seed-<n>/` (`train/` and `result.json`), then `results.md`, `results.json`,
//! `plots/*.png`. Everything is resumable: shared stages by quickstart's record, packs by their
//! `meta.json`, jobs by `result.json` (a job whose arm changed is run again and named).
#![deny(missing_docs)]

pub mod grid;
mod report;
pub mod runner;

use std::path::{Path, PathBuf};

pub use grid::{Arm, DataVariant, Question};
pub use runner::{run, ExperimentOptions, JobResult, Outcome};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// Bad options or a folder that holds something else; the message says what to do.
    #[error("{0}")]
    Setup(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The shared stages failed.
    #[error(transparent)]
    Quickstart(#[from] kiln_quickstart::QuickstartError),
    /// Packing a data variant failed.
    #[error(transparent)]
    Data(#[from] kiln_data::DataError),
    /// Training failed (other than diverging, which is a result).
    #[error(transparent)]
    Train(#[from] kiln_train::TrainError),
    /// Loading or scoring a model failed.
    #[error(transparent)]
    Infer(#[from] kiln_infer::InferError),
    /// A JSON record could not be written or read.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl ExperimentError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        ExperimentError::Io { path: path.to_path_buf(), source }
    }
}

impl From<kiln_base::fs::WriteError> for ExperimentError {
    fn from(e: kiln_base::fs::WriteError) -> Self {
        ExperimentError::Io { path: e.path, source: e.source }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, ExperimentError>;

/// Hears what an experiment does; every method does nothing by default.
pub trait ExperimentObserver: Sync {
    /// A line of the narrative.
    fn say(&self, _line: &str) {}
    /// The grid has `total` training runs (arm x seed), finished ones included.
    fn jobs_planned(&self, _total: usize) {}
    /// Run `index` (0-based) of `total` starts (or is found finished).
    fn job_started(&self, _index: usize, _total: usize, _label: &str) {}
    /// `done` of `total` runs are finished.
    fn job_finished(&self, _done: usize, _total: usize) {}
    /// A training step of the current run.
    fn training_step(&self, _step: usize, _total_steps: usize, _loss: f64) {}
}

/// Hears nothing.
pub struct Silent;

impl ExperimentObserver for Silent {}
