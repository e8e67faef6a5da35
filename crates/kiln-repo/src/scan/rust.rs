//! Rust: `mod x;` (prefixed with the enclosing inline modules: `mod a { mod x; }` gives `a::x`),
//! `mod x { ... }` (nothing), and `use` trees flattened to one path per leaf as
//! `imports::rust_use_leaves` does (`use a::{b, c::{d, self}, e as f, g::*}` gives `a::b`,
//! `a::c::d`, `a::c`, `a::e`, `a::g::*`).
//!
//! Lexing: `//` and nested `/* */` comments, strings (`"..."`, `b"..."`, `c"..."`), raw strings
//! (`r#"..."#`, `br"..."`), char literals told from lifetimes (`'a'` vs `'a`), raw identifiers
//! (`r#mod` is a name, not the keyword). Macro invocations (`foo! { .. }`, `macro_rules! m {
//! .. }`) are skipped whole: tree-sitter-rust reads their bodies as token trees, where no `use`
//! or `mod` item is seen.
//!
//! Mirrors of tree-sitter-rust: the line of a `pub(crate) use` is the line of `pub` (the
//! visibility is part of the item; this scanner finds it when only whitespace separates it from
//! the keyword); a leading `::` is dropped (`use ::std::io` gives `std::io`); repeats within one
//! item are dropped (`use a::{b, b}` gives `a::b` once).

use std::sync::OnceLock;

use super::{drive, finder, ident_end, line_end, quoted_end, table, whole_word, word_before, Comments, Lexer, Out, Toks, Trail};
use crate::code::Region;
use crate::imports::ImportKind;

const WORDS: &[&str] = &["use", "mod"];
static FINDER: OnceLock<aho_corasick::AhoCorasick> = OnceLock::new();
static CODE: [bool; 256] = table(b"/\"'#!{}");
/// In a macro body only literals, comments and brackets matter.
static MACRO: [bool; 256] = table(b"/\"'#()[]{}");
/// Nesting limit for use-trees (deeper is not real code; keeps the recursion bounded).
const MAX_TREE_DEPTH: usize = 64;
/// Keywords that cannot name a macro, so `if !x`, `impl !Send`, `return !x` are no invocations.
const KEYWORDS: &[&[u8]] = &[
    b"as",
    b"async",
    b"await",
    b"box",
    b"break",
    b"const",
    b"continue",
    b"crate",
    b"dyn",
    b"else",
    b"enum",
    b"extern",
    b"false",
    b"fn",
    b"for",
    b"if",
    b"impl",
    b"in",
    b"let",
    b"loop",
    b"match",
    b"mod",
    b"move",
    b"mut",
    b"pub",
    b"ref",
    b"return",
    b"self",
    b"Self",
    b"static",
    b"struct",
    b"super",
    b"trait",
    b"true",
    b"type",
    b"unsafe",
    b"use",
    b"where",
    b"while",
    b"yield",
];

pub(super) fn scan(out: &mut Out) {
    drive(out, Some(finder(&FINDER, WORDS)), &mut RustLexer { braces: Vec::new(), macro_depth: 0, trail: Trail::default() });
}

struct RustLexer {
    /// One entry per open `{`: the module name (a byte range) if it opened an inline `mod`.
    braces: Vec<Option<std::ops::Range<usize>>>,
    /// Open brackets of the macro body being skipped (0: not in one).
    macro_depth: usize,
    trail: Trail,
}

impl Lexer for RustLexer {
    fn table(&self) -> &'static [bool; 256] {
        if self.macro_depth > 0 {
            &MACRO
        } else {
            &CODE
        }
    }

    fn byte(&mut self, out: &mut Out, pos: usize) -> usize {
        let b = out.b;
        match (b[pos], b.get(pos + 1)) {
            (b'/', Some(b'/')) => self.trail.comment(b, pos, line_end(b, pos)),
            (b'/', Some(b'*')) => self.trail.comment(b, pos, nested_comment_end(b, pos)),
            (b'"', _) if raw_prefix(b, pos) => raw_string_end(b, pos),
            (b'"', _) => quoted_end(b, pos, b'"', true),
            (b'\'', _) => char_or_lifetime_end(b, pos),
            (b'#', _) => hashes(b, pos),
            _ if self.macro_depth > 0 => self.macro_bracket(b[pos], pos),
            (b'!', _) => self.bang(b, pos),
            (b'{', _) => {
                self.braces.push(None);
                pos + 1
            }
            (b'}', _) => {
                self.braces.pop();
                pos + 1
            }
            _ => pos + 1,
        }
    }

    fn keyword(&mut self, out: &mut Out, pattern: usize, pos: usize) -> usize {
        let b = out.b;
        let word = WORDS[pattern].len();
        let raw_ident = pos >= 2 && &b[pos - 2..pos] == b"r#";
        if self.macro_depth > 0 || raw_ident || !whole_word(b, pos, word) {
            return pos + word;
        }
        let start = item_start(b, pos, &self.trail);
        let end = if pattern == 0 { use_item(out, pos, start) } else { self.mod_item(out, pos, start) };
        end.unwrap_or(pos + word)
    }

    fn region(&self, b: &[u8], pos: usize) -> Option<Region> {
        match (b[pos], b.get(pos + 1)) {
            (b'/', Some(b'/' | b'*')) => Some(Region::Comment),
            // A lifetime's quote is a one-byte skip.
            (b'"' | b'\'', _) => Some(Region::Literal),
            // `r#"..."#`; `r#type` is a raw identifier.
            (b'#', _) if raw_prefix(b, pos) && b[pos..].iter().find(|&&c| c != b'#') == Some(&b'"') => Some(Region::Literal),
            _ => None,
        }
    }
}

