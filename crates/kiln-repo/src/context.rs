//! Cross-file context for one file: the files it imports, directly or not, rendered in
//! dependency order, for repository-level completion prompts.
//!
//! In: a [`Repo`], its [`DepGraph`], the file being completed, an optional token budget and a
//! token counter. Out: a [`Context`] whose `text` is [`render_sample`] of the chosen files: the
//! same format and the same Algorithm 1 order the corpus was trained on, so a prompt looks like
//! the start of a training sample. The target file itself is **not** part of the context: the
//! prompt builder appends its header ([`crate::render::file_header`]) and its text up to the
//! cursor, after one blank line, exactly as [`render_sample`] separates files.
//!
//! When the context exceeds the budget, the farthest dependencies (largest import distance) go
//! first, since the nearest ones are the likeliest to be referenced by the code being written;
//! among equally far files the one with the larger path goes first, for determinism.

use std::collections::VecDeque;

use serde::Serialize;

use crate::graph::{self, DepGraph, Edge};
use crate::render::render_sample;
use crate::Repo;

/// The context chosen for one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Context {
    /// Kept dependencies in dependency order (a file after those it imports, except along
    /// cycles): Algorithm 1 with seed 0, restricted to the kept files, components by smallest
    /// path.
    pub files: Vec<usize>,
    /// Dependencies left out to fit the budget, in the order they were dropped (farthest first).
    pub dropped: Vec<usize>,
    /// [`render_sample`] of `files`.
    pub text: String,
}

/// Every file `file` imports, directly or transitively, with its import distance (1 = imported
/// directly), sorted by distance then index. `file` itself is not included, even on a cycle.
pub fn dependencies_of(graph: &DepGraph, file: usize) -> Vec<(usize, usize)> {
    let mut dist = vec![usize::MAX; graph.n_files];
    let mut out = Vec::new();
    if file >= graph.n_files {
        return out;
    }
    dist[file] = 0;
    let mut queue = VecDeque::from([file]);
    while let Some(v) = queue.pop_front() {
        for e in graph.imports_of(v) {
            if e.to < graph.n_files && dist[e.to] == usize::MAX {
                dist[e.to] = dist[v] + 1;
                out.push((e.to, dist[e.to]));
                queue.push_back(e.to);
            }
        }
    }
    out.sort_by_key(|&(f, d)| (d, f));
    out
}

/// The dependencies of `file`, within `max_tokens` as measured by `count_tokens` on the rendered
/// text (no limit when `None`), in dependency order. See the module docs for what is dropped.
pub fn build_context(
    repo: &Repo,
    graph: &DepGraph,
    file: usize,
    max_tokens: Option<usize>,
    count_tokens: &dyn Fn(&str) -> usize,
) -> Context {
    // Nearest first; drops are taken from the end.
    let mut kept: Vec<usize> = dependencies_of(graph, file).into_iter().map(|(f, _)| f).collect();
    let mut dropped = Vec::new();
    if let Some(budget) = max_tokens {
        // Cheap pass on per-file estimates (each file rendered alone, separator included), so a
        // large repository does not re-tokenize the whole context once per dropped file...
        let cost: Vec<usize> = kept.iter().map(|&f| count_tokens(&render_sample(repo, &[f])) + 1).collect();
        let mut total: usize = cost.iter().sum();
        while total > budget {
            let Some(f) = kept.pop() else { break };
            total -= cost[kept.len()];
            dropped.push(f);
        }
        // ... then the exact check, since tokens at file boundaries may merge differently.
        loop {
            let text = render_sample(repo, &ordered(graph, &kept));
            if count_tokens(&text) <= budget {
                break;
            }
            match kept.pop() {
                Some(f) => dropped.push(f),
                None => break,
            }
        }
    }
    let files = ordered(graph, &kept);
    let text = render_sample(repo, &files);
    tracing::debug!(file, kept = files.len(), dropped = dropped.len(), "context built");
    Context { files, dropped, text }
}

/// Algorithm 1 (seed 0) on the subgraph induced by `set`, components concatenated.
fn ordered(graph: &DepGraph, set: &[usize]) -> Vec<usize> {
    let mut members: Vec<usize> = set.to_vec();
    // Ascending indices keep "components by smallest path" meaningful in the subgraph.
    members.sort_unstable();
    let mut local = vec![usize::MAX; graph.n_files];
    for (i, &f) in members.iter().enumerate() {
        local[f] = i;
    }
    let edges: Vec<Edge> = graph
        .edges
        .iter()
        .filter(|e| e.from < graph.n_files && e.to < graph.n_files)
        .filter(|e| local[e.from] != usize::MAX && local[e.to] != usize::MAX)
        .map(|e| Edge { from: local[e.from], to: local[e.to], import: e.import.clone() })
        .collect();
    let sub = DepGraph { edges, external: vec![Vec::new(); members.len()], n_files: members.len() };
    graph::order(&sub, 0).into_iter().flatten().map(|i| members[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceFile;

    fn repo_and_graph() -> (Repo, DepGraph) {
        // main imports a and b; a imports c; c imports d (distances 1, 1, 2, 3).
        let files =
            [("a.py", "import c\n"), ("b.py", "B = 1\n"), ("c.py", "import d\n"), ("d.py", "D = 1\n"), ("main.py", "import a\nimport b\n")];
        let repo = Repo { name: "r".into(), files: files.iter().map(|(p, t)| SourceFile::new(*p, *t)).collect() };
        let g = graph::build_graph(&repo);
        (repo, g)
    }

    #[test]
    fn distances() {
        let (_, g) = repo_and_graph();
        assert_eq!(dependencies_of(&g, 4), vec![(0, 1), (1, 1), (2, 2), (3, 3)]);
        assert_eq!(dependencies_of(&g, 3), vec![]);
    }

    #[test]
    fn unlimited_context_is_dependency_ordered() {
        let (repo, g) = repo_and_graph();
        let ctx = build_context(&repo, &g, 4, None, &|s: &str| s.len());
        let pos = |f| ctx.files.iter().position(|&x| x == f).unwrap();
        assert!(pos(3) < pos(2) && pos(2) < pos(0));
        assert_eq!(ctx.files.len(), 4);
        assert!(ctx.dropped.is_empty());
        assert_eq!(ctx.text, render_sample(&repo, &ctx.files));
    }

    #[test]
    fn budget_drops_farthest_first() {
        let (repo, g) = repo_and_graph();
        let count = |s: &str| s.len();
        let full = build_context(&repo, &g, 4, None, &count).text.len();
        // Room for everything but d.py (the farthest, ~15 bytes).
        let ctx = build_context(&repo, &g, 4, Some(full - 5), &count);
        assert_eq!(ctx.dropped, vec![3]);
        assert!(ctx.text.len() <= full - 5);
        let ctx = build_context(&repo, &g, 4, Some(0), &count);
        assert!(ctx.files.is_empty() && ctx.text.is_empty());
        assert_eq!(ctx.dropped, vec![3, 2, 1, 0]);
    }
}
