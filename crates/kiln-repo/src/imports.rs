//! Import extraction with tree-sitter, for the nine languages of [`ImportSyntax`].
//!
//! In: a file's text and its import syntax. Out: the imports it makes, as written
//! ([`RawImport`]), plus the declarations that resolution needs (Java/Go `package`, C#
//! `namespace`s) in [`FileFacts`]. Nothing here knows about other files: mapping an import to a
//! file of the repository is [`crate::resolve`]'s job.
//!
//! Why tree-sitter and not the paper's regular expressions: a parser does not see imports inside
//! strings and comments, and handles multi-line forms (`from a import (b,\n c)`, Rust use-trees,
//! Go import blocks) that line regexes miss. Each grammar is driven by a small capture query that
//! finds the import-bearing nodes; the nodes are then read field by field in Rust, because the
//! shapes (aliases, use-trees, relative levels) are easier to get right in code than in queries.
//!
//! [`crate::scan::scan`] gives the same [`FileFacts`] without a parse (and without an error
//! share), for callers that need only the imports.
//!
//! Parsers and compiled queries are cached per thread ([`thread_local!`]), so calling
//! [`extract_imports`] once per file of a large corpus costs one parse, not a parser set-up.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::Serialize;
use streaming_iterator::StreamingIterator;
use tree_sitter::{Node, Parser, Query, QueryCursor};

use crate::lang::ImportSyntax;
pub use crate::scan::scan;

/// What kind of import a [`RawImport`] is; carries the details resolution needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ImportKind {
    /// Python `import a.b` / `import a.b as c`. `level` is always 0 (an `import` statement cannot
    /// be relative); it is kept so both Python kinds read alike.
    PythonModule {
        /// Number of leading dots (always 0 here).
        level: usize,
    },
    /// Python `from M import n1, n2`. The import's text is `M` as written, dots included
    /// (`.`, `..pkg.mod`, `a.b`).
    PythonFrom {
        /// Number of leading dots of `M` (0 = absolute).
        level: usize,
        /// The imported names, aliases dropped (`["c", "d"]`); `["*"]` for a wildcard.
        names: Vec<String>,
    },
    /// Java `import a.b.C;`, `import a.b.*;`, `import static a.b.C.m;`. The text has no `.*`.
    JavaImport {
        /// `import static`.
        static_: bool,
        /// Ends in `.*`.
        wildcard: bool,
    },
    /// C# `using A.B;`, `using static A.B.C;`, `using X = A.B.C;` (also with `global`).
    CSharpUsing {
        /// `using static`.
        static_: bool,
        /// The alias of `using X = ...`, if any.
        alias: Option<String>,
    },
    /// C/C++ `#include "x.h"` (text without the quotes).
    IncludeQuoted,
    /// C/C++ `#include <x.h>` (text without the brackets).
    IncludeAngled,
    /// JavaScript/TypeScript module specifier of `import ... from "s"`, `import "s"`,
    /// `export ... from "s"`, `require("s")`, `import("s")`, TS `import x = require("s")`.
    JsSpecifier,
    /// Go import path (`"example.com/m/pkg"`, text without quotes).
    GoImport,
    /// Rust `mod x;` (a declaration without a body). The text is the module name, prefixed with
    /// the names of enclosing inline modules (`mod outer { mod x; }` gives `outer::x`), since
    /// those decide the file's directory.
    RustMod,
    /// Rust `use` path, one per leaf of a use-tree: `use crate::a::{b, c as d}` gives
    /// `crate::a::b` and `crate::a::c`; `use crate::a::{self}` gives `crate::a`; a glob keeps its
    /// `::*`.
    RustUse,
}

/// One import as written in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawImport {
    /// The imported name as written, without quotes: `a.b`, `.util`, `x.h`, `./y`, `crate::a::b`.
    pub text: String,
    /// The form of the import.
    pub kind: ImportKind,
    /// 1-based line of the import statement.
    pub line: usize,
}

/// Everything kiln reads from one file with one parse.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FileFacts {
    /// The imports, in source order.
    pub imports: Vec<RawImport>,
    /// Java `package a.b;` or Go `package x` name, if declared.
    pub package: Option<String>,
    /// C# namespaces declared in the file (block and file-scoped), in source order, deduplicated.
    pub namespaces: Vec<String>,
    /// Share of the file tree-sitter could not parse (see [`parse_error_share`]), from the same
    /// parse, so the corpus quality screen costs no second parse. `Some` from [`analyze`]; `None`
    /// from [`scan`], which does not parse (and from `FileFacts::default()`).
    pub error_share: Option<f64>,
}

