//! C#: `[global] using [static] A.B;`, `using X = A.B<C>;`, block and file-scoped `namespace`
//! declarations.
//!
//! `using (..)` statements and `using var x = ..;` declarations are told apart from directives
//! by their shape (a directive is a name, or `alias = type`, then `;`). Strings: regular,
//! verbatim `@"..."` (`""` escapes, multi-line), interpolated `$"...{expr}..."` (holes lexed as
//! code, nested strings included), raw `"""..."""`; char literals; preprocessor lines (`#region
//! Using directives`) are skipped.
//!
//! Mirrors of tree-sitter-c-sharp: the line of a `global using` is the line of `global`; the text
//! of a directive is its last named child other than the alias, so a comment right before the
//! `;` (`using A.B /* x */;`) is the text (`/*x*/`), as `analyze` reports it.

use std::sync::OnceLock;

use super::{block_comment_end, drive, finder, line_end, quoted_end, table, whole_word, Comments, Lexer, Out, Toks, Trail};
use crate::code::Region;
use crate::imports::ImportKind;

const WORDS: &[&str] = &["using", "namespace"];
static FINDER: OnceLock<aho_corasick::AhoCorasick> = OnceLock::new();
static TABLE: [bool; 256] = table(b"/\"'@$#");
/// Nesting limit for strings inside interpolation holes (deeper is not real code).
const MAX_NESTING: usize = 32;

pub(super) fn scan(out: &mut Out) {
    drive(out, Some(finder(&FINDER, WORDS)), &mut CSharp(Trail::default()));
}

struct CSharp(Trail);

impl Lexer for CSharp {
    fn table(&self) -> &'static [bool; 256] {
        &TABLE
    }

    fn byte(&mut self, out: &mut Out, pos: usize) -> usize {
        let b = out.b;
        match (b[pos], b.get(pos + 1)) {
            (b'/', Some(b'/')) => self.0.comment(b, pos, line_end(b, pos)),
            (b'/', Some(b'*')) => self.0.comment(b, pos, block_comment_end(b, pos)),
            (b'#', _) => line_end(b, pos), // preprocessor directives are one line each
            _ => literal_end(b, pos, 0).unwrap_or(pos + 1),
        }
    }

    fn keyword(&mut self, out: &mut Out, pattern: usize, pos: usize) -> usize {
        let b = out.b;
        let word = WORDS[pattern].len();
        let after_ok = self.0.prev_code(b, pos).is_none_or(|p| !matches!(b[p], b'.' | b'@'));
        if !whole_word(b, pos, word) || !after_ok {
            return pos + word;
        }
        let end = if pattern == 0 { using(out, pos, &self.0) } else { namespace(out, pos) };
        end.unwrap_or(pos + word)
    }

    fn region(&self, b: &[u8], pos: usize) -> Option<Region> {
        match (b[pos], b.get(pos + 1)) {
            (b'/', Some(b'/' | b'*')) => Some(Region::Comment),
            (b'#', _) => None,          // a preprocessor line is code (`#region`, `#if DEBUG`)
            _ => Some(Region::Literal), // `"`, `'`, `@`, `$`: a one-byte skip if no literal starts there
        }
    }
}

/// A string or char literal starting at `pos` (its first byte: `"`, `'`, `@`, `$`): its end, or
/// `None` if no literal starts there.
fn literal_end(b: &[u8], pos: usize, nesting: usize) -> Option<usize> {
    // Prefix: `$`s then `@`, or `@` then `$`s (`$@"`, `@$"`, `$$"""`).
    let count_dollars = |j: usize| b[j..].iter().take_while(|&&c| c == b'$').count();
    let mut dollars = count_dollars(pos);
    let mut j = pos + dollars;
    let verbatim = b.get(j) == Some(&b'@');
    if verbatim {
        j += 1;
        if dollars == 0 {
            dollars = count_dollars(j);
            j += dollars;
        }
    }
    match b.get(j) {
        Some(b'"') if b[j..].starts_with(b"\"\"\"") => Some(raw_end(b, j)),
        Some(b'"') if dollars > 0 => Some(interpolated_end(b, j + 1, verbatim, nesting)),
        Some(b'"') if verbatim => Some(verbatim_end(b, j + 1)),
        Some(b'"') => Some(quoted_end(b, j, b'"', false)),
        Some(b'\'') if j == pos => Some(quoted_end(b, j, b'\'', false)),
        _ => None,
    }
}

/// `"""..."""` (three or more quotes, closed by as many).
fn raw_end(b: &[u8], open: usize) -> usize {
    let quotes = b[open..].iter().take_while(|&&c| c == b'"').count();
    let body = open + quotes;
    let close = &b[open..body];
    b[body..].windows(quotes).position(|w| w == close).map_or(b.len(), |p| body + p + quotes)
}

