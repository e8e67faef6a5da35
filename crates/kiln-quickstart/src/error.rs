//! Quickstart's errors: a refusal with what to do ([`QuickstartError::Setup`]), a stage crate's
//! error as it is, or an error under a line of context. Shown with its sources joined by `: `
//! (`{:#}` of an `anyhow::Error`, what `kiln` prints), the text is what the command printed
//! before it became a library.

/// A quickstart error.
#[derive(Debug, thiserror::Error)]
pub enum QuickstartError {
    /// The options, the sources or the machine do not allow the run; the message says what to
    /// change (often naming the `kiln quickstart` flag).
    #[error("{0}")]
    Setup(String),
    /// An error under what was being done (`creating --out DIR`, `loading the trained model
    /// DIR`, ...).
    #[error("{context}")]
    Context {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A file operation.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A file written whole (atomically) could not be.
    #[error(transparent)]
    Write(#[from] kiln_base::fs::WriteError),
    /// `quickstart.json` or a stage record could not be written or read.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The corpus stage.
    #[error(transparent)]
    Corpus(#[from] kiln_corpus::CorpusError),
    /// Tokenizer training.
    #[error(transparent)]
    Tokenizer(#[from] kiln_tokenizer::TokenizerError),
    /// Packing.
    #[error(transparent)]
    Data(#[from] kiln_data::DataError),
    /// Training.
    #[error(transparent)]
    Train(#[from] kiln_train::TrainError),
    /// Loading or running the trained model.
    #[error(transparent)]
    Infer(#[from] kiln_infer::InferError),
    /// The repository-level evaluation.
    #[error(transparent)]
    Eval(#[from] kiln_eval::EvalError),
}

impl QuickstartError {
    /// `source` under the line `context` (what `anyhow`'s `.context(...)` did).
    pub fn context(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        QuickstartError::Context { context: context.into(), source: source.into() }
    }
}

/// Result alias.
pub type Result<T, E = QuickstartError> = std::result::Result<T, E>;

/// Returns early with a [`QuickstartError::Setup`] of the formatted message (what `bail!` did).
macro_rules! setup {
    ($($arg:tt)*) => {
        return Err($crate::error::QuickstartError::Setup(format!($($arg)*)))
    };
}
pub(crate) use setup;
