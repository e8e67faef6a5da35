//! Resolving an import to files of the same repository.
//!
//! In: a [`Repo`] (indexed once by [`Resolver::new`]) and one [`RawImport`] of one of its files.
//! Out: a [`Resolution`]: the repository files the import names, or [`Resolution::External`] when
//! it names nothing in the repository (standard library, third-party package, or a name kiln
//! cannot map). The paper leaves this mapping unspecified; the rules here follow
//! `reference/data-pipeline.md` §4.2 and are written per language:
//!
//! * **Python** `a.b.c` → `a/b/c.py`, `a/b/c.pyi` or `a/b/c/__init__.py`, searched under, in order:
//!   the importing file's directory when it is not a package (a script's directory is
//!   `sys.path[0]`), the importing file's source root (the directory above its top-most package),
//!   the repository root, then every `src/` / `lib/` directory that is not itself a package
//!   (closest first). A full match anywhere beats a partial one; failing both, the longest existing
//!   module prefix (`import a.b.C` where `C` is a class in `a/b.py`), then a unique path-suffix
//!   match for dotted names. Relative imports (`from ..x import y`) resolve from the importing
//!   file's package and nowhere else. `from pkg import mod` links to `pkg/mod.py` when that
//!   module exists and to `pkg/__init__.py` (or `pkg.py`) for names that are not modules.
//! * **Java** `a.b.C` → files whose `package` declaration is `a.b` and whose name is `C.java`,
//!   else files whose path ends in `a/b/C.java`; trailing segments are dropped one at a time for
//!   nested classes and static members. `a.b.*` → every file of package `a.b` (or directory
//!   ending in `a/b`).
//! * **C#** `using A.B;` names a namespace: an edge to every file declaring `namespace A.B`.
//!   `using static A.B.C;` / `using X = A.B.C;` name a type: the file `C.cs` of namespace `A.B`
//!   when there is one, else every file of `A.B`.
//! * **C/C++** `"x.h"` → relative to the including file's directory, else under an include
//!   directory (every directory that holds headers, every directory named `include`, and the
//!   root), else a unique path-suffix match. `<x.h>` → only under an include directory.
//! * **JS/TS** relative specifiers (`./`, `../`) with extension probing (the importer's own family
//!   first: `.ts .tsx .d.ts .mts .cts` for TypeScript, `.js .jsx .mjs .cjs` for JavaScript), then
//!   `/index.*`; `./x.js` also finds `x.ts` (TypeScript's ESM convention). Bare specifiers
//!   (`react`, `@scope/pkg`, path aliases) are external.
//! * **Go** the import path minus a `module` prefix from any `go.mod` in the repository → every
//!   `.go` file (not `_test.go`) directly in that package directory.
//! * **Rust** `mod x;` → `x.rs` or `x/mod.rs` in the declaring file's module directory (its own
//!   directory for `mod.rs` and crate roots such as `lib.rs`, `main.rs`, `src/bin/*.rs`,
//!   `tests/*.rs`; `dir/stem/` otherwise). `use crate::a::b::C` → the longest existing module
//!   prefix (`a/b.rs`, `a/b/mod.rs`, `a.rs`, …, finally the crate root); `self::`, `super::`,
//!   paths starting with a child module, and paths starting with the name of a crate of the same
//!   Cargo workspace (from its `Cargo.toml`) resolve the same way. Anything else is external.
//!
//! When several files fit equally (the same Java class in two modules, a header name found in two
//! include directories), the ones sharing the longest directory prefix with the importing file
//! win; for C/C++ path-suffix matches only a single winner is accepted. An import never resolves
//! to the importing file itself.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::imports::{self, FileFacts, ImportKind, RawImport};
use crate::lang::ImportSyntax;
use crate::Repo;

/// Where an import points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Resolution {
    /// Files of the repository (indices into `repo.files`, sorted, never the importing file).
    Files(Vec<usize>),
    /// Not in the repository: standard library, third-party, or not mappable.
    External,
}

