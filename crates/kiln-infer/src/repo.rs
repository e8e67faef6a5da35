//! Repository context for completions: a repository ingested once (kiln-repo: files, imports,
//! dependency graph), asked for the files a given file imports, in dependency order and within
//! a token budget. The prompt then reads like the start of a repository training sample.

use std::path::Path;

use kiln_repo::context::build_context;
use kiln_repo::graph::{build_graph, DepGraph};
use kiln_repo::ingest::{ingest_path, IngestOptions};
use kiln_repo::Repo;
use kiln_tokenizer::Tokenizer;

use crate::prompt::ContextFile;
use crate::{InferError, Result};

/// A repository snapshot with its import graph.
pub struct RepoIndex {
    repo: Repo,
    graph: DepGraph,
}

/// Checks a request's file path: relative, inside the repository (no `..`, no absolute or
/// drive paths, no NUL). Returns it normalised (`./` and backslashes removed). Nothing is read
/// from disk for it: context comes from the snapshot only.
pub fn normalize_path(file: &str) -> Result<String> {
    let p = file.replace('\\', "/");
    let p = p.trim_start_matches("./");
    let bad = p.is_empty() || p.starts_with('/') || p.contains('\0') || p.split('/').any(|c| c == "..") || p.chars().nth(1) == Some(':');
    if bad {
        return Err(InferError::BadRequest(format!("file `{file}`: give a path relative to the repository root, without `..`")));
    }
    Ok(p.to_string())
}

impl RepoIndex {
    /// Ingests `path` (a directory, git repository or archive, as `kiln repo order` takes) and
    /// builds its import graph.
    pub fn load(path: &Path) -> Result<Self> {
        let (repo, summary) = ingest_path(path, &IngestOptions::default()).map_err(|e| InferError::Repo(e.to_string()))?;
        let graph = build_graph(&repo);
        tracing::info!(files = summary.files, edges = graph.edges.len(), "repository indexed: {}", path.display());
        Ok(Self { repo, graph })
    }

    /// Indexes a repository already in memory (e.g. one rebuilt from corpus shards by the
    /// repository-level benchmark), so the context is the same as [`RepoIndex::load`] would give
    /// for the same files without writing them to disk first.
    pub fn from_repo(repo: Repo) -> Self {
        let graph = build_graph(&repo);
        Self { repo, graph }
    }

    /// The snapshot itself.
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// Files in the snapshot.
    pub fn file_count(&self) -> usize {
        self.repo.files.len()
    }

    /// The snapshot's text of `file` (normalised path), if it holds that file.
    pub fn text_of(&self, file: &str) -> Option<&str> {
        self.repo.files.iter().find(|f| f.path == file).map(|f| f.text.as_str())
    }

    /// The files `file` imports, directly or not, in dependency order, dropping the farthest
    /// ones first to stay within `max_tokens` (counted with `tokenizer`). A file the snapshot
    /// does not hold (a new file) has no context.
    pub fn context_for(&self, file: &str, max_tokens: usize, tokenizer: &Tokenizer) -> Result<Vec<ContextFile>> {
        let file = normalize_path(file)?;
        let Some(idx) = self.repo.files.iter().position(|f| f.path == file) else {
            return Ok(Vec::new());
        };
        let count = |s: &str| tokenizer.encode_raw(s).map(|ids| ids.len()).unwrap_or(s.len());
        let ctx = build_context(&self.repo, &self.graph, idx, Some(max_tokens), &count);
        if !ctx.dropped.is_empty() {
            tracing::debug!(file, dropped = ctx.dropped.len(), "repository context cut to the token budget");
        }
        Ok(ctx
            .files
            .iter()
            .map(|&i| ContextFile { path: self.repo.files[i].path.clone(), text: self.repo.files[i].text.clone() })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_repository_are_refused() {
        for bad in ["../../etc/passwd", "/etc/passwd", "a/../../b", "C:/x", "", "a\0b", "..\\secret"] {
            assert!(normalize_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(normalize_path("./src/app.py").unwrap(), "src/app.py");
        assert_eq!(normalize_path("src\\app.py").unwrap(), "src/app.py");
    }
}
