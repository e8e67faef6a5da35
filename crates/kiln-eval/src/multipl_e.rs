//! MultiPL-E (HumanEval translated into other languages) with DeepSeek-Coder's protocol:
//! the prompt stripped, greedy decoding, the completion cut at the data's `stop_tokens` (plus
//! DeepSeek's TypeScript extras), and a test program assembled as DeepSeek's
//! `process_humaneval_test` does (language prelude + prompt + `"\n"` + completion + `"\n"` +
//! tests), compiled and run in the [`sandbox`](crate::sandbox) with each language's commands
//! and pass rule (DeepSeek's `human_eval/execution.py`).
//!
//! Where this harness is deliberately stricter or different than DeepSeek's, and why:
//! - JavaScript passes when stdout and stderr are empty (DeepSeek) *and* the exit status is 0;
//!   C# passes when stderr has no "Fail" (DeepSeek) *and* the exit status is 0. DeepSeek's rules
//!   alone count a program that crashes silently as passed.
//! - Rust is compiled with `rustc --edition 2021` and the binary run (the tests are a `main`
//!   with `assert_eq!`, MultiPL-E's own evaluator); DeepSeek's `cargo test --bin` runs no
//!   test function, so it passes anything that compiles.
//! - Go runs `go test -timeout=10s main_test.go` as DeepSeek does (Go is not in the paper).
//! - Compilers get [`COMPILE_TIMEOUT`] (DeepSeek: 10 s for g++ and tsc, 60 s for javac, none
//!   for mcs, all inside one 11 s process limit): a loaded 2-core machine should not turn slow
//!   compiles into failures. The program itself gets the caller's timeout (DeepSeek: 10 s).
//!
//! MultiPL-E ships no reference solutions; `tests/fixtures/multipl_e_solutions.jsonl` holds
//! hand-written ones that the tests check.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sandbox::{self, Captured, Isolation, Limits, RunResult};
use crate::EvalError;

/// How long one compiler run may take (g++, javac, tsc, mcs, rustc; `go test` gets this on
/// top of the program's timeout, since it compiles and runs in one command).
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

/// DeepSeek's extra stop words for TypeScript (on top of the data's `stop_tokens`).
pub const TS_EXTRA_STOP: [&str; 5] = ["\nexport", "\nimport", "\nexport default", "\nimport default", "\nconsole.log"];

/// `#include`s DeepSeek puts before a C++ program when the prompt lacks them.
pub const CPP_PRELUDE: [&str; 10] = [
    "#include<stdlib.h>",
    "#include<algorithm>",
    "#include<math.h>",
    "#include<stdio.h>",
    "#include<vector>",
    "#include<string>",
    "#include<climits>",
    "#include<cstring>",
    "#include<iostream>",
    "#include<cassert>",
];

/// `using` lines DeepSeek puts before every C# program (its list, duplicate included).
pub const CS_PRELUDE: [&str; 7] = [
    "using System.Numerics;",
    "using System.Diagnostics;",
    "using System.Collections.Generic;",
    "using System.Linq;",
    "using System.Text;",
    "using System.Security.Cryptography;",
    "using System.Collections.Generic;",
];

/// A MultiPL-E language kiln can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// C++ (g++, C++17).
    Cpp,
    /// Java (OpenJDK, with javatuples on the classpath).
    Java,
    /// JavaScript (node).
    Js,
    /// TypeScript (tsc, then node).
    Ts,
    /// C# (mcs + mono).
    Cs,
    /// Bash.
    Sh,
    /// PHP (php-cli).
    Php,
    /// Go (`go test`).
    Go,
    /// Rust (rustc).
    Rs,
}

impl Language {
    /// Every language, in the order of the CLI's help.
    pub const ALL: [Language; 9] =
        [Language::Cpp, Language::Java, Language::Js, Language::Ts, Language::Cs, Language::Sh, Language::Php, Language::Go, Language::Rs];

