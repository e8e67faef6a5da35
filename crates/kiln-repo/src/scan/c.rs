//! C and C++: `#include "x"` and `#include <x>` (`#  include`, `#\tinclude` too).
//!
//! As in tree-sitter-c, a `#` in code starts a directive wherever it is (`int x; #include "a.h"`
//! is an include for the grammar, not only at the start of a line). A directive other than
//! `#include` is skipped to the end of its logical line, comments and `\` continuations
//! included, the way the grammar reads a `#define` body or an `#error` message as one opaque
//! argument: an `#include` in a macro body is not an include, an apostrophe in `#error don't`
//! opens no char literal. `#include MACRO`, `#include_next` and `#import` give nothing, as in
//! `analyze`. Line comments continue over a `\` at the end of the line, as in C.
//!
//! Also as in the grammar, an `#include` directly inside a `struct`/`union`/`class`/`enum` body
//! is no include (the body's grammar reads the directive as a generic preprocessor call), while
//! one in a function body, a `namespace` or an `extern "C"` block is. One exception, mirrored
//! too: an enum body cannot hold other directives, so after a `#define`, `#undef` or `#pragma`
//! in one (the X-macro pattern) the grammar has failed and its error recovery reports the
//! body's later includes. The scanner tracks braces and what each `{` opened (the `{` after one
//! of those words, before any `;`, `(`, `)` or `=`, attribute groups such as
//! `__attribute__((packed))` aside); across `#if`/`#else` branches it keeps the braces of the
//! first branch, so that branches that open the same body twice do not unbalance it.
//!
//! C++ raw strings `R"d( ... )d"` (with `u8R`, `LR`, ... prefixes) and digit separators
//! (`1'000`) are lexed; in C, `R"` is an identifier and a string, as tree-sitter-c has it.

use std::sync::OnceLock;

use super::{
    block_comment_end, drive, finder, ident_end, is_ident, quoted_end, table, whole_word, word_before, Comments, Lexer, Out, Toks,
};
use crate::code::Region;
use crate::imports::ImportKind;

/// Words whose `{` opens a record body.
const WORDS: &[&str] = &["struct", "union", "class", "enum"];
static FINDER: OnceLock<aho_corasick::AhoCorasick> = OnceLock::new();
static TABLE: [bool; 256] = table(b"/\"'#{};()=");

pub(super) fn scan(out: &mut Out, cpp: bool) {
    let directives_as_code = out.regions.is_some();
    let mut lexer = CLexer { cpp, braces: Vec::new(), head: Body::Code, conditionals: Vec::new(), directives_as_code };
    drive(out, Some(finder(&FINDER, WORDS)), &mut lexer);
}

struct CLexer {
    cpp: bool,
    /// One entry per open `{`: what it opened.
    braces: Vec<Body>,
    /// What the next `{` opens: a record word was seen and no `;`, `(`, `)`, `=` since.
    head: Body,
    /// Open `#if`s: the braces at the `#if`, and after its first branch once that ended.
    conditionals: Vec<(Vec<Body>, Option<Vec<Body>>)>,
    /// Region mode ([`super::Out::regions`]): a `#` is code and the directive after it is lexed
    /// as code, so that the comments and literals in it are seen (`#define N 4 // max`,
    /// `#include "x.h"`). The import scan skips a directive whole instead (an `#include` in a
    /// macro body is no include), which would hide them.
    directives_as_code: bool,
}

/// What a `{` opened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Code, a namespace, an `extern "C"` block, an initializer: includes count.
    Code,
    /// A struct, union or class body: includes do not count.
    Record,
    /// An enum body: includes do not count...
    Enum,
    /// ... until another directive broke the grammar's reading of it.
    BrokenEnum,
}

impl Lexer for CLexer {
    fn table(&self) -> &'static [bool; 256] {
        &TABLE
    }

    fn byte(&mut self, out: &mut Out, pos: usize) -> usize {
        let b = out.b;
        match (b[pos], b.get(pos + 1)) {
            (b'/', Some(b'/')) => line_comment_end(b, pos),
            (b'/', Some(b'*')) => block_comment_end(b, pos),
            (b'"', _) if self.cpp && raw_prefix(b, pos) => raw_string_end(b, pos),
            (b'"', _) => quoted_end(b, pos, b'"', false),
            (b'\'', _) if digit_separator(b, pos) => pos + 1,
            (b'\'', _) => quoted_end(b, pos, b'\'', false),
            (b'#', _) if self.directives_as_code => pos + 1,
            (b'#', _) => self.directive(out, pos),
            (b'{', _) => {
                self.braces.push(std::mem::replace(&mut self.head, Body::Code));
                pos + 1
            }
            (b'}', _) => {
                self.braces.pop();
                pos + 1
            }
            (b'(', _) if self.head != Body::Code && attribute_before(b, pos) => paren_group_end(b, pos),
            _ => {
                self.head = Body::Code; // `;`, `(`, `)`, `=`
                pos + 1
            }
        }
    }

    fn region(&self, b: &[u8], pos: usize) -> Option<Region> {
        match (b[pos], b.get(pos + 1)) {
            (b'/', Some(b'/' | b'*')) => Some(Region::Comment),
            // A digit separator is a one-byte skip.
            (b'"' | b'\'', _) => Some(Region::Literal),
            _ => None,
        }
    }

    fn keyword(&mut self, out: &mut Out, pattern: usize, pos: usize) -> usize {
        let word = WORDS[pattern].len();
        // `enum class E {` is an enum body.
        if whole_word(out.b, pos, word) && self.head != Body::Enum {
            self.head = if pattern == 3 { Body::Enum } else { Body::Record };
        }
        pos + word
    }
}