/// An index of a repository for resolving its imports; build once per repository.
#[derive(Debug, Clone)]
pub struct Resolver {
    paths: Vec<String>,
    /// Import syntax of each file (decides probing order for JS/TS).
    syntax: Vec<Option<ImportSyntax>>,
    by_path: HashMap<String, usize>,
    /// File name (last path component) → files with that name.
    by_name: HashMap<String, Vec<usize>>,
    /// Every directory that exists (has a file somewhere below it), `""` being the root.
    dirs: HashSet<String>,
    /// Directory → the files directly in it.
    dir_files: HashMap<String, Vec<usize>>,
    /// Extra Python source roots (`src/`, `lib/` directories that are not packages).
    python_roots: Vec<String>,
    /// Java package (from `package` declarations) → files.
    java_packages: HashMap<String, Vec<usize>>,
    /// C# namespace → files declaring it.
    cs_namespaces: HashMap<String, Vec<usize>>,
    /// C/C++ include directories.
    include_dirs: HashSet<String>,
    /// Go `(module path, module root directory)`, longest module path first.
    go_modules: Vec<(String, String)>,
    /// Rust crate name (dashes as underscores) → its library root file.
    rust_crates: HashMap<String, usize>,
}

const HEADER_EXTS: &[&str] = &["h", "hh", "hpp", "hxx", "h++", "inl", "ipp", "tpp"];

impl Resolver {
    /// Indexes `repo`. Scans the Java and C# files once for their `package` / `namespace`
    /// declarations ([`crate::scan::scan`]); [`Resolver::from_facts`] reuses facts already
    /// extracted instead.
    pub fn new(repo: &Repo) -> Resolver {
        let facts: Vec<Option<FileFacts>> = repo
            .files
            .iter()
            .map(|f| match imports::file_syntax(f) {
                Some(s @ (ImportSyntax::Java | ImportSyntax::CSharp)) => Some(crate::scan::scan(s, &f.text)),
                _ => None,
            })
            .collect();
        Resolver::from_facts(repo, &facts)
    }

    /// Indexes `repo` using `facts[i]` (the [`imports::analyze`] result of file `i`, `None` for
    /// files without an import syntax), so a caller that extracted imports already does not parse
    /// twice.
    pub fn from_facts(repo: &Repo, facts: &[Option<FileFacts>]) -> Resolver {
        let paths: Vec<String> = repo.files.iter().map(|f| f.path.clone()).collect();
        let syntax = repo.files.iter().map(imports::file_syntax).collect();
        let mut by_path = HashMap::new();
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut dirs = HashSet::new();
        let mut dir_files: HashMap<String, Vec<usize>> = HashMap::new();
        dirs.insert(String::new());
        for (i, p) in paths.iter().enumerate() {
            by_path.insert(p.clone(), i);
            by_name.entry(file_name(p).to_string()).or_default().push(i);
            dir_files.entry(parent(p).to_string()).or_default().push(i);
            let mut d = parent(p);
            while !d.is_empty() && dirs.insert(d.to_string()) {
                d = parent(d);
            }
        }

        let mut python_roots: Vec<String> = dirs
            .iter()
            .filter(|d| matches!(file_name(d), "src" | "lib"))
            .filter(|d| !by_path.contains_key(&format!("{d}/__init__.py")))
            .cloned()
            .collect();
        python_roots.sort();

        let mut java_packages: HashMap<String, Vec<usize>> = HashMap::new();
        let mut cs_namespaces: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, f) in facts.iter().enumerate() {
            let Some(f) = f else { continue };
            if syntax_of(repo, i) == Some(ImportSyntax::Java) {
                if let Some(pkg) = &f.package {
                    java_packages.entry(pkg.clone()).or_default().push(i);
                }
            }
            for ns in &f.namespaces {
                cs_namespaces.entry(ns.clone()).or_default().push(i);
            }
        }

        let mut include_dirs: HashSet<String> = HashSet::new();
        include_dirs.insert(String::new());
        for p in &paths {
            if HEADER_EXTS.contains(&extension(p)) {
                include_dirs.insert(parent(p).to_string());
            }
        }
        include_dirs.extend(dirs.iter().filter(|d| file_name(d) == "include").cloned());

