//! Errors of kiln-repo. Problems with a single file are not errors: they are skip reasons counted
//! in the ingest summary. An error means the repository as a whole could not be read.

use std::path::PathBuf;

/// A repository could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The path does not exist or is not a directory, git repository or supported archive.
    #[error("{path}: {message}")]
    NotARepository {
        /// The path given.
        path: PathBuf,
        /// What was expected and how to fix it.
        message: String,
    },
    /// Reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A git repository could not be opened or its HEAD tree read.
    #[error("{path}: git: {message}")]
    Git {
        /// The repository.
        path: PathBuf,
        /// gix's message.
        message: String,
    },
    /// An archive is damaged or unsupported.
    #[error("{path}: archive: {message}")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, RepoError>;
