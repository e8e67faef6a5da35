//! `scan` against `analyze`: unit tests with the expected values written out, a differential
//! test over crafted cases and the fixture repositories (and, by hand, any tree:
//! `KILN_SCAN_DIFF_DIR=dir1:dir2`), and an ignored graph-level comparison
//! (`KILN_SCAN_GRAPH_DIRS=repo1:repo2 cargo test -p kiln-repo scan_and_analyze_give_the_same -- --ignored`).

use std::path::{Path, PathBuf};

use super::scan;
use crate::imports::{analyze, file_syntax, FileFacts, ImportKind, ImportKind::*};
use crate::lang::ImportSyntax::{self, *};

fn got(syntax: ImportSyntax, src: &str) -> Vec<(String, ImportKind, usize)> {
    scan(syntax, src).imports.into_iter().map(|i| (i.text, i.kind, i.line)).collect()
}

fn want(rows: &[(&str, ImportKind, usize)]) -> Vec<(String, ImportKind, usize)> {
    rows.iter().map(|(t, k, l)| (t.to_string(), k.clone(), *l)).collect()
}

fn from(level: usize, names: &[&str]) -> ImportKind {
    PythonFrom { level, names: names.iter().map(|s| s.to_string()).collect() }
}

// ---------------------------------------------------------------------------------------------
// Unit tests: each language's forms, expected values written out

#[test]
fn python_forms() {
    let src = "\u{feff}import a.b\nimport a . b as c, d, d\nfrom x.y import (p,\n  # comment\n  q as r,)\n\
               from . import z\nfrom ..pkg.mod import y\nfrom .m import *\nfrom \\\n  k import l\n\
               from __future__ import annotations\ntry: import t1\nexcept ImportError: pass\nx = 1; import t2\n\
               def f():\n    import lazy\n";
    assert_eq!(
        got(Python, src),
        want(&[
            ("a.b", PythonModule { level: 0 }, 1),
            ("a.b", PythonModule { level: 0 }, 2),
            ("d", PythonModule { level: 0 }, 2),
            ("x.y", from(0, &["p", "q"]), 3),
            (".", from(1, &["z"]), 6),
            ("..pkg.mod", from(2, &["y"]), 7),
            (".m", from(1, &["*"]), 8),
            ("k", from(0, &["l"]), 9),
            ("t1", PythonModule { level: 0 }, 12),
            ("t2", PythonModule { level: 0 }, 14),
            ("lazy", PythonModule { level: 0 }, 16),
        ])
    );
}

#[test]
fn python_non_imports() {
    let src = "# import c1\ns = 'import s1'\nt = \"from s2 import x\"\nu = '''\nimport s3\n'''\n\
               v = r\"\\\" import s4\"\nw = f\"{x}\\nimport s5\"\n\"\"\"doc\nfrom d import e\n\"\"\"\n\
               x.import_ = 1\ny = (\n  import_ )\ndef g():\n    yield from h\nraise E from F\n\
               z = b'\\\nimport s6'\n";
    assert_eq!(got(Python, src), want(&[]));
}

#[test]
fn java_forms_and_package() {
    let src = "/* import c1; */\n@Deprecated\npackage com . ex;\nimport java.util.List;\nimport static a.B.*;\n\
               import a.\n  b.C;\nimport static a.B.f;\nclass A {\n  String s = \"import s1;\";\n  \
               String t = \"\"\"\n    import s2;\n    \"\"\";\n  char q = '\"';\n}\npackage later.ignored;\n";
    let facts = scan(Java, src);
    assert_eq!(facts.package.as_deref(), Some("com.ex"));
    let jimport = |static_, wildcard| JavaImport { static_, wildcard };
    assert_eq!(
        got(Java, src),
        want(&[
            ("java.util.List", jimport(false, false), 4),
            ("a.B", jimport(true, true), 5),
            ("a.b.C", jimport(false, false), 6),
            ("a.B.f", jimport(true, false), 8),
        ])
    );
}