    /// The short name used in file names and on the command line (`cpp`, `java`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Language::Cpp => "cpp",
            Language::Java => "java",
            Language::Js => "js",
            Language::Ts => "ts",
            Language::Cs => "cs",
            Language::Sh => "sh",
            Language::Php => "php",
            Language::Go => "go",
            Language::Rs => "rs",
        }
    }

    /// Parses a short name (`cpp`, ...), also the data's `language` values (`go_test.go`).
    pub fn parse(name: &str) -> Option<Language> {
        let name = if name == "go_test.go" { "go" } else { name };
        Language::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The benchmark file of this language in a directory of MultiPL-E data:
    /// `humaneval-LANG.jsonl`, or its gzip copy `humaneval-LANG.jsonl.gz` when only that exists
    /// (kiln's `data/benchmarks/multipl-e/` keeps them compressed).
    pub fn data_file(self, dir: &Path) -> PathBuf {
        let plain = dir.join(format!("humaneval-{}.jsonl", self.name()));
        let gz = dir.join(format!("humaneval-{}.jsonl.gz", self.name()));
        if !plain.exists() && gz.exists() {
            gz
        } else {
            plain
        }
    }

    /// This language's benchmark file as built into kiln.
    pub fn bundled_data(self) -> kiln_benchdata::BundledFile {
        kiln_benchdata::multipl_e(self.name()).expect("every MultiPL-E language is bundled")
    }

    /// How many problems the benchmark file has (checked by the tests; a different count
    /// means another version of the data).
    pub fn expected_problems(self) -> usize {
        match self {
            Language::Cpp | Language::Js | Language::Php => 161,
            Language::Java | Language::Cs | Language::Sh => 158,
            Language::Ts => 159,
            Language::Go => 154,
            Language::Rs => 156,
        }
    }

    /// The file the program is written to (what the compiler or interpreter expects: Java
    /// wants the class name, `go test` a `_test.go` file).
    pub fn file_name(self) -> &'static str {
        match self {
            Language::Cpp => "test.cpp",
            Language::Java => "Problem.java",
            Language::Js => "test.js",
            Language::Ts => "test.ts",
            Language::Cs => "Program.cs",
            Language::Sh => "test.sh",
            Language::Php => "test.php",
            Language::Go => "main_test.go",
            Language::Rs => "main.rs",
        }
    }

    /// The commands the language needs, each with the Debian package that provides it.
    pub fn commands(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Language::Cpp => &[("g++", "g++")],
            Language::Java => &[("javac", "openjdk-17-jdk-headless"), ("java", "openjdk-17-jdk-headless")],
            Language::Js => &[("node", "nodejs")],
            Language::Ts => &[("tsc", "node-typescript"), ("node", "nodejs")],
            Language::Cs => &[("mcs", "mono-mcs"), ("mono", "mono-runtime")],
            Language::Sh => &[("bash", "bash")],
            Language::Php => &[("php", "php-cli")],
            Language::Go => &[("go", "golang-go")],
            Language::Rs => &[("rustc", "rustc")],
        }
    }

    /// The Debian packages of the whole toolchain (for messages and CI). C++ task 162 also
    /// needs `libssl-dev` (it links `-lcrypto -lssl`).
    pub fn debian_packages(self) -> Vec<&'static str> {
        let mut p: Vec<&str> = self.commands().iter().map(|(_, p)| *p).collect();
        p.dedup();
        p
    }

    /// Limits for compiling and for running, derived from the caller's run limits. Numbers:
    /// the JVM, mono, go and rustc get 8 GiB of address space (the JVM sizes its heap from
    /// RLIMIT_AS, go and mono reserve large arenas up front) and 1,024 processes (threads
    /// count against RLIMIT_NPROC; javac and `go test` start dozens), node 8 GiB (V8 reserves
    /// its heap cage); g++, bash and php keep the caller's limits. Compilers get
    /// [`COMPILE_TIMEOUT`]; C# output is kept up to 16 KiB so "Fail" is not cut off.
    pub fn limits(self, run: &Limits) -> (Limits, Limits) {
        let (memory, processes) = match self {
            Language::Java | Language::Cs | Language::Go | Language::Rs => (8u64 << 30, 1024u64),
            Language::Js | Language::Ts => (8 << 30, 512),
            Language::Cpp | Language::Sh | Language::Php => (run.memory_bytes, run.processes),
        };
        let run = Limits {
            memory_bytes: run.memory_bytes.max(memory),
            processes: run.processes.max(processes),
            output_bytes: if self == Language::Cs { run.output_bytes.max(16 << 10) } else { run.output_bytes },
            timeout: if self == Language::Go { run.timeout + COMPILE_TIMEOUT } else { run.timeout },
            ..*run
        };
        let compile = Limits { timeout: COMPILE_TIMEOUT, memory_bytes: run.memory_bytes.max(4 << 30), ..run };
        (compile, run)
    }

    /// Finds the language's commands on `PATH`; a missing one is an error naming the Debian
    /// package to install.
    pub fn check_toolchain(self) -> Result<Toolchain, EvalError> {
        self.check_toolchain_in(&std::env::var_os("PATH").unwrap_or_default())
    }

    /// [`check_toolchain`](Self::check_toolchain) with an explicit search path (the tests use
    /// an empty one to check the error).
    pub fn check_toolchain_in(self, path: &OsStr) -> Result<Toolchain, EvalError> {
        let mut programs = BTreeMap::new();
        for (cmd, _) in self.commands() {
            let Some(found) = std::env::split_paths(path).map(|d| d.join(cmd)).find(|p| is_executable(p)) else {
                return Err(EvalError::Toolchain {
                    language: self.name().into(),
                    command: (*cmd).into(),
                    install: format!("apt-get install {}", self.debian_packages().join(" ")),
                });
            };
            programs.insert(*cmd, real_program(cmd, found));
        }
        Ok(Toolchain { language: self, programs, javatuples: None })
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The executable to run in the sandbox, which clears the environment and points HOME into the
/// sample's directory: a rustup proxy (`~/.cargo/bin/rustc`) would then look for a toolchain in
/// the wrong place, so rustc is resolved to the toolchain's own binary.
fn real_program(cmd: &str, found: PathBuf) -> PathBuf {
    if cmd == "rustc" {
        let sysroot = Command::new(&found).args(["--print", "sysroot"]).output().ok().filter(|o| o.status.success());
        if let Some(o) = sysroot {
            let real = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("bin/rustc");
            if is_executable(&real) {
                return real;
            }
        }
    }
    found
}

/// A language's commands, found on the PATH (see [`Language::check_toolchain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// The language.
    pub language: Language,
    /// Command name → absolute path.
    pub programs: BTreeMap<&'static str, PathBuf>,
    /// The bytes of `javatuples-1.2.jar` (Java only: the tests use its tuple classes), written
    /// beside each program.
    pub javatuples: Option<std::borrow::Cow<'static, [u8]>>,
}

