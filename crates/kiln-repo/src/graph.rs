//! The dependency graph of a repository and DeepSeek-Coder's Algorithm 1 order.
//!
//! In: a [`Repo`]. Out: a [`DepGraph`] ([`build_graph`]: imports extracted by
//! [`crate::imports`], resolved by [`crate::resolve`]) and, from it, the files in dependency order,
//! one sequence per weakly connected component ([`order`]); each sequence becomes one training
//! sample (rendered by [`crate::render`]).
//!
//! ## The order (paper §2.2, Algorithm 1)
//!
//! Within a weakly connected component, repeatedly emit the not-yet-emitted file with the
//! **minimum** current in-degree, then decrement the in-degree of the files that import it. The
//! in-degree of a file is the number of distinct files it imports (edge `B → A` when `A` imports
//! `B`). Taking the minimum rather than waiting for zero is what lets cycles through. Ties are
//! broken at random: every file gets a random key from `StdRng::seed_from_u64(seed)` (drawn in
//! file-index order, so the key of a file does not depend on which component it is in), and the
//! smallest key wins; the same seed gives the same order.
//!
//! One refinement, recorded here because it departs from the paper's pseudo-code: the minimum is
//! taken over files whose remaining dependencies all lie in their own strongly connected
//! component (SCC). Algorithm 1 as written can emit a file before a dependency that is on no cycle
//! at all: with `a → b` (a imports b), `b → x`, and a cycle `x ↔ y`, every file has in-degree 1
//! at the start, and a random tie-break may emit `a` first. The refinement never changes the order
//! of an acyclic graph (the candidates are then exactly the in-degree-0 files, as in the paper),
//! and on a cyclic graph it guarantees that every edge not on a cycle is respected; inside a
//! cycle the paper's rule (fewest remaining imports, random tie) decides.
//!
//! Cost: O((V + E) log V): Tarjan's SCCs and union-find are linear, and a binary heap with lazy
//! deletion replaces the paper's linear argmin scan (a file whose in-degree changed is pushed
//! again; stale entries are skipped when popped).
//!
//! Files of languages without an import parser (Markdown, shell, …) and files whose imports
//! resolve to nothing in the repository have no edges, so each is a singleton component: a
//! one-file sample. This is Algorithm 1 as written; merging small singletons into larger samples
//! is left to packing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use kiln_base::UnionFind;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::imports::{self, FileFacts};
use crate::resolve::{Resolution, Resolver};
use crate::Repo;

/// `from` imports `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// The importing file (index into `repo.files`).
    pub from: usize,
    /// The imported file.
    pub to: usize,
    /// The first import of `from` (in source order) that resolved to `to`, as written.
    pub import: String,
}

/// A repository's file-level dependency graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DepGraph {
    /// Edges sorted by `(from, to)`, one per pair, no self-edges.
    pub edges: Vec<Edge>,
    /// Per file, the imports that resolved to no repository file, in source order, deduplicated.
    pub external: Vec<Vec<String>>,
    /// Number of files (`repo.files.len()`).
    pub n_files: usize,
}

impl DepGraph {
    /// The edges whose importer is `file` (a slice of `edges`, sorted by `to`).
    pub fn imports_of(&self, file: usize) -> &[Edge] {
        let lo = self.edges.partition_point(|e| e.from < file);
        let hi = self.edges.partition_point(|e| e.from <= file);
        &self.edges[lo..hi]
    }
}

/// Extracts and resolves every import of `repo`, with [`crate::scan::scan`]: no tree-sitter
/// parse, and the same imports as [`imports::analyze`] on every file that parses cleanly (see
/// `scan`'s module doc for the differences on broken files), at ~50x the speed.
pub fn build_graph(repo: &Repo) -> DepGraph {
    let facts: Vec<Option<FileFacts>> = repo.files.iter().map(|f| imports::file_syntax(f).map(|s| crate::scan::scan(s, &f.text))).collect();
    build_graph_from_facts(repo, &facts)
}

