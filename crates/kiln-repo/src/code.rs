//! Which bytes of a source file are comments and which are string (or char, regex, template)
//! literals, as the import scanners ([`crate::scan`]) lex them, and the code of a line with its
//! comments removed and its literals blanked.
//!
//! Why: tools that look at code line by line (the repository benchmark's choice of lines and its
//! scoring, [`crate::definitions`]) must not read a name in a comment or a string as code, nor a
//! comment marker in a string as a comment. The scanners already know where every comment and
//! literal of the nine import languages starts and ends (nested Rust comments, raw strings,
//! Python triple quotes, JavaScript template holes and regexes, C# verbatim and interpolated
//! strings, C++ raw strings); [`CodeMap`] reuses their lexing instead of a second lexer. The
//! scanners run in a region mode for it (`scan::regions`): the same lexers, reading no import
//! statement, and lexing a C/C++ directive as code (the import scan skips a directive whole).
//!
//! Spans follow the lexers: a line comment ends before its newline (a C line comment ending in
//! `\` goes on over the next line); a literal that does not close ends where its lexer gives up
//! (at the newline for a one-line literal, at the end of the file for a block comment or a
//! multi-line literal). In JavaScript a template's `${ }` holes are code; a C# interpolated
//! string is one literal, holes included (its lexer skips them whole). A C# preprocessor line
//! (`#region x`) is code.

use std::ops::Range;

use crate::lang::ImportSyntax;

/// What a span of a file is, when it is not code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// A line or block comment, delimiters included.
    Comment,
    /// A string, char, regex or template literal (the part outside its `${ }` holes),
    /// delimiters included (a prefix such as `b` or `f` before the quote is code).
    Literal,
}

/// The comments and literals of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeMap {
    /// Sorted, non-overlapping, not empty (literals at least two bytes).
    regions: Vec<(Range<usize>, Region)>,
}

impl CodeMap {
    /// The map of `source`, lexed as `syntax`.
    pub fn new(syntax: ImportSyntax, source: &str) -> Self {
        Self { regions: crate::scan::regions(syntax, source) }
    }

    /// The comment and literal spans (byte ranges), in order.
    pub fn regions(&self) -> &[(Range<usize>, Region)] {
        &self.regions
    }

    /// The region byte `pos` is in (`None`: code).
    pub fn region_at(&self, pos: usize) -> Option<Region> {
        self.containing(pos).map(|(_, kind)| *kind)
    }

    /// The region that byte `pos` continues: one that started before `pos` and goes on at it
    /// (a line starting at `pos` is inside a block comment or a multi-line literal).
    pub fn continues_at(&self, pos: usize) -> Option<Region> {
        self.containing(pos).filter(|(r, _)| r.start < pos).map(|(_, kind)| *kind)
    }

    fn containing(&self, pos: usize) -> Option<&(Range<usize>, Region)> {
        let i = self.regions.partition_point(|(r, _)| r.end <= pos);
        self.regions.get(i).filter(|(r, _)| r.start <= pos)
    }

    /// The code of `source[range]`: comments removed, each literal's characters blanked to
    /// spaces except its first one and, when it is the same character (a closing quote), its
    /// last one (`f("a # b")  # c` gives `f("     ")  `). `source` is the text the map was made
    /// from; `range` lies on character boundaries.
    pub fn code(&self, source: &str, range: Range<usize>) -> String {
        self.render(source, range, true)
    }

    /// `source[range]` with its comments removed, literals kept as written.
    pub fn without_comments(&self, source: &str, range: Range<usize>) -> String {
        self.render(source, range, false)
    }