impl Toolchain {
    /// Sets the javatuples jar Java programs are compiled and run with; a missing file is an
    /// error naming it.
    pub fn with_javatuples(mut self, jar: &Path) -> Result<Self, EvalError> {
        if !jar.is_file() {
            return Err(EvalError::Data { path: jar.to_path_buf(), message: "javatuples jar not found (MultiPL-E's Java tests need it on the classpath; it ships beside the data as javatuples-1.2.jar)".into() });
        }
        let bytes = std::fs::read(jar).map_err(|e| EvalError::Data { path: jar.to_path_buf(), message: e.to_string() })?;
        self.javatuples = Some(bytes.into());
        Ok(self)
    }

    /// Sets the javatuples jar to the copy built into kiln ([`kiln_benchdata::JAVATUPLES`]).
    pub fn with_bundled_javatuples(mut self) -> Self {
        self.javatuples = Some(kiln_benchdata::JAVATUPLES.bytes.into());
        self
    }

    fn program(&self, cmd: &str) -> String {
        self.programs.get(cmd).map_or_else(|| cmd.to_string(), |p| p.to_string_lossy().into_owned())
    }

    /// PATH inside the sandbox: the toolchain's directories first (tsc's `#!/usr/bin/env node`
    /// must find the same node), then the system's.
    fn search_path(&self) -> String {
        let mut dirs: Vec<String> = self.programs.values().filter_map(|p| p.parent()).map(|d| d.to_string_lossy().into_owned()).collect();
        dirs.dedup();
        dirs.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(String::from));
        dirs.join(":")
    }
}

