//! JavaScript and TypeScript (TSX too): the module specifier of `import ... from "s"`,
//! `import "s"`, `export * from "s"`, `export { a } from "s"`, `require("s")`, `import("s")`,
//! TypeScript's `import x = require("s")`, `import type`, `export type`. The line is the
//! specifier's line.
//!
//! Lexing: `//` and `/* */` comments, `'`/`"` strings, template literals whose `${ }` holes are
//! lexed as code (a `require` in a hole counts), and regular expression literals, told from a
//! division by the token before the `/` (after a name, a number, `)`, `]` or a literal it is a
//! division; after an operator, `(`, `,`, a keyword such as `return`, or `}` it is a regex; a
//! regex that does not close on its line was a division). `</` and `/>` are JSX tags.
//!
//! Mirrors of tree-sitter: a `require`/`import(` call counts only when its first argument is a
//! string (not `"a" + b`), with no comment before it (the grammar's first named child would be
//! the comment: `import(/* webpackChunkName */ "x")` is not reported); `new require("x")`,
//! `x.require("x")` and `#require` are not calls of `require`; `export import x = require("s")`
//! is a syntax error for the TypeScript grammar and gives nothing.

use std::sync::OnceLock;

use super::{block_comment_end, drive, finder, line_end, quoted_end, table, whole_word, word_before, Comments, Lexer, Out, Toks, Trail};
use crate::code::Region;
use crate::imports::ImportKind;

const WORDS: &[&str] = &["import", "export", "require"];
static FINDER: OnceLock<aho_corasick::AhoCorasick> = OnceLock::new();
static CODE: [bool; 256] = table(b"/\"'`");
/// Inside a template hole, braces are counted to find the hole's end.
static CODE_IN_HOLE: [bool; 256] = table(b"/\"'`{}");
/// Words after which a `/` starts a regex literal rather than a division.
const BEFORE_REGEX: &[&[u8]] =
    &[b"return", b"typeof", b"instanceof", b"in", b"of", b"new", b"delete", b"void", b"throw", b"case", b"do", b"else", b"yield", b"await"];
const QUOTES: &[u8] = b"'\"";

pub(super) fn scan(out: &mut Out, typescript: bool) {
    drive(out, Some(finder(&FINDER, WORDS)), &mut Js { typescript, holes: Vec::new(), trail: Trail::default() });
}

struct Js {
    typescript: bool,
    /// For each template hole (`${`) we are in, innermost last: braces opened in it so far.
    holes: Vec<u32>,
    trail: Trail,
}

impl Lexer for Js {
    fn table(&self) -> &'static [bool; 256] {
        if self.holes.is_empty() {
            &CODE
        } else {
            &CODE_IN_HOLE
        }
    }

    fn byte(&mut self, out: &mut Out, pos: usize) -> usize {
        let b = out.b;
        match (b[pos], b.get(pos + 1)) {
            (b'/', Some(b'/')) => self.trail.comment(b, pos, line_end(b, pos)),
            (b'/', Some(b'*')) => self.trail.comment(b, pos, block_comment_end(b, pos)),
            (b'/', _) => slash(b, pos, &self.trail),
            (q @ (b'\'' | b'"'), _) => quoted_end(b, pos, q, false),
            (b'`', _) => self.template(b, pos + 1),
            (b'{', _) => {
                if let Some(open) = self.holes.last_mut() {
                    *open += 1;
                }
                pos + 1
            }
            (b'}', _) => match self.holes.last_mut() {
                Some(0) => {
                    self.holes.pop();
                    self.template(b, pos + 1)
                }
                Some(open) => {
                    *open -= 1;
                    pos + 1
                }
                None => pos + 1,
            },
            _ => pos + 1,
        }
    }

    fn keyword(&mut self, out: &mut Out, pattern: usize, pos: usize) -> usize {
        let b = out.b;
        let word = WORDS[pattern].len();
        if !whole_word(b, pos, word) || is_member(b, pos, &self.trail) {
            return pos + word;
        }
        let end = match pattern {
            0 => import(out, pos, self.typescript, &self.trail),
            1 => export(out, pos),
            _ => require(out, pos, &self.trail),
        };
        end.unwrap_or(pos + word)
    }

    fn region(&self, b: &[u8], pos: usize) -> Option<Region> {
        match (b[pos], b.get(pos + 1)) {
            (b'/', Some(b'/' | b'*')) => Some(Region::Comment),
            // A regex literal (a division is a one-byte skip).
            (b'/', _) => Some(Region::Literal),
            (b'\'' | b'"' | b'`', _) => Some(Region::Literal),
            // The `}` closing a template hole: the template's text after it.
            (b'}', _) if self.holes.last() == Some(&0) => Some(Region::Literal),
            _ => None,
        }
    }
}

impl Js {
    /// Template text from `j` (after a backquote or a hole's `}`): to the closing backquote, or
    /// into the next hole.
    fn template(&mut self, b: &[u8], mut j: usize) -> usize {
        while j < b.len() {
            match (b[j], b.get(j + 1)) {
                (b'`', _) => return j + 1,
                (b'\\', _) => j += 2,
                (b'$', Some(b'{')) => {
                    self.holes.push(0);
                    return j + 2;
                }
                _ => j += 1,
            }
        }
        b.len()
    }
}