#[test]
fn csharp_forms_and_namespaces() {
    let src = "#region Using directives\nglobal\nusing A;\nusing static B.C;\nusing X = Dictionary<string, int>;\n\
               using global::System.IO;\nusing D.E /* last */;\n#endregion\nnamespace N1.N2 {\n  using F;\n  \
               namespace N3 { class K { void M() { using (var r = G()) {} using var s = H(); \
               var t = $\"{(true ? \"using Q;\" : @\"x\"\"\")}\"; } } }\n}\nnamespace N1.N2 {}\n\
               namespace Fs;\n";
    let facts = scan(CSharp, src);
    assert_eq!(facts.namespaces, ["N1.N2", "N3", "Fs"]);
    let using = |static_, alias: Option<&str>| CSharpUsing { static_, alias: alias.map(str::to_string) };
    assert_eq!(
        got(CSharp, src),
        want(&[
            ("A", using(false, None), 2),
            ("B.C", using(true, None), 4),
            ("Dictionary<string,int>", using(false, Some("X")), 5),
            ("global::System.IO", using(false, None), 6),
            ("/*last*/", using(false, None), 7),
            ("F", using(false, None), 10),
        ])
    );
}

#[test]
fn c_and_cpp_includes() {
    let src = "#include <stdio.h>\n  #  include \"../common/x.h\"\n#include MACRO\n#include_next <n.h>\n\
               // #include \"c1.h\"\n/* #include \"c2.h\"\n*/\nconst char *s = \"#include <s1.h>\";\n\
               #define INC \\\n  #include \"d1.h\"\n#error don't \"\n#include\t<sys/types.h>\nint n = 1'000;\n";
    for syntax in [C, Cpp] {
        assert_eq!(
            got(syntax, src),
            want(&[("stdio.h", IncludeAngled, 1), ("../common/x.h", IncludeQuoted, 2), ("sys/types.h", IncludeAngled, 12)]),
            "{syntax:?}"
        );
    }
    let raw = "auto s = R\"x(\n#include \"r1.h\"\n)x\";\n#include \"real.h\"\n";
    assert_eq!(got(Cpp, raw), want(&[("real.h", IncludeQuoted, 4)]));
}

#[test]
fn c_includes_in_record_bodies_are_not_imports() {
    // As tree-sitter-c reads them: a generic directive inside a struct/union/enum body. The two
    // heads of `union U` in `#if` branches open one body (the first branch's braces are kept).
    let src = "struct S {\n#include \"in_struct.h\"\n};\nstruct __attribute__((packed)) P {\n#include \"in_packed.h\"\n};\n\
               struct S make(void) {\n#include \"in_function.h\"\n}\n#ifdef X\nunion U {\n#else\nunion U { int y;\n#endif\n\
               #include \"in_union.h\"\n};\nextern \"C\" {\n#include \"in_extern.h\"\n}\n#include \"top.h\"\n\
               enum E {\n#include \"in_enum.def\"\n#define X(a) a,\n#include \"x_macro.def\"\n};\n";
    assert_eq!(
        got(C, src),
        want(&[
            ("in_function.h", IncludeQuoted, 8),
            ("in_extern.h", IncludeQuoted, 18),
            ("top.h", IncludeQuoted, 20),
            // After a `#define` in an enum body, the grammar's error recovery reports includes.
            ("x_macro.def", IncludeQuoted, 24),
        ])
    );
}

#[test]
fn javascript_forms() {
    let src = "import a from './a';\nimport './side.js';\nexport { b } from \"../b\";\nexport * from './c';\n\
               export * as ns from './ns';\nimport {\n  x,\n  y as z,\n} from './multi';\nconst r = require('react');\n\
               const d = await import('./d');\nfoo('./not');\nrequire(x);\nx.require('./member');\n\
               // import z from './z'\nconst t = `${require('./in-template')} import('./not-code')`;\n\
               const re = /import('x')/g;\nconst q = a / b; const w = \"require('./s')\";\n\
               import(/* webpackChunkName: \"c\" */ './chunk');\n";
    let js = |t: &str, l| (t.to_string(), JsSpecifier, l);
    assert_eq!(
        got(JavaScript, src),
        vec![
            js("./a", 1),
            js("./side.js", 2),
            js("../b", 3),
            js("./c", 4),
            js("./ns", 5),
            js("./multi", 9),
            js("react", 10),
            js("./d", 11),
            js("./in-template", 16),
        ]
    );
}