    fn render(&self, source: &str, range: Range<usize>, blank_literals: bool) -> String {
        let mut out = String::with_capacity(range.len());
        let mut next = self.regions.partition_point(|(r, _)| r.end <= range.start);
        for (i, c) in source[range.clone()].char_indices() {
            let pos = range.start + i;
            while self.regions.get(next).is_some_and(|(r, _)| r.end <= pos) {
                next += 1;
            }
            let region = self.regions.get(next).filter(|(r, _)| r.start <= pos);
            match region {
                None => out.push(c),
                Some((_, Region::Comment)) => {}
                Some((_, Region::Literal)) if !blank_literals => out.push(c),
                Some((r, Region::Literal)) => {
                    let first = source[r.start..].chars().next();
                    let closes = pos > r.start && pos + c.len_utf8() == r.end && Some(c) == first;
                    out.push(if pos == r.start || closes { c } else { ' ' });
                }
            }
        }
        out
    }
}

/// One line of a file, for tools that go line by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeLine {
    /// 1-based line number.
    pub number: usize,
    /// Byte offset of the line's start in the file.
    pub start: usize,
    /// Byte offset just after the line's newline (or the file's end).
    pub end: usize,
    /// The comment or literal the line starts inside of (`None`: it starts in code, or with a
    /// comment or literal that opens on it).
    pub continues: Option<Region>,
    /// The line's [`CodeMap::code`], without its line ending.
    pub code: String,
}

/// The lines of `source` (split after each `\n`), each with its code.
pub fn code_lines(syntax: ImportSyntax, source: &str) -> Vec<CodeLine> {
    let map = CodeMap::new(syntax, source);
    let mut start = 0;
    source
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, line)| {
            let body = line.trim_end_matches(['\n', '\r']).len();
            let out = CodeLine {
                number: i + 1,
                start,
                end: start + line.len(),
                continues: map.continues_at(start),
                code: map.code(source, start..start + body),
            };
            start += line.len();
            out
        })
        .collect()
}

/// `text` (one line or a few, say a completion) with its comments removed, literals kept.
pub fn without_comments(syntax: ImportSyntax, text: &str) -> String {
    CodeMap::new(syntax, text).without_comments(text, 0..text.len())
}

/// `text` with its comments removed and its literals blanked ([`CodeMap::code`]).
pub fn code_of(syntax: ImportSyntax, text: &str) -> String {
    CodeMap::new(syntax, text).code(text, 0..text.len())
}

/// The identifiers of `code`, in order: ASCII `[A-Za-z_][A-Za-z0-9_]*` runs, a run that starts
/// with a digit (`1st`, `0x1f`) skipped whole.
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

#[cfg(test)]
mod tests {
    use super::*;
    use ImportSyntax::*;

    fn regions(syntax: ImportSyntax, src: &str) -> Vec<(&str, Region)> {
        CodeMap::new(syntax, src).regions().iter().map(|(r, k)| (&src[r.clone()], *k)).collect()
    }

    use Region::{Comment as Cm, Literal as Lit};

    #[test]
    fn code_of_blanks_strings_and_drops_comments() {
        let py = code_lines(Python, "x = f(\"a # b\")  # note");
        assert_eq!(py[0].code, "x = f(\"     \")  ");
        let rs = code_lines(Rust, "a /* b\nc */ d // e");
        assert_eq!(rs[0].code, "a ");
        assert_eq!(rs[1].continues, Some(Region::Comment));
        assert_eq!(rs[1].code, " d ");
    }

