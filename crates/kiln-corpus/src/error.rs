//! Errors of the corpus pipeline. Problems with one file or one repository are not errors: they
//! are counted (drop reasons, failed inputs) in the task reports and the manifest. An error here
//! means the run cannot go on, and its message names the file and the way out.

use std::path::PathBuf;

use crate::decontam::DecontamError;

/// Why a corpus build, stats or inspect call failed.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// Reading or writing a file failed (disk full, permissions, missing file).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid.
    #[error("config {path}: {message} (see `CorpusConfig` for the fields; omit a field to take its default)")]
    Config {
        /// The config file (or `<built-in>` for a programmatic config).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The build plan is inconsistent (no inputs, bad `--task`, ...).
    #[error("{0}")]
    Plan(String),
    /// A Parquet file (task candidates or an output shard) could not be written or read.
    #[error("parquet {path}: {message} (if the file is damaged, delete it and rerun `kiln corpus build` with the same --out; finished tasks are kept)")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The parquet/arrow message.
        message: String,
    },
    /// A dataset input (JSONL/Parquet rows of files) is damaged or lacks the needed columns.
    #[error("dataset {path}: {message}")]
    Dataset {
        /// The dataset file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// A manifest or task report is missing, damaged or from another version.
    #[error("{path}: {message}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A finished task in the output directory was made with a different plan (inputs, config or
    /// task count), so its results cannot be reused.
    #[error("{marker}: made by a different build ({what} differs); use a new --out directory or delete {tasks_dir} to start over")]
    StaleTask {
        /// The completion marker.
        marker: PathBuf,
        /// The directory of task outputs.
        tasks_dir: PathBuf,
        /// Which part of the plan differs.
        what: String,
    },
    /// Benchmark data for decontamination could not be loaded.
    #[error(transparent)]
    Benchmarks(#[from] DecontamError),
    /// The test hook `abort_after_tasks` stopped the run (never happens in normal use).
    #[error("stopped after {completed} task(s) by the abort_after_tasks hook; rerun to resume")]
    Aborted {
        /// Tasks finished before the stop.
        completed: usize,
    },
}

/// Result alias for this crate's pipeline.
pub type Result<T> = std::result::Result<T, CorpusError>;

/// Attaches a path to an I/O error.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CorpusError {
    let path = path.into();
    move |source| CorpusError::Io { path, source }
}
