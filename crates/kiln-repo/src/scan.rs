//! Parse-free import extraction: the same [`FileFacts`] as [`crate::imports::analyze`] on
//! well-formed code, from one byte-level pass per file instead of a tree-sitter parse.
//!
//! Why: the corpus pipeline parsed every file only to read its imports (and an optional syntax
//! error share); the parse was most of the pipeline's time. With the quality screen off, the
//! imports are all it needs, and a small lexer that knows where comments and string literals are
//! finds the import statements at a fraction of the cost.
//!
//! How: per language, one pass with a lexer that skips comments and string literals (the bytes
//! that can open one are looked up in a 256-entry table; everything else is skipped in a tight
//! loop), while an Aho-Corasick automaton proposes the positions of the import keywords. A
//! keyword reached in code (not skipped as part of a comment or a string) at a place where the
//! grammar allows the statement is read with a small token reader that mirrors what `analyze`
//! reads from the tree: the same text (whitespace dropped from dotted names, quotes dropped from
//! specifiers), the same kind, the same 1-based line (of the statement for Python, Java, C# and
//! Rust, of the specifier string for C/C++, JavaScript/TypeScript and Go). The language modules
//! list the grammar quirks they reproduce (`from __future__`, `#include` in struct bodies, a
//! comment before `require`'s argument, ...).
//!
//! The equality with `analyze` is checked by a differential test over the fixture repositories,
//! crafted cases per language and, by hand, whole trees (`KILN_SCAN_DIFF_DIR`).
//! [`FileFacts::error_share`] is `None`: there is no parse.
//!
//! The same lexers, run in a region mode that reads no statement (`Out::regions`), tell
//! [`crate::code`] where a file's comments and literals are.
//!
//! ## Where `scan` differs, deliberately or unavoidably
//! * Input tree-sitter cannot parse (its error share > 0): `analyze` reports what its error
//!   recovery kept (it drops a C `#include` inside an initializer list, and whatever follows
//!   C++ the C grammar cannot read in a `.h` file); `scan` reads the statements as written.
//! * A `\` continuation or a comment inside a dotted name or path: the node text keeps it
//!   (`import a.\` + newline + `b` gives `a.\b`, `use a::/*c*/b` gives `a::/*c*/b`); `scan` gives
//!   the name (`a.b`, `a::b`). Java and C# names keep the node text, as `analyze` does.
//! * No grammar, only heuristics: a `/` is taken for a regex or a division by the token before
//!   it; JSX text is lexed as code (an apostrophe in it opens a string, which ends with its
//!   line); a C `struct` head with a macro call between the word and the `{` is not known as a
//!   record head (attributes such as `__attribute__((packed))` are).

use aho_corasick::AhoCorasick;

use crate::code::Region;
use crate::imports::{FileFacts, ImportKind, RawImport};
use crate::lang::ImportSyntax;

mod c;
mod csharp;
mod go;
mod java;
mod js;
mod python;
mod rust;
#[cfg(test)]
mod tests;

/// The imports and declarations of `source`, as [`crate::imports::analyze`] reports them on
/// well-formed code, without parsing. `error_share` is `None`.
pub fn scan(syntax: ImportSyntax, source: &str) -> FileFacts {
    let mut out = Out::new(source.as_bytes());
    run(syntax, &mut out);
    out.facts
}

/// The comments and literals of `source` as the lexer of `syntax` skips them, in order (the
/// lexing of [`scan`], with the import statements not read: see [`Out::regions`]).
pub(crate) fn regions(syntax: ImportSyntax, source: &str) -> Vec<(std::ops::Range<usize>, Region)> {
    let mut out = Out::new(source.as_bytes());
    out.regions = Some(Vec::new());
    run(syntax, &mut out);
    out.regions.unwrap_or_default()
}

fn run(syntax: ImportSyntax, out: &mut Out) {
    use ImportSyntax::*;
    match syntax {
        Python => python::scan(out),
        Java => java::scan(out),
        CSharp => csharp::scan(out),
        C => c::scan(out, false),
        Cpp => c::scan(out, true),
        JavaScript => js::scan(out, false),
        TypeScript | Tsx => js::scan(out, true),
        Go => go::scan(out),
        Rust => rust::scan(out),
    }
}

