//! Helpers shared by kiln-repo's integration tests.

use kiln_repo::graph::DepGraph;

/// Whether `to` can be reached from `from` along import edges (plain DFS): an independent check
/// of the SCC-based logic in `graph`.
pub fn reaches(g: &DepGraph, from: usize, to: usize) -> bool {
    let mut seen = vec![false; g.n_files];
    let mut stack = vec![from];
    while let Some(v) = stack.pop() {
        if v == to {
            return true;
        }
        if std::mem::replace(&mut seen[v], true) {
            continue;
        }
        stack.extend(g.edges.iter().filter(|e| e.from == v).map(|e| e.to));
    }
    false
}
