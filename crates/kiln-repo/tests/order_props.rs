//! Property tests of Algorithm 1 (`graph::order`) on random graphs.

mod common;
use common::reaches;

use std::collections::BTreeSet;

use kiln_repo::graph::{self, DepGraph, Edge};
use proptest::prelude::*;

fn graph_of(n: usize, pairs: &[(usize, usize)]) -> DepGraph {
    let mut edges: Vec<Edge> = pairs.iter().filter(|(a, b)| a != b).map(|&(from, to)| Edge { from, to, import: format!("{to}") }).collect();
    edges.sort_by_key(|e| (e.from, e.to));
    edges.dedup_by_key(|e| (e.from, e.to));
    DepGraph { edges, external: vec![Vec::new(); n], n_files: n }
}

/// Random graph: `n` files, up to `3n` random edges (cycles likely).
fn any_graph() -> impl Strategy<Value = DepGraph> {
    (1usize..40).prop_flat_map(|n| proptest::collection::vec((0..n, 0..n), 0..=3 * n).prop_map(move |pairs| graph_of(n, &pairs)))
}

/// Random DAG: edges oriented along a random permutation, so no cycle, labels shuffled.
fn any_dag() -> impl Strategy<Value = DepGraph> {
    (1usize..40).prop_flat_map(|n| {
        let perm = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
        (perm, proptest::collection::vec((0..n, 0..n), 0..=3 * n)).prop_map(move |(perm, pairs)| {
            // rank[v] = position of v in the permutation; importer has the higher rank.
            let mut rank = vec![0; n];
            for (i, &v) in perm.iter().enumerate() {
                rank[v] = i;
            }
            let oriented: Vec<(usize, usize)> = pairs.into_iter().map(|(a, b)| if rank[a] > rank[b] { (a, b) } else { (b, a) }).collect();
            graph_of(n, &oriented)
        })
    })
}

fn positions(order: &[Vec<usize>], n: usize) -> Vec<usize> {
    let mut pos = vec![usize::MAX; n];
    for (i, &f) in order.iter().flatten().enumerate() {
        pos[f] = i;
    }
    pos
}

/// Weakly connected components by undirected BFS (independent of the union-find in the crate).
fn wcc(g: &DepGraph) -> BTreeSet<BTreeSet<usize>> {
    let n = g.n_files;
    let mut adj = vec![Vec::new(); n];
    for e in &g.edges {
        adj[e.from].push(e.to);
        adj[e.to].push(e.from);
    }
    let mut seen = vec![false; n];
    let mut out = BTreeSet::new();
    for s in 0..n {
        if seen[s] {
            continue;
        }
        let mut comp = BTreeSet::new();
        let mut stack = vec![s];
        seen[s] = true;
        while let Some(v) = stack.pop() {
            comp.insert(v);
            for &w in &adj[v] {
                if !std::mem::replace(&mut seen[w], true) {
                    stack.push(w);
                }
            }
        }
        out.insert(comp);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn dag_order_is_topological(g in any_dag(), seed in any::<u64>()) {
        let order = graph::order(&g, seed);
        let pos = positions(&order, g.n_files);
        for e in &g.edges {
            prop_assert!(pos[e.to] < pos[e.from], "edge {}→{} broken in {:?}", e.from, e.to, order);
        }
    }

    #[test]
    fn every_file_once_and_plain_edges_respected(g in any_graph(), seed in any::<u64>()) {
        let order = graph::order(&g, seed);
        let mut flat: Vec<usize> = order.iter().flatten().copied().collect();
        flat.sort_unstable();
        prop_assert_eq!(flat, (0..g.n_files).collect::<Vec<_>>());
        let pos = positions(&order, g.n_files);
        for e in &g.edges {
            // Not on a cycle ⇔ the imported file cannot reach its importer.
            if !reaches(&g, e.to, e.from) {
                prop_assert!(pos[e.to] < pos[e.from], "edge {}→{} broken in {:?}", e.from, e.to, order);
            }
        }
        prop_assert!(graph::violations(&g, &order).is_empty());
    }

    #[test]
    fn same_seed_same_order(g in any_graph(), seed in any::<u64>()) {
        prop_assert_eq!(graph::order(&g, seed), graph::order(&g, seed));
    }

    #[test]
    fn components_are_weakly_connected_components(g in any_graph(), seed in any::<u64>()) {
        let order = graph::order(&g, seed);
        let got: BTreeSet<BTreeSet<usize>> = order.iter().map(|c| c.iter().copied().collect()).collect();
        prop_assert_eq!(got.len(), order.len(), "no component split or repeated");
        prop_assert_eq!(got, wcc(&g));
        let firsts: Vec<usize> = order.iter().map(|c| *c.iter().min().unwrap()).collect();
        prop_assert!(firsts.windows(2).all(|w| w[0] < w[1]), "components by smallest file");
    }
}
