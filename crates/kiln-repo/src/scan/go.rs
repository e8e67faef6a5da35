//! Go: `import "p"`, `import m "p"`, `import ( ... )` blocks (names, `_`, `.`, raw `` `p` ``
//! paths), and the first `package x` clause. Both words are reserved. The line of an import is
//! the line of its path, as tree-sitter's capture is the path node.

use std::sync::OnceLock;

use super::{drive, finder, table, whole_word, Comments, Lexer, Out, Toks, Trail};
use crate::code::Region;
use crate::imports::ImportKind;

const WORDS: &[&str] = &["import", "package"];
static FINDER: OnceLock<aho_corasick::AhoCorasick> = OnceLock::new();
static TABLE: [bool; 256] = table(b"/\"'`");

pub(super) fn scan(out: &mut Out) {
    drive(out, Some(finder(&FINDER, WORDS)), &mut Go(Trail::default()));
}

struct Go(Trail);

impl Lexer for Go {
    fn table(&self) -> &'static [bool; 256] {
        &TABLE
    }

    fn byte(&mut self, out: &mut Out, pos: usize) -> usize {
        match out.b[pos] {
            b'`' => raw_string_end(out.b, pos),
            _ => super::java::slash_quote_byte(out.b, pos, false, &mut self.0),
        }
    }

    fn keyword(&mut self, out: &mut Out, pattern: usize, pos: usize) -> usize {
        let b = out.b;
        let word = WORDS[pattern].len();
        if !whole_word(b, pos, word) || self.0.prev_code(b, pos).is_some_and(|p| b[p] == b'.') {
            return pos + word;
        }
        let mut t = Toks::new(b, pos + word, Comments::Slash);
        if pattern == 1 {
            if let Some(name) = t.ident() {
                if out.facts.package.is_none() {
                    out.facts.package = Some(out.text(name).into_owned());
                }
            }
            return t.pos;
        }
        if t.eat(b"(") {
            while import_spec(out, &mut t) {
                t.eat(b";");
            }
            t.eat(b")");
        } else {
            import_spec(out, &mut t);
        }
        t.pos
    }

    fn region(&self, b: &[u8], pos: usize) -> Option<Region> {
        match b[pos] {
            b'`' => Some(Region::Literal),
            _ => super::java::slash_quote_region(b, pos),
        }
    }
}

/// One `[name] "path"` spec; false when none comes next.
fn import_spec(out: &mut Out, t: &mut Toks) -> bool {
    let save = t.pos;
    if !t.eat(b".") {
        t.ident();
    }
    let path = match t.peek() {
        Some(b'`') => {
            let start = t.pos;
            t.pos = raw_string_end(t.b, start);
            Some(start..t.pos)
        }
        _ => t.quoted(b"\""),
    };
    match path {
        Some(p) => {
            out.push(p.start, out.unquote(p.clone()), ImportKind::GoImport);
            true
        }
        None => {
            t.pos = save;
            false
        }
    }
}

/// Skips a raw string `` `...` `` (no escapes, may span lines).
fn raw_string_end(b: &[u8], pos: usize) -> usize {
    b[pos + 1..].iter().position(|&c| c == b'`').map_or(b.len(), |p| pos + p + 2)
}
