//! The language table: DeepSeek-Coder's 87 languages (paper Table 1, spec §2.8) plus Markdown and
//! reStructuredText (the README's list of 89), detected from a path's file name or extension, with
//! each language's comment syntax (for the path header before each file) and, for nine of them,
//! the import syntax kiln parses.
//!
//! Detection is by name only, never by content, so it works the same for files on disk, git blobs
//! and archive entries. Order of the rules in [`detect`]:
//! 1. an exact file name (`Makefile`, `Dockerfile`, `CMakeLists.txt`, `Gemfile`, `.bashrc`, ...);
//! 2. `Dockerfile.<anything>` (e.g. `Dockerfile.dev`) is a Dockerfile;
//! 3. the last extension, compared case-insensitively (`X.PY` is Python, `x.tar.gz` is `gz`).
//!
//! Extensions used by several languages go to exactly one row (a unit test checks that no
//! extension or file name is claimed twice). The choices, all with a Table 1 language winning
//! over languages outside Table 1:
//! * `.h` → C (C++ headers with `.h` still parse for `#include`); `.tsx` → TypeScript with the
//!   TSX grammar ([`import_syntax`]); `.jsx` → JavaScript (its grammar parses JSX).
//! * `.m` → MATLAB (not Objective-C, not Mathematica); `.pl` → Perl (not Prolog, which keeps
//!   `.pro`); `.v` → Verilog (not Coq); `.vh` → SystemVerilog; `.fs` → F# (not GLSL);
//!   `.cl` → Common Lisp (not OpenCL); `.pp` → Pascal (not Puppet); `.cls` → TeX (not VBA);
//!   `.sql` → SQL whatever the dialect; `.ipynb` → Jupyter Notebook (kept as JSON text);
//!   `.lagda.md` / `.coffee.md` → Markdown (last extension wins).

use serde::Serialize;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Languages whose imports kiln extracts (tree-sitter grammars in [`crate::imports`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ImportSyntax {
    /// `import a.b`, `from .x import y`
    Python,
    /// `import a.b.C;`
    Java,
    /// `using A.B;`
    CSharp,
    /// `#include "x.h"`
    C,
    /// `#include "x.hpp"`
    Cpp,
    /// `import x from "./y"`, `require("./y")`
    JavaScript,
    /// as JavaScript, TypeScript grammar
    TypeScript,
    /// TypeScript with JSX
    Tsx,
    /// `import "mod/pkg"`
    Go,
    /// `mod x;`, `use crate::a::b;`
    Rust,
}

/// How a language writes a comment (for the path header before each file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comment {
    /// A line comment prefix such as `#` or `//`.
    Line(&'static str),
    /// A block comment with an opener and a closer such as `<!--` / `-->`.
    Block(&'static str, &'static str),
}

/// One row of the table.
#[derive(Debug)]
pub struct LanguageInfo {
    /// Display name as in the paper's Table 1 (e.g. `C++`, `Jupyter Notebook`).
    pub name: &'static str,
    /// Extensions without the dot, lower case.
    pub extensions: &'static [&'static str],
    /// Exact file names (e.g. `Makefile`, `Dockerfile`, `CMakeLists.txt`).
    pub filenames: &'static [&'static str],
    /// Comment syntax.
    pub comment: Comment,
    /// Import syntax, for the languages kiln orders by dependency.
    pub imports: Option<ImportSyntax>,
}

use Comment::{Block, Line};

/// Builds one row (keeps the table to one line per language).
const fn row(
    name: &'static str,
    extensions: &'static [&'static str],
    filenames: &'static [&'static str],
    comment: Comment,
    imports: Option<ImportSyntax>,
) -> LanguageInfo {
    LanguageInfo { name, extensions, filenames, comment, imports }
}

