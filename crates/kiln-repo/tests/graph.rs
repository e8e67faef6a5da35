//! The dependency graph and Algorithm 1 order on the fixture repositories of
//! `tests/fixtures/repos/` (their intended graphs are described in its README.md).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kiln_repo::graph::{self, DepGraph};
use kiln_repo::{context, lang, render, Repo, SourceFile};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/repos")
}

/// Builds a Repo from a fixture directory directly (not through ingest), files sorted by path.
fn load(name: &str) -> Repo {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let path = p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                let text = std::fs::read_to_string(&p).unwrap();
                out.push(SourceFile { language: lang::detect(&path), path, text });
            }
        }
    }
    let root = fixtures().join(name);
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Repo { name: name.to_string(), files }
}

fn edge_paths(repo: &Repo, g: &DepGraph) -> BTreeSet<(String, String)> {
    g.edges.iter().map(|e| (repo.files[e.from].path.clone(), repo.files[e.to].path.clone())).collect()
}

fn external_paths(repo: &Repo, g: &DepGraph) -> BTreeMap<String, Vec<String>> {
    g.external.iter().enumerate().filter(|(_, v)| !v.is_empty()).map(|(i, v)| (repo.files[i].path.clone(), v.clone())).collect()
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn map(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    entries.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()
}

/// `to` reaches `from` (so edge from→to lies on a cycle), by BFS: an independent check of the
/// SCC-based `graph::violations`.
fn on_cycle(g: &DepGraph, from: usize, to: usize) -> bool {
    common::reaches(g, to, from)
}

/// Every order (several seeds) holds every file once, respects every edge not on a cycle, and is
/// the same for the same seed.
fn check_orders(repo: &Repo, g: &DepGraph) {
    for seed in 0..16 {
        let order = graph::order(g, seed);
        let flat: Vec<usize> = order.iter().flatten().copied().collect();
        let mut sorted = flat.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..repo.files.len()).collect::<Vec<_>>(), "every file exactly once");
        let pos = |f: usize| flat.iter().position(|&x| x == f).unwrap();
        for e in &g.edges {
            if !on_cycle(g, e.from, e.to) {
                assert!(
                    pos(e.to) < pos(e.from),
                    "seed {seed}: {} must come before its importer {}",
                    repo.files[e.to].path,
                    repo.files[e.from].path
                );
            }
        }
        assert!(graph::violations(g, &order).is_empty());
        assert_eq!(order, graph::order(g, seed), "same seed, same order");
        // Components are ordered by their smallest path.
        let firsts: Vec<usize> = order.iter().map(|c| *c.iter().min().unwrap()).collect();
        assert!(firsts.windows(2).all(|w| w[0] < w[1]));
    }
}

fn check(name: &str, edges: &[(&str, &str)], external: &[(&str, &[&str])]) -> (Repo, DepGraph) {
    let repo = load(name);
    let g = graph::build_graph(&repo);
    assert_eq!(edge_paths(&repo, &g), set(edges), "{name}: edges");
    assert_eq!(external_paths(&repo, &g), map(external), "{name}: external imports");
    assert!(g.edges.windows(2).all(|w| (w[0].from, w[0].to) < (w[1].from, w[1].to)), "sorted, deduped");
    check_orders(&repo, &g);
    (repo, g)
}

#[test]
fn python() {
    let (repo, g) = check(
        "python",
        &[
            ("app/a.py", "app/b.py"),
            ("app/a.py", "app/c.py"),
            ("app/b.py", "app/d.py"),
            ("app/c.py", "app/d.py"),
            ("app/x.py", "app/y.py"),
            ("app/y.py", "app/x.py"),
            ("app/pkg_a/core.py", "app/pkg_a/utils.py"),
            ("app/pkg_b/core.py", "app/pkg_b/utils.py"),
            ("app/pkg_b/core.py", "app/pkg_a/core.py"),
            ("main.py", "app/a.py"),
            ("main.py", "app/x.py"),
            ("main.py", "src/mylib/tools.py"),
        ],
        &[("app/d.py", &["numpy"]), ("main.py", &["sys"]), ("src/mylib/tools.py", &["os"])],
    );
    // The diamond's shared dependency comes first in every order.
    let order = graph::order(&g, 3);
    let idx = |p: &str| repo.files.iter().position(|f| f.path == p).unwrap();
    let comp = order.iter().find(|c| c.contains(&idx("app/d.py"))).unwrap();
    let pos = |p: &str| comp.iter().position(|&x| x == idx(p)).unwrap();
    assert!(pos("app/d.py") < pos("app/b.py") && pos("app/d.py") < pos("app/c.py"));
    assert!(pos("app/b.py") < pos("app/a.py") && pos("app/c.py") < pos("app/a.py"));
    // README.md (no import syntax) is a singleton sample; __init__.py files with no edges too.
    assert!(order.contains(&vec![idx("README.md")]));
    assert!(order.contains(&vec![idx("app/__init__.py")]));
    // The edge keeps the import as written.
    let e = g.edges.iter().find(|e| e.from == idx("app/a.py") && e.to == idx("app/c.py")).unwrap();
    assert_eq!(e.import, ".c");
}

#[test]
fn java() {
    let p = |s: &str| format!("src/main/java/com/example/{s}");
    let (a, b, c, d, e) =
        (p("app/Main.java"), p("util/Strings.java"), p("util/Lists.java"), p("model/User.java"), p("store/Repository.java"));
    check("java", &[(&a, &b), (&a, &c), (&a, &d), (&d, &e), (&e, &d)], &[(&a, &["java.util.List"]), (&c, &["java.util.ArrayList"])]);
}