/// Parses `source` once and returns its imports and declarations.
///
/// A file that does not parse cleanly still yields what tree-sitter recovered: a half-written
/// file in an editor should still give its imports.
pub fn analyze(syntax: ImportSyntax, source: &str) -> FileFacts {
    analyze_in(syntax, source, QueryScope::KeywordLines)
}

/// Where [`analyze`] runs its import query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryScope {
    /// The whole tree (the reference behaviour, kept for the differential test).
    #[cfg_attr(not(test), allow(dead_code))]
    WholeTree,
    /// Only the lines around a keyword an import-bearing node must contain ([`keyword_ranges`]).
    KeywordLines,
}

fn analyze_in(syntax: ImportSyntax, source: &str, scope: QueryScope) -> FileFacts {
    with_parser(syntax, |parser, query| {
        let Some(tree) = parser.parse(source, None) else {
            // Only happens on cancellation/timeout, which kiln never sets; be safe anyway.
            tracing::warn!(?syntax, "tree-sitter returned no tree");
            return FileFacts::default();
        };
        let bytes = source.as_bytes();
        let names = query.capture_names();
        let mut found: Vec<(usize, RawImport)> = Vec::new();
        let mut facts = FileFacts { error_share: Some(error_share_of(&tree, source)), ..FileFacts::default() };
        let ranges = match scope {
            QueryScope::WholeTree => std::iter::once(0..bytes.len()).collect(),
            QueryScope::KeywordLines => keyword_ranges(syntax, bytes),
        };
        let mut cursor = QueryCursor::new();
        for range in ranges {
            // Matches that intersect the range, so a statement is found from any of its lines.
            cursor.set_byte_range(range);
            let mut matches = cursor.matches(query, tree.root_node(), bytes);
            while let Some(m) = matches.next() {
                for cap in m.captures() {
                    let node = cap.node;
                    match names[cap.index as usize] {
                        "imp" => read_import(syntax, node, bytes, &mut found),
                        "pkg" if facts.package.is_none() => facts.package = Some(compact(text(node, bytes))),
                        "ns" => {
                            let ns = compact(text(node, bytes));
                            if !facts.namespaces.contains(&ns) {
                                facts.namespaces.push(ns);
                            }
                        }
                        _ => {} // helper captures used only by predicates (`@f`)
                    }
                }
            }
        }
        // Matches of different patterns interleave, and a node spanning two ranges is matched
        // twice; sort by position and drop repeats so callers see each import once, in order.
        found.sort_by_key(|(pos, _)| *pos);
        found.dedup();
        facts.imports = found.into_iter().map(|(_, imp)| imp).collect();
        facts
    })
}

/// Words every import-bearing node of a grammar's query contains (a superset filter: a hit in
/// a comment or an identifier only costs a small query).
fn keywords(syntax: ImportSyntax) -> &'static [&'static str] {
    use ImportSyntax::*;
    match syntax {
        Python => &["import"],
        Java => &["import", "package"],
        CSharp => &["using", "namespace"],
        C | Cpp => &["include"],
        JavaScript | TypeScript | Tsx => &["import", "export", "require"],
        Go => &["import", "package"],
        Rust => &["mod", "use"],
    }
}

