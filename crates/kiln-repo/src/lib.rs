//! kiln-repo: a repository as the model sees it. Planned (issue #3): walking and ingesting
//! directories, git repositories and archives; the language table; import extraction with
//! tree-sitter; the dependency graph and the paper's Algorithm 1 ordering; path-comment rendering.
//! Used by both the corpus pipeline and repository-level inference. Nothing is implemented yet.
#![deny(missing_docs)]
