//! The language table: DeepSeek-Coder's 87 languages (paper Table 1) plus Markdown and
//! reStructuredText, detected from a path's extension or file name, with each language's comment
//! syntax (for path headers) and, for nine of them, the import syntax kiln parses.
//!
//! SKELETON: the table below holds a few entries so other modules compile; the full table is
//! being filled in (issue #3).

use serde::Serialize;

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

const TABLE: &[LanguageInfo] = &[
    LanguageInfo { name: "Python", extensions: &["py", "pyi"], filenames: &[], comment: Comment::Line("#"), imports: Some(ImportSyntax::Python) },
    LanguageInfo { name: "Java", extensions: &["java"], filenames: &[], comment: Comment::Line("//"), imports: Some(ImportSyntax::Java) },
    LanguageInfo { name: "C#", extensions: &["cs"], filenames: &[], comment: Comment::Line("//"), imports: Some(ImportSyntax::CSharp) },
    LanguageInfo { name: "C", extensions: &["c", "h"], filenames: &[], comment: Comment::Line("//"), imports: Some(ImportSyntax::C) },
    LanguageInfo { name: "C++", extensions: &["cpp", "cc", "cxx", "hpp", "hh", "hxx"], filenames: &[], comment: Comment::Line("//"), imports: Some(ImportSyntax::Cpp) },
    LanguageInfo { name: "JavaScript", extensions: &["js", "mjs", "cjs", "jsx"], filenames: &[], comment: Comment::Line("//"), imports: Some(ImportSyntax::JavaScript) },
    LanguageInfo { name: "TypeScript", extensions: &["ts", "mts", "cts"], filenames: &[], comment: Comment::Line("//"), imports: Some(ImportSyntax::TypeScript) },
    LanguageInfo { name: "Go", extensions: &["go"], filenames: &[], comment: Comment::Line("//"), imports: Some(ImportSyntax::Go) },
    LanguageInfo { name: "Rust", extensions: &["rs"], filenames: &[], comment: Comment::Line("//"), imports: Some(ImportSyntax::Rust) },
    LanguageInfo { name: "Markdown", extensions: &["md", "markdown"], filenames: &[], comment: Comment::Block("<!--", "-->"), imports: None },
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

/// Detects the language of a repository-relative path from its file name, then its extension.
pub fn detect(path: &str) -> Option<Language> {
    let file = path.rsplit('/').next().unwrap_or(path);
    if let Some(i) = TABLE.iter().position(|l| l.filenames.contains(&file)) {
        return Some(Language(i as u16));
    }
    let ext = file.rsplit_once('.')?.1.to_ascii_lowercase();
    TABLE.iter().position(|l| l.extensions.contains(&ext.as_str())).map(|i| Language(i as u16))
}