#[rustfmt::skip]
const TABLE: &[LanguageInfo] = &[
    // The nine languages whose imports kiln parses. `.tsx` belongs to TypeScript; [`import_syntax`]
    // gives it the TSX grammar. `.h` is C (a C++ header parses as C well enough for `#include`).
    row("Python", &["py", "pyi", "pyw"], &["SConstruct", "SConscript"], Line("#"), Some(ImportSyntax::Python)),
    row("Java", &["java"], &[], Line("//"), Some(ImportSyntax::Java)),
    row("C#", &["cs", "csx"], &[], Line("//"), Some(ImportSyntax::CSharp)),
    row("C", &["c", "h"], &[], Line("//"), Some(ImportSyntax::C)),
    row("C++", &["cpp", "cc", "cxx", "c++", "cp", "hpp", "hh", "hxx", "h++", "ipp", "tpp", "inl", "ixx", "cppm"], &[], Line("//"), Some(ImportSyntax::Cpp)),
    row("JavaScript", &["js", "mjs", "cjs", "jsx"], &[], Line("//"), Some(ImportSyntax::JavaScript)),
    row("TypeScript", &["ts", "mts", "cts", "tsx"], &[], Line("//"), Some(ImportSyntax::TypeScript)),
    row("Go", &["go"], &[], Line("//"), Some(ImportSyntax::Go)),
    row("Rust", &["rs"], &[], Line("//"), Some(ImportSyntax::Rust)),
    // The rest of Table 1, in the table's order.
    // PHP: the header goes before `<?php`, so `//` is printed as text by a PHP runtime; it is a
    // hint for the model, as in the paper, not executable code.
    row("PHP", &["php", "phtml", "php3", "php4", "php5", "phps", "phpt"], &[], Line("//"), None),
    row("HTML", &["html", "htm", "xhtml", "shtml"], &[], Block("<!--", "-->"), None),
    // `.cls` is TeX (LaTeX classes), not Visual Basic.
    row("TeX", &["tex", "ltx", "sty", "cls", "dtx", "ins", "bbx", "cbx", "lbx"], &[], Line("%"), None),
    row("SQL", &["sql", "ddl", "pgsql", "plsql"], &[], Line("--"), None),
    row("Ruby", &["rb", "rbw", "rake", "gemspec", "ru", "podspec", "jbuilder", "rabl"], &["Rakefile", "Gemfile", "Guardfile", "Capfile", "Vagrantfile", "Podfile", "Brewfile", "Berksfile", "Fastfile", "Appfile", "Dangerfile", "Thorfile"], Line("#"), None),
    // Notebooks are kept as their JSON text; the header uses `#`, the comment of the Python
    // kernel that almost all notebooks run.
    row("Jupyter Notebook", &["ipynb"], &[], Line("#"), None),
    row("Shell", &["sh", "bash", "zsh", "ksh", "bats", "command"], &[".bashrc", ".bash_profile", ".bash_logout", ".zshrc", ".zshenv", ".zprofile", ".profile", "PKGBUILD"], Line("#"), None),
    row("RMarkdown", &["rmd"], &[], Block("<!--", "-->"), None),
    row("Kotlin", &["kt", "kts"], &[], Line("//"), None),
    row("CSS", &["css"], &[], Block("/*", "*/"), None),
    // JSON has no comments; `//` is the JSONC convention (VS Code settings, tsconfig.json).
    row("JSON", &["json", "jsonc", "json5", "geojson", "topojson", "webmanifest", "har"], &[".babelrc", ".eslintrc", ".jshintrc", ".prettierrc"], Line("//"), None),
    row("Fortran", &["f", "for", "f77", "f90", "f95", "f03", "f08", "fpp", "ftn"], &[], Line("!"), None),
    row("Ada", &["adb", "ads", "ada"], &[], Line("--"), None),
    row("Agda", &["agda"], &[], Line("--"), None),
    row("Alloy", &["als"], &[], Line("//"), None),
    row("ANTLR", &["g4", "g"], &[], Line("//"), None),
    row("AppleScript", &["applescript"], &[], Line("--"), None),
    // Assembly: `;` (NASM/MASM). GNU as files (`.s`) use `#`, `@` or `//` depending on the target;
    // no single prefix is right for all, and the header is only a hint.
    row("Assembly", &["asm", "s", "nasm", "a51"], &[], Line(";"), None),
    row("Augeas", &["aug"], &[], Block("(*", "*)"), None),
    row("AWK", &["awk", "gawk", "mawk", "nawk"], &[], Line("#"), None),
    row("Batchfile", &["bat", "cmd"], &[], Line("REM"), None),
    row("Bluespec", &["bsv"], &[], Line("//"), None),
    row("Clojure", &["clj", "cljs", "cljc", "cljx", "edn"], &[], Line(";"), None),
    row("CMake", &["cmake"], &["CMakeLists.txt"], Line("#"), None),
    row("CoffeeScript", &["coffee", "cson", "iced"], &["Cakefile"], Line("#"), None),
    // `.cl` is Common Lisp, not OpenCL (not in Table 1).
    row("Common Lisp", &["lisp", "lsp", "cl", "asd"], &[], Line(";"), None),
    row("CUDA", &["cu", "cuh"], &[], Line("//"), None),
    row("Dart", &["dart"], &[], Line("//"), None),
    // Also `Dockerfile.<anything>` (see [`detect`]).
    row("Dockerfile", &["dockerfile"], &["Dockerfile", "Containerfile"], Line("#"), None),
    row("Elixir", &["ex", "exs"], &[], Line("#"), None),
    row("Elm", &["elm"], &[], Line("--"), None),
    row("Emacs Lisp", &["el"], &[".emacs", "_emacs", "Cask"], Line(";"), None),
    row("Erlang", &["erl", "hrl", "escript", "xrl", "yrl"], &["rebar.config"], Line("%"), None),
    // `.fs` is F#, not a GLSL fragment shader (GLSL keeps `.frag`, `.fsh`).
    row("F#", &["fs", "fsi", "fsx"], &[], Line("//"), None),
    row("GLSL", &["glsl", "vert", "frag", "geom", "tesc", "tese", "comp", "vsh", "fsh", "gsh"], &[], Line("//"), None),
    row("Groovy", &["groovy", "gradle", "gvy", "gy"], &["Jenkinsfile"], Line("//"), None),
    row("Haskell", &["hs", "hs-boot", "hsc"], &[], Line("--"), None),
    row("Idris", &["idr"], &[], Line("--"), None),
    row("Isabelle", &["thy"], &[], Block("(*", "*)"), None),
    row("Java Server Pages", &["jsp", "jspf", "jspx"], &[], Block("<%--", "--%>"), None),
    row("Julia", &["jl"], &[], Line("#"), None),
    row("Lean", &["lean"], &[], Line("--"), None),
    // Literate files: prose outside code blocks, so the header uses the prose's comment syntax
    // (LaTeX for `.lagda`, Markdown for `.litcoffee`). `x.lagda.md` / `x.coffee.md` end in `.md`
    // and are detected as Markdown.
    row("Literate Agda", &["lagda"], &[], Line("%"), None),
    row("Literate CoffeeScript", &["litcoffee"], &[], Block("<!--", "-->"), None),
    row("Literate Haskell", &["lhs"], &[], Line("--"), None),
    row("Lua", &["lua", "rockspec", "luau"], &[], Line("--"), None),
    row("Makefile", &["mk", "mak", "make"], &["Makefile", "makefile", "GNUmakefile", "Kbuild"], Line("#"), None),
    row("Maple", &["mpl", "maple"], &[], Line("#"), None),
    row("Mathematica", &["nb", "wl", "wls", "wlt", "mt", "ma"], &[], Block("(*", "*)"), None),
    // `.m` is MATLAB: it is MATLAB's only extension, Objective-C is not in Table 1, and
    // Mathematica has `.wl`/`.nb`.
    row("MATLAB", &["m"], &[], Line("%"), None),
    row("OCaml", &["ml", "mli", "mll", "mly"], &[], Block("(*", "*)"), None),
    // `.pp` is Pascal (Free Pascal), not Puppet (not in Table 1).
    row("Pascal", &["pas", "pp", "dpr", "lpr", "dpk"], &[], Block("(*", "*)"), None),
    // `.pl` is Perl, not Prolog: Perl is by far the more common user of it on GitHub.
    row("Perl", &["pl", "pm", "t", "psgi", "perl"], &[], Line("#"), None),
    row("PowerShell", &["ps1", "psm1", "psd1"], &[], Line("#"), None),
    // `.pro` is Prolog, not a qmake project (not in Table 1).
    row("Prolog", &["pro", "prolog"], &[], Line("%"), None),
    row("Protocol Buffer", &["proto"], &[], Line("//"), None),
    row("R", &["r", "rsx"], &[".Rprofile"], Line("#"), None),
    row("Racket", &["rkt", "rktd", "rktl", "scrbl"], &[], Line(";"), None),
    row("SAS", &["sas"], &[], Block("/*", "*/"), None),
    row("Scala", &["scala", "sc", "sbt"], &[], Line("//"), None),
    row("Scheme", &["scm", "ss", "sls", "sld", "sps"], &[], Line(";"), None),
    // Smalltalk comments are text between double quotes.
    row("Smalltalk", &["st"], &[], Block("\"", "\""), None),
    row("Solidity", &["sol"], &[], Line("//"), None),
    row("SPARQL", &["sparql", "rq"], &[], Line("#"), None),
    row("Stan", &["stan"], &[], Line("//"), None),
    row("Standard ML", &["sml", "sig", "fun"], &[], Block("(*", "*)"), None),
    row("Stata", &["do", "ado", "doh", "ihlp", "mata", "matah", "sthlp"], &[], Line("//"), None),
    // `.vh` is a SystemVerilog header; `.v` is Verilog, not Coq (not in Table 1).
    row("SystemVerilog", &["sv", "svh", "vh"], &[], Line("//"), None),
    row("Tcl", &["tcl", "tm", "tk", "itcl"], &[], Line("#"), None),
    row("Tcsh", &["tcsh", "csh"], &[".cshrc", ".tcshrc"], Line("#"), None),
    row("Thrift", &["thrift"], &[], Line("//"), None),
    row("Verilog", &["v", "veo"], &[], Line("//"), None),
    row("VHDL", &["vhd", "vhdl", "vho", "vht", "vhi"], &[], Line("--"), None),
    row("Visual Basic", &["vb", "vbs", "bas", "frm", "vba", "vbhtml"], &[], Line("'"), None),
    row("XSLT", &["xsl", "xslt"], &[], Block("<!--", "-->"), None),
    row("Yacc", &["y", "yy", "yacc"], &[], Block("/*", "*/"), None),
    row("YAML", &["yml", "yaml"], &[".clang-format", ".clang-tidy"], Line("#"), None),
    row("Zig", &["zig"], &[], Line("//"), None),
    // Not in Table 1, but in the README's supported-language list (89 = 87 + these two).
    row("Markdown", &["md", "markdown", "mdown", "mkd", "mkdn", "mdx"], &[], Block("<!--", "-->"), None),
    row("reStructuredText", &["rst", "rest"], &[], Line(".."), None),
];

