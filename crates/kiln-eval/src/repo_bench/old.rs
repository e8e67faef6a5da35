//! The lexer, definition finders and line selection repo_bench had before it used kiln-repo's
//! (`kiln_repo::code`, `kiln_repo::definitions`), kept verbatim for the differential test in
//! `super::tests` only; deleted once the comparison is done.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use kiln_repo::graph::build_graph;
use kiln_repo::imports::{analyze, file_syntax};
use kiln_repo::{Repo, SourceFile};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{BuildOptions, RepoTask};

/// Selects tasks from the repositories [`BuildOptions::selects`] (see the module docs). Sorted
/// by repository, path and line.
pub fn build_from_repos(repos: &[Repo], opts: &BuildOptions) -> Result<Vec<RepoTask>, ()> {
    let mut chosen: Vec<(u64, RepoTask)> = Vec::new();
    for repo in repos.iter().filter(|r| opts.selects(&r.name)) {
        let graph = build_graph(repo);
        let defs: Vec<HashSet<String>> =
            repo.files.iter().map(|f| f.language.map(|l| definitions(l.name(), &f.text)).unwrap_or_default()).collect();
        for (i, file) in repo.files.iter().enumerate() {
            let Some(lang) = file.language.map(|l| l.name()) else { continue };
            if !has_definition_finder(lang) {
                continue;
            }
            // The imported files that define each name, nearest path first (edges sorted by target).
            let mut imported: HashMap<&str, usize> = HashMap::new();
            for e in graph.imports_of(i) {
                for name in &defs[e.to] {
                    imported.entry(name.as_str()).or_insert(e.to);
                }
            }
            if imported.is_empty() {
                continue;
            }
            let mut in_file = Vec::new();
            for c in candidate_lines(file, lang, opts.min_prefix_lines) {
                let symbol = identifiers(&c.code).into_iter().find(|id| imported.contains_key(id.as_str()) && !defs[i].contains(id));
                let Some(symbol) = symbol else { continue };
                let task_id = format!("{}/{}:{}", repo.name, file.path, c.number);
                let key = xxh3_64_with_seed(task_id.as_bytes(), opts.seed);
                let defined_in = repo.files[imported[symbol.as_str()]].path.clone();
                in_file.push((
                    key,
                    RepoTask {
                        task_id,
                        repo: repo.name.clone(),
                        path: file.path.clone(),
                        language: lang.to_string(),
                        prefix: file.text[..c.start + c.indent].to_string(),
                        suffix: file.text[c.end..].to_string(),
                        ground_truth: file.text[c.start + c.indent..c.end].trim_end().to_string(),
                        symbol,
                        defined_in,
                    },
                ));
            }
            in_file.sort_by_key(|(k, _)| *k);
            in_file.truncate(opts.max_per_file);
            chosen.extend(in_file);
        }
    }
    chosen.sort_by_key(|(k, t)| (*k, t.task_id.clone()));
    chosen.truncate(opts.max_tasks);
    let mut tasks: Vec<RepoTask> = chosen.into_iter().map(|(_, t)| t).collect();
    tasks.sort_by(|a, b| (&a.repo, &a.path, line_of(a)).cmp(&(&b.repo, &b.path, line_of(b))));
    tracing::info!(tasks = tasks.len(), "repository-level tasks selected");
    Ok(tasks)
}

pub fn line_of(t: &RepoTask) -> usize {
    t.prefix.matches('\n').count()
}

/// A line that may become a task.
pub struct Candidate {
    /// 1-based line number.
    pub number: usize,
    /// Byte offset of the line's start in the file.
    start: usize,
    /// Bytes of indentation.
    indent: usize,
    /// Byte offset just after the line's newline (or the file's end).
    end: usize,
    /// The line's code with strings blanked and comments removed.
    pub code: String,
}

/// Lines that are not blank, not comments (nor inside a block comment or docstring), not
/// imports, with at least `min_prefix` lines before them.
pub fn candidate_lines(file: &SourceFile, lang: &str, min_prefix: usize) -> Vec<Candidate> {
    let import_lines: HashSet<usize> =
        file_syntax(file).map(|s| analyze(s, &file.text).imports.iter().map(|i| i.line).collect()).unwrap_or_default();
    let mut out = Vec::new();
    let mut state = ScanState::default();
    let mut open_import_brackets = 0i32;
    let mut start = 0;
    for (idx, line) in file.text.split_inclusive('\n').enumerate() {
        let number = idx + 1;
        let end = start + line.len();
        let in_comment_at_start = state.in_block || state.in_triple.is_some();
        let code = code_of(line, lang, &mut state);
        let trimmed = code.trim();
        let is_import = import_lines.contains(&number) || open_import_brackets > 0 || starts_import(lang, trimmed);
        if is_import {
            open_import_brackets = (open_import_brackets + bracket_balance(&code)).max(0);
        }
        let indent = line.len() - line.trim_start().len();
        if !is_import && !in_comment_at_start && !trimmed.is_empty() && idx >= min_prefix && line.trim().len() >= 2 {
            out.push(Candidate { number, start, indent, end, code: code.clone() });
        }
        start = end;
    }
    out
}