        let mut go_modules = Vec::new();
        let mut cargo_names = Vec::new();
        for f in &repo.files {
            match file_name(&f.path) {
                "go.mod" => {
                    if let Some(module) = go_module_path(&f.text) {
                        go_modules.push((module, parent(&f.path).to_string()));
                    }
                }
                "Cargo.toml" => {
                    if let Some(name) = cargo_package_name(&f.text) {
                        cargo_names.push((name.replace('-', "_"), parent(&f.path).to_string()));
                    }
                }
                _ => {}
            }
        }
        go_modules.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.cmp(b)));
        let mut rust_crates = HashMap::new();
        for (name, dir) in cargo_names {
            if let Some(&root) = by_path.get(&join_path(&dir, "src/lib.rs")) {
                rust_crates.insert(name, root);
            }
        }

        tracing::debug!(
            files = paths.len(),
            python_roots = python_roots.len(),
            java_packages = java_packages.len(),
            cs_namespaces = cs_namespaces.len(),
            include_dirs = include_dirs.len(),
            go_modules = go_modules.len(),
            rust_crates = rust_crates.len(),
            "resolver indexed"
        );
        Resolver {
            paths,
            syntax,
            by_path,
            by_name,
            dirs,
            dir_files,
            python_roots,
            java_packages,
            cs_namespaces,
            include_dirs,
            go_modules,
            rust_crates,
        }
    }

    /// Resolves import `imp` of file `file` (an index into `repo.files`).
    pub fn resolve(&self, file: usize, imp: &RawImport) -> Resolution {
        let mut found = match &imp.kind {
            ImportKind::PythonModule { .. } => self.python_module(file, &imp.text),
            ImportKind::PythonFrom { level, names } => self.python_from(file, &imp.text, *level, names),
            ImportKind::JavaImport { static_, wildcard } => self.java(file, &imp.text, *static_, *wildcard),
            ImportKind::CSharpUsing { static_, alias } => self.csharp(&imp.text, *static_ || alias.is_some()),
            ImportKind::IncludeQuoted => self.include(file, &imp.text, true),
            ImportKind::IncludeAngled => self.include(file, &imp.text, false),
            ImportKind::JsSpecifier => self.js(file, &imp.text),
            ImportKind::GoImport => self.go(&imp.text),
            ImportKind::RustMod => self.rust_mod(file, &imp.text),
            ImportKind::RustUse => self.rust_use(file, &imp.text),
        };
        found.retain(|&f| f != file);
        found.sort_unstable();
        found.dedup();
        if found.is_empty() {
            Resolution::External
        } else {
            Resolution::Files(found)
        }
    }

    fn file(&self, path: &str) -> Option<usize> {
        self.by_path.get(path).copied()
    }

    /// Keeps the candidates that share the most leading directories with `file`.
    fn closest(&self, file: usize, candidates: Vec<usize>) -> Vec<usize> {
        let me = &self.paths[file];
        let score = |c: usize| common_dirs(me, &self.paths[c]);
        let best = candidates.iter().map(|&c| score(c)).max();
        candidates.into_iter().filter(|&c| Some(score(c)) == best).collect()
    }

    /// Files whose path is `suffix` or ends in `/suffix`.
    fn suffix_matches(&self, suffix: &str) -> Vec<usize> {
        let Some(cands) = self.by_name.get(file_name(suffix)) else { return Vec::new() };
        cands
            .iter()
            .copied()
            .filter(|&c| {
                let p = &self.paths[c];
                p == suffix || (p.ends_with(suffix) && p[..p.len() - suffix.len()].ends_with('/'))
            })
            .collect()
    }

    // --- Python -----------------------------------------------------------------------------

    /// The directories an absolute Python import is searched under, for importer `file`.
    fn python_search_dirs(&self, file: usize) -> Vec<String> {
        let dir = parent(&self.paths[file]);
        let is_package = |d: &str| self.by_path.contains_key(&join_path(d, "__init__.py"));
        let mut out: Vec<String> = Vec::new();
        let mut add = |d: &str| {
            if !out.iter().any(|o| o == d) {
                out.push(d.to_string());
            }
        };
        if !is_package(dir) {
            add(dir);
        }
        // The source root: the directory above the top-most package holding the importer.
        let mut root = dir;
        while !root.is_empty() && is_package(root) {
            root = parent(root);
        }
        add(root);
        add("");
        let me = &self.paths[file];
        let mut roots = self.python_roots.clone();
        roots.sort_by_key(|r| std::cmp::Reverse(common_dirs(me, &format!("{r}/x"))));
        for r in &roots {
            add(r);
        }
        out
    }

    /// `base/a/b` as a module: its file (`.py`, `.pyi`, `/__init__.py`) and, if it is a
    /// directory, the package directory.
    fn python_lookup(&self, base: &str, segs: &[&str]) -> (Option<usize>, Option<String>) {
        let path = join_path(base, &segs.join("/"));
        let file = self
            .file(&format!("{path}.py"))
            .or_else(|| self.file(&format!("{path}.pyi")))
            .or_else(|| self.file(&join_path(&path, "__init__.py")));
        let dir = if !segs.is_empty() || !path.is_empty() { path } else { String::new() };
        let pkg = self.dirs.contains(&dir).then_some(dir);
        (file, pkg)
    }

    /// Absolute module `segs`: `(module file, package dir)` from the first search directory with
    /// a full match; else the longest existing prefix's file; else a unique suffix match.
    fn python_absolute(&self, file: usize, segs: &[&str]) -> (Option<usize>, Option<String>) {
        let dirs = self.python_search_dirs(file);
        // A module or regular package anywhere on the path wins over a namespace package (a bare
        // directory), as in Python's own import system.
        for d in &dirs {
            let (f, pkg) = self.python_lookup(d, segs);
            if f.is_some() {
                return (f, pkg);
            }
        }
        for d in &dirs {
            if let (None, Some(pkg)) = self.python_lookup(d, segs) {
                return (None, Some(pkg));
            }
        }
        for k in (1..segs.len()).rev() {
            for d in &dirs {
                if let (Some(f), _) = self.python_lookup(d, &segs[..k]) {
                    return (Some(f), None);
                }
            }
        }
        // Suffix fallback only for dotted names: a bare `import x` matching some `*/x.py` deep in
        // the tree is more often a false edge (a stdlib name shadowed by a test helper) than a
        // real one.
        if segs.len() >= 2 {
            let rel = segs.join("/");
            let mut cands = self.suffix_matches(&format!("{rel}.py"));
            cands.extend(self.suffix_matches(&format!("{rel}/__init__.py")));
            let cands = self.closest(file, cands);
            if cands.len() == 1 {
                return (Some(cands[0]), None);
            }
        }
        (None, None)
    }

    fn python_module(&self, file: usize, text: &str) -> Vec<usize> {
        let segs: Vec<&str> = text.split('.').filter(|s| !s.is_empty()).collect();
        self.python_absolute(file, &segs).0.into_iter().collect()
    }

    fn python_from(&self, file: usize, text: &str, level: usize, names: &[String]) -> Vec<usize> {
        let segs: Vec<&str> = text.split('.').filter(|s| !s.is_empty()).collect();
        let (module, pkg) = if level == 0 {
            self.python_absolute(file, &segs)
        } else {
            // Relative: from the importer's package, one directory up per extra dot.
            let mut base = Some(parent(&self.paths[file]).to_string());
            for _ in 1..level {
                base = base.and_then(|b| if b.is_empty() { None } else { Some(parent(&b).to_string()) });
            }
            match base {
                Some(b) => self.python_lookup(&b, &segs),
                None => (None, None),
            }
        };
        let mut out = Vec::new();
        let mut needs_module = names.is_empty();
        for name in names {
            let sub = match (&pkg, name.as_str()) {
                (Some(p), n) if n != "*" => self.python_lookup(p, &[n]).0,
                _ => None,
            };
            match sub {
                Some(s) => out.push(s),
                None => needs_module = true,
            }
        }
        if needs_module {
            out.extend(module);
        }
        out
    }

    // --- Java -------------------------------------------------------------------------------

    fn java_class(&self, file: usize, segs: &[&str]) -> Vec<usize> {
        let min = if segs.len() >= 2 { 2 } else { 1 };
        for k in (min..=segs.len()).rev() {
            let (pkg, class) = (segs[..k - 1].join("."), segs[k - 1]);
            let by_decl: Vec<usize> = self
                .java_packages
                .get(&pkg)
                .map(|fs| fs.iter().copied().filter(|&f| stem(&self.paths[f]) == class).collect())
                .unwrap_or_default();
            let cands = if by_decl.is_empty() { self.suffix_matches(&format!("{}.java", segs[..k].join("/"))) } else { by_decl };
            if !cands.is_empty() {
                return self.closest(file, cands);
            }
        }
        Vec::new()
    }

    fn java(&self, file: usize, text: &str, static_: bool, wildcard: bool) -> Vec<usize> {
        let segs: Vec<&str> = text.split('.').collect();
        if wildcard && !static_ {
            // `import a.b.*`: a package, by declaration, else by directory suffix.
            if let Some(fs) = self.java_packages.get(text) {
                return self.closest(file, fs.clone());
            }
            let dir_suffix = segs.join("/");
            let cands: Vec<usize> = self
                .dir_files
                .iter()
                .filter(|(d, _)| *d == &dir_suffix || d.ends_with(&format!("/{dir_suffix}")))
                .flat_map(|(_, fs)| fs.iter().copied().filter(|&f| extension(&self.paths[f]) == "java"))
                .collect();
            if !cands.is_empty() {
                return self.closest(file, cands);
            }
            // `import a.b.Outer.*` imports nested classes of a class.
            return self.java_class(file, &segs);
        }
        // `import static a.b.C.m` names a member of C; `import static a.b.C.*` names C.
        let segs = if static_ && !wildcard && segs.len() > 1 { &segs[..segs.len() - 1] } else { &segs[..] };
        self.java_class(file, segs)
    }

    // --- C# ---------------------------------------------------------------------------------

    fn csharp(&self, text: &str, names_type: bool) -> Vec<usize> {
        // Generic aliases (`using L = A.List<int>;`) name the type before its arguments.
        let text = text.split('<').next().unwrap_or(text);
        if let Some(fs) = self.cs_namespaces.get(text) {
            return fs.clone();
        }
        if !names_type {
            return Vec::new();
        }
        let Some((ns, ty)) = text.rsplit_once('.') else { return Vec::new() };
        let Some(fs) = self.cs_namespaces.get(ns) else { return Vec::new() };
        let named: Vec<usize> = fs.iter().copied().filter(|&f| stem(&self.paths[f]) == ty).collect();
        if named.is_empty() {
            fs.clone()
        } else {
            named
        }
    }

    // --- C / C++ ----------------------------------------------------------------------------

    fn include(&self, file: usize, text: &str, quoted: bool) -> Vec<usize> {
        if quoted {
            if let Some(f) = normalize(&join_raw(parent(&self.paths[file]), text)).and_then(|p| self.file(&p)) {
                return vec![f];
            }
        }
        // Under an include directory: a file `dir/text` with `dir` an include directory.
        let Some(rel) = normalize(text) else { return Vec::new() };
        let under: Vec<usize> = self
            .suffix_matches(&rel)
            .into_iter()
            .filter(|&c| {
                let p = &self.paths[c];
                let dir = p[..p.len() - rel.len()].trim_end_matches('/');
                self.include_dirs.contains(dir)
            })
            .collect();
        if !under.is_empty() {
            return self.closest(file, under);
        }
        if quoted {
            // `"../common/x.h"` from a file elsewhere: match on the part after the `..`s.
            let tail = text.split('/').skip_while(|s| *s == ".." || *s == ".").collect::<Vec<_>>().join("/");
            let cands = self.closest(file, self.suffix_matches(&tail));
            if cands.len() == 1 {
                return cands;
            }
        }
        Vec::new()
    }

    // --- JavaScript / TypeScript --------------------------------------------------------------

    fn js(&self, file: usize, spec: &str) -> Vec<usize> {
        if !(spec.starts_with("./") || spec.starts_with("../") || spec == "." || spec == "..") {
            return Vec::new();
        }
        let spec = spec.split(['?', '#']).next().unwrap_or(spec);
        let Some(base) = normalize(&join_raw(parent(&self.paths[file]), spec)) else { return Vec::new() };
        const TS: &[&str] = &[".ts", ".tsx", ".d.ts", ".mts", ".cts"];
        const JS: &[&str] = &[".js", ".jsx", ".mjs", ".cjs"];
        let typescript = matches!(self.syntax[file], Some(ImportSyntax::TypeScript | ImportSyntax::Tsx));
        let exts: Vec<&str> = if typescript { [TS, JS].concat() } else { [JS, TS].concat() };
        if let Some(f) = self.file(&base) {
            return vec![f];
        }
        // TypeScript ESM code imports `./x.js` to mean the `./x.ts` it compiles to.
        for (js, ts) in [(".js", ".ts"), (".jsx", ".tsx"), (".mjs", ".mts"), (".cjs", ".cts")] {
            if let Some(stem) = base.strip_suffix(js) {
                if let Some(f) = self.file(&format!("{stem}{ts}")) {
                    return vec![f];
                }
            }
        }
        for ext in &exts {
            if let Some(f) = self.file(&format!("{base}{ext}")) {
                return vec![f];
            }
        }
        for ext in &exts {
            if let Some(f) = self.file(&join_path(&base, &format!("index{ext}"))) {
                return vec![f];
            }
        }
        Vec::new()
    }

    // --- Go ---------------------------------------------------------------------------------

    fn go(&self, path: &str) -> Vec<usize> {
        for (module, root) in &self.go_modules {
            let rest = if path == module {
                ""
            } else if let Some(rest) = path.strip_prefix(module.as_str()).and_then(|r| r.strip_prefix('/')) {
                rest
            } else {
                continue;
            };
            let dir = join_path(root, rest);
            return self
                .dir_files
                .get(&dir)
                .map(|fs| {
                    fs.iter()
                        .copied()
                        .filter(|&f| {
                            let p = &self.paths[f];
                            extension(p) == "go" && !p.ends_with("_test.go")
                        })
                        .collect()
                })
                .unwrap_or_default();
        }
        Vec::new()
    }

    // --- Rust -------------------------------------------------------------------------------

    /// The crate root file `file` belongs to: itself if it is one, else the nearest `lib.rs` /
    /// `main.rs` in an enclosing directory.
    fn rust_crate_root(&self, file: usize) -> Option<usize> {
        let path = &self.paths[file];
        if is_rust_crate_root(path) {
            return Some(file);
        }
        let mut dir = parent(path);
        loop {
            for name in ["lib.rs", "main.rs"] {
                if let Some(f) = self.file(&join_path(dir, name)) {
                    return Some(f);
                }
            }
            if dir.is_empty() {
                return None;
            }
            dir = parent(dir);
        }
    }

    /// Module path of `file` inside the crate whose root is `root` (`a/b.rs` → `[a, b]`).
    fn rust_module_path(&self, root: usize, file: usize) -> Option<Vec<String>> {
        if root == file {
            return Some(Vec::new());
        }
        let base = parent(&self.paths[root]);
        let path = &self.paths[file];
        let rel = if base.is_empty() { path.as_str() } else { path.strip_prefix(base)?.strip_prefix('/')? };
        let rel = rel.strip_suffix(".rs")?;
        let mut segs: Vec<String> = rel.split('/').map(str::to_string).collect();
        if segs.last().map(String::as_str) == Some("mod") {
            segs.pop();
        }
        Some(segs)
    }

    /// The file of module `base ++ rest` of the crate rooted at `root` (the root itself when
    /// both are empty).
    ///
    /// Module segments are identifiers (never `.`, `..` or empty) and the root's directory is
    /// a normalised repository path, so the candidate paths are built by plain concatenation
    /// in one buffer: normalising a fresh string per candidate was most of resolving a crate's
    /// `use` lines (5 % of a corpus build over the cargo registry).
    fn rust_module_file(&self, root: usize, base: &[String], rest: &[&str]) -> Option<usize> {
        if base.is_empty() && rest.is_empty() {
            return Some(root);
        }
        let mut path = String::with_capacity(128);
        path.push_str(parent(&self.paths[root]));
        for seg in base.iter().map(String::as_str).chain(rest.iter().copied()) {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(seg);
        }
        let stem = path.len();
        path.push_str(".rs");
        self.file(&path).or_else(|| {
            path.truncate(stem);
            path.push_str("/mod.rs");
            self.file(&path)
        })
    }

    /// Longest existing module prefix of `base ++ rest`, not shorter than `base ++ rest[..min]`.
    fn rust_longest(&self, root: usize, base: &[String], rest: &[&str], min: usize) -> Option<usize> {
        (min..=rest.len()).rev().find_map(|k| self.rust_module_file(root, base, &rest[..k]))
    }

    fn rust_mod(&self, file: usize, text: &str) -> Vec<usize> {
        let path = &self.paths[file];
        let dir = parent(path);
        let module_dir = if is_rust_crate_root(path) || file_name(path) == "mod.rs" { dir.to_string() } else { join_path(dir, stem(path)) };
        let target = join_path(&module_dir, &text.replace("::", "/"));
        self.file(&format!("{target}.rs")).or_else(|| self.file(&join_path(&target, "mod.rs"))).into_iter().collect()
    }

    fn rust_use(&self, file: usize, text: &str) -> Vec<usize> {
        let segs: Vec<&str> = text.split("::").filter(|s| !s.is_empty() && *s != "*").collect();
        let Some(&first) = segs.first() else { return Vec::new() };
        let root = self.rust_crate_root(file);
        let here = root.and_then(|r| self.rust_module_path(r, file).map(|m| (r, m)));
        let found = match first {
            "crate" => root.and_then(|r| self.rust_longest(r, &[], &segs[1..], 0)),
            "self" | "super" => here.and_then(|(r, mut module)| {
                let supers = segs.iter().take_while(|s| **s == "super").count();
                for _ in 0..supers {
                    module.pop()?;
                }
                let skip = if first == "self" { 1 } else { supers };
                self.rust_longest(r, &module, &segs[skip..], 0)
            }),
            // A path starting with a child module of the current module (2018 edition), else
            // with the name of another crate of this workspace.
            _ => here.and_then(|(r, module)| self.rust_longest(r, &module, &segs, 1)).or_else(|| {
                let other = *self.rust_crates.get(first)?;
                self.rust_longest(other, &[], &segs[1..], 0)
            }),
        };
        found.into_iter().collect()
    }
}