/// A language of the table (a cheap copyable handle).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Language(u16);

impl std::fmt::Debug for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Language {
    /// The table row.
    pub fn info(self) -> &'static LanguageInfo {
        &TABLE[self.0 as usize]
    }
    /// Display name.
    pub fn name(self) -> &'static str {
        self.info().name
    }
    /// Comment syntax.
    pub fn comment(self) -> Comment {
        self.info().comment
    }
    /// Import syntax, if kiln parses this language's imports.
    pub fn imports(self) -> Option<ImportSyntax> {
        self.info().imports
    }
    /// Looks a language up by its display name (case-insensitive).
    pub fn by_name(name: &str) -> Option<Language> {
        TABLE.iter().position(|l| l.name.eq_ignore_ascii_case(name)).map(|i| Language(i as u16))
    }
    /// Every language of the table.
    pub fn all() -> impl Iterator<Item = Language> {
        (0..TABLE.len() as u16).map(Language)
    }
}

/// Name → row and extension → row, built once from [`TABLE`].
struct Index {
    filenames: HashMap<&'static str, Language>,
    extensions: HashMap<&'static str, Language>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut filenames = HashMap::new();
        let mut extensions = HashMap::new();
        // `or_insert` keeps the first row on a (test-forbidden) duplicate, so the result never
        // depends on hash order.
        for lang in Language::all() {
            for f in lang.info().filenames {
                filenames.entry(*f).or_insert(lang);
            }
            for e in lang.info().extensions {
                extensions.entry(*e).or_insert(lang);
            }
        }
        Index { filenames, extensions }
    })
}