pub fn bracket_balance(code: &str) -> i32 {
    code.chars()
        .map(|c| match c {
            '(' | '{' | '[' => 1,
            ')' | '}' | ']' => -1,
            _ => 0,
        })
        .sum()
}

/// Whether a line (code only, trimmed) is an import, an include or a module declaration.
pub fn starts_import(lang: &str, line: &str) -> bool {
    let words: &[&str] = match lang {
        "Python" => &["import ", "from "],
        "Rust" => &["use ", "pub use ", "mod ", "pub mod ", "extern crate "],
        "JavaScript" | "TypeScript" => &["import ", "import{"],
        "Java" => &["import ", "package "],
        "C#" => &["using ", "namespace "],
        "Go" => &["import ", "package "],
        "C" | "C++" => &["#include", "#import"],
        _ => &[],
    };
    words.iter().any(|w| line.starts_with(w)) || line.contains("require(")
}

/// Comment state carried from one line to the next.
#[derive(Default)]
pub struct ScanState {
    /// Inside `/* ... */`.
    in_block: bool,
    /// Inside a Python triple-quoted string (its quote character).
    in_triple: Option<char>,
}

/// The code of one line: string literals blanked (quotes kept), comments removed, block comments
/// and Python triple-quoted strings tracked across lines.
pub fn code_of(line: &str, lang: &str, st: &mut ScanState) -> String {
    let python = lang == "Python";
    let chars: Vec<char> = line.trim_end_matches(['\n', '\r']).chars().collect();
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if st.in_block {
            if c == '*' && next == Some('/') {
                st.in_block = false;
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        if let Some(q) = st.in_triple {
            if c == q && next == Some(q) && chars.get(i + 2) == Some(&q) {
                st.in_triple = None;
                out.push(q);
                i += 3;
            } else {
                i += 1;
            }
            continue;
        }
        if python && c == '#' || !python && c == '/' && next == Some('/') {
            break;
        }
        if !python && c == '/' && next == Some('*') {
            st.in_block = true;
            i += 2;
            continue;
        }
        if python && (c == '"' || c == '\'') && next == Some(c) && chars.get(i + 2) == Some(&c) {
            st.in_triple = Some(c);
            out.push(c);
            i += 3;
            continue;
        }
        // A quote starts a string, except Rust lifetimes and char-like uses we cannot tell apart.
        if c == '"' || c == '`' || (c == '\'' && lang != "Rust") {
            out.push(c);
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                    out.push(' ');
                }
                i += 1;
                out.push(' ');
            }
            if i < chars.len() {
                out.push(c);
            }
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Identifiers of `code`, in order (`[A-Za-z_][A-Za-z0-9_]*` not preceded by a digit).
pub fn identifiers(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_digit = false;
    for c in code.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            if cur.is_empty() && c.is_ascii_digit() {
                prev_digit = true;
            }
            if !prev_digit {
                cur.push(c);
            }
        } else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_digit = false;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Definition finders

/// Languages [`definitions`] knows.
pub fn has_definition_finder(language: &str) -> bool {
    matches!(language, "Python" | "Rust" | "JavaScript" | "TypeScript" | "Java" | "C#" | "Go" | "C" | "C++")
}

/// Names a file defines at its top level (functions, classes, types, constants, module-level
/// variables; Java/C# types and `static` members), found line by line: a small per-language
/// finder, not a parser, which is enough to tell which file a name comes from. Empty for a
/// language without a finder ([`has_definition_finder`]).
pub fn definitions(language: &str, text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut st = ScanState::default();
    for line in text.lines() {
        let in_comment = st.in_block || st.in_triple.is_some();
        let code = code_of(line, language, &mut st);
        if in_comment {
            continue;
        }
        let indent = code.len() - code.trim_start().len();
        let t = code.trim();
        let name = match language {
            "Python" if indent == 0 => python_def(t),
            "Rust" if indent == 0 => keyword_def(
                strip_words(t, &["pub(crate)", "pub(super)", "pub(self)", "pub", "async", "unsafe", "extern \"C\"", "extern", "default"]),
                &["fn", "struct", "enum", "trait", "type", "const", "static mut", "static", "union", "mod", "macro_rules!"],
            ),
            "JavaScript" | "TypeScript" if indent == 0 => keyword_def(
                strip_words(t, &["export", "default", "declare", "async", "abstract"]),
                &["function*", "function", "class", "const", "let", "var", "interface", "type", "enum", "namespace"],
            ),
            "Java" | "C#" => java_def(t),
            "Go" if indent == 0 => keyword_def(t, &["func", "type", "var", "const"]),
            "C" | "C++" if indent == 0 => c_def(t),
            _ => None,
        };
        out.extend(name);
    }
    out
}

/// `t` without any of the leading `words` (each followed by a space), repeatedly.
pub fn strip_words<'a>(mut t: &'a str, words: &[&str]) -> &'a str {
    'again: loop {
        for w in words {
            if let Some(rest) = t.strip_prefix(w) {
                if rest.starts_with(' ') {
                    t = rest.trim_start();
                    continue 'again;
                }
            }
        }
        return t;
    }
}