#[test]
fn typescript_forms() {
    let src = "import type { T } from './types';\nimport x = require('./legacy');\nimport y = A.B;\n\
               export * from './re';\nexport type { U } from './u';\nlet v: import('./v').V;\n\
               declare module 'm' {\n  export * from './inner';\n}\n";
    let js = |t: &str, l| (t.to_string(), JsSpecifier, l);
    let expected = vec![js("./types", 1), js("./legacy", 2), js("./re", 4), js("./u", 5), js("./v", 6), js("./inner", 8)];
    assert_eq!(got(TypeScript, src), expected);
    let tsx = "import React from 'react';\nexport const A = () => <div>Don't import x from \"y\"</div>;\n\
               const B = () => <img src={require('./b.png')} />;\n";
    assert_eq!(got(Tsx, tsx), vec![js("react", 1), js("./b.png", 3)]);
}

#[test]
fn go_forms_and_package() {
    let src = "// package comment\npackage main\n\nimport \"fmt\"\nimport (\n  m \"example.com/m/util\"\n  \
               _ `example.com/m/raw`\n  . \"dot\"; \"semi\"\n)\nvar s = \"import \\\"no\\\"\"\nvar r = `\nimport \"raw\"\n`\n";
    let facts = scan(Go, src);
    assert_eq!(facts.package.as_deref(), Some("main"));
    assert_eq!(
        got(Go, src),
        want(&[
            ("fmt", GoImport, 4),
            ("example.com/m/util", GoImport, 6),
            ("example.com/m/raw", GoImport, 7),
            ("dot", GoImport, 8),
            ("semi", GoImport, 8),
        ])
    );
}

#[test]
fn rust_forms() {
    let src = "mod a;\npub mod b;\npub(crate)\nmod c;\nmod inline { mod nested; fn f() { mod deeper; } }\n#[cfg(test)]\n\
               mod tests {}\nuse crate::a::b::{c, d as e, self};\nuse super::x;\nuse self::y::*;\n\
               use crate::{m::{n, o}, p};\nuse ::std::io;\nuse a::{b, b};\nmacro_rules! m { () => { use no::x; mod no; } }\n\
               vec![ \"use\" ];\nconst S: &str = r#\"use no::y;\"#;\nfn g<'a>(x: &'a u8) -> char { 'u' }\n\
               use r#type::r#mod;\n/* use no; /* nested */ mod no; */\nimpl !Send for Z {}\n";
    let r = |t: &str, k: ImportKind, l| (t.to_string(), k, l);
    assert_eq!(
        got(Rust, src),
        vec![
            r("a", RustMod, 1),
            r("b", RustMod, 2),
            r("c", RustMod, 3),
            r("inline::nested", RustMod, 5),
            r("inline::deeper", RustMod, 5),
            r("crate::a::b::c", RustUse, 8),
            r("crate::a::b::d", RustUse, 8),
            r("crate::a::b", RustUse, 8),
            r("super::x", RustUse, 9),
            r("self::y::*", RustUse, 10),
            r("crate::m::n", RustUse, 11),
            r("crate::m::o", RustUse, 11),
            r("crate::p", RustUse, 11),
            r("std::io", RustUse, 12),
            r("a::b", RustUse, 13),
            r("r#type::r#mod", RustUse, 18),
        ]
    );
}

#[test]
fn scan_reports_no_error_share() {
    assert_eq!(scan(Python, "def f(:\n").error_share, None);
    assert_eq!(analyze(Python, "def f(:\n").error_share.map(|s| s > 0.0), Some(true));
}

