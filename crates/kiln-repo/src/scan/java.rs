//! Java: `import [static] a.b.C[.*];` and the first `package a.b;`.
//!
//! Both words are reserved, so every one of them in code (not in a comment, a string, a char
//! literal or a `"""` text block) starts its declaration.

use std::sync::OnceLock;

use super::{block_comment_end, delimited_end, drive, finder, line_end, quoted_end, table, whole_word, Comments, Lexer, Out, Toks, Trail};
use crate::code::Region;
use crate::imports::ImportKind;

const WORDS: &[&str] = &["import", "package"];
static FINDER: OnceLock<aho_corasick::AhoCorasick> = OnceLock::new();
static TABLE: [bool; 256] = table(b"/\"'");

pub(super) fn scan(out: &mut Out) {
    drive(out, Some(finder(&FINDER, WORDS)), &mut Java(Trail::default()));
}

struct Java(Trail);

impl Lexer for Java {
    fn table(&self) -> &'static [bool; 256] {
        &TABLE
    }

    fn byte(&mut self, out: &mut Out, pos: usize) -> usize {
        slash_quote_byte(out.b, pos, true, &mut self.0)
    }

    fn keyword(&mut self, out: &mut Out, pattern: usize, pos: usize) -> usize {
        let b = out.b;
        let word = WORDS[pattern].len();
        if !whole_word(b, pos, word) || self.0.prev_code(b, pos).is_some_and(|p| b[p] == b'.') {
            return pos + word;
        }
        let mut t = Toks::new(b, pos + word, Comments::Slash);
        if pattern == 1 {
            if let Some(name) = dotted(&mut t) {
                if out.facts.package.is_none() {
                    out.facts.package = Some(out.compact(name));
                }
            }
            return t.pos.max(pos + word);
        }
        let static_ = t.eat_word(b"static");
        let Some(name) = dotted(&mut t) else { return pos + word };
        let wildcard = t.eat(b".") && t.eat(b"*");
        out.push(pos, out.compact(name), ImportKind::JavaImport { static_, wildcard });
        t.pos
    }

    fn region(&self, b: &[u8], pos: usize) -> Option<Region> {
        slash_quote_region(b, pos)
    }
}

/// A dotted name `a.b.C`; its span (stops before a `.` not followed by a name, as in `.*`).
fn dotted(t: &mut Toks) -> Option<std::ops::Range<usize>> {
    let first = t.ident()?;
    let mut end = first.end;
    loop {
        let save = t.pos;
        match (t.eat(b"."), t.ident()) {
            (true, Some(seg)) => end = seg.end,
            _ => {
                t.pos = save;
                return Some(first.start..end);
            }
        }
    }
}

/// The lexer step shared by the languages whose only comment and literal openers are `/`, `"`
/// and `'` (Java, and Go without its raw strings): skips a comment or a literal starting at
/// `pos` (comments are recorded in `trail`). `text_blocks`: `"""` opens a Java text block.
pub(super) fn slash_quote_byte(b: &[u8], pos: usize, text_blocks: bool, trail: &mut Trail) -> usize {
    match (b[pos], b.get(pos + 1)) {
        (b'/', Some(b'/')) => trail.comment(b, pos, line_end(b, pos)),
        (b'/', Some(b'*')) => trail.comment(b, pos, block_comment_end(b, pos)),
        (b'"', _) if text_blocks && b[pos..].starts_with(b"\"\"\"") => delimited_end(b, pos, b"\"\"\""),
        (q @ (b'"' | b'\''), _) => quoted_end(b, pos, q, false),
        _ => pos + 1,
    }
}

/// What [`slash_quote_byte`] skips from `pos`.
pub(super) fn slash_quote_region(b: &[u8], pos: usize) -> Option<Region> {
    match (b[pos], b.get(pos + 1)) {
        (b'/', Some(b'/' | b'*')) => Some(Region::Comment),
        (b'"' | b'\'', _) => Some(Region::Literal),
        _ => None,
    }
}