fn syntax_of(repo: &Repo, i: usize) -> Option<ImportSyntax> {
    imports::file_syntax(&repo.files[i])
}

/// `lib.rs`, `main.rs`, `build.rs`, `src/bin/*.rs`, `tests/*.rs`, `examples/*.rs`, `benches/*.rs`:
/// files that start a crate, whose `mod x;` looks in their own directory.
fn is_rust_crate_root(path: &str) -> bool {
    let name = file_name(path);
    if matches!(name, "lib.rs" | "main.rs" | "build.rs") {
        return true;
    }
    let dir = parent(path);
    match file_name(dir) {
        "tests" | "examples" | "benches" => true,
        "bin" => file_name(parent(dir)) == "src",
        _ => false,
    }
}

/// `module example.com/m` from a go.mod.
fn go_module_path(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("module")?;
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        let m = rest.split("//").next()?.trim().trim_matches('"');
        (!m.is_empty()).then(|| m.to_string())
    })
}

/// `name = "x"` of a Cargo.toml's `[package]` table (a line scan: enough for the usual layout,
/// and kiln does not otherwise need a TOML parser).
fn cargo_package_name(text: &str) -> Option<String> {
    let mut in_package = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_package = l == "[package]";
        } else if in_package {
            if let Some(v) = l.strip_prefix("name").map(str::trim_start).and_then(|r| r.strip_prefix('=')) {
                return Some(v.trim().trim_matches('"').to_string());
            }
        }
    }
    None
}