/// Pieces of syntax that open and close literals, comments, brackets and statements.
const FRAGMENTS: &[&str] = &[
    "import ",
    "from ",
    "use ",
    "mod ",
    "pub(crate) ",
    "#include ",
    "require(",
    "export ",
    "using ",
    "namespace ",
    "package ",
    "struct ",
    "macro_rules! ",
    "\"",
    "'",
    "`",
    "\"\"\"",
    "'''",
    "/*",
    "*/",
    "//",
    "#",
    "\n",
    "\\",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "!",
    "r#",
    "@",
    "$",
    ":",
    ";",
    ".",
    ",",
    "<",
    ">",
    "=",
    "*",
    "a",
    "x.y",
    "a::b",
    " ",
    "é",
    "\u{feff}",
    "${",
    "r\"",
    "'a",
    "/",
    "<x.h>",
    "\"s\"",
    "\r\n",
];

proptest::proptest! {
    /// Any text, however broken, is scanned without a panic (every index the lexers compute is
    /// bounded by the input), and every line reported is a line of the text.
    #[test]
    fn scan_never_panics(parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..80)) {
        let src = parts.concat();
        let lines = src.split('\n').count();
        for syntax in [Python, Java, CSharp, C, Cpp, JavaScript, TypeScript, Tsx, Go, Rust] {
            let facts = scan(syntax, &src);
            proptest::prop_assert!(facts.imports.iter().all(|i| (1..=lines).contains(&i.line)), "{syntax:?}: {src:?}");
        }
    }

    /// Region mode ([`crate::code`]) on any text: comment and literal spans in order, apart,
    /// not empty (literals at least two bytes), on character boundaries, so every line's code
    /// can be cut from them.
    #[test]
    fn regions_are_ordered_spans_on_char_boundaries(parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..80)) {
        let src = parts.concat();
        for syntax in [Python, Java, CSharp, C, Cpp, JavaScript, TypeScript, Tsx, Go, Rust] {
            let regions = super::regions(syntax, &src);
            let mut last = 0;
            for (r, kind) in &regions {
                let min = if *kind == crate::code::Region::Literal { 2 } else { 1 };
                proptest::prop_assert!(last <= r.start && r.start + min <= r.end && r.end <= src.len(), "{syntax:?}: {r:?} in {src:?}");
                proptest::prop_assert!(src.is_char_boundary(r.start) && src.is_char_boundary(r.end), "{syntax:?}: {r:?} in {src:?}");
                last = r.end;
            }
            let lines = crate::code::code_lines(syntax, &src);
            proptest::prop_assert_eq!(lines.len(), src.split_inclusive('\n').count());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Differential: scan == analyze

/// Crafted cases per language: every form, and non-imports that a line regex would take.
const CRAFTED: &[(ImportSyntax, &str)] = &[
    (Python, "import os\nfrom a.b import (\n    c,\n    d,\n)\nfrom . \\\n    import e\ndef f():\n    import g.h as i\n    try:\n        from j import *\n    except ImportError:\n        pass\nx = 'import not_an_import'\n"),
    (Python, "'''docstring\nimport d1\n'''\nimport a, b.c as d\nif x: import e\nelse: from f import g as h, i\nclass K: import k\ns = f\"{x!r} import no\"\nt = rb'\\' import no2'\nu = x.import_\n# import c1\nfrom .. import up\nfrom ...pkg import deep\nwhile 1: import w; break\n"),
    (Python, "from __future__ import annotations\nimport x;import y\nimport a.b.c\nv = [\n  1,\n]\nimport after_brackets\nw = (1 +\n  2) \\\n  ; import after_continuation\n"),
    (Java, "package a.b;\n\nimport java.util.List;\nimport static java.lang.Math.*;\nimport a.\n  b.C;\nclass X {\n  String s = \"import no.s;\";\n  String t = \"\"\"\n    import no.t;\n    \"\"\";\n  char c = '\\'';\n  // import no.c;\n  /* import no.b; */\n}\n"),
    (CSharp, "global using G.H;\nusing System;\nusing static System.Math;\nusing Alias = System.Collections.Generic.List<int>;\nusing global::System.IO;\nnamespace A.B\n{\n    using C.D;\n    namespace Inner { class X { void M() { using (var r = F()) { } using var s = F(); var v = @\"using no;\"\"\"; var w = $\"{(1 > 0 ? \"using no2;\" : \"\")}\"; } } }\n}\n"),
    (CSharp, "#region Using directives\nusing A;\n#endregion\n// using no;\n/* using no2; */\nnamespace Fs.Scoped;\nclass Y { string s = \"namespace No;\"; char c = '\"'; }\n"),
    (C, "#include \"a.h\"\n#  include <stdio.h>\n#if X\n#include \"b/c.h\"\n#endif\n/* #include \"no.h\" */\n// #include \"no2.h\"\nconst char *s = \"#include <no3.h>\";\n#include \"after.h\"\nchar c = '\"';\n#include MACRO\n"),
    (C, "struct S {\n  int x;\n#include \"in_struct.h\"\n};\nstruct __attribute__((packed)) P {\n#include \"in_packed.h\"\n};\nenum E {\n#include \"e.def\"\n};\nstruct S make(void) {\n#include \"in_function.h\"\n}\nint n = sizeof(struct S);\nunion U { int y;\n#include \"in_union.h\"\n};\n#include \"top.h\"\n"),
    (Cpp, "#include <vector>\nnamespace n {\n#include \"inner.hpp\"\n}\nauto r = R\"d(\n#include \"no.h\"\n)d\";\nint big = 1'000'000;\n#include \"after.hpp\"\n"),
    (JavaScript, "import x, {\n  a,\n  b,\n} from './x.js';\nexport {\n  c\n} from \"./c\";\nconst y = require(\n  './y'\n);\nasync function f() { await import('./z'); }\nconst re = /['\"]/g;\nconst t = `import('./no') ${require('./tpl') + `${'nested'}`}`;\nconst s = 'require(\"./no2\")';\n// import no3 from './no3'\n/* require('./no4') */\nconst half = total / 2; const u = require('./u');\nrequire(/* c */ './no5'); import(/* webpackChunkName: \"c\" */ './no6');\n"),
    (JavaScript, "const {a, b} = require('./ab'), c = require(\"./c\");\nmodule.exports = { require: 1, import: 2 };\nobj.require('./no');\nconst m = import.meta.url;\nexport default function() { return require('./d'); }\nexport * as ns from './ns';\nexport { default } from './def';\nif (x) { require('./cond'); }\n"),
    (TypeScript, "import type { T } from './t';\nimport fs = require('fs');\nexport * from './all';\nexport type { U } from './u';\nimport { type V, W } from './vw';\nlet x: import('./x').X;\ntype Y = typeof import('./y');\nconst z = <T,>(a: T) => a;\nconst s = `import \"no\"`;\nnamespace N { export import A = B.C; }\n"),
    (Tsx, "import React from 'react';\nimport { B } from './Button';\nexport const A = () => <B label=\"import no\" />;\nconst C = () => <div>{require('./c')}</div>;\n"),
    (Go, "package main\n\nimport (\n\t\"fmt\"\n\tstr \"strings\"\n\t_ \"example.com/m/internal/x\"\n\t. \"example.com/dot\"\n)\nimport \"os\"\nimport raw `example.com/raw`\nvar s = \"import \\\"no\\\"\"\nvar r = `\nimport \"no2\"\n`\nvar c = '\"'\n// import \"no3\"\n"),
    (Java, r##"/*
 * Copyright. Licensed.
 */
// A comment that ends in a dot.
package org.example.app; // trailing
/** Javadoc {@link java.util.List}. import not.this; */
import java.util.*;
import java.util.function.Function;
import static java.util.Objects.requireNonNull;
@SuppressWarnings("import x;")
public final class App<T extends Comparable<T>> implements Function<T, String> {
  private static final char Q = '\u0027';
  private static final char D = '"';
  private final String block = """
      import not.a.block;
      \""" still inside
      """;
  @Override public String apply(T t) { return t.toString() + "import nope;"; }
  public static void main(String[] args) { Runnable r = () -> System.out.println("package fake;"); }
}
"##),
    (CSharp, r##"// Licensed.
using System;
using System.Collections.Generic;
using Sys = System;
using static System.Console;
#nullable enable
namespace Example.App
{
    /// <summary>using Not.This;</summary>
    [Obsolete("using No;")]
    public sealed class Program<T> where T : class
    {
        private const char Q = '"';
        private readonly string _v = @"C:\path\";
        private readonly string _r = """
            using Raw.No;
            """;
        public static async Task Main(string[] args)
        {
            await using var stream = Open();
            using (var reader = new Reader(stream)) { }
            var name = $"{args[0]} using {(args.Length > 1 ? "x" : $"{args[1]:D2}")}";
            var v2 = $@"{name}\ ""using""";
        }
    }
}
"##),
    (Tsx, r##"// A component.
import * as React from 'react';
import type { Props } from "./types";
import styles from './App.module.css';

export default function App({ items }: Props) {
  const label = `Count: ${items.length} import('./no')`;
  return (
    <div className={styles.app} title="import x from 'no'">
      <p>It's {items.length > 1 ? 'many' : "one"}</p>
      {items.map((i) => <Item key={i.id} {...i} />)}
      <img src={require('./logo.svg')} alt="" />
    </div>
  );
}
const lazy = React.lazy(() => import('./Lazy'));
"##),
    (JavaScript, r##"#!/usr/bin/env node
'use strict';
const path = require('path');
const { promisify } = require("util");
/* A block comment.
   require('./no') */
const half = (a + b) / 2, re = /\/\*import/, other = x / y / z;
const cls = /[/'"]/;
if (ok) /abc/.test(s);
const t = `multi
line ${ `nested ${ require('./deep') }` } text`;
module.exports = function () { return import('./later'); };
"##),
    (Rust, "use std::{\n    collections::HashMap,\n    io::{self, Read},\n};\nmod a;\npub(crate) mod b;\nfn f() { use c::d; }\nmod inline {\n    mod nested;\n    use super::e;\n}\npub(in crate::x) use g::h as i;\nuse j::{k::{l, self}, m as n, o::*};\n"),
    (Rust, "macro_rules! m {\n    ($x:ident) => { use no::$x; mod no; };\n}\nm!(y);\nconst S: &str = \"use no2;\";\nconst R: &str = r##\"use no3; \"# mod no4;\"##;\nfn lt<'a>(x: &'a str) -> char { let _ = '\\''; 'm' }\n/* outer /* inner */ use no5; */\n// use no6;\nuse r#async::r#mod;\nmod r#type;\nimpl !Send for X {}\nfn g() -> bool { if !true { return !false; } x != y }\nmod last;\n"),
];

/// Where `scan` and `analyze` disagree on one file.
struct Mismatch {
    path: String,
    /// `analyze`'s error share: > 0 means tree-sitter could not parse the file cleanly.
    error_share: f64,
    what: String,
    class: &'static str,
}

/// The kind of a difference, for the residual classes of a by-hand run.
fn class(a: &FileFacts, s: &FileFacts) -> &'static str {
    if a.imports == s.imports {
        return if a.package != s.package { "package differs" } else { "namespaces differ" };
    }
    let bag = |f: &FileFacts| {
        let mut v: Vec<(String, String)> = f.imports.iter().map(|i| (i.text.clone(), format!("{:?}", i.kind))).collect();
        v.sort();
        v
    };
    let (ba, bs) = (bag(a), bag(s));
    let within = |small: &[(String, String)], big: &[(String, String)]| {
        let mut rest = big.to_vec();
        small.iter().all(|x| rest.iter().position(|y| y == x).map(|i| rest.remove(i)).is_some())
    };
    match (within(&ba, &bs), within(&bs, &ba)) {
        (true, true) => "same imports, other lines",
        (true, false) => "scan finds more",
        (false, true) => "scan finds fewer",
        (false, false) => "different imports",
    }
}

/// What differs between two facts (imports, package, namespaces), or `None`.
fn difference(a: &FileFacts, s: &FileFacts) -> Option<String> {
    if a.imports != s.imports {
        let i = a.imports.iter().zip(&s.imports).position(|(x, y)| x != y).unwrap_or(a.imports.len().min(s.imports.len()));
        return Some(format!(
            "imports ({} vs {}) first at #{i}: analyze {:?} / scan {:?}",
            a.imports.len(),
            s.imports.len(),
            a.imports.get(i),
            s.imports.get(i)
        ));
    }
    if a.package != s.package {
        return Some(format!("package: analyze {:?} / scan {:?}", a.package, s.package));
    }
    if a.namespaces != s.namespaces {
        return Some(format!("namespaces: analyze {:?} / scan {:?}", a.namespaces, s.namespaces));
    }
    None
}

/// Every file under `root` (symlinks and `site-packages` skipped: a Python install keeps
/// third-party packages there, which would swamp its standard library) with an import syntax.
fn source_files(root: &Path) -> Vec<(PathBuf, ImportSyntax, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_symlink() || path.file_name().is_some_and(|n| n == "site-packages") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let file = crate::SourceFile::new(path.to_string_lossy().into_owned(), text);
            if let Some(syntax) = file_syntax(&file) {
                out.push((path, syntax, file.text));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Compares every file of `root`; returns (files compared, bytes, mismatches).
fn compare_tree(root: &Path) -> (usize, usize, Vec<Mismatch>) {
    let files = source_files(root);
    let bytes = files.iter().map(|f| f.2.len()).sum();
    let mut mismatches = Vec::new();
    for (path, syntax, text) in &files {
        let a = analyze(*syntax, text);
        if let Some(what) = difference(&a, &scan(*syntax, text)) {
            let error_share = a.error_share.unwrap_or(0.0);
            let s = scan(*syntax, text);
            let class = class(&a, &s);
            mismatches.push(Mismatch { path: path.display().to_string(), error_share, what, class });
        }
    }
    (files.len(), bytes, mismatches)
}

/// Prints a tree's mismatches (clean files first) and returns how many were on clean files.
fn report(root: &Path, files: usize, bytes: usize, mismatches: &[Mismatch]) -> usize {
    let clean: Vec<&Mismatch> = mismatches.iter().filter(|m| m.error_share == 0.0).collect();
    eprintln!(
        "{}: {files} files ({:.1} MB), {} mismatches: {} on cleanly parsed files, {} on files with parse errors",
        root.display(),
        bytes as f64 / 1e6,
        mismatches.len(),
        clean.len(),
        mismatches.len() - clean.len()
    );
    let mut classes: std::collections::BTreeMap<(bool, &str), usize> = std::collections::BTreeMap::new();
    for m in mismatches {
        *classes.entry((m.error_share == 0.0, m.class)).or_default() += 1;
    }
    for ((is_clean, class), n) in classes {
        eprintln!("  {n} {} file(s): {class}", if is_clean { "clean" } else { "parse-error" });
    }
    let limit: usize = std::env::var("KILN_SCAN_DIFF_SHOW").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let broken = mismatches.iter().filter(|m| m.error_share > 0.0);
    for m in clean.iter().copied().chain(broken).take(limit) {
        eprintln!("  {} (error share {:.4}): {}", m.path, m.error_share, m.what);
    }
    clean.len()
}

#[test]
fn scan_matches_analyze_on_crafted_cases() {
    for &(syntax, src) in CRAFTED {
        let a = analyze(syntax, src);
        assert_eq!(a.error_share, Some(0.0), "{syntax:?} crafted case must parse cleanly: {src}");
        assert!(!a.imports.is_empty(), "{syntax:?} case finds imports");
        let s = scan(syntax, src);
        assert!(difference(&a, &s).is_none(), "{syntax:?}: {}\n{src}", difference(&a, &s).unwrap_or_default());
    }
    for syntax in [Python, Java, CSharp, C, Cpp, JavaScript, TypeScript, Tsx, Go, Rust] {
        assert!(CRAFTED.iter().any(|c| c.0 == syntax), "{syntax:?} has a crafted case");
    }
}

/// The fixture repositories, plus `KILN_SCAN_DIFF_DIR` trees (by hand: a real tree takes
/// minutes, since `analyze` parses every file). Mismatches on files that tree-sitter parses
/// with errors are reported, not failed: on those, `analyze` gives what its error recovery
/// kept, which no parse-free reader can predict.
#[test]
fn scan_matches_analyze_on_fixture_repos_and_given_trees() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut roots = vec![manifest.join("../../tests/fixtures/repos"), manifest.join("../kiln-eval/tests/fixtures/repos")];
    let fixtures = roots.len();
    roots.extend(std::env::var_os("KILN_SCAN_DIFF_DIR").iter().flat_map(std::env::split_paths));
    let mut checked = 0;
    let mut failures = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        let (files, bytes, mismatches) = compare_tree(root);
        let clean = report(root, files, bytes, &mismatches);
        checked += files;
        if clean > 0 || (i < fixtures && !mismatches.is_empty()) {
            failures.push(format!("{}: {} mismatches ({clean} on clean files)", root.display(), mismatches.len()));
        }
    }
    assert!(checked > 40, "only {checked} files checked");
    assert!(failures.is_empty(), "scan differs from analyze: {failures:?}");
}

// ---------------------------------------------------------------------------------------------
// Graph level: the dependency order from scan facts equals the one from analyze facts

/// A repository read from `root` (every text file, paths relative to it, sorted).
fn repo_at(root: &Path) -> crate::Repo {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_symlink() || path.file_name().is_some_and(|n| n == "site-packages") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if let (Ok(text), Ok(rel)) = (std::fs::read_to_string(&path), path.strip_prefix(root)) {
                files.push(crate::SourceFile::new(rel.to_string_lossy().replace('\\', "/"), text));
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    crate::Repo { name: root.display().to_string(), files }
}

/// The dependency graph and order from `scan`'s facts equal those from `analyze`'s on every
/// fixture repository (each a directory of tests/fixtures/repos and kiln-eval's fixtures), and on
/// the repositories listed in KILN_SCAN_GRAPH_DIRS=repo1:repo2 (by hand: the python3 stdlib and
/// registry crates were checked so).
#[test]
fn scan_and_analyze_give_the_same_dependency_order() {
    use crate::graph::{build_graph_from_facts, order};
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs: Vec<PathBuf> = [manifest.join("../../tests/fixtures/repos"), manifest.join("../kiln-eval/tests/fixtures/repos")]
        .iter()
        .filter_map(|root| std::fs::read_dir(root).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()))
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 9, "fixture repositories found: {dirs:?}");
    dirs.extend(std::env::var_os("KILN_SCAN_GRAPH_DIRS").iter().flat_map(std::env::split_paths));
    let mut unexplained = Vec::new();
    for dir in &dirs {
        let repo = repo_at(dir);
        let syntax: Vec<Option<ImportSyntax>> = repo.files.iter().map(file_syntax).collect();
        let facts = |f: fn(ImportSyntax, &str) -> FileFacts| -> Vec<Option<FileFacts>> {
            repo.files.iter().zip(&syntax).map(|(file, s)| s.map(|s| f(s, &file.text))).collect()
        };
        let (fa, fs) = (facts(analyze), facts(scan));
        // Files whose facts differ, split by whether tree-sitter parsed them cleanly.
        let (mut clean, mut broken) = (0, 0);
        for (a, s) in fa.iter().zip(&fs) {
            if let (Some(a), Some(s)) = (a, s) {
                if difference(a, s).is_some() {
                    if a.error_share == Some(0.0) {
                        clean += 1;
                    } else {
                        broken += 1;
                    }
                }
            }
        }
        let (ga, gs) = (build_graph_from_facts(&repo, &fa), build_graph_from_facts(&repo, &fs));
        let same_edges = ga.edges.iter().map(|e| (e.from, e.to)).eq(gs.edges.iter().map(|e| (e.from, e.to)));
        let same_order = order(&ga, 7) == order(&gs, 7);
        eprintln!(
            "{}: {} files, {} / {} edges (analyze / scan), same edges {same_edges}, same order {same_order}; \
             files with different facts: {clean} clean, {broken} with parse errors",
            dir.display(),
            repo.files.len(),
            ga.edges.len(),
            gs.edges.len()
        );
        // Different edges or order are explained only by files tree-sitter could not parse
        // (facts equal on every file give equal graphs).
        if !(same_order && same_edges) && clean > 0 {
            unexplained.push(dir.display().to_string());
        }
    }
    assert!(unexplained.is_empty(), "edges or orders differ, with cleanly parsed files whose facts differ: {unexplained:?}");
}