impl CLexer {
    /// A directive at `pos` (its `#`): reads an `#include`'s path, skips any other directive.
    fn directive(&mut self, out: &mut Out, pos: usize) -> usize {
        let b = out.b;
        let name = pos + 1 + b[pos + 1..].iter().take_while(|&&c| c == b' ' || c == b'\t').count();
        let name_end = ident_end(b, name);
        match &b[name..name_end] {
            b"include" => match self.braces.last() {
                Some(Body::Record | Body::Enum) => directive_end(b, name_end),
                _ => include(out, name_end),
            },
            b"if" | b"ifdef" | b"ifndef" => {
                self.conditionals.push((self.braces.clone(), None));
                directive_end(b, name_end)
            }
            b"elif" | b"else" | b"elifdef" | b"elifndef" => {
                if let Some((at_if, after_first)) = self.conditionals.last_mut() {
                    after_first.get_or_insert_with(|| std::mem::take(&mut self.braces));
                    self.braces.clone_from(at_if);
                }
                directive_end(b, name_end)
            }
            b"endif" => {
                if let Some((_, Some(after_first))) = self.conditionals.pop() {
                    self.braces = after_first;
                }
                directive_end(b, name_end)
            }
            _ => {
                if let Some(top @ Body::Enum) = self.braces.last_mut() {
                    *top = Body::BrokenEnum;
                }
                directive_end(b, name_end)
            }
        }
    }
}

/// Whether the `(` at `pos` opens the arguments of an attribute-like specifier, which may sit
/// between `struct` and its body.
fn attribute_before(b: &[u8], pos: usize) -> bool {
    const ATTRIBUTES: &[&[u8]] = &[b"__attribute__", b"__attribute", b"__declspec", b"alignas", b"_Alignas"];
    let end = b[..pos].iter().rposition(|c| !c.is_ascii_whitespace()).map_or(0, |p| p + 1);
    word_before(b, end).is_some_and(|start| ATTRIBUTES.contains(&&b[start..end]))
}

/// End of the balanced `( ... )` group at `pos`.
fn paren_group_end(b: &[u8], pos: usize) -> usize {
    let mut depth = 0usize;
    for (j, &c) in b.iter().enumerate().skip(pos) {
        match c {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            b';' | b'{' | b'}' => return j, // unbalanced: stop where the head must end
            _ => {}
        }
    }
    b.len()
}

/// An `#include`'s path, from `name_end` (after the word `include`).
fn include(out: &mut Out, name_end: usize) -> usize {
    let b = out.b;
    let mut t = Toks::new(b, name_end, Comments::Slash);
    let (path, kind) = match t.peek() {
        Some(b'"') => (t.quoted(b"\""), ImportKind::IncludeQuoted),
        Some(b'<') => (angled(&mut t), ImportKind::IncludeAngled),
        _ => return name_end, // `#include MACRO`: cannot be resolved without a preprocessor
    };
    match path {
        Some(p) => {
            out.push(p.start, out.unquote(p.clone()), kind);
            p.end
        }
        None => name_end,
    }
}

/// `<x.h>` (tree-sitter's `system_lib_string`: no newline inside, `\>` does not close it).
fn angled(t: &mut Toks) -> Option<std::ops::Range<usize>> {
    let start = t.pos;
    let mut j = start + 1;
    while let Some(&c) = t.b.get(j) {
        match c {
            b'>' => {
                t.pos = j + 1;
                return Some(start..j + 1);
            }
            b'\\' if t.b.get(j + 1) == Some(&b'>') => j += 2,
            b'\n' => return None,
            _ => j += 1,
        }
    }
    None
}

/// End of a directive's logical line: `\` continues it, a block comment may carry it over
/// lines, a line comment ends it.
fn directive_end(b: &[u8], mut j: usize) -> usize {
    while let Some(&c) = b.get(j) {
        match (c, b.get(j + 1)) {
            (b'\n', _) => return j,
            (b'\\', _) => j += 2,
            (b'/', Some(b'*')) => j = block_comment_end(b, j),
            (b'/', Some(b'/')) => return line_comment_end(b, j),
            _ => j += 1,
        }
    }
    b.len()
}

/// End of a `//` comment: a `\` before the newline continues it onto the next line.
fn line_comment_end(b: &[u8], mut j: usize) -> usize {
    while let Some(&c) = b.get(j) {
        match c {
            b'\n' => return j,
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    b.len()
}

/// Whether the `"` at `pos` opens a C++ raw string: `R`, `u8R`, `uR`, `UR` or `LR` before it.
fn raw_prefix(b: &[u8], pos: usize) -> bool {
    match word_before(b, pos) {
        Some(start) => matches!(&b[start..pos], b"R" | b"u8R" | b"uR" | b"UR" | b"LR"),
        None => false,
    }
}

/// Skips `"delim( ... )delim"` starting at the quote `pos`.
fn raw_string_end(b: &[u8], pos: usize) -> usize {
    let open = pos + 1;
    let Some(paren) = b[open..].iter().take(17).position(|&c| c == b'(') else {
        return quoted_end(b, pos, b'"', false); // not a valid raw string after all
    };
    let mut close = Vec::with_capacity(paren + 2);
    close.push(b')');
    close.extend_from_slice(&b[open..open + paren]);
    close.push(b'"');
    let body = open + paren + 1;
    b[body..].windows(close.len()).position(|w| w == close.as_slice()).map_or(b.len(), |p| body + p + close.len())
}

/// Whether the `'` at `pos` separates digits (`1'000'000`) rather than opening a char literal
/// (`'a'`, `u8'a'`, `L'a'`).
fn digit_separator(b: &[u8], pos: usize) -> bool {
    pos > 0 && is_ident(b[pos - 1]) && word_before(b, pos).is_some_and(|start| b[start].is_ascii_digit())
}