/// The byte ranges the import query has to look at: each line holding a keyword, extended over
/// the following lines while brackets opened on it stay open (Go's `import (` block, whose
/// specs sit on lines without the keyword; a multi-line `from a import (` or `use a::{`),
/// merged where they touch.
///
/// Why: running the query over the whole tree visited every node of every file, a quarter of a
/// corpus build's time; import statements are a few lines of a file.
fn keyword_ranges(syntax: ImportSyntax, bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    static FINDERS: std::sync::OnceLock<HashMap<ImportSyntax, aho_corasick::AhoCorasick>> = std::sync::OnceLock::new();
    let finders = FINDERS.get_or_init(|| {
        use ImportSyntax::*;
        [Python, Java, CSharp, C, Cpp, JavaScript, TypeScript, Tsx, Go, Rust]
            .into_iter()
            .map(|s| (s, aho_corasick::AhoCorasick::new(keywords(s)).expect("keyword automaton builds")))
            .collect()
    });
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for hit in finders[&syntax].find_iter(bytes) {
        if out.last().is_some_and(|r| hit.start() < r.end) {
            continue; // inside a range already taken
        }
        let start = bytes[..hit.start()].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut depth: i64 = 0;
        let mut end = bytes.len();
        for (i, &b) in bytes.iter().enumerate().skip(start) {
            match b {
                b'(' | b'{' | b'[' => depth += 1,
                b')' | b'}' | b']' => depth -= 1,
                b'\n' if depth <= 0 || i - start > 1 << 16 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        match out.last_mut() {
            Some(last) if start <= last.end => last.end = last.end.max(end),
            _ => out.push(start..end),
        }
    }
    out
}

/// The imports of `source`, in source order (see [`RawImport`] for what each form yields).
pub fn extract_imports(syntax: ImportSyntax, source: &str) -> Vec<RawImport> {
    analyze(syntax, source).imports
}

/// The namespaces a C# file declares, block (`namespace A.B { }`) and file-scoped
/// (`namespace A.B;`), nested block namespaces as written (not joined with their parents).
pub fn csharp_namespaces(source: &str) -> Vec<String> {
    analyze(ImportSyntax::CSharp, source).namespaces
}

/// A Java file's `package a.b;` declaration.
pub fn java_package(source: &str) -> Option<String> {
    analyze(ImportSyntax::Java, source).package
}

/// A Go file's `package x` clause.
pub fn go_package(source: &str) -> Option<String> {
    analyze(ImportSyntax::Go, source).package
}

/// Share of `source` that tree-sitter could not parse: bytes inside outermost `ERROR` nodes, plus
/// one byte per `MISSING` node (a zero-width token the parser had to invent), over all bytes,
/// capped at 1. `Some(0.0)` for an empty or clean file; `None` only if the parser gave no tree.
/// Cheaper than [`analyze`]: no import query, and the tree is never released node by node.
pub fn parse_error_share(syntax: ImportSyntax, source: &str) -> Option<f64> {
    // The parser and the tree live in a scratch heap that is destroyed whole afterwards, so
    // neither is dropped: releasing a tree node by node was ~8% of a default corpus build, a
    // fresh parser per file costs far less (3-4% less CPU per build, see `ts_alloc`).
    crate::ts_alloc::in_scratch_heap(|| {
        let mut parser = Parser::new();
        parser.set_language(&grammar(syntax)).expect("grammar ABI is supported by tree-sitter 0.27");
        let tree = parser.parse(source, None);
        let share = tree.as_ref().map(|t| error_share_of(t, source));
        std::mem::forget(tree);
        std::mem::forget(parser);
        share
    })
}

fn error_share_of(tree: &tree_sitter::Tree, source: &str) -> f64 {
    let root = tree.root_node();
    if source.is_empty() || !root.has_error() {
        return 0.0;
    }
    let mut bad = 0usize;
    let mut cursor = root.walk();
    // Pre-order walk that skips subtrees without errors and does not descend into an ERROR
    // node (its bytes are already counted once).
    'walk: loop {
        let node = cursor.node();
        let descend = if node.is_error() {
            bad += node.byte_range().len();
            false
        } else if node.is_missing() {
            bad += 1;
            false
        } else {
            node.has_error()
        };
        if descend && cursor.goto_first_child() {
            continue;
        }
        while !cursor.goto_next_sibling() {
            if !cursor.goto_parent() {
                break 'walk;
            }
        }
    }
    (bad as f64 / source.len() as f64).min(1.0)
}

/// The grammar for one file: its language's [`ImportSyntax`], except that `.tsx` files need the
/// TSX grammar (the TypeScript grammar rejects JSX; the language table has one TypeScript row).
pub fn file_syntax(file: &crate::SourceFile) -> Option<ImportSyntax> {
    crate::lang::syntax_of(file.language?, &file.path)
}

// ---------------------------------------------------------------------------------------------
// Parsers and queries

/// The capture query per grammar. `@imp` marks an import-bearing node, `@pkg` a package name,
/// `@ns` a namespace name; [`read_import`] interprets `@imp` nodes per language.
fn query_source(syntax: ImportSyntax) -> &'static str {
    use ImportSyntax::*;
    match syntax {
        Python => "(import_statement) @imp (import_from_statement) @imp",
        Java => "(import_declaration) @imp (package_declaration [(identifier) (scoped_identifier)] @pkg)",
        CSharp => {
            "(using_directive) @imp
             (namespace_declaration name: (_) @ns)
             (file_scoped_namespace_declaration name: (_) @ns)"
        }
        C | Cpp => "(preproc_include path: (_) @imp)",
        // The first argument of `require(...)` / `import(...)` only: `require(a, "x")` is not a
        // module load.
        JavaScript => {
            r#"(import_statement source: (string) @imp)
               (export_statement source: (string) @imp)
               (call_expression function: (identifier) @f arguments: (arguments . (string) @imp) (#eq? @f "require"))
               (call_expression function: (import) arguments: (arguments . (string) @imp))"#
        }
        TypeScript | Tsx => {
            r#"(import_statement source: (string) @imp)
               (export_statement source: (string) @imp)
               (import_require_clause source: (string) @imp)
               (call_expression function: (identifier) @f arguments: (arguments . (string) @imp) (#eq? @f "require"))
               (call_expression function: (import) arguments: (arguments . (string) @imp))"#
        }
        Go => "(import_spec path: (_) @imp) (package_clause (package_identifier) @pkg)",
        Rust => "(mod_item) @imp (use_declaration) @imp",
    }
}

fn grammar(syntax: ImportSyntax) -> tree_sitter::Language {
    use ImportSyntax::*;
    match syntax {
        Python => tree_sitter_python::LANGUAGE.into(),
        Java => tree_sitter_java::LANGUAGE.into(),
        CSharp => tree_sitter_c_sharp::LANGUAGE.into(),
        C => tree_sitter_c::LANGUAGE.into(),
        Cpp => tree_sitter_cpp::LANGUAGE.into(),
        JavaScript => tree_sitter_javascript::LANGUAGE.into(),
        TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
        Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
        Go => tree_sitter_go::LANGUAGE.into(),
        Rust => tree_sitter_rust::LANGUAGE.into(),
    }
}

thread_local! {
    /// One parser and compiled query per grammar per thread: set-up is far costlier than a
    /// parse of a small file, and `Parser` is not shareable across threads.
    static PARSERS: RefCell<HashMap<ImportSyntax, (Parser, Query)>> = RefCell::new(HashMap::new());
}

fn with_parser<R>(syntax: ImportSyntax, f: impl FnOnce(&mut Parser, &Query) -> R) -> R {
    crate::ts_alloc::install();
    PARSERS.with(|cell| {
        let mut map = cell.borrow_mut();
        let (parser, query) = map.entry(syntax).or_insert_with(|| {
            let language = grammar(syntax);
            let mut parser = Parser::new();
            // Both can only fail on an ABI mismatch or a typo in a query: a build defect caught by
            // the unit tests, not something a user can cause or fix.
            parser.set_language(&language).expect("grammar ABI is supported by tree-sitter 0.27");
            let query = Query::new(&language, query_source(syntax)).expect("import query compiles");
            (parser, query)
        });
        f(parser, query)
    })
}

// ---------------------------------------------------------------------------------------------
// Reading nodes

fn text<'a>(node: Node, bytes: &'a [u8]) -> &'a str {
    node.utf8_text(bytes).unwrap_or("")
}

/// Drops whitespace (and thereby line breaks inside dotted names such as `a .\n b`).
fn compact(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The contents of a string literal node: quotes (or backticks, brackets) removed.
fn unquote(s: &str) -> &str {
    let s = s.trim();
    if s.len() >= 2 {
        &s[1..s.len() - 1]
    } else {
        ""
    }
}

fn line(node: Node) -> usize {
    node.start_position().row + 1
}

fn push(out: &mut Vec<(usize, RawImport)>, node: Node, text: String, kind: ImportKind) {
    if !text.is_empty() {
        out.push((node.start_byte(), RawImport { text, kind, line: line(node) }));
    }
}

fn read_import(syntax: ImportSyntax, node: Node, bytes: &[u8], out: &mut Vec<(usize, RawImport)>) {
    use ImportSyntax::*;
    match syntax {
        Python => read_python(node, bytes, out),
        Java => {
            let mut cursor = node.walk();
            let children: Vec<Node> = node.children(&mut cursor).collect();
            let static_ = children.iter().any(|c| c.kind() == "static");
            let wildcard = children.iter().any(|c| c.kind() == "asterisk");
            if let Some(name) = children.iter().find(|c| matches!(c.kind(), "scoped_identifier" | "identifier")) {
                push(out, node, compact(text(*name, bytes)), ImportKind::JavaImport { static_, wildcard });
            }
        }
        CSharp => {
            let mut cursor = node.walk();
            let static_ = node.children(&mut cursor).any(|c| c.kind() == "static");
            let alias_node = node.child_by_field_name("name");
            let alias = alias_node.map(|n| text(n, bytes).to_string());
            // The target is the last named child that is not the alias (`using X = A.B;`).
            let target = node.named_children(&mut cursor).filter(|c| Some(*c) != alias_node).last();
            if let Some(target) = target {
                push(out, node, compact(text(target, bytes)), ImportKind::CSharpUsing { static_, alias });
            }
        }
        C | Cpp => match node.kind() {
            "string_literal" => push(out, node, unquote(text(node, bytes)).to_string(), ImportKind::IncludeQuoted),
            "system_lib_string" => push(out, node, unquote(text(node, bytes)).to_string(), ImportKind::IncludeAngled),
            // `#include MACRO` cannot be resolved without a preprocessor.
            _ => {}
        },
        JavaScript | TypeScript | Tsx => push(out, node, unquote(text(node, bytes)).to_string(), ImportKind::JsSpecifier),
        Go => push(out, node, unquote(text(node, bytes)).to_string(), ImportKind::GoImport),
        Rust => match node.kind() {
            "mod_item" => {
                // `mod x { ... }` is inline: no file to load.
                if node.child_by_field_name("body").is_some() {
                    return;
                }
                let Some(name) = node.child_by_field_name("name") else { return };
                let mut path = vec![text(name, bytes).to_string()];
                let mut up = node.parent();
                while let Some(p) = up {
                    if p.kind() == "mod_item" {
                        if let Some(n) = p.child_by_field_name("name") {
                            path.push(text(n, bytes).to_string());
                        }
                    }
                    up = p.parent();
                }
                path.reverse();
                push(out, node, path.join("::"), ImportKind::RustMod);
            }
            "use_declaration" => {
                if let Some(arg) = node.child_by_field_name("argument") {
                    let mut leaves = Vec::new();
                    rust_use_leaves(arg, bytes, &[], &mut leaves);
                    for leaf in leaves {
                        push(out, node, leaf, ImportKind::RustUse);
                    }
                }
            }
            _ => {}
        },
    }
}

fn read_python(node: Node, bytes: &[u8], out: &mut Vec<(usize, RawImport)>) {
    // `import a.b as c` → the name field is an aliased_import whose own name is the module.
    let dotted = |n: Node| -> String {
        let n = if n.kind() == "aliased_import" { n.child_by_field_name("name").unwrap_or(n) } else { n };
        compact(text(n, bytes))
    };
    let mut cursor = node.walk();
    match node.kind() {
        "import_statement" => {
            for name in node.children_by_field_name("name", &mut cursor) {
                push(out, node, dotted(name), ImportKind::PythonModule { level: 0 });
            }
        }
        "import_from_statement" => {
            let Some(module) = node.child_by_field_name("module_name") else { return };
            let module_text = compact(text(module, bytes));
            let level = module_text.chars().take_while(|c| *c == '.').count();
            let mut names: Vec<String> = node.children_by_field_name("name", &mut cursor).map(dotted).collect();
            let mut cursor = node.walk();
            if node.children(&mut cursor).any(|c| c.kind() == "wildcard_import") {
                names.push("*".to_string());
            }
            push(out, node, module_text, ImportKind::PythonFrom { level, names });
        }
        _ => {}
    }
}

/// Flattens a Rust use-tree into one `::`-joined path per leaf.
fn rust_use_leaves(node: Node, bytes: &[u8], prefix: &[String], out: &mut Vec<String>) {
    let join = |segs: &[String]| segs.join("::");
    let with = |extra: Node| -> Vec<String> {
        let mut segs = prefix.to_vec();
        segs.extend(compact(text(extra, bytes)).split("::").filter(|s| !s.is_empty()).map(str::to_string));
        segs
    };
    match node.kind() {
        // `self` inside a list names the list's own prefix: `use a::{self, b}` imports `a`.
        "self" if !prefix.is_empty() => out.push(join(prefix)),
        "identifier" | "crate" | "self" | "super" | "scoped_identifier" | "metavariable" => out.push(join(&with(node))),
        "use_as_clause" => {
            if let Some(path) = node.child_by_field_name("path") {
                rust_use_leaves(path, bytes, prefix, out);
            }
        }
        "use_wildcard" => {
            let mut segs = prefix.to_vec();
            let mut cursor = node.walk();
            if let Some(path) = node.named_children(&mut cursor).next() {
                segs = with(path);
            }
            segs.push("*".to_string());
            out.push(join(&segs));
        }
        "scoped_use_list" => {
            let segs = match node.child_by_field_name("path") {
                Some(path) => with(path),
                None => prefix.to_vec(),
            };
            if let Some(list) = node.child_by_field_name("list") {
                rust_use_leaves(list, bytes, &segs, out);
            }
        }
        "use_list" => {
            let mut cursor = node.walk();
            for child in node.named_children(&mut cursor) {
                rust_use_leaves(child, bytes, prefix, out);
            }
        }
        _ => {} // comments, attributes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ImportKind::*;

    fn texts(syntax: ImportSyntax, src: &str) -> Vec<String> {
        extract_imports(syntax, src).into_iter().map(|i| i.text).collect()
    }

    #[test]
    fn python_forms() {
        let src = "import a.b\nimport a.b as c, d\nfrom x.y import (p,\n  q as r)\nfrom . import z\n\
                   from ..pkg.mod import y\nfrom .m import *\n# import nope\ns = 'import nope2'\n\
                   def f():\n    import lazy\n";
        let imps = extract_imports(ImportSyntax::Python, src);
        let got: Vec<(&str, &ImportKind, usize)> = imps.iter().map(|i| (i.text.as_str(), &i.kind, i.line)).collect();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                ("a.b", &PythonModule { level: 0 }, 1),
                ("a.b", &PythonModule { level: 0 }, 2),
                ("d", &PythonModule { level: 0 }, 2),
                ("x.y", &PythonFrom { level: 0, names: names(&["p", "q"]) }, 3),
                (".", &PythonFrom { level: 1, names: names(&["z"]) }, 5),
                ("..pkg.mod", &PythonFrom { level: 2, names: names(&["y"]) }, 6),
                (".m", &PythonFrom { level: 1, names: names(&["*"]) }, 7),
                ("lazy", &PythonModule { level: 0 }, 11),
            ]
        );
    }

    #[test]
    fn java_forms_and_package() {
        let src = "package com.ex.app;\nimport java.util.List;\nimport com.ex.util.*;\nimport static com.ex.M.f;\n\
                   import static com.ex.M.*;\nclass A {}\n";
        let facts = analyze(ImportSyntax::Java, src);
        assert_eq!(facts.package.as_deref(), Some("com.ex.app"));
        let got: Vec<(String, ImportKind)> = facts.imports.into_iter().map(|i| (i.text, i.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("java.util.List".into(), JavaImport { static_: false, wildcard: false }),
                ("com.ex.util".into(), JavaImport { static_: false, wildcard: true }),
                ("com.ex.M.f".into(), JavaImport { static_: true, wildcard: false }),
                ("com.ex.M".into(), JavaImport { static_: true, wildcard: true }),
            ]
        );
        assert_eq!(java_package("class A {}"), None);
    }

    #[test]
    fn csharp_forms_and_namespaces() {
        let src = "using System;\nusing A.B;\nglobal using C.D;\nusing static E.F.G;\nusing H = I.J.K;\n\
                   namespace N.M { namespace Inner { class X { void f() { using (var r = g()) {} } } } }\n";
        let facts = analyze(ImportSyntax::CSharp, src);
        let got: Vec<(String, ImportKind)> = facts.imports.into_iter().map(|i| (i.text, i.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("System".into(), CSharpUsing { static_: false, alias: None }),
                ("A.B".into(), CSharpUsing { static_: false, alias: None }),
                ("C.D".into(), CSharpUsing { static_: false, alias: None }),
                ("E.F.G".into(), CSharpUsing { static_: true, alias: None }),
                ("I.J.K".into(), CSharpUsing { static_: false, alias: Some("H".into()) }),
            ]
        );
        assert_eq!(facts.namespaces, vec!["N.M".to_string(), "Inner".to_string()]);
        assert_eq!(csharp_namespaces("namespace Foo.Bar;\nclass X {}\n"), vec!["Foo.Bar".to_string()]);
    }

    #[test]
    fn c_and_cpp_includes() {
        for syntax in [ImportSyntax::C, ImportSyntax::Cpp] {
            let src = "#include <stdio.h>\n#include \"../common/x.h\"\n#include MACRO\n// #include \"no.h\"\nint main(){}\n";
            let got: Vec<(String, ImportKind)> = extract_imports(syntax, src).into_iter().map(|i| (i.text, i.kind)).collect();
            assert_eq!(got, vec![("stdio.h".into(), IncludeAngled), ("../common/x.h".into(), IncludeQuoted)]);
        }
    }

    #[test]
    fn javascript_forms() {
        let src = "import a from './a';\nimport './side.js';\nexport { b } from \"../b\";\nexport * from './c';\n\
                   const r = require('react');\nconst d = await import('./d');\nfoo('./not');\nrequire(x);\n\
                   // import z from './z'\n";
        assert_eq!(texts(ImportSyntax::JavaScript, src), ["./a", "./side.js", "../b", "./c", "react", "./d"]);
    }

    #[test]
    fn typescript_and_tsx_forms() {
        let src = "import type { T } from './types';\nimport x = require('./legacy');\nexport * from './re';\n";
        assert_eq!(texts(ImportSyntax::TypeScript, src), ["./types", "./legacy", "./re"]);
        let tsx = "import React from 'react';\nimport { B } from './Button';\nexport const A = () => <B />;\n";
        assert_eq!(texts(ImportSyntax::Tsx, tsx), ["react", "./Button"]);
    }

    #[test]
    fn go_forms_and_package() {
        let src = "package main\n\nimport \"fmt\"\nimport (\n  m \"example.com/m/util\"\n  _ `example.com/m/raw`\n)\n";
        let facts = analyze(ImportSyntax::Go, src);
        assert_eq!(facts.package.as_deref(), Some("main"));
        let t: Vec<String> = facts.imports.into_iter().map(|i| i.text).collect();
        assert_eq!(t, ["fmt", "example.com/m/util", "example.com/m/raw"]);
        assert_eq!(go_package("package util\n"), Some("util".into()));
    }

    #[test]
    fn rust_forms() {
        let src = "mod a;\npub mod b;\nmod inline { mod nested; fn f() {} }\n#[cfg(test)]\nmod tests {}\n\
                   use crate::a::b::{c, d as e, self};\nuse super::x;\nuse self::y::*;\nuse std::io;\n\
                   use crate::{m::{n, o}, p};\n";
        let got: Vec<(String, ImportKind)> = extract_imports(ImportSyntax::Rust, src).into_iter().map(|i| (i.text, i.kind)).collect();
        let want: Vec<(String, ImportKind)> = [
            ("a", RustMod),
            ("b", RustMod),
            ("inline::nested", RustMod),
            ("crate::a::b::c", RustUse),
            ("crate::a::b::d", RustUse),
            ("crate::a::b", RustUse),
            ("super::x", RustUse),
            ("self::y::*", RustUse),
            ("std::io", RustUse),
            ("crate::m::n", RustUse),
            ("crate::m::o", RustUse),
            ("crate::p", RustUse),
        ]
        .into_iter()
        .map(|(t, k)| (t.to_string(), k))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn tsx_files_get_the_tsx_grammar() {
        let f = |p: &str| crate::SourceFile::new(p, "");
        assert_eq!(file_syntax(&f("a/B.tsx")), Some(ImportSyntax::Tsx));
        assert_eq!(file_syntax(&f("a/b.ts")), Some(ImportSyntax::TypeScript));
        assert_eq!(file_syntax(&f("a/b.py")), Some(ImportSyntax::Python));
        assert_eq!(file_syntax(&f("README.md")), None);
    }

    #[test]
    fn broken_source_still_yields_imports() {
        assert_eq!(texts(ImportSyntax::Python, "import os\ndef f(:\n"), ["os"]);
    }

    #[test]
    fn parse_error_share_counts_error_bytes() {
        assert_eq!(parse_error_share(ImportSyntax::Python, ""), Some(0.0));
        assert_eq!(parse_error_share(ImportSyntax::Python, "def f(x):\n    return x\n"), Some(0.0));
        assert_eq!(parse_error_share(ImportSyntax::Rust, "fn main() { let a = 1; }\n"), Some(0.0));
        // A small local error in a larger clean file gives a small share.
        let mostly_ok = format!("{}def broken(:\n", "def f(x):\n    return x\n".repeat(20));
        let small = parse_error_share(ImportSyntax::Python, &mostly_ok).unwrap();
        assert!(small > 0.0 && small < 0.1, "{small}");
        // Prose is mostly errors for a C grammar.
        let prose = "This is not code at all, it's ( a sentence ] with { broken } brackets !!! ?? @@\n";
        let big = parse_error_share(ImportSyntax::C, &prose.repeat(5)).unwrap();
        assert!(big > 0.5 && big <= 1.0, "{big}");
        // `analyze` reports the same share from its one parse.
        assert_eq!(analyze(ImportSyntax::Python, &mostly_ok).error_share, Some(small));
        assert_eq!(analyze(ImportSyntax::C, &prose.repeat(5)).error_share, Some(big));
    }

    /// Parses in scratch heaps (made and destroyed per call) interleaved with parses by the
    /// cached parsers on the same threads, for every grammar, clean and broken sources, on
    /// several threads at once: the shares agree and nothing is corrupted (a block used after
    /// its heap was destroyed, or a cached parser's memory moved into a scratch heap, would
    /// show here as wrong shares or a crash).
    #[test]
    fn scratch_heap_parses_agree_with_cached_parser_parses() {
        use ImportSyntax::*;
        let sources: Vec<(ImportSyntax, String)> = [
            (Python, "import os\ndef f(x):\n    return os.path.join(x)\n"),
            (Python, "def broken(:\n    pass\n"),
            (Java, "package a;\nimport b.C;\nclass D { void f() { int x = 1; } }\n"),
            (CSharp, "using A.B;\nnamespace N { class C { void F() { var x = ; } } }\n"),
            (C, "#include \"a.h\"\nint main(void) { return 0; }\n"),
            (Cpp, "#include <vector>\ntemplate <class T> struct S { T t; };\nint f( { }\n"),
            (JavaScript, "import x from './y';\nconst z = require('./w');\nfunction f() { return ( }\n"),
            (TypeScript, "import { a } from './b';\nlet c: number = 1;\n"),
            (Tsx, "import React from 'react';\nconst e = <div>{1}</div>;\n"),
            (Go, "package main\nimport \"fmt\"\nfunc main() { fmt.Println(1) }\n"),
            (Rust, "use std::io;\nmod a;\nfn main() { let x = ; }\n"),
        ]
        .into_iter()
        .flat_map(|(syntax, src)| [(syntax, src.to_string()), (syntax, src.repeat(200))])
        .collect();
        std::thread::scope(|scope| {
            for t in 0..3 {
                let sources = &sources;
                scope.spawn(move || {
                    for round in 0..20 {
                        // Each thread starts at a different grammar, so they never run in step.
                        for (syntax, src) in sources.iter().cycle().skip(round + 7 * t).take(sources.len()) {
                            // A cached parser between scratch parses, on the same thread.
                            let cached = analyze(*syntax, src).error_share;
                            assert_eq!(parse_error_share(*syntax, src), cached, "{syntax:?} {:?}", &src[..src.len().min(40)]);
                        }
                    }
                });
            }
        });
        assert!(sources.iter().any(|(s, src)| analyze(*s, src).error_share.unwrap() > 0.0), "some sources are broken");
    }

    /// The keyword-line restriction must find exactly what a whole-tree query finds: every file
    /// of the fixture repositories, plus multi-line and nested forms of each grammar.
    #[test]
    fn keyword_ranges_find_what_the_whole_tree_query_finds() {
        use ImportSyntax::*;
        let crafted: &[(ImportSyntax, &str)] = &[
            (Python, "import os\nfrom a.b import (\n    c,\n    d,\n)\nfrom . \\\n    import e\ndef f():\n    import g.h as i\n    try:\n        from j import *\n    except ImportError:\n        pass\nx = 'import not_an_import'\n"),
            (Go, "package main\n\nimport (\n\t\"fmt\"\n\tstr \"strings\"\n\t_ \"example.com/m/internal/x\"\n)\nimport \"os\"\n"),
            (Rust, "use std::{\n    collections::HashMap,\n    io::{self, Read},\n};\nmod a;\npub(crate) mod b;\nfn f() { use c::d; }\nmod inline {\n    mod nested;\n    use super::e;\n}\n"),
            (JavaScript, "import x, {\n  a,\n  b,\n} from './x.js';\nexport {\n  c\n} from \"./c\";\nconst y = require(\n  './y'\n);\nasync function f() { await import('./z'); }\n"),
            (TypeScript, "import type { T } from './t';\nimport fs = require('fs');\nexport * from './all';\n"),
            (CSharp, "using System;\nusing static System.Math;\nnamespace A.B\n{\n    using C.D;\n    namespace Inner { class X {} }\n}\n"),
            (Java, "package a.b;\n\nimport java.util.List;\nimport static java.lang.Math.*;\nclass X {}\n"),
            (C, "#include \"a.h\"\n#  include <stdio.h>\n#if X\n#include \"b/c.h\"\n#endif\n"),
            (Cpp, "#include <vector>\nnamespace n {\n#include \"inner.hpp\"\n}\n"),
        ];
        let mut checked = 0;
        for &(syntax, src) in crafted {
            let whole = analyze_in(syntax, src, QueryScope::WholeTree);
            assert!(!whole.imports.is_empty(), "{syntax:?} case finds imports");
            assert_eq!(analyze_in(syntax, src, QueryScope::KeywordLines), whole, "{syntax:?}: {src}");
            checked += 1;
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/repos");
        // KILN_IMPORTS_DIFF_DIR=/some/tree checks a real tree too (by hand; too slow for CI).
        let mut stack = vec![root];
        stack.extend(std::env::var_os("KILN_IMPORTS_DIFF_DIR").map(std::path::PathBuf::from));
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_symlink() {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(src) = std::fs::read_to_string(&path) else { continue };
                let file = crate::SourceFile::new(path.to_string_lossy().into_owned(), src);
                let Some(syntax) = file_syntax(&file) else { continue };
                assert_eq!(
                    analyze_in(syntax, &file.text, QueryScope::KeywordLines),
                    analyze_in(syntax, &file.text, QueryScope::WholeTree),
                    "{}",
                    path.display()
                );
                checked += 1;
            }
        }
        assert!(checked > 40, "only {checked} files checked");
    }

    #[test]
    fn parsers_are_reused_per_thread() {
        // Many calls on one thread must not rebuild parsers (observable only as speed); this
        // checks that repeated use keeps giving the same answer across languages.
        for _ in 0..3 {
            assert_eq!(texts(ImportSyntax::Python, "import a"), ["a"]);
            assert_eq!(texts(ImportSyntax::Go, "package p\nimport \"b\""), ["b"]);
        }
    }
}