/// One MultiPL-E problem (the fields of DeepSeek's `humaneval-{lang}.jsonl` that are used).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Problem {
    /// `HumanEval_23_strlen` ...
    pub name: String,
    /// The data's language tag (`cpp`, `go_test.go`, ...).
    pub language: String,
    /// The signature and comment the model continues.
    pub prompt: String,
    /// Where generation stops.
    pub stop_tokens: Vec<String>,
    /// The test code that follows the completion (it starts with whatever the stop token cut
    /// off, e.g. `}` for C++).
    pub test: String,
}

/// Reads one language's benchmark file; every line must hold the fields and be of `lang`.
pub fn load(path: &Path, lang: Language) -> Result<Vec<Problem>, EvalError> {
    load_data(&crate::DataFile::Path(path.to_path_buf()), lang)
}

/// [`load`] of a file on disk or the bundled copy ([`Language::bundled_data`]).
pub fn load_data(data: &crate::DataFile, lang: Language) -> Result<Vec<Problem>, EvalError> {
    let problems: Vec<Problem> = crate::load_data_jsonl(data, "name, language, prompt, stop_tokens, test")?;
    for (i, p) in problems.iter().enumerate() {
        if Language::parse(&p.language) != Some(lang) {
            return Err(EvalError::Data {
                path: data.label(),
                message: format!(
                    "problem {} ({}): field language is {:?}, expected {lang} (is this the humaneval-{lang}.jsonl file?)",
                    i + 1,
                    p.name,
                    p.language
                ),
            });
        }
    }
    Ok(problems)
}

/// The model's input: the prompt stripped (DeepSeek's `prompt.strip()`).
pub fn model_input(p: &Problem) -> &str {
    p.prompt.trim()
}

/// Where generation stops for `p`: the data's stop tokens, plus DeepSeek's extras for
/// TypeScript.
pub fn stop_tokens(p: &Problem, lang: Language) -> Vec<String> {
    let mut s = p.stop_tokens.clone();
    if lang == Language::Ts {
        s.extend(TS_EXTRA_STOP.iter().map(|t| t.to_string()));
    }
    s
}

/// Cuts a raw continuation at the earliest stop token.
pub fn truncate<'a>(completion: &'a str, stop: &[String]) -> &'a str {
    let cut = stop.iter().filter(|s| !s.is_empty()).filter_map(|s| completion.find(s.as_str())).min().unwrap_or(completion.len());
    &completion[..cut]
}

/// The test program for a completion of [`model_input`], assembled as DeepSeek does: the
/// generation is the original prompt + `"\n"` + completion; C++ gets the missing `#include`s,
/// C# the `using` lines, PHP `<?php` (if absent) and a closing `?>`.
pub fn program(p: &Problem, lang: Language, completion: &str) -> String {
    let code = format!("{}\n{}", p.prompt, completion);
    match lang {
        Language::Cpp => {
            let setup: String = CPP_PRELUDE.iter().filter(|s| !p.prompt.contains(*s)).map(|s| format!("{s}\n")).collect();
            format!("{setup}\n{code}\n{}", p.test)
        }
        Language::Cs => {
            let setup: String = CS_PRELUDE.iter().map(|s| format!("{s}\n")).collect();
            format!("{setup}\n{code}\n{}", p.test)
        }
        Language::Php => {
            let code = if code.starts_with("<?php") { code } else { format!("<?php\n{code}") };
            format!("{code}\n{}?>", p.test)
        }
        Language::Java | Language::Js | Language::Ts | Language::Sh | Language::Go | Language::Rs => format!("{code}\n{}", p.test),
    }
}

/// One scored sample.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    /// The language.
    pub language: Language,
    /// The problem (`HumanEval_23_strlen`).
    pub task_id: String,
    /// The completion that was tested.
    pub completion: String,
    /// How the test program ended (compile errors are failures with the compiler's message).
    pub result: RunResult,
}