#[test]
fn csharp() {
    check(
        "csharp",
        &[
            ("App/Program.cs", "Models/Order.cs"),
            ("App/Program.cs", "Models/User.cs"),
            ("App/Program.cs", "Services/UserService.cs"),
            ("Models/Order.cs", "Services/UserService.cs"),
            ("Services/UserService.cs", "Models/Order.cs"),
            ("Services/UserService.cs", "Models/User.cs"),
        ],
        &[("App/Program.cs", &["System"]), ("Services/UserService.cs", &["System.Linq"])],
    );
}

#[test]
fn c() {
    check(
        "c",
        &[
            ("include/api.h", "common/x.h"),
            ("lib/api.c", "include/api.h"),
            ("src/main.c", "common/x.h"),
            ("src/main.c", "include/api.h"),
            ("src/main.c", "src/util.h"),
            ("src/util.c", "src/util.h"),
            ("src/util.c", "common/x.h"),
        ],
        &[("common/x.h", &["stdint.h"]), ("lib/api.c", &["string.h"]), ("src/main.c", &["stdio.h"])],
    );
}

#[test]
fn cpp() {
    check(
        "cpp",
        &[
            ("include/geo/shape.hpp", "include/geo/point.hpp"),
            ("src/main.cpp", "include/geo/point.hpp"),
            ("src/main.cpp", "include/geo/shape.hpp"),
            ("src/shape.cpp", "include/geo/shape.hpp"),
        ],
        &[("include/geo/point.hpp", &["cmath"]), ("include/geo/shape.hpp", &["vector"]), ("src/main.cpp", &["iostream"])],
    );
}

#[test]
fn javascript() {
    check(
        "javascript",
        &[
            ("src/index.js", "src/app.js"),
            ("src/index.js", "src/lib/index.js"),
            ("src/app.js", "src/lib/util.js"),
            ("src/app.js", "src/lazy.jsx"),
            ("src/lib/index.js", "src/lib/util.js"),
        ],
        &[("src/index.js", &["react"]), ("src/lazy.jsx", &["react"])],
    );
}

#[test]
fn typescript() {
    check(
        "typescript",
        &[
            ("src/main.ts", "src/components/Button.tsx"),
            ("src/main.ts", "src/types.ts"),
            ("src/components/Button.tsx", "src/theme.ts"),
            ("src/components/index.ts", "src/components/Button.tsx"),
            ("src/components/index.ts", "src/types.ts"),
            ("src/theme.ts", "src/types.ts"),
        ],
        &[("src/main.ts", &["express"]), ("src/components/Button.tsx", &["react"])],
    );
}

#[test]
fn go() {
    check(
        "go",
        &[
            ("main.go", "internal/store/cache.go"),
            ("main.go", "internal/store/store.go"),
            ("main.go", "pkg/money/money.go"),
            ("internal/store/store.go", "pkg/money/money.go"),
        ],
        &[
            ("main.go", &["fmt"]),
            ("internal/store/cache.go", &["sync"]),
            ("internal/store/store_test.go", &["testing"]),
            ("pkg/money/money.go", &["strconv"]),
        ],
    );
}

#[test]
fn rust() {
    check(
        "rust",
        &[
            ("src/lib.rs", "src/a/mod.rs"),
            ("src/lib.rs", "src/b.rs"),
            ("src/lib.rs", "src/c.rs"),
            ("src/a/mod.rs", "src/a/inner.rs"),
            ("src/a/mod.rs", "src/b.rs"),
            ("src/a/inner.rs", "src/a/mod.rs"),
            ("src/b.rs", "src/a/mod.rs"),
            ("src/c.rs", "src/b.rs"),
            ("src/main.rs", "src/a/inner.rs"),
            ("tests/it.rs", "tests/common/mod.rs"),
            ("tests/it.rs", "src/b.rs"),
        ],
        &[("src/lib.rs", &["std::fmt"]), ("src/b.rs", &["std::collections::HashMap"]), ("src/c.rs", &["serde::Serialize"])],
    );
}

#[test]
fn rendered_sample_has_headers_in_order() {
    let repo = load("python");
    let g = graph::build_graph(&repo);
    let order = graph::order(&g, 0);
    let sample = order.iter().find(|c| c.len() > 4).unwrap();
    let text = render::render_sample(&repo, sample);
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("# ") && l.ends_with(".py")).collect();
    let want: Vec<String> = sample.iter().map(|&i| format!("# {}", repo.files[i].path)).collect();
    assert_eq!(headers, want);
    assert!(text.ends_with('\n') && !text.ends_with("\n\n"));
}

#[test]
fn context_for_main_py() {
    let repo = load("python");
    let g = graph::build_graph(&repo);
    let main = repo.files.iter().position(|f| f.path == "main.py").unwrap();
    let ctx = context::build_context(&repo, &g, main, None, &|s: &str| s.len());
    let paths: BTreeSet<&str> = ctx.files.iter().map(|&i| repo.files[i].path.as_str()).collect();
    let want: BTreeSet<&str> = ["app/a.py", "app/b.py", "app/c.py", "app/d.py", "app/x.py", "app/y.py", "src/mylib/tools.py"].into();
    assert_eq!(paths, want);
    // Farthest first: d.py (distance 3) goes before anything at distance 1 or 2.
    let full = ctx.text.len();
    let ctx = context::build_context(&repo, &g, main, Some(full - 1), &|s: &str| s.len());
    assert_eq!(ctx.dropped.len(), 1);
    assert_eq!(repo.files[ctx.dropped[0]].path, "app/d.py");
}
