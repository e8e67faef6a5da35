//! Errors of the trainer; each names the file, field or step and how to fix it.

use std::path::PathBuf;

/// A trainer error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor operation failed (a bug or an out-of-memory, not bad input).
    #[error("tensor operation: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The model could not be built, loaded or saved.
    #[error(transparent)]
    Model(#[from] kiln_model::ModelError),
    /// The training data could not be read.
    #[error(transparent)]
    Data(#[from] kiln_data::DataError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A checkpoint or run directory is missing, damaged or from another configuration.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A chart could not be drawn or encoded.
    #[error("chart {path}: {message}")]
    Plot {
        /// The PNG file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A setting is out of range or inconsistent with the data or the model.
    #[error("training config: {0}")]
    Config(String),
    /// Too many steps in a row had a non-finite loss or gradient.
    #[error("stopped at step {step}: {count} steps in a row had a non-finite loss or gradient norm (last loss {loss}, grad norm {norm}); the last good checkpoint is intact; lower the learning rate or check the data")]
    Diverged {
        /// The step where the run stopped.
        step: usize,
        /// Consecutive bad steps.
        count: usize,
        /// The last loss.
        loss: f64,
        /// The last gradient norm.
        norm: f64,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, TrainError>;