// ---------------------------------------------------------------------------------------------
// Output

/// The facts being collected, with the line of each import computed from its byte position.
pub(crate) struct Out<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) facts: FileFacts,
    lines: Lines,
    /// Position of the last pushed import (see [`Out::push`]).
    last_pos: usize,
    /// Region mode ([`regions`], for [`crate::code`]): the comments and literals the lexer
    /// skipped, as [`Lexer::region`] names them. In this mode [`drive`] reads no keyword: the
    /// statement readers skip comments and literals of their own (an import's specifier string,
    /// a comment inside `from m import (a, # c`), which the map must see, and nothing they do
    /// changes how the lexer reads the rest (brackets, braces and template holes are all
    /// tracked in [`Lexer::byte`]), so the lexer alone sees every comment and literal.
    pub(crate) regions: Option<Vec<(std::ops::Range<usize>, Region)>>,
}

impl<'a> Out<'a> {
    fn new(b: &'a [u8]) -> Self {
        Out { b, facts: FileFacts::default(), lines: Lines { pos: 0, line: 1 }, last_pos: usize::MAX, regions: None }
    }

    /// Records an import whose node starts at byte `pos` (which gives its line). Empty texts are
    /// dropped, and so is an exact repeat from the same node (`import os, os`, `use a::{b, b}`):
    /// `analyze` sorts by node position and drops adjacent duplicates.
    pub(crate) fn push(&mut self, pos: usize, text: String, kind: ImportKind) {
        if text.is_empty() {
            return;
        }
        let line = self.lines.at(self.b, pos);
        let imp = RawImport { text, kind, line };
        if pos == self.last_pos && self.facts.imports.last() == Some(&imp) {
            return;
        }
        self.last_pos = pos;
        self.facts.imports.push(imp);
    }

    /// Source text of a byte range (ranges come from the lexer, so they sit on char boundaries
    /// of ASCII delimiters; `from_utf8_lossy` only guards against a wrong range).
    pub(crate) fn text(&self, r: std::ops::Range<usize>) -> std::borrow::Cow<'a, str> {
        String::from_utf8_lossy(&self.b[r])
    }

    /// Source text of a range with all whitespace removed, as `analyze` compacts dotted names.
    pub(crate) fn compact(&self, r: std::ops::Range<usize>) -> String {
        self.text(r).chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// The text between a literal's delimiters (`"x.h"` → `x.h`).
    pub(crate) fn unquote(&self, r: std::ops::Range<usize>) -> String {
        if r.len() < 2 {
            return String::new();
        }
        self.text(r.start + 1..r.end - 1).into_owned()
    }
}

/// Maps byte positions to 1-based lines, counting newlines incrementally: positions come in
/// (almost always) increasing order, so each byte is counted about once.
struct Lines {
    pos: usize,
    line: usize,
}

impl Lines {
    fn at(&mut self, b: &[u8], pos: usize) -> usize {
        let pos = pos.min(b.len());
        if pos >= self.pos {
            self.line += count_newlines(&b[self.pos..pos]);
        } else {
            self.line -= count_newlines(&b[pos..self.pos]);
        }
        self.pos = pos;
        self.line
    }
}