    #[test]
    fn regions_per_language() {
        assert_eq!(
            regions(Python, "a = 'x'  # c\nb = \"\"\"d\ne\"\"\" + r'\\'' \nimport os  # f\nfrom m import (a,  # g\n  b)\n"),
            [("'x'", Lit), ("# c", Cm), ("\"\"\"d\ne\"\"\"", Lit), ("'\\''", Lit), ("# f", Cm), ("# g", Cm)]
        );
        assert_eq!(
            regions(
                Rust,
                "let c = '\"'; /* a /* b */ c */ fn f<'a>(x: &'a str) { r#\"q\"# ; r#type; b\"x\" } // e\nuse a::{b, /* u */ c};"
            ),
            [("'\"'", Lit), ("/* a /* b */ c */", Cm), ("#\"q\"#", Lit), ("\"x\"", Lit), ("// e", Cm), ("/* u */", Cm)]
        );
        assert_eq!(
            regions(JavaScript, "import x from \"./y\"; // c\nconst r = /a\"b/g, d = a / b, t = `p${q + '}'}r` /* e */;"),
            [("\"./y\"", Lit), ("// c", Cm), ("/a\"b/", Lit), ("`p${", Lit), ("'}'", Lit), ("}r`", Lit), ("/* e */", Cm)]
        );
        assert_eq!(
            regions(C, "#include \"a.h\" // x\n#define N 4 /* y */\nint s = 1'000; char c = '\\''; const char *p = \"q\";\n"),
            [("\"a.h\"", Lit), ("// x", Cm), ("/* y */", Cm), ("'\\''", Lit), ("\"q\"", Lit)]
        );
        assert_eq!(regions(Cpp, "auto s = R\"d(a \" b)d\"; // c\n"), [("\"d(a \" b)d\"", Lit), ("// c", Cm)]);
        assert_eq!(
            regions(CSharp, "#region R // r\nusing A; // u\nvar s = @\"a\"\"b\" + $\"{x}\"; /* c */ char q = '\"';\n"),
            [("// u", Cm), ("@\"a\"\"b\"", Lit), ("$\"{x}\"", Lit), ("/* c */", Cm), ("'\"'", Lit)]
        );
        assert_eq!(
            regions(Java, "import a.B; // i\nString t = \"\"\"\n  x\n  \"\"\"; char c = '/';\n"),
            [("// i", Cm), ("\"\"\"\n  x\n  \"\"\"", Lit), ("'/'", Lit)]
        );
        assert_eq!(
            regions(Go, "import \"fmt\" // f\nvar s = `a\nb` + \"c\" /* d */\n"),
            [("\"fmt\"", Lit), ("// f", Cm), ("`a\nb`", Lit), ("\"c\"", Lit), ("/* d */", Cm)]
        );
    }

    #[test]
    fn positions_lines_and_comment_removal() {
        let src = "x = 1  # a\ns = '''doc\n# not a comment\n'''\n";
        let map = CodeMap::new(Python, src);
        assert_eq!(map.region_at(0), None);
        assert_eq!(map.region_at(src.find('#').unwrap()), Some(Region::Comment));
        assert_eq!(map.region_at(src.find("doc").unwrap()), Some(Region::Literal));
        let lines = code_lines(Python, src);
        assert_eq!(lines.iter().map(|l| l.continues).collect::<Vec<_>>(), [None, None, Some(Lit), Some(Lit)]);
        assert_eq!(lines.iter().map(|l| l.code.as_str()).collect::<Vec<_>>(), ["x = 1  ", "s = '     ", "               ", "  '"]);
        assert_eq!((lines[1].start, lines[1].end, lines[3].number), (11, 22, 4));
        // A comment marker in a string is not a comment; an unclosed literal keeps no closer.
        assert_eq!(without_comments(Python, "s = \"# x\"  # y"), "s = \"# x\"  ");
        assert_eq!(without_comments(Python, "x = 1  #"), "x = 1  ");
        assert_eq!(without_comments(Rust, "let c = '\"'; // x"), "let c = '\"'; ");
        assert_eq!(without_comments(TypeScript, "a /* b */ c /* d"), "a  c ");
        assert_eq!(code_of(Java, "f(\"abc"), "f(\"   ");
        // CRLF line endings: the code has no `\r`.
        assert_eq!(code_lines(C, "a; // b\r\nc;\r\n").iter().map(|l| l.code.as_str()).collect::<Vec<_>>(), ["a; ", "c;"]);
        assert_eq!(identifiers("x1 = f(2nd, _y) + 0x1f"), ["x1", "f", "_y"]);
    }
}
