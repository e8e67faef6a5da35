//! Python: `import a.b as c, d` and `from ..m import (x, y as z)` at the start of a statement.
//!
//! A statement starts at the start of the file, after a newline outside brackets that no `\`
//! continues, or after `;` / `:` outside brackets (`try: import x`). Strings of every kind
//! (prefixes do not matter: a raw string still cannot end at an escaped quote) and comments are
//! skipped; f-strings are skipped whole, since a statement cannot hide in one.
//!
//! Mirrors of tree-sitter-python: `from __future__ import x` is a separate node kind that the
//! import query does not match, so it gives nothing; `import os, os` gives `os` once (see
//! [`super::Out::push`]).

use std::sync::OnceLock;

use super::{delimited_end, drive, finder, line_end, prev_nonblank, quoted_end, table, whole_word, Comments, Lexer, Out, Toks};
use crate::code::Region;
use crate::imports::ImportKind;

const WORDS: &[&str] = &["import", "from"];
static FINDER: OnceLock<aho_corasick::AhoCorasick> = OnceLock::new();
static TABLE: [bool; 256] = table(b"#'\"\\()[]{}");

pub(super) fn scan(out: &mut Out) {
    drive(out, Some(finder(&FINDER, WORDS)), &mut Py { depth: 0, continued_newline: usize::MAX });
}

struct Py {
    /// Open brackets.
    depth: usize,
    /// Position of the last newline escaped by `\` in code.
    continued_newline: usize,
}

impl Lexer for Py {
    fn table(&self) -> &'static [bool; 256] {
        &TABLE
    }

    fn byte(&mut self, out: &mut Out, pos: usize) -> usize {
        let b = out.b;
        match b[pos] {
            b'#' => line_end(b, pos),
            q @ (b'\'' | b'"') => {
                let triple = [q, q, q];
                if b[pos..].starts_with(&triple) {
                    delimited_end(b, pos, &triple)
                } else {
                    quoted_end(b, pos, q, false)
                }
            }
            b'\\' => {
                let nl = match b.get(pos + 1) {
                    Some(b'\r') if b.get(pos + 2) == Some(&b'\n') => pos + 2,
                    Some(b'\n') => pos + 1,
                    _ => return pos + 1,
                };
                self.continued_newline = nl;
                nl + 1
            }
            b'(' | b'[' | b'{' => {
                self.depth += 1;
                pos + 1
            }
            // Saturating: a stray closer in broken code must not hide every later import.
            _ => {
                self.depth = self.depth.saturating_sub(1);
                pos + 1
            }
        }
    }

    fn keyword(&mut self, out: &mut Out, pattern: usize, pos: usize) -> usize {
        let word = WORDS[pattern].len();
        if !whole_word(out.b, pos, word) || !self.statement_start(out.b, pos) {
            return pos + word;
        }
        let end = if pattern == 0 { import(out, pos) } else { from_import(out, pos) };
        end.unwrap_or(pos + word)
    }

    fn region(&self, b: &[u8], pos: usize) -> Option<Region> {
        match b[pos] {
            b'#' => Some(Region::Comment),
            b'\'' | b'"' => Some(Region::Literal),
            _ => None, // a `\` continuation, a bracket
        }
    }
}

impl Py {
    fn statement_start(&self, b: &[u8], pos: usize) -> bool {
        if self.depth > 0 {
            return false;
        }
        match prev_nonblank(b, pos) {
            None => true,
            Some(2) if b.starts_with("\u{feff}".as_bytes()) => true,
            Some(p) => match b[p] {
                b'\n' => p != self.continued_newline,
                b';' | b':' => true,
                _ => false,
            },
        }
    }
}

/// `import a.b as c, d` at `pos`; returns the end of the statement.
fn import(out: &mut Out, pos: usize) -> Option<usize> {
    let mut t = Toks::new(out.b, pos + "import".len(), Comments::Hash);
    let mut names = Vec::new();
    loop {
        names.push(dotted(&mut t)?);
        if t.eat_word(b"as") {
            t.ident()?;
        }
        if !t.eat(b",") {
            break;
        }
    }
    for name in names {
        out.push(pos, name, ImportKind::PythonModule { level: 0 });
    }
    Some(t.pos)
}

/// `from M import names` at `pos`; returns the end of the statement.
fn from_import(out: &mut Out, pos: usize) -> Option<usize> {
    let mut t = Toks::new(out.b, pos + "from".len(), Comments::Hash);
    let mut module = String::new();
    while t.eat(b".") {
        module.push('.');
    }
    let level = module.len();
    if level == 0 || !t.at_word(b"import") {
        let name = dotted(&mut t)?;
        if level == 0 && name == "__future__" {
            return None; // a `future_import_statement`, which the import query does not match
        }
        module.push_str(&name);
    }
    if !t.eat_word(b"import") {
        return None;
    }
    let mut names = Vec::new();
    if t.eat(b"*") {
        names.push("*".to_string());
    } else {
        t.in_brackets = t.eat(b"(");
        loop {
            if t.in_brackets && t.peek() == Some(b')') {
                break; // trailing comma
            }
            names.push(dotted(&mut t)?);
            if t.eat_word(b"as") {
                t.ident()?;
            }
            if !t.eat(b",") {
                break;
            }
        }
        if t.in_brackets && !t.eat(b")") {
            return None;
        }
    }
    out.push(pos, module, ImportKind::PythonFrom { level, names });
    Some(t.pos)
}

/// A dotted name `a.b.c` (spaces allowed around the dots), as `a.b.c`.
fn dotted(t: &mut Toks) -> Option<String> {
    let first = t.ident()?;
    let mut name = String::from_utf8_lossy(&t.b[first]).into_owned();
    loop {
        let save = t.pos;
        if !t.eat(b".") {
            break;
        }
        match t.ident() {
            Some(seg) => {
                name.push('.');
                name.push_str(&String::from_utf8_lossy(&t.b[seg]));
            }
            None => {
                t.pos = save;
                break;
            }
        }
    }
    Some(name)
}