/// Compiles and runs the test program of each (problem, completion) with `workers` in
/// parallel, each in a fresh temporary directory. `limits` is for running the program; see
/// [`Language::limits`] for what compilers get.
pub fn score(
    toolchain: &Toolchain,
    samples: &[(&Problem, String)],
    workers: usize,
    limits: &Limits,
    isolation: Isolation,
) -> Result<Vec<Scored>, EvalError> {
    let lang = toolchain.language;
    if lang == Language::Java && toolchain.javatuples.is_none() {
        return Err(EvalError::Data {
            path: PathBuf::from("javatuples-1.2.jar"),
            message: "Java needs the javatuples jar: call Toolchain::with_javatuples (kiln eval multipl-e: --javatuples FILE)".into(),
        });
    }
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(workers.max(1)).build().map_err(|e| EvalError::Exec(std::io::Error::other(e)))?;
    pool.install(|| {
        samples
            .par_iter()
            .map(|(p, completion)| {
                let result = run_one(toolchain, &program(p, lang, completion), &p.name, limits, isolation)?;
                tracing::debug!(task = %p.name, %lang, ?result, "scored");
                Ok(Scored { language: lang, task_id: p.name.clone(), completion: completion.clone(), result })
            })
            .collect()
    })
}

/// Compiles (where the language has a compile step) and runs one program; the pass rule is the
/// language's.
pub fn run_one(toolchain: &Toolchain, program: &str, task_id: &str, limits: &Limits, isolation: Isolation) -> Result<RunResult, EvalError> {
    let lang = toolchain.language;
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    std::fs::write(d.join(lang.file_name()), program)?;
    let (compile_limits, run_limits) = lang.limits(limits);
    let path = toolchain.search_path();
    let dir_s = d.to_string_lossy().into_owned();
    let gocache = format!("{dir_s}/.gocache");
    let gopath = format!("{dir_s}/.gopath");
    let mut env: Vec<(&str, &str)> = vec![("PATH", &path)];
    match lang {
        Language::Go => env.extend([("GOCACHE", gocache.as_str()), ("GOPATH", gopath.as_str()), ("GOTOOLCHAIN", "local")]),
        Language::Cs => env.push(("MONO_TRACE_LISTENER", "Console.Error")),
        _ => {}
    }
    let exec = |argv: &[&str], l: &Limits| sandbox::run_captured(argv, d, l, isolation, &env);
    let compile = |argv: &[&str]| -> Result<Option<RunResult>, EvalError> {
        let c = exec(argv, &compile_limits)?;
        Ok(if c.timed_out {
            tracing::warn!(task = task_id, %lang, "compiler timed out after {:?}", compile_limits.timeout);
            Some(RunResult::TimedOut)
        } else if !c.success {
            let msg = if c.stderr.trim().is_empty() { c.stdout } else { c.stderr };
            Some(RunResult::Failed { code: c.code, stderr: format!("compilation error: {msg}") })
        } else {
            None
        })
    };
    let exit_zero = |c: Captured| -> RunResult {
        if c.timed_out {
            RunResult::TimedOut
        } else if c.success {
            RunResult::Passed
        } else {
            RunResult::Failed { code: c.code, stderr: if c.stderr.trim().is_empty() { c.stdout } else { c.stderr } }
        }
    };
    let (gpp, javac, java, node, tsc, mcs, mono, bash, php, go, rustc) = (
        toolchain.program("g++"),
        toolchain.program("javac"),
        toolchain.program("java"),
        toolchain.program("node"),
        toolchain.program("tsc"),
        toolchain.program("mcs"),
        toolchain.program("mono"),
        toolchain.program("bash"),
        toolchain.program("php"),
        toolchain.program("go"),
        toolchain.program("rustc"),
    );
    Ok(match lang {
        Language::Cpp => {
            let mut argv = vec![gpp.as_str(), "-std=c++17", "test.cpp"];
            if task_id.contains("162") {
                argv.extend(["-lcrypto", "-lssl"]);
            }
            match compile(&argv)? {
                Some(r) => r,
                None => exit_zero(exec(&["./a.out"], &run_limits)?),
            }
        }
        Language::Java => {
            let jar = toolchain.javatuples.as_ref().expect("checked in score");
            std::fs::write(d.join("javatuples-1.2.jar"), jar)?;
            match compile(&[&javac, "-cp", "javatuples-1.2.jar", "Problem.java"])? {
                Some(r) => r,
                None => exit_zero(exec(&[&java, "-ea", "-cp", ".:javatuples-1.2.jar", "Problem"], &run_limits)?),
            }
        }
        Language::Js => {
            let c = exec(&[&node, "test.js"], &run_limits)?;
            if c.timed_out {
                RunResult::TimedOut
            } else if c.success && c.stdout.is_empty() && c.stderr.is_empty() {
                RunResult::Passed
            } else {
                // DeepSeek's rule: any output fails the program.
                let said = if c.stderr.is_empty() { format!("stdout: {}", c.stdout) } else { c.stderr };
                RunResult::Failed { code: c.code, stderr: said }
            }
        }
        Language::Ts => {
            // DeepSeek: ES2015 + DOM first; if that does not pass, plain `tsc` and run again.
            let first = match compile(&[&tsc, "test.ts", "--target", "ES2015", "--lib", "ES2015,DOM"])? {
                Some(r) => r,
                None => exit_zero(exec(&[&node, "test.js"], &run_limits)?),
            };
            if first == RunResult::Passed {
                first
            } else {
                match compile(&[&tsc, "test.ts"])? {
                    Some(r) => r,
                    None => exit_zero(exec(&[&node, "test.js"], &run_limits)?),
                }
            }
        }
        Language::Cs => match compile(&[&mcs, "-d:DEBUG", "Program.cs"])? {
            Some(r) => r,
            None => {
                let c = exec(&[&mono, "Program.exe"], &run_limits)?;
                if c.timed_out {
                    RunResult::TimedOut
                } else if c.success && !c.stderr.contains("Fail") {
                    RunResult::Passed
                } else {
                    RunResult::Failed { code: c.code, stderr: c.stderr }
                }
            }
        },
        Language::Sh => exit_zero(exec(&[&bash, "test.sh"], &run_limits)?),
        Language::Php => exit_zero(exec(&[&php, "-f", "test.php"], &run_limits)?),
        Language::Go => {
            let t = format!("-timeout={}s", limits.timeout.as_secs().max(1));
            exit_zero(exec(&[&go, "test", &t, "main_test.go"], &run_limits)?)
        }
        Language::Rs => match compile(&[&rustc, "--edition", "2021", "-o", "main", "main.rs"])? {
            Some(r) => r,
            None => exit_zero(exec(&["./main"], &run_limits)?),
        },
    })
}