impl RustLexer {
    /// A bracket inside a macro body.
    fn macro_bracket(&mut self, c: u8, pos: usize) -> usize {
        match c {
            b'(' | b'[' | b'{' => self.macro_depth += 1,
            b')' | b']' | b'}' => self.macro_depth = self.macro_depth.saturating_sub(1),
            _ => {}
        }
        pos + 1
    }

    /// A `!`: enters a macro body if it follows a macro name (`name!`, `macro_rules! name`) and
    /// a delimiter follows it.
    fn bang(&mut self, b: &[u8], pos: usize) -> usize {
        if b.get(pos + 1) == Some(&b'=') {
            return pos + 2;
        }
        let Some(name_end) = self.trail.prev_code(b, pos).map(|p| p + 1) else { return pos + 1 };
        let Some(name) = word_before(b, name_end).map(|s| &b[s..name_end]) else { return pos + 1 };
        if KEYWORDS.contains(&name) || name[0].is_ascii_digit() {
            return pos + 1;
        }
        let mut t = Toks::new(b, pos + 1, Comments::SlashNested);
        if name == b"macro_rules" && t.ident().is_none() {
            return pos + 1;
        }
        match t.peek() {
            Some(b'(' | b'[' | b'{') => {
                self.macro_depth = 1;
                t.pos + 1
            }
            _ => pos + 1,
        }
    }

    /// `mod name;` or `mod name {` at `pos` (the item starting at `start`).
    fn mod_item(&mut self, out: &mut Out, pos: usize, start: usize) -> Option<usize> {
        let mut t = Toks::new(out.b, pos + "mod".len(), Comments::SlashNested);
        let name = name(&mut t)?;
        if t.eat(b"{") {
            self.braces.push(Some(name));
            return Some(t.pos);
        }
        let mut path: Vec<&[u8]> = self.braces.iter().flatten().map(|r| &out.b[r.clone()]).collect();
        path.push(&out.b[name]);
        let text = String::from_utf8_lossy(&path.join(&b"::"[..])).into_owned();
        out.push(start, text, ImportKind::RustMod);
        Some(t.pos)
    }
}

/// Where the item whose keyword is at `pos` starts: at its `pub`, `pub(crate)`, `pub(in a::b)`
/// when only whitespace separates them.
fn item_start(b: &[u8], pos: usize, trail: &Trail) -> usize {
    let Some(mut p) = trail.prev_code(b, pos) else { return pos };
    if b[p] == b')' {
        let Some(open) = b[..p].iter().rposition(|&c| c == b'(') else { return pos };
        match trail.prev_code(b, open) {
            Some(q) => p = q,
            None => return pos,
        }
    }
    match word_before(b, p + 1) {
        Some(s) if &b[s..=p] == b"pub" => s,
        _ => pos,
    }
}

/// A name: identifier or raw identifier (`r#type`), as written.
fn name(t: &mut Toks) -> Option<std::ops::Range<usize>> {
    let id = t.ident()?;
    if &t.b[id.clone()] == b"r" && t.b.get(t.pos) == Some(&b'#') {
        let end = ident_end(t.b, t.pos + 1);
        if end > t.pos + 1 {
            t.pos = end;
            return Some(id.start..end);
        }
    }
    Some(id)
}

/// `use tree;` at `pos` (the item starting at `start`): one import per leaf.
fn use_item(out: &mut Out, pos: usize, start: usize) -> Option<usize> {
    let mut t = Toks::new(out.b, pos + "use".len(), Comments::SlashNested);
    let mut leaves = Vec::new();
    use_tree(&mut t, &mut Vec::new(), &mut leaves, 0)?;
    for leaf in leaves {
        out.push(start, leaf, ImportKind::RustUse);
    }
    Some(t.pos)
}