fn count_newlines(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

// ---------------------------------------------------------------------------------------------
// The driver

/// One language's lexer, driven by [`drive`].
pub(crate) trait Lexer {
    /// Bytes at which the lexer must look (comment and literal openers, brackets it tracks);
    /// may depend on the lexer's state.
    fn table(&self) -> &'static [bool; 256];
    /// Handles the interesting byte at `pos`; returns where to continue (> `pos`).
    fn byte(&mut self, out: &mut Out, pos: usize) -> usize;
    /// Handles keyword `pattern` (an index into the finder's words) found at `pos` in code;
    /// returns where to continue (> `pos`).
    fn keyword(&mut self, out: &mut Out, pattern: usize, pos: usize) -> usize;
    /// What [`Lexer::byte`] is about to skip from `pos` (asked just before it, in region mode
    /// only): a comment, a literal, or code (`None`: a bracket, a directive, a macro's `!`).
    /// A literal of one byte is code (a division sign, a lifetime's quote, a digit separator);
    /// a comment may be one byte (Python's `#` alone on its line).
    fn region(&self, b: &[u8], pos: usize) -> Option<Region>;
}

/// Runs `lexer` over the whole file: skips bytes the lexer's table calls uninteresting, hands it
/// the others, and hands it each keyword match that was not skipped over as part of a comment
/// or a literal.
pub(crate) fn drive(out: &mut Out, finder: Option<&AhoCorasick>, lexer: &mut impl Lexer) {
    let b = out.b;
    let n = b.len();
    // Region mode reads no keyword (see [`Out::regions`]).
    let finder = finder.filter(|_| out.regions.is_none());
    let mut matches = finder.map(|f| f.find_iter(b));
    let mut next_kw: Option<(usize, usize)> = None; // (start, pattern) of the next keyword match
    let mut i = 0;
    while i < n {
        // The next keyword match at or after `i` (those before were inside skipped text).
        while next_kw.is_none_or(|(start, _)| start < i) {
            match matches.as_mut().and_then(Iterator::next) {
                Some(m) => next_kw = Some((m.start(), m.pattern().as_usize())),
                None => {
                    next_kw = Some((n, 0));
                    break;
                }
            }
        }
        let (kw_at, pattern) = next_kw.unwrap_or((n, 0));
        let table = lexer.table();
        let stop = b[i..kw_at].iter().position(|&c| table[c as usize]).map_or(kw_at, |p| i + p);
        if stop >= n {
            break;
        }
        let next = if stop == kw_at {
            lexer.keyword(out, pattern, stop)
        } else if out.regions.is_some() {
            let region = lexer.region(b, stop);
            let next = lexer.byte(out, stop);
            if let (Some(kind), Some(regions)) = (region, out.regions.as_mut()) {
                if next > stop + 1 || kind == Region::Comment {
                    regions.push((stop..next.min(n), kind));
                }
            }
            next
        } else {
            lexer.byte(out, stop)
        };
        i = next.max(stop + 1);
    }
}

/// A 256-entry membership table for `bytes`.
pub(crate) const fn table(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
}

/// An automaton for a language's keywords (built once per process).
pub(crate) fn finder(cell: &'static std::sync::OnceLock<AhoCorasick>, words: &[&str]) -> &'static AhoCorasick {
    cell.get_or_init(|| AhoCorasick::new(words).expect("a few fixed keywords always build an automaton"))
}

// ---------------------------------------------------------------------------------------------
// Byte-level helpers shared by the lexers

/// Bytes that continue an identifier, for the word-boundary checks. Non-ASCII bytes count as
/// identifier bytes (`importé` is one identifier); `$` too (JavaScript, Java, Rust macros).
pub(crate) fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Whether `word` (of length `len`) at `pos` is a whole word, not part of a longer identifier
/// (a byte-order mark before it is no identifier either).
pub(crate) fn whole_word(b: &[u8], pos: usize, len: usize) -> bool {
    let starts = pos == 0 || !is_ident(b[pos - 1]) || (pos == BOM.len() && b.starts_with(BOM));
    starts && b.get(pos + len).is_none_or(|&c| !is_ident(c))
}

/// The UTF-8 byte-order mark.
pub(crate) const BOM: &[u8] = "\u{feff}".as_bytes();

/// End of the identifier starting at `i` (== `i` if none).
pub(crate) fn ident_end(b: &[u8], i: usize) -> usize {
    i + b[i.min(b.len())..].iter().take_while(|&&c| is_ident(c)).count()
}

/// Position of the last non-blank byte before `pos` (spaces and tabs only), or `None` at the
/// start of the file.
pub(crate) fn prev_nonblank(b: &[u8], pos: usize) -> Option<usize> {
    b[..pos].iter().rposition(|&c| !matches!(c, b' ' | b'\t' | b'\x0c'))
}

/// Position of the last byte before `pos` that is not whitespace (newlines included).
pub(crate) fn prev_nonspace(b: &[u8], pos: usize) -> Option<usize> {
    b[..pos].iter().rposition(|c| !c.is_ascii_whitespace())
}

/// The identifier that ends right before `end` (start position), if any.
pub(crate) fn word_before(b: &[u8], end: usize) -> Option<usize> {
    let start = b[..end].iter().rposition(|&c| !is_ident(c)).map_or(0, |p| p + 1);
    (start < end).then_some(start)
}

/// The last run of comments a lexer skipped (comments with only whitespace between them), so
/// that looking back from a keyword for the previous token can step over them: a comment that
/// ends in `.` before `package x;` must not make `package` look like a member access.
#[derive(Default)]
pub(crate) struct Trail {
    start: usize,
    end: usize,
}

impl Trail {
    /// Records a comment skipped at `start..end`; returns `end`.
    pub(crate) fn comment(&mut self, b: &[u8], start: usize, end: usize) -> usize {
        let joins = self.end > 0 && self.end <= start && b[self.end..start].iter().all(u8::is_ascii_whitespace);
        if !joins {
            self.start = start;
        }
        self.end = end;
        end
    }

    /// Position of the last byte of code before `pos`: not whitespace, not in the comment run.
    pub(crate) fn prev_code(&self, b: &[u8], pos: usize) -> Option<usize> {
        let p = prev_nonspace(b, pos)?;
        if (self.start..self.end).contains(&p) {
            prev_nonspace(b, self.start)
        } else {
            Some(p)
        }
    }

    /// Start of the word before `pos` (comments and whitespace skipped) if it is `word`.
    pub(crate) fn prev_word_is(&self, b: &[u8], pos: usize, word: &[u8]) -> Option<usize> {
        let end = self.prev_code(b, pos)? + 1;
        let start = word_before(b, end)?;
        (&b[start..end] == word).then_some(start)
    }
}

/// Position of the next `\n` at or after `i` (or the end): skips a line comment.
pub(crate) fn line_end(b: &[u8], i: usize) -> usize {
    b[i.min(b.len())..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p)
}

/// Skips a `/* ... */` comment starting at `i`; returns the position after it (or the end).
pub(crate) fn block_comment_end(b: &[u8], i: usize) -> usize {
    let body = i + 2;
    b.get(body..).and_then(|rest| rest.windows(2).position(|w| w == b"*/")).map_or(b.len(), |p| body + p + 2)
}

/// Skips a quoted literal whose opening delimiter `q` is at `i`, with `\` escaping the next
/// byte. Unless `multiline`, an unescaped newline ends it (where the lexer of every language
/// gives up on the literal too): an unterminated quote in odd text spoils one line, not the
/// rest of the file. Returns the position after the closing quote (or of the newline).
pub(crate) fn quoted_end(b: &[u8], i: usize, q: u8, multiline: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            c if c == q => return j + 1,
            b'\\' => j += 2,
            b'\n' if !multiline => return j,
            _ => j += 1,
        }
    }
    b.len()
}