/// [`build_graph`] from facts the caller already has (one [`imports::analyze`] or
/// [`crate::scan::scan`] per file, `None` for files without an import grammar), so a pipeline
/// that parsed each file for another reason (the corpus quality screen) does not parse it again.
pub fn build_graph_from_facts(repo: &Repo, facts: &[Option<FileFacts>]) -> DepGraph {
    assert_eq!(facts.len(), repo.files.len(), "one FileFacts slot per file");
    let n = repo.files.len();
    let resolver = Resolver::from_facts(repo, facts);
    let mut edges = Vec::new();
    let mut external: Vec<Vec<String>> = vec![Vec::new(); n];
    for (i, f) in facts.iter().enumerate() {
        let Some(f) = f else { continue };
        for imp in &f.imports {
            match resolver.resolve(i, imp) {
                Resolution::Files(targets) => edges.extend(targets.into_iter().map(|to| Edge { from: i, to, import: imp.text.clone() })),
                Resolution::External => {
                    if !external[i].contains(&imp.text) {
                        external[i].push(imp.text.clone());
                    }
                }
            }
        }
    }
    // Stable sort: among duplicates of a pair, the first import in source order is kept.
    edges.sort_by_key(|e| (e.from, e.to));
    edges.dedup_by_key(|e| (e.from, e.to));
    tracing::debug!(
        repo = %repo.name,
        files = n,
        edges = edges.len(),
        external = external.iter().map(Vec::len).sum::<usize>(),
        "dependency graph built"
    );
    DepGraph { edges, external, n_files: n }
}

/// Distinct `(from, to)` pairs of `graph`, without self-edges, sorted. [`build_graph`] already
/// guarantees this; graphs built by hand (tests, callers) might not.
fn clean_pairs(graph: &DepGraph) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize)> =
        graph.edges.iter().filter(|e| e.from != e.to && e.from < graph.n_files && e.to < graph.n_files).map(|e| (e.from, e.to)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// The weakly connected components (edge direction ignored), each sorted, ordered by their
/// smallest file index. Since `repo.files` is sorted by path, that is their smallest path.
pub fn weakly_connected_components(graph: &DepGraph) -> Vec<Vec<usize>> {
    let n = graph.n_files;
    // A root is its component's smallest file (kiln-base's UnionFind guarantees it).
    let mut uf = UnionFind::new(n);
    for (a, b) in clean_pairs(graph) {
        uf.union(a, b);
    }
    let mut slot: Vec<Option<usize>> = vec![None; n];
    let mut comps: Vec<Vec<usize>> = Vec::new();
    for v in 0..n {
        let r = uf.find(v);
        let s = *slot[r].get_or_insert_with(|| {
            comps.push(Vec::new());
            comps.len() - 1
        });
        comps[s].push(v);
    }
    comps
}

/// The strongly connected component of each file (Tarjan's algorithm, iterative so deep import
/// chains cannot overflow the stack). Two files share an id exactly when they are on a common
/// cycle.
pub fn strongly_connected_components(graph: &DepGraph) -> Vec<usize> {
    let n = graph.n_files;
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (a, b) in clean_pairs(graph) {
        adj[a].push(b);
    }
    const UNSEEN: usize = usize::MAX;
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut comp = vec![UNSEEN; n];
    let mut stack = Vec::new();
    let (mut next_index, mut next_comp) = (0, 0);
    for start in 0..n {
        if index[start] != UNSEEN {
            continue;
        }
        // Call stack of (node, position in its adjacency list).
        let mut calls = vec![(start, 0usize)];
        index[start] = next_index;
        low[start] = next_index;
        next_index += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&mut (v, ref mut pos)) = calls.last_mut() {
            if *pos < adj[v].len() {
                let w = adj[v][*pos];
                *pos += 1;
                if index[w] == UNSEEN {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = next_comp;
                    if w == v {
                        break;
                    }
                }
                next_comp += 1;
            }
        }
    }
    comp
}