/// The identifier at the start of `t`.
pub fn leading_ident(t: &str) -> Option<String> {
    let end = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(t.len());
    let id = &t[..end];
    (!id.is_empty() && !id.starts_with(|c: char| c.is_ascii_digit())).then(|| id.to_string())
}

/// The name after the first of `keywords` that starts `t` (`fn name`, `class name`).
pub fn keyword_def(t: &str, keywords: &[&str]) -> Option<String> {
    for k in keywords {
        if let Some(rest) = t.strip_prefix(k) {
            if rest.starts_with(' ') {
                return leading_ident(rest.trim_start());
            }
        }
    }
    None
}

pub fn python_def(t: &str) -> Option<String> {
    if let Some(n) = keyword_def(strip_words(t, &["async"]), &["def", "class"]) {
        return Some(n);
    }
    // `NAME = ...` or `NAME: type = ...` at module level.
    let name = leading_ident(t)?;
    let rest = t[name.len()..].trim_start();
    let assigns = (rest.starts_with('=') && !rest.starts_with("==")) || rest.starts_with(':') && rest.contains('=');
    (assigns && !matches!(name.as_str(), "if" | "for" | "while" | "with" | "return" | "else" | "elif" | "try" | "except")).then_some(name)
}

pub fn java_def(t: &str) -> Option<String> {
    let modifiers =
        ["public", "private", "protected", "internal", "static", "final", "abstract", "sealed", "partial", "readonly", "strictfp", "const"];
    let rest = strip_words(t, &modifiers);
    if let Some(n) = keyword_def(rest, &["class", "interface", "enum", "record", "struct"]) {
        return Some(n);
    }
    // `static` members: `public static int add(` / `static final int MAX = 3;` / C# `const`.
    let head: Vec<&str> = t.split_whitespace().take_while(|w| modifiers.contains(w)).collect();
    if !(head.contains(&"static") || head.contains(&"const")) {
        return None;
    }
    let cut = rest.find(['(', '=', ';']).unwrap_or(rest.len());
    identifiers(&rest[..cut]).pop()
}

pub fn c_def(t: &str) -> Option<String> {
    if let Some(rest) = t.strip_prefix("#define ") {
        return leading_ident(rest.trim_start());
    }
    if t.starts_with('#') || t.starts_with('}') || t.starts_with('{') {
        return None;
    }
    if let Some(rest) = t.strip_prefix("typedef ") {
        let cut = rest.rfind(';').unwrap_or(rest.len());
        return identifiers(&rest[..cut]).pop();
    }
    let rest = strip_words(t, &["static", "inline", "extern", "constexpr", "const", "template<>"]);
    if let Some(n) = keyword_def(rest, &["struct", "class", "enum class", "enum", "union", "namespace"]) {
        return Some(n);
    }
    // A function at column 0: the identifier right before the first `(`.
    let paren = rest.find('(')?;
    let name = identifiers(&rest[..paren]).pop()?;
    let keywords = ["if", "for", "while", "switch", "return", "sizeof", "else", "do"];
    (!keywords.contains(&name.as_str()) && rest[..paren].split_whitespace().count() >= 2).then_some(name)
}

/// cceval's post-processing of a completion for a one-line task (see the module docs).
pub fn postprocess(completion: &str, language: &str) -> String {
    let mut line = completion.split('\n').next().unwrap_or("").trim_end_matches('\r');
    if matches!(language, "Java" | "C#" | "TypeScript" | "JavaScript") {
        if let Some(i) = line.find([';', '{', '}']) {
            line = &line[..=i];
        }
    }
    remove_comments(line, language)
}

/// A line without its comments (`#` in Python, `//` and `/* */` elsewhere), strings respected.
pub fn remove_comments(line: &str, language: &str) -> String {
    let python = language == "Python";
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' {
                out.extend(next);
                i += 1;
            } else if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if python && c == '#' || !python && c == '/' && next == Some('/') {
            break;
        }
        if !python && c == '/' && next == Some('*') {
            // An inline block comment: skip to its end (or the line's).
            let rest: String = chars[i + 2..].iter().collect();
            match rest.find("*/") {
                Some(j) => {
                    i += 2 + rest[..j].chars().count() + 2;
                    continue;
                }
                None => break,
            }
        }
        if c == '"' || c == '`' || (c == '\'' && language != "Rust") {
            quote = Some(c);
        }
        out.push(c);
        i += 1;
    }
    out.trim_end().to_string()
}

/// Identifier EM: the identifiers outside strings and comments, in order, are equal.
pub fn identifier_match(prediction: &str, ground_truth: &str, language: &str) -> bool {
    let ids = |s: &str| identifiers(&code_of(s, language, &mut ScanState::default()));
    let g = ids(ground_truth);
    !g.is_empty() && ids(prediction) == g
}
