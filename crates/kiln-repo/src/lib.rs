//! kiln-repo: a repository as the model sees it.
//!
//! In: a repository (a directory, a git repository's HEAD tree, or a .tar/.tar.gz/.zip archive).
//! Out: its source files with languages ([`ingest`], [`lang`]), the imports each file makes
//! ([`scan`], a parse-free lexer; [`imports`] with tree-sitter, which also measures syntax
//! errors) resolved to files of the same repository ([`resolve`]), the dependency graph and
//! DeepSeek-Coder's Algorithm 1 order, one sample per weakly connected component ([`graph`]), and
//! the rendered text with a path comment before each file ([`render`]). Used by both the corpus
//! pipeline (training samples) and inference (cross-file context), so both see the same order.
//! For line-level tools (the repository benchmark): where a file's comments and literals are
//! ([`code`], the scanners' lexing) and the names it defines at its top level ([`definitions`]).
#![deny(missing_docs)]

pub mod code;
pub mod context;
pub mod definitions;
pub mod error;
pub mod graph;
pub mod imports;
pub mod ingest;
pub mod lang;
pub mod render;
pub mod resolve;
pub mod scan;
mod ts_alloc;

pub use error::{RepoError, Result};
pub use lang::Language;

/// One text file of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Repository-relative path with `/` separators, no leading `./` (e.g. `src/utils/io.py`).
    pub path: String,
    /// Detected language, if the path is one kiln knows.
    pub language: Option<Language>,
    /// The file's text (valid UTF-8; binaries are skipped at ingestion).
    pub text: String,
}

impl SourceFile {
    /// A file whose language is detected from its path (the usual way to make one).
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        let path = path.into();
        Self { language: lang::detect(&path), path, text: text.into() }
    }
}

/// A repository: a name and its files, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repo {
    /// A short name (directory or archive stem).
    pub name: String,
    /// The files, sorted by `path`.
    pub files: Vec<SourceFile>,
}