/// Verbatim body from `j` (after the quote): `""` is a quote, no other escapes.
fn verbatim_end(b: &[u8], mut j: usize) -> usize {
    while j < b.len() {
        if b[j] == b'"' {
            if b.get(j + 1) != Some(&b'"') {
                return j + 1;
            }
            j += 2;
        } else {
            j += 1;
        }
    }
    b.len()
}

/// Interpolated body from `j`: `{{` is a brace, `{` opens a hole of code up to its `}`.
fn interpolated_end(b: &[u8], mut j: usize, verbatim: bool, nesting: usize) -> usize {
    while j < b.len() {
        match (b[j], b.get(j + 1)) {
            (b'"', Some(b'"')) if verbatim => j += 2,
            (b'"', _) => return j + 1,
            (b'\\', _) if !verbatim => j += 2,
            (b'\n', _) if !verbatim => return j,
            (b'{', Some(b'{')) => j += 2,
            (b'{', _) => j = hole_end(b, j + 1, nesting + 1),
            _ => j += 1,
        }
    }
    b.len()
}

/// A hole's code from `j` to after its closing `}`, skipping nested literals and braces.
fn hole_end(b: &[u8], mut j: usize, nesting: usize) -> usize {
    let mut depth = 0usize;
    while j < b.len() {
        match b[j] {
            b'{' => depth += 1,
            b'}' if depth == 0 => return j + 1,
            b'}' => depth -= 1,
            b'"' | b'\'' | b'@' | b'$' if nesting < MAX_NESTING => {
                if let Some(end) = literal_end(b, j, nesting) {
                    j = end;
                    continue;
                }
            }
            _ => {}
        }
        j += 1;
    }
    b.len()
}

/// A using directive at `pos`; returns its end, or `None` if this `using` is a statement.
fn using(out: &mut Out, pos: usize, trail: &Trail) -> Option<usize> {
    let b = out.b;
    let start = trail.prev_word_is(b, pos, b"global").unwrap_or(pos);
    let mut t = Toks::new(b, pos + "using".len(), Comments::Slash);
    let static_ = t.eat_word(b"static");
    t.eat_word(b"unsafe");
    let first = t.ident()?;
    let (alias, target) = if t.eat(b"=") {
        t.skip();
        let target_start = t.pos;
        let end = type_end(&mut t, target_start, false)?;
        if end == target_start {
            return None;
        }
        (Some(out.text(first).into_owned()), target_start..end)
    } else {
        (None, first.start..type_end(&mut t, first.end, true)?)
    };
    // The directive's last named child is its text: a comment between the target and `;` wins.
    let text_span = match &t.last_comment {
        Some(c) if c.start >= target.end => c.clone(),
        _ => target,
    };
    if !t.eat(b";") {
        return None;
    }
    out.push(start, out.compact(text_span), ImportKind::CSharpUsing { static_, alias });
    Some(t.pos)
}

/// The end of a type or namespace name that continues up to a `;` (not consumed): qualified
/// names, `::`, generic arguments, arrays, pointers, nullable, tuples; `end` is where the name
/// read so far ends, `after_name` whether it ended with a name. `None` if something else comes
/// first (`using var x`, `using Foo x`: two names in a row; a `{`, a string, an `=`).
fn type_end(t: &mut Toks, mut end: usize, mut after_name: bool) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        t.skip();
        let c = *t.b.get(t.pos)?;
        let name = c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
        match c {
            b';' if depth == 0 => return Some(end),
            b';' | b'{' | b'}' | b'"' | b'=' => return None,
            _ if name => {
                if after_name && depth == 0 {
                    return None;
                }
                if t.ident().is_none() {
                    t.pos += 1; // a digit (`int[5]`)
                }
            }
            b'<' | b'(' | b'[' => {
                depth += 1;
                t.pos += 1;
            }
            b'>' | b')' | b']' => {
                depth = depth.checked_sub(1)?;
                t.pos += 1;
            }
            _ => t.pos += 1,
        }
        after_name = name;
        end = t.pos;
    }
}

/// `namespace A.B` at `pos`: records the name; returns the end of it.
fn namespace(out: &mut Out, pos: usize) -> Option<usize> {
    let mut t = Toks::new(out.b, pos + "namespace".len(), Comments::Slash);
    let first = t.ident()?;
    let mut end = first.end;
    while t.eat(b".") || t.eat(b"::") {
        match t.ident() {
            Some(seg) => end = seg.end,
            None => break,
        }
    }
    let name = out.compact(first.start..end);
    if !out.facts.namespaces.contains(&name) {
        out.facts.namespaces.push(name);
    }
    Some(end)
}