/// One use-tree under `prefix` (segments as byte slices): appends its leaves.
fn use_tree<'a>(t: &mut Toks<'a>, prefix: &mut Vec<&'a [u8]>, leaves: &mut Vec<String>, depth: usize) -> Option<()> {
    if depth > MAX_TREE_DEPTH {
        return None;
    }
    t.eat(b"::");
    let outer = prefix.len();
    let mut path_len = 0;
    loop {
        if t.eat(b"*") {
            prefix.push(b"*");
            leaves.push(join(prefix));
            break;
        }
        if t.peek() == Some(b'{') {
            t.pos += 1;
            use_list(t, prefix, leaves, depth)?;
            break;
        }
        let seg = name(t).or_else(|| metavariable(t))?;
        prefix.push(&t.b[seg]);
        path_len += 1;
        if t.eat(b"::") {
            continue;
        }
        if t.eat_word(b"as") {
            name(t)?;
        }
        // `self` alone inside a list names the list's own prefix: `use a::{self}` imports `a`.
        let last = prefix.len() - 1;
        if path_len == 1 && prefix[last] == b"self" && outer > 0 {
            prefix.pop();
        }
        leaves.push(join(prefix));
        break;
    }
    prefix.truncate(outer);
    Some(())
}

/// The trees of a `{ ... }` list, after its `{`.
fn use_list<'a>(t: &mut Toks<'a>, prefix: &mut Vec<&'a [u8]>, leaves: &mut Vec<String>, depth: usize) -> Option<()> {
    loop {
        if t.eat(b"}") {
            return Some(());
        }
        use_tree(t, prefix, leaves, depth + 1)?;
        if !t.eat(b",") {
            return t.eat(b"}").then_some(());
        }
    }
}

/// `$name` (a macro metavariable, as tree-sitter-rust accepts in paths).
fn metavariable(t: &mut Toks) -> Option<std::ops::Range<usize>> {
    t.skip();
    if t.b.get(t.pos) != Some(&b'$') {
        return None;
    }
    let start = t.pos;
    t.pos += 1;
    let id = t.ident()?;
    Some(start..id.end)
}

fn join(segs: &[&[u8]]) -> String {
    String::from_utf8_lossy(&segs.join(&b"::"[..])).into_owned()
}

/// End of a (nested) block comment starting at `pos`.
pub(super) fn nested_comment_end(b: &[u8], pos: usize) -> usize {
    let mut depth = 0usize;
    let mut j = pos;
    while j + 1 < b.len() {
        match (b[j], b[j + 1]) {
            (b'/', b'*') => {
                depth += 1;
                j += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return j;
                }
            }
            _ => j += 1,
        }
    }
    b.len()
}

/// Whether the literal at `pos` (a `"` or the first `#`) has a raw prefix: `r`, `br` or `cr`
/// starting a token.
fn raw_prefix(b: &[u8], pos: usize) -> bool {
    match word_before(b, pos) {
        Some(s) => matches!(&b[s..pos], b"r" | b"br" | b"cr"),
        None => false,
    }
}

/// A raw string whose quote or first `#` is at `pos`: `r"..."`, `r#"..."#`, ...
fn raw_string_end(b: &[u8], pos: usize) -> usize {
    let hashes = b[pos..].iter().take_while(|&&c| c == b'#').count();
    let quote = pos + hashes;
    let mut close = vec![b'"'];
    close.resize(hashes + 1, b'#');
    let body = quote + 1;
    b.get(body..).and_then(|rest| rest.windows(close.len()).position(|w| w == close.as_slice())).map_or(b.len(), |p| body + p + close.len())
}

/// A `#`: a raw string (`r#"`), a raw identifier (`r#type`, skipped as a word), or anything else
/// (attributes need no skipping: no item can hide in one).
fn hashes(b: &[u8], pos: usize) -> usize {
    if !raw_prefix(b, pos) {
        return pos + 1;
    }
    let hashes = b[pos..].iter().take_while(|&&c| c == b'#').count();
    match b.get(pos + hashes) {
        Some(b'"') => raw_string_end(b, pos),
        _ => ident_end(b, pos + 1).max(pos + 1),
    }
}

/// A `'`: a char literal (`'a'`, `'\n'`, `'é'`, `b'x'`) or a lifetime / label (`'a`, `'static`).
fn char_or_lifetime_end(b: &[u8], pos: usize) -> usize {
    match b.get(pos + 1) {
        Some(b'\\') => quoted_end(b, pos, b'\'', false),
        Some(&c) => {
            let len = utf8_len(c);
            if b.get(pos + 1 + len) == Some(&b'\'') {
                pos + len + 2
            } else {
                pos + 1 // a lifetime: its name is skipped as a word
            }
        }
        None => pos + 1,
    }
}

/// Length of the UTF-8 sequence starting with byte `c`.
fn utf8_len(c: u8) -> usize {
    match c {
        0xf0.. => 4,
        0xe0.. => 3,
        0xc0.. => 2,
        _ => 1,
    }
}