/// Whether the word at `pos` is a property (`x.require`, `x?.import`) or a private name
/// (`#require`), not a spread (`...require(x)`).
fn is_member(b: &[u8], pos: usize, trail: &Trail) -> bool {
    match trail.prev_code(b, pos) {
        Some(p) if b[p] == b'#' => true,
        Some(p) if b[p] == b'.' => !(p >= 2 && &b[p - 2..p] == b".."),
        _ => false,
    }
}

/// A `/` that opens neither comment: skips a regex literal, or just the division sign.
fn slash(b: &[u8], pos: usize, trail: &Trail) -> usize {
    let regex = match trail.prev_code(b, pos) {
        None => true,
        Some(p) => match b[p] {
            b'<' => return pos + 1,                                  // `</tag>`
            b'}' if b.get(pos + 1) == Some(&b'>') => return pos + 1, // `<X a={b} />`
            b')' | b']' | b'"' | b'\'' | b'`' => false,
            c if super::is_ident(c) => {
                let start = word_before(b, p + 1).unwrap_or(p);
                BEFORE_REGEX.contains(&&b[start..=p])
            }
            _ => true,
        },
    };
    if regex {
        regex_end(b, pos).unwrap_or(pos + 1)
    } else {
        pos + 1
    }
}

/// End of a regex literal at `pos` (flags are skipped later as a word); `None` if it does not
/// close on its line.
fn regex_end(b: &[u8], pos: usize) -> Option<usize> {
    let mut j = pos + 1;
    let mut in_class = false;
    while let Some(&c) = b.get(j) {
        match c {
            b'\\' => j += 1,
            b'\n' => return None,
            b'[' => in_class = true,
            b']' => in_class = false,
            b'/' if !in_class => return Some(j + 1),
            _ => {}
        }
        j += 1;
    }
    None
}

/// `require("s")` at `pos`.
fn require(out: &mut Out, pos: usize, trail: &Trail) -> Option<usize> {
    if trail.prev_word_is(out.b, pos, b"new").is_some() {
        return None; // a `new_expression`, not a call
    }
    let mut t = Toks::new(out.b, pos + "require".len(), Comments::Slash);
    if !t.eat(b"(") {
        return None;
    }
    let spec = first_argument(&mut t)?;
    out.push(spec.start, out.unquote(spec.clone()), ImportKind::JsSpecifier);
    Some(spec.end)
}

/// The string that is the first argument of a call, after its `(`.
fn first_argument(t: &mut Toks) -> Option<std::ops::Range<usize>> {
    t.skip();
    if t.saw_comment {
        return None; // the comment would be the first named child
    }
    let spec = t.quoted(QUOTES)?;
    matches!(t.peek(), Some(b',' | b')')).then_some(spec)
}

/// The `import` at `pos`: a statement, a dynamic `import("s")`, or neither (`import.meta`).
fn import(out: &mut Out, pos: usize, typescript: bool, trail: &Trail) -> Option<usize> {
    if trail.prev_word_is(out.b, pos, b"export").is_some() {
        return None; // TypeScript `export import a = b.c` (with `require(..)` a syntax error)
    }
    let mut t = Toks::new(out.b, pos + "import".len(), Comments::Slash);
    let spec = match t.peek()? {
        b'(' => {
            t.pos += 1;
            first_argument(&mut t)?
        }
        b'\'' | b'"' => t.quoted(QUOTES)?,
        _ => import_clause(&mut t, typescript)?,
    };
    out.push(spec.start, out.unquote(spec.clone()), ImportKind::JsSpecifier);
    Some(spec.end)
}

/// After `import`: the bindings (`x`, `* as ns`, `{ a, b as c }`, `type`), then `from "s"`; or,
/// in TypeScript, `x = require("s")`. The specifier's span.
fn import_clause(t: &mut Toks, typescript: bool) -> Option<std::ops::Range<usize>> {
    loop {
        if t.eat_word(b"from") {
            if let Some(spec) = t.quoted(QUOTES) {
                return Some(spec);
            }
            continue; // a binding named `from`
        }
        match t.peek()? {
            b'{' => skip_braces(t)?,
            b',' | b'*' => t.pos += 1,
            b'=' if typescript => {
                t.pos += 1;
                if !(t.eat_word(b"require") && t.eat(b"(")) {
                    return None; // `import a = b.c`: an alias, no module
                }
                return t.quoted(QUOTES);
            }
            _ => {
                t.ident()?;
            }
        }
    }
}

/// `export * from "s"`, `export * as ns from "s"`, `export { a } from "s"` (and `export type`).
fn export(out: &mut Out, pos: usize) -> Option<usize> {
    let mut t = Toks::new(out.b, pos + "export".len(), Comments::Slash);
    t.eat_word(b"type");
    if t.eat(b"*") {
        if t.eat_word(b"as") && t.ident().is_none() {
            t.quoted(QUOTES)?;
        }
    } else if t.peek()? == b'{' {
        skip_braces(&mut t)?;
    } else {
        return None;
    }
    if !t.eat_word(b"from") {
        return None;
    }
    let spec = t.quoted(QUOTES)?;
    out.push(spec.start, out.unquote(spec.clone()), ImportKind::JsSpecifier);
    Some(spec.end)
}

/// Skips a `{ a, b as c, "d" as e }` binding list; `None` if it holds something else.
fn skip_braces(t: &mut Toks) -> Option<()> {
    t.pos += 1;
    loop {
        match t.peek()? {
            b'}' => {
                t.pos += 1;
                return Some(());
            }
            b',' => t.pos += 1,
            b'\'' | b'"' => {
                t.quoted(QUOTES)?;
            }
            _ => {
                t.ident()?;
            }
        }
    }
}