/// Skips a literal opened by `delim` (a run of quotes: Python `'''`, Java `"""`) at `i`, with
/// `\` escapes; returns the position after the closing run (or the end).
pub(crate) fn delimited_end(b: &[u8], i: usize, delim: &[u8]) -> usize {
    let mut j = i + delim.len();
    while j < b.len() {
        if b[j] == b'\\' {
            j += 2;
        } else if b[j..].starts_with(delim) {
            return j + delim.len();
        } else {
            j += 1;
        }
    }
    b.len()
}

/// How a language writes comments, for [`Toks`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comments {
    /// `#` to end of line; newlines are significant unless `in_brackets` (set by the reader).
    Hash,
    /// `//` and `/* */`.
    Slash,
    /// `//` and nested `/* */` (Rust).
    SlashNested,
}

/// A token reader for one statement, started after its keyword: skips whitespace and comments
/// between tokens, and reads identifiers, punctuation and literals.
pub(crate) struct Toks<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) pos: usize,
    comments: Comments,
    /// Python: inside `( )`, where newlines and comments are whitespace.
    pub(crate) in_brackets: bool,
    /// Whether the last [`Toks::skip`] passed a comment (C# and JavaScript care).
    pub(crate) saw_comment: bool,
    /// Span of the last comment skipped (C# reads it, see `csharp`).
    pub(crate) last_comment: Option<std::ops::Range<usize>>,
}