/// Algorithm 1: the files of each weakly connected component in dependency order (a file after
/// the files it imports, except along cycles), components ordered by their smallest path. Every
/// file appears exactly once. See the module docs for the tie-break and the cycle refinement.
pub fn order(graph: &DepGraph, seed: u64) -> Vec<Vec<usize>> {
    let n = graph.n_files;
    let pairs = clean_pairs(graph);
    let scc = strongly_connected_components(graph);
    let mut indeg = vec![0usize; n]; // remaining imports not yet emitted
    let mut outside = vec![0usize; n]; // ... of which outside the file's own SCC
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in &pairs {
        indeg[a] += 1;
        if scc[a] != scc[b] {
            outside[a] += 1;
        }
        dependents[b].push(a);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let key: Vec<u64> = (0..n).map(|_| rng.random()).collect();

    let mut emitted = vec![false; n];
    let mut out = Vec::new();
    for comp in weakly_connected_components(graph) {
        let mut heap: BinaryHeap<Reverse<(usize, u64, usize)>> =
            comp.iter().filter(|&&v| outside[v] == 0).map(|&v| Reverse((indeg[v], key[v], v))).collect();
        let mut seq = Vec::with_capacity(comp.len());
        while let Some(Reverse((d, _, v))) = heap.pop() {
            if emitted[v] || d != indeg[v] {
                continue; // lazily deleted: emitted already, or re-pushed with a newer in-degree
            }
            emitted[v] = true;
            seq.push(v);
            for &w in &dependents[v] {
                if emitted[w] {
                    continue;
                }
                indeg[w] -= 1;
                if scc[w] != scc[v] {
                    outside[w] -= 1;
                }
                if outside[w] == 0 {
                    heap.push(Reverse((indeg[w], key[w], w)));
                }
            }
        }
        // Cannot happen: some SCC of the remaining files always has no remaining dependency
        // outside itself (the condensation is acyclic), and its files are in the heap.
        debug_assert_eq!(seq.len(), comp.len(), "Algorithm 1 stalled");
        out.push(seq);
    }
    out
}

/// The edges an order breaks: the imported file comes after its importer although the two are
/// not on a common cycle (edges inside a cycle cannot all be respected and are not reported).
/// Edges with an endpoint missing from `order` are not reported either.
pub fn violations<'g>(graph: &'g DepGraph, order: &[Vec<usize>]) -> Vec<&'g Edge> {
    let scc = strongly_connected_components(graph);
    let mut pos = vec![None; graph.n_files];
    for (i, &f) in order.iter().flatten().enumerate() {
        if f < pos.len() {
            pos[f] = Some(i);
        }
    }
    graph
        .edges
        .iter()
        .filter(|e| e.from < graph.n_files && e.to < graph.n_files && scc[e.from] != scc[e.to])
        .filter(|e| matches!((pos[e.from], pos[e.to]), (Some(a), Some(b)) if b > a))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: usize, pairs: &[(usize, usize)]) -> DepGraph {
        let mut edges: Vec<Edge> = pairs.iter().map(|&(from, to)| Edge { from, to, import: String::new() }).collect();
        edges.sort_by_key(|e| (e.from, e.to));
        DepGraph { edges, external: vec![Vec::new(); n], n_files: n }
    }

    #[test]
    fn chain_is_reversed_into_dependency_order() {
        // 0 imports 1 imports 2.
        let g = graph(3, &[(0, 1), (1, 2)]);
        for seed in 0..20 {
            assert_eq!(order(&g, seed), vec![vec![2, 1, 0]]);
        }
    }

    #[test]
    fn paper_issue_43_example() {
        // Issue #43: edges A→B, B→C, B→D ("B uses A", ...) give the order A, B, C, D, with C
        // and D in either order. As imports: B imports A, C and D import B.
        let g = graph(4, &[(1, 0), (2, 1), (3, 1)]);
        for seed in 0..20 {
            let o = order(&g, seed);
            assert_eq!(&o[0][..2], &[0, 1]);
        }
    }

    #[test]
    fn cycle_elsewhere_does_not_break_a_plain_edge() {
        // a=0 imports b=1, b imports x=2, x <-> y=3. Algorithm 1 unrefined may emit a first.
        let g = graph(4, &[(0, 1), (1, 2), (2, 3), (3, 2)]);
        for seed in 0..200 {
            let o = order(&g, seed);
            assert!(violations(&g, &o).is_empty(), "seed {seed}: {o:?}");
            let pos = |f| o[0].iter().position(|&x| x == f).unwrap();
            assert!(pos(1) < pos(0) && pos(2) < pos(1));
        }
    }

    #[test]
    fn components_and_singletons() {
        let g = graph(5, &[(3, 1), (4, 4)]);
        assert_eq!(weakly_connected_components(&g), vec![vec![0], vec![1, 3], vec![2], vec![4]]);
        assert_eq!(order(&g, 7), vec![vec![0], vec![1, 3], vec![2], vec![4]]);
    }

    #[test]
    fn tie_break_depends_on_seed() {
        // Three independent importers of one file: their order is random but seeded.
        let g = graph(4, &[(1, 0), (2, 0), (3, 0)]);
        let orders: std::collections::HashSet<Vec<Vec<usize>>> = (0..50).map(|s| order(&g, s)).collect();
        assert!(orders.len() > 1);
        assert_eq!(order(&g, 9), order(&g, 9));
    }

    #[test]
    fn scc_ids() {
        let g = graph(4, &[(0, 1), (1, 0), (1, 2), (3, 3)]);
        let c = strongly_connected_components(&g);
        assert_eq!(c[0], c[1]);
        assert_ne!(c[1], c[2]);
        assert_ne!(c[2], c[3]);
    }

    #[test]
    fn imports_of_slices_edges() {
        let g = graph(3, &[(0, 1), (0, 2), (2, 1)]);
        assert_eq!(g.imports_of(0).iter().map(|e| e.to).collect::<Vec<_>>(), [1, 2]);
        assert!(g.imports_of(1).is_empty());
        assert_eq!(g.imports_of(2).len(), 1);
    }
}