/// A row of a solutions file: a completion for one task (rows of another `language` are skipped).
#[derive(serde::Deserialize)]
struct SolutionRow {
    task_id: String,
    completion: String,
    #[serde(default)]
    language: Option<String>,
}

/// The tasks to score a solutions file (JSONL of `task_id`, `completion`, optionally `language`):
/// each row's completion becomes its task's reference (scored as the canonical solutions are).
/// A second row for the same problem is its own task `ID#2`, so every row gets a result and a
/// resumed run can tell them apart. A row naming no task of `data` is an error naming it.
pub fn tasks_with_solutions(
    tasks: &[crate::task::Task],
    file: &Path,
    lang: Language,
    data: &crate::DataFile,
) -> Result<Vec<crate::task::Task>, EvalError> {
    let rows: Vec<SolutionRow> = crate::load_jsonl(file, "task_id, completion (and optionally language)")?;
    let mut chosen: Vec<crate::task::Task> = Vec::new();
    for (i, r) in rows.into_iter().enumerate() {
        if r.language.as_deref().is_some_and(|l| Language::parse(l) != Some(lang)) {
            continue;
        }
        let Some(t) = tasks.iter().find(|t| t.task_id == r.task_id) else {
            return Err(EvalError::Data {
                path: file.to_path_buf(),
                message: format!("row {}: task_id {:?} is not a problem of {data}", i + 1, r.task_id),
            });
        };
        let mut t = t.clone();
        t.canonical = r.completion;
        let seen = chosen.iter().filter(|c| c.task_id == t.task_id || c.task_id.starts_with(&format!("{}#", t.task_id))).count();
        if seen > 0 {
            t.task_id = format!("{}#{}", t.task_id, seen + 1);
        }
        chosen.push(t);
    }
    Ok(chosen)
}