/// Detects the language of a repository-relative path (`/` or `\` separated) from its file name,
/// then its last extension (case-insensitive). See the module docs for the rules and the choices
/// made for ambiguous extensions.
pub fn detect(path: &str) -> Option<Language> {
    let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let index = index();
    if let Some(lang) = index.filenames.get(file) {
        return Some(*lang);
    }
    if file.starts_with("Dockerfile.") {
        return Language::by_name("Dockerfile");
    }
    let (_, ext) = file.rsplit_once('.')?;
    if ext.bytes().any(|b| b.is_ascii_uppercase()) {
        index.extensions.get(ext.to_ascii_lowercase().as_str()).copied()
    } else {
        index.extensions.get(ext).copied()
    }
}

/// The import grammar for a path: the language's [`ImportSyntax`], except that `.tsx` files are
/// TypeScript with [`ImportSyntax::Tsx`] (the TypeScript grammar rejects JSX).
pub fn import_syntax(path: &str) -> Option<ImportSyntax> {
    syntax_of(detect(path)?, path)
}

/// The grammar for a file of language `lang` at `path`: the language's import syntax, except that
/// `.tsx` files of TypeScript need the TSX grammar.
pub fn syntax_of(lang: Language, path: &str) -> Option<ImportSyntax> {
    let syntax = lang.imports()?;
    let is_tsx = path.rsplit_once('.').is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("tsx"));
    Some(if is_tsx && syntax == ImportSyntax::TypeScript { ImportSyntax::Tsx } else { syntax })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The 87 names of the paper's Table 1, as written in spec §2.8.
    const TABLE_1: [&str; 87] = [
        "Java",
        "Python",
        "C++",
        "TypeScript",
        "PHP",
        "C#",
        "JavaScript",
        "HTML",
        "C",
        "TeX",
        "SQL",
        "Ruby",
        "Jupyter Notebook",
        "Shell",
        "RMarkdown",
        "Kotlin",
        "CSS",
        "JSON",
        "Go",
        "Fortran",
        "Ada",
        "Agda",
        "Alloy",
        "ANTLR",
        "AppleScript",
        "Assembly",
        "Augeas",
        "AWK",
        "Batchfile",
        "Bluespec",
        "Clojure",
        "CMake",
        "CoffeeScript",
        "Common Lisp",
        "CUDA",
        "Dart",
        "Dockerfile",
        "Elixir",
        "Elm",
        "Emacs Lisp",
        "Erlang",
        "F#",
        "GLSL",
        "Groovy",
        "Haskell",
        "Idris",
        "Isabelle",
        "Java Server Pages",
        "Julia",
        "Lean",
        "Literate Agda",
        "Literate CoffeeScript",
        "Literate Haskell",
        "Lua",
        "Makefile",
        "Maple",
        "Mathematica",
        "MATLAB",
        "OCaml",
        "Pascal",
        "Perl",
        "PowerShell",
        "Prolog",
        "Protocol Buffer",
        "R",
        "Racket",
        "Rust",
        "SAS",
        "Scala",
        "Scheme",
        "Smalltalk",
        "Solidity",
        "SPARQL",
        "Stan",
        "Standard ML",
        "Stata",
        "SystemVerilog",
        "Tcl",
        "Tcsh",
        "Thrift",
        "Verilog",
        "VHDL",
        "Visual Basic",
        "XSLT",
        "Yacc",
        "YAML",
        "Zig",
    ];

    fn name(path: &str) -> Option<&'static str> {
        detect(path).map(Language::name)
    }

    #[test]
    fn every_table_1_name_exactly_once_plus_markdown_and_rst() {
        let names: Vec<&str> = Language::all().map(Language::name).collect();
        assert_eq!(names.len(), 89);
        let mut expected: Vec<&str> = TABLE_1.to_vec();
        expected.extend(["Markdown", "reStructuredText"]);
        let distinct: std::collections::BTreeSet<&str> = expected.iter().copied().collect();
        assert_eq!(distinct.len(), 89, "the expected list itself has a duplicate");
        for n in &expected {
            assert_eq!(names.iter().filter(|m| *m == n).count(), 1, "{n} must appear exactly once");
            let lang = Language::by_name(n).unwrap();
            assert_eq!(lang.name(), *n);
            assert_eq!(format!("{lang:?}"), *n);
        }
        assert_eq!(Language::by_name("c++").map(Language::name), Some("C++"));
        assert_eq!(Language::by_name("Objective-C"), None);
    }

    #[test]
    fn no_extension_or_file_name_claimed_twice_and_all_well_formed() {
        let mut exts: BTreeMap<&str, &str> = BTreeMap::new();
        let mut files: BTreeMap<&str, &str> = BTreeMap::new();
        for lang in Language::all() {
            let info = lang.info();
            assert!(!info.extensions.is_empty() || !info.filenames.is_empty(), "{}", info.name);
            for e in info.extensions {
                assert!(!e.is_empty() && !e.starts_with('.') && !e.contains('/'), "{e:?}");
                assert_eq!(*e, e.to_ascii_lowercase(), "extensions are lower case: {e}");
                if let Some(other) = exts.insert(e, info.name) {
                    panic!("extension {e:?} claimed by {other} and {}", info.name);
                }
                // Every extension detects to its own row.
                assert_eq!(name(&format!("dir/file.{e}")), Some(info.name), "{e}");
            }
            for f in info.filenames {
                if let Some(other) = files.insert(f, info.name) {
                    panic!("file name {f:?} claimed by {other} and {}", info.name);
                }
                assert_eq!(name(&format!("a/b/{f}")), Some(info.name), "{f}");
            }
            match info.comment {
                Comment::Line(p) => assert!(!p.is_empty()),
                Comment::Block(open, close) => assert!(!open.is_empty() && !close.is_empty()),
            }
        }
    }

    #[test]
    fn imports_for_exactly_the_nine_languages() {
        let with: Vec<(&str, ImportSyntax)> = Language::all().filter_map(|l| l.imports().map(|s| (l.name(), s))).collect();
        assert_eq!(
            with,
            vec![
                ("Python", ImportSyntax::Python),
                ("Java", ImportSyntax::Java),
                ("C#", ImportSyntax::CSharp),
                ("C", ImportSyntax::C),
                ("C++", ImportSyntax::Cpp),
                ("JavaScript", ImportSyntax::JavaScript),
                ("TypeScript", ImportSyntax::TypeScript),
                ("Go", ImportSyntax::Go),
                ("Rust", ImportSyntax::Rust),
            ]
        );
        assert_eq!(import_syntax("src/App.tsx"), Some(ImportSyntax::Tsx));
        assert_eq!(import_syntax("src/App.TSX"), Some(ImportSyntax::Tsx));
        assert_eq!(name("src/App.tsx"), Some("TypeScript"));
        assert_eq!(import_syntax("src/app.ts"), Some(ImportSyntax::TypeScript));
        assert_eq!(import_syntax("src/app.jsx"), Some(ImportSyntax::JavaScript));
        assert_eq!(import_syntax("inc/x.h"), Some(ImportSyntax::C));
        assert_eq!(import_syntax("README.md"), None);
        assert_eq!(import_syntax("Makefile"), None);
    }

    #[test]
    fn detects_by_file_name() {
        assert_eq!(name("Makefile"), Some("Makefile"));
        assert_eq!(name("sub/GNUmakefile"), Some("Makefile"));
        assert_eq!(name("Dockerfile"), Some("Dockerfile"));
        assert_eq!(name("docker/Dockerfile.dev"), Some("Dockerfile"));
        assert_eq!(name("CMakeLists.txt"), Some("CMake"));
        assert_eq!(name("src/CMakeLists.txt"), Some("CMake"));
        assert_eq!(name("notes.txt"), None);
        assert_eq!(name("Rakefile"), Some("Ruby"));
        assert_eq!(name("Gemfile"), Some("Ruby"));
        assert_eq!(name("Jenkinsfile"), Some("Groovy"));
        assert_eq!(name("home/.bashrc"), Some("Shell"));
        // Exact names are case-sensitive (`MAKEFILE` is not a conventional name).
        assert_eq!(name("MAKEFILE"), None);
        assert_eq!(name(".gitignore"), None);
        assert_eq!(name("LICENSE"), None);
        assert_eq!(name(""), None);
        assert_eq!(name("dir/"), None);
        assert_eq!(name("."), None);
    }

    #[test]
    fn detects_by_extension_case_insensitively() {
        assert_eq!(name("a/b/c.py"), Some("Python"));
        assert_eq!(name("A/B/C.PY"), Some("Python"));
        assert_eq!(name("Main.Java"), Some("Java"));
        assert_eq!(name("x.h"), Some("C"));
        assert_eq!(name("x.H"), Some("C"));
        assert_eq!(name("x.hpp"), Some("C++"));
        assert_eq!(name("x.C++"), Some("C++"));
        assert_eq!(name("nb.ipynb"), Some("Jupyter Notebook"));
        assert_eq!(name("page.jsp"), Some("Java Server Pages"));
        assert_eq!(name("api.proto"), Some("Protocol Buffer"));
        assert_eq!(name("Main.lhs"), Some("Literate Haskell"));
        assert_eq!(name("docs/index.rst"), Some("reStructuredText"));
        assert_eq!(name("README.md"), Some("Markdown"));
        assert_eq!(name("win\\path\\x.rs"), Some("Rust"));
        assert_eq!(name("archive.tar.gz"), None);
        assert_eq!(name("image.png"), None);
    }

    #[test]
    fn ambiguous_extensions_resolve_as_documented() {
        assert_eq!(name("f.m"), Some("MATLAB"));
        assert_eq!(name("f.pl"), Some("Perl"));
        assert_eq!(name("f.pro"), Some("Prolog"));
        assert_eq!(name("f.v"), Some("Verilog"));
        assert_eq!(name("f.sv"), Some("SystemVerilog"));
        assert_eq!(name("f.sql"), Some("SQL"));
        assert_eq!(name("f.fs"), Some("F#"));
        assert_eq!(name("f.cl"), Some("Common Lisp"));
        assert_eq!(name("f.cls"), Some("TeX"));
        assert_eq!(name("f.pp"), Some("Pascal"));
        assert_eq!(name("f.lagda.md"), Some("Markdown"));
    }

    #[test]
    fn comment_syntax_examples() {
        let c = |n: &str| Language::by_name(n).unwrap().comment();
        assert_eq!(c("Python"), Comment::Line("#"));
        assert_eq!(c("Rust"), Comment::Line("//"));
        assert_eq!(c("Haskell"), Comment::Line("--"));
        assert_eq!(c("Clojure"), Comment::Line(";"));
        assert_eq!(c("TeX"), Comment::Line("%"));
        assert_eq!(c("HTML"), Comment::Block("<!--", "-->"));
        assert_eq!(c("OCaml"), Comment::Block("(*", "*)"));
        assert_eq!(c("CSS"), Comment::Block("/*", "*/"));
    }
}
