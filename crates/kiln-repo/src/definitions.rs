//! The names a file defines at its top level (functions, classes, types, constants, module-level
//! variables; Java/C# types and `static` members), for the nine languages kiln reads imports of.
//!
//! Found line by line on the code of each line ([`crate::code`]: comments removed, literals
//! blanked, lines inside a block comment or a multi-line literal skipped) with a small
//! per-language pattern, not a parser: enough to tell which file of a repository a name comes
//! from (the repository benchmark's use), not a symbol table. What counts, per language:
//! * Python, at column 0: `def`/`async def`/`class NAME`, and `NAME = ...` / `NAME: T = ...`.
//! * Rust, at column 0 (after `pub(..)`, `async`, `unsafe`, `extern "C"`, ...): `fn`, `struct`,
//!   `enum`, `trait`, `type`, `const`, `static [mut]`, `union`, `mod`, `macro_rules!`.
//! * JavaScript/TypeScript, at column 0 (after `export`, `default`, `declare`, `async`,
//!   `abstract`): `function[*]`, `class`, `const`, `let`, `var`, `interface`, `type`, `enum`,
//!   `namespace`.
//! * Java/C#, at any indentation: `class`, `interface`, `enum`, `record`, `struct` after
//!   modifiers, and members declared `static` or `const` (the last name before `(`, `=`, `;`).
//! * Go, at column 0: `func`, `type`, `var`, `const` (not methods: `func (r T) M` gives nothing).
//! * C/C++, at column 0: `#define NAME`, `typedef ... NAME;`, `struct`/`class`/`enum
//!   [class]`/`union`/`namespace NAME`, and a function head (the name before the first `(`,
//!   after at least a return type).

use std::collections::HashSet;

use crate::code::{code_lines, identifiers};
use crate::lang::ImportSyntax;

/// The names `text` defines at its top level, read as `syntax` (see the module docs).
pub fn definitions(syntax: ImportSyntax, text: &str) -> HashSet<String> {
    use ImportSyntax::*;
    let mut out = HashSet::new();
    for line in code_lines(syntax, text) {
        if line.continues.is_some() {
            continue;
        }
        let code = &line.code;
        let indent = code.len() - code.trim_start().len();
        let t = code.trim();
        let name = match syntax {
            Python if indent == 0 => python_def(t),
            Rust if indent == 0 => keyword_def(
                strip_words(t, &["pub(crate)", "pub(super)", "pub(self)", "pub", "async", "unsafe", "extern \"C\"", "extern", "default"]),
                &["fn", "struct", "enum", "trait", "type", "const", "static mut", "static", "union", "mod", "macro_rules!"],
            ),
            JavaScript | TypeScript | Tsx if indent == 0 => keyword_def(
                strip_words(t, &["export", "default", "declare", "async", "abstract"]),
                &["function*", "function", "class", "const", "let", "var", "interface", "type", "enum", "namespace"],
            ),
            Java | CSharp => java_def(t),
            Go if indent == 0 => keyword_def(t, &["func", "type", "var", "const"]),
            C | Cpp if indent == 0 => c_def(t),
            _ => None,
        };
        out.extend(name);
    }
    out
}

/// `t` without any of the leading `words` (each followed by a space), repeatedly.
fn strip_words<'a>(mut t: &'a str, words: &[&str]) -> &'a str {
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
fn leading_ident(t: &str) -> Option<String> {
    let end = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(t.len());
    let id = &t[..end];
    (!id.is_empty() && !id.starts_with(|c: char| c.is_ascii_digit())).then(|| id.to_string())
}

/// The name after the first of `keywords` that starts `t` (`fn name`, `class name`).
fn keyword_def(t: &str, keywords: &[&str]) -> Option<String> {
    for k in keywords {
        if let Some(rest) = t.strip_prefix(k) {
            if rest.starts_with(' ') {
                return leading_ident(rest.trim_start());
            }
        }
    }
    None
}

fn python_def(t: &str) -> Option<String> {
    if let Some(n) = keyword_def(strip_words(t, &["async"]), &["def", "class"]) {
        return Some(n);
    }
    // `NAME = ...` or `NAME: type = ...` at module level.
    let name = leading_ident(t)?;
    let rest = t[name.len()..].trim_start();
    let assigns = (rest.starts_with('=') && !rest.starts_with("==")) || rest.starts_with(':') && rest.contains('=');
    (assigns && !matches!(name.as_str(), "if" | "for" | "while" | "with" | "return" | "else" | "elif" | "try" | "except")).then_some(name)
}

fn java_def(t: &str) -> Option<String> {
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

fn c_def(t: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ImportSyntax::*;

    #[test]
    fn definition_finders() {
        let py = definitions(Python, "X = 1\ndef f(a):\n    y = 2\nclass C:\n    pass\nasync def g():\n    pass\n\"\"\"\nZ = 3\n\"\"\"\n");
        assert_eq!(py, ["X", "f", "C", "g"].map(String::from).into());
        let rs = definitions(Rust, "pub fn a() {}\npub(crate) struct B;\nconst C: u8 = 1;\nimpl B {\n    fn m() {}\n}\n// fn d() {}\n");
        assert_eq!(rs, ["a", "B", "C"].map(String::from).into());
        let ts = definitions(
            TypeScript,
            "export function f() {}\nexport default class K {}\nconst v = 1;\nexport interface I {}\n  let inner = 2;\n",
        );
        assert_eq!(ts, ["f", "K", "v", "I"].map(String::from).into());
        let java = definitions(
            Java,
            "public class Util {\n    public static final int MAX = 3;\n    public static int add(int a, int b) {\n    private int x;\n}\n",
        );
        assert_eq!(java, ["Util", "MAX", "add"].map(String::from).into());
        let go = definitions(Go, "package m\nfunc Add(a int) int {\ntype T struct {\nvar V = 1\n");
        assert_eq!(go, ["Add", "T", "V"].map(String::from).into());
        let c = definitions(C, "#define N 4\nstruct point {\nint add(int a, int b);\nstatic inline double scale(double x) {\n    return x;\n}\ntypedef unsigned long size_type;\n");
        assert_eq!(c, ["N", "point", "add", "scale", "size_type"].map(String::from).into());
    }

    #[test]
    fn names_in_comments_and_literals_are_not_definitions() {
        // A block comment or a multi-line literal hides the lines inside it; a comment marker in
        // a string hides nothing.
        let rs = definitions(
            Rust,
            "/* fn a() {}\nfn b() {} */\nconst S: &str = \"\n/* \";\nfn c() {}\nstatic T: &str = r#\"\nfn d() {}\n\"#;\n",
        );
        assert_eq!(rs, ["S", "c", "T"].map(String::from).into());
        let py = definitions(Python, "s = '#'; t = 1\n'''\nu = 2\n'''\nv = \"\"\"a\"\"\"  # w = 3\n");
        assert_eq!(py, ["s", "v"].map(String::from).into());
        let cs = definitions(CSharp, "// public class A {}\npublic static class B {\n    const string S = \"class C\";\n}\n");
        assert_eq!(cs, ["B", "S"].map(String::from).into());
        let c =
            definitions(Cpp, "#define M(x) /* int f(int a) */ x\nnamespace ns {\nenum class E { A };\nauto s = R\"(\nint g(void);\n)\";\n");
        assert_eq!(c, ["M", "ns", "E"].map(String::from).into());
        let js = definitions(JavaScript, "const t = `\nfunction f() {}\n`;\nfunction g() {}\n");
        assert_eq!(js, ["t", "g"].map(String::from).into());
        assert!(definitions(Go, "").is_empty());
    }
}