// --- Path helpers (repository paths: `/`-separated, no leading `./`) ----------------------------

fn parent(p: &str) -> &str {
    p.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn file_name(p: &str) -> &str {
    p.rsplit_once('/').map(|(_, n)| n).unwrap_or(p)
}

fn stem(p: &str) -> &str {
    let n = file_name(p);
    n.rsplit_once('.').map(|(s, _)| s).unwrap_or(n)
}

fn extension(p: &str) -> &str {
    file_name(p).rsplit_once('.').map(|(_, e)| e).unwrap_or("")
}

/// `dir` + `rel` without normalising (`""` + `x` = `x`).
fn join_raw(dir: &str, rel: &str) -> String {
    if dir.is_empty() {
        rel.to_string()
    } else {
        format!("{dir}/{rel}")
    }
}

/// `dir` + `rel`, normalised; a `rel` that climbs above the root is kept as the root.
fn join_path(dir: &str, rel: &str) -> String {
    normalize(&join_raw(dir, rel)).unwrap_or_default()
}

/// Resolves `.` and `..` components; `None` if the path climbs above the repository root.
fn normalize(p: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

/// Number of leading directories two paths share.
fn common_dirs(a: &str, b: &str) -> usize {
    parent(a).split('/').zip(parent(b).split('/')).take_while(|(x, y)| x == y && !x.is_empty()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceFile;

    fn repo(files: &[(&str, &str)]) -> Repo {
        let mut files: Vec<SourceFile> = files.iter().map(|(p, t)| SourceFile::new(*p, *t)).collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Repo { name: "t".into(), files }
    }

    /// Resolves every import of `from` and returns the target paths.
    fn targets(repo: &Repo, from: &str) -> Vec<String> {
        let r = Resolver::new(repo);
        let i = repo.files.iter().position(|f| f.path == from).unwrap();
        let syntax = imports::file_syntax(&repo.files[i]).unwrap();
        let mut out = Vec::new();
        for imp in imports::extract_imports(syntax, &repo.files[i].text) {
            if let Resolution::Files(fs) = r.resolve(i, &imp) {
                out.extend(fs.into_iter().map(|f| repo.files[f].path.clone()));
            }
        }
        out
    }

    #[test]
    fn path_helpers() {
        assert_eq!(normalize("a/./b/../c"), Some("a/c".into()));
        assert_eq!(normalize("../x"), None);
        assert_eq!(common_dirs("a/b/c.py", "a/b/d/e.py"), 2);
        assert_eq!(common_dirs("x.py", "y.py"), 0);
        assert!(is_rust_crate_root("src/bin/tool.rs"));
        assert!(is_rust_crate_root("tests/it.rs"));
        assert!(!is_rust_crate_root("tests/common/mod.rs"));
        assert_eq!(go_module_path("// c\nmodule example.com/m // x\n\ngo 1.22\n"), Some("example.com/m".into()));
        assert_eq!(cargo_package_name("[package]\nname = \"my-crate\"\n[dependencies]\nname = \"x\"\n"), Some("my-crate".into()));
    }

    #[test]
    fn python_relative_and_from_submodule() {
        let r = repo(&[
            ("pkg/__init__.py", ""),
            ("pkg/a.py", "from . import b\nfrom .c import f\nfrom .. import nope\n"),
            ("pkg/b.py", ""),
            ("pkg/c.py", ""),
            ("main.py", "from pkg import a, thing\nimport pkg.b\n"),
        ]);
        assert_eq!(targets(&r, "pkg/a.py"), ["pkg/b.py", "pkg/c.py"]);
        assert_eq!(targets(&r, "main.py"), ["pkg/__init__.py", "pkg/a.py", "pkg/b.py"]);
    }

    #[test]
    fn python_script_dir_and_stdlib_shadow() {
        let r = repo(&[("tools/run.py", "import helper\nimport json\n"), ("tools/helper.py", ""), ("tests/json.py", "")]);
        assert_eq!(targets(&r, "tools/run.py"), ["tools/helper.py"]);
    }

    #[test]
    fn java_static_and_nested() {
        let r = repo(&[
            ("src/main/java/com/x/A.java", "package com.x;\nimport static com.y.B.f;\nimport com.y.B.Inner;\nclass A {}"),
            ("src/main/java/com/y/B.java", "package com.y;\nclass B { static class Inner {} }"),
        ]);
        assert_eq!(targets(&r, "src/main/java/com/x/A.java"), ["src/main/java/com/y/B.java", "src/main/java/com/y/B.java"]);
    }

    #[test]
    fn csharp_static_using_names_a_type() {
        let r = repo(&[
            ("A.cs", "using static Lib.Util.Helpers;\nnamespace App { }"),
            ("Lib/Helpers.cs", "namespace Lib.Util { static class Helpers {} }"),
            ("Lib/Other.cs", "namespace Lib.Util { class Other {} }"),
        ]);
        assert_eq!(targets(&r, "A.cs"), ["Lib/Helpers.cs"]);
    }

    #[test]
    fn js_ts_probing() {
        let r = repo(&[
            ("src/a.ts", "import './b.js';\nimport './dir';\nimport 'lodash';\nimport '../../up';"),
            ("src/b.ts", ""),
            ("src/b.js", ""),
            ("src/dir/index.tsx", ""),
        ]);
        assert_eq!(targets(&r, "src/a.ts"), ["src/b.js", "src/dir/index.tsx"]);
        let r = repo(&[("a.js", "require('./b')"), ("b.ts", ""), ("b.js", "")]);
        assert_eq!(targets(&r, "a.js"), ["b.js"]);
    }

    #[test]
    fn rust_workspace_crate_and_inline_mod() {
        let r = repo(&[
            ("Cargo.toml", "[workspace]\nmembers = [\"crates/*\"]\n"),
            ("crates/core-lib/Cargo.toml", "[package]\nname = \"core-lib\"\n"),
            ("crates/core-lib/src/lib.rs", "pub mod x;\nmod outer { mod inner; }\n"),
            ("crates/core-lib/src/x.rs", ""),
            ("crates/core-lib/src/outer/inner.rs", "use super::super::x::Thing;\n"),
            ("crates/app/src/main.rs", "use core_lib::x::Y;\nuse serde::Serialize;\n"),
        ]);
        assert_eq!(targets(&r, "crates/app/src/main.rs"), ["crates/core-lib/src/x.rs"]);
        assert_eq!(targets(&r, "crates/core-lib/src/lib.rs"), ["crates/core-lib/src/x.rs", "crates/core-lib/src/outer/inner.rs"]);
        assert_eq!(targets(&r, "crates/core-lib/src/outer/inner.rs"), ["crates/core-lib/src/x.rs"]);
    }
}