impl<'a> Toks<'a> {
    pub(crate) fn new(b: &'a [u8], pos: usize, comments: Comments) -> Self {
        Toks { b, pos, comments, in_brackets: false, saw_comment: false, last_comment: None }
    }

    /// Skips whitespace and comments.
    pub(crate) fn skip(&mut self) {
        self.saw_comment = false;
        while let Some(&c) = self.b.get(self.pos) {
            let next = self.b.get(self.pos + 1).copied();
            let start = self.pos;
            match (self.comments, c, next) {
                (Comments::Hash, b'\\', Some(b'\n')) => self.pos += 2,
                (Comments::Hash, b'\\', Some(b'\r')) if self.b.get(self.pos + 2) == Some(&b'\n') => self.pos += 3,
                (Comments::Hash, b'\n' | b'\r', _) if !self.in_brackets => return,
                (Comments::Hash, b'#', _) if self.in_brackets => self.pos = line_end(self.b, self.pos),
                (Comments::Hash, b'#', _) => return, // a comment ends the statement
                (_, c, _) if c.is_ascii_whitespace() => self.pos += 1,
                (Comments::Slash | Comments::SlashNested, b'/', Some(b'/')) => self.pos = line_end(self.b, self.pos),
                (Comments::Slash, b'/', Some(b'*')) => self.pos = block_comment_end(self.b, self.pos),
                (Comments::SlashNested, b'/', Some(b'*')) => self.pos = rust::nested_comment_end(self.b, self.pos),
                _ => return,
            }
            if self.b.get(start) == Some(&b'/') || (self.comments == Comments::Hash && c == b'#') {
                self.saw_comment = true;
                self.last_comment = Some(start..self.pos);
            }
        }
    }

    /// The next byte after whitespace and comments.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.skip();
        self.b.get(self.pos).copied()
    }

    /// Consumes `s` (punctuation) if it comes next.
    pub(crate) fn eat(&mut self, s: &[u8]) -> bool {
        self.skip();
        if self.b[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Reads an identifier (any run of identifier bytes not starting with a digit).
    pub(crate) fn ident(&mut self) -> Option<std::ops::Range<usize>> {
        self.skip();
        let start = self.pos;
        if self.b.get(start).is_none_or(|c| c.is_ascii_digit()) {
            return None;
        }
        let end = ident_end(self.b, start);
        (end > start).then(|| {
            self.pos = end;
            start..end
        })
    }

    /// Consumes the keyword `w` if it comes next as a whole word.
    pub(crate) fn eat_word(&mut self, w: &[u8]) -> bool {
        self.skip();
        if self.b[self.pos..].starts_with(w) && whole_word(self.b, self.pos, w.len()) {
            self.pos += w.len();
            true
        } else {
            false
        }
    }

    /// Whether the keyword `w` comes next (without consuming it).
    pub(crate) fn at_word(&mut self, w: &[u8]) -> bool {
        let save = self.pos;
        let found = self.eat_word(w);
        self.pos = save;
        found
    }

    /// Reads a `'`/`"` string literal that ends on its line, if one comes next; returns its
    /// span with the quotes.
    pub(crate) fn quoted(&mut self, quotes: &[u8]) -> Option<std::ops::Range<usize>> {
        self.skip();
        let start = self.pos;
        let q = *self.b.get(start)?;
        if !quotes.contains(&q) {
            return None;
        }
        let end = quoted_end(self.b, start, q, false);
        if end <= start + 1 || self.b[end - 1] != q {
            return None; // unterminated
        }
        self.pos = end;
        Some(start..end)
    }
}
