//! MultiPL-E on the real data: every language whose toolchain is installed passes the
//! hand-checked solutions of `fixtures/multipl_e_solutions.jsonl` and fails the wrong ones;
//! compile errors, runaway programs and missing toolchains are reported as such.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kiln_eval::multipl_e::{self, Language, Problem, Toolchain};
use kiln_eval::sandbox::{detect_isolation, Limits, RunResult};
use kiln_eval::EvalError;
use serde::Deserialize;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks/multipl-e")
}

#[derive(Deserialize)]
struct Solution {
    language: String,
    task_id: String,
    completion: String,
    expect: String,
}

fn solutions() -> Vec<Solution> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/multipl_e_solutions.jsonl");
    kiln_eval::load_jsonl(&path, "language, task_id, completion, expect").unwrap()
}

/// The language's toolchain (Java with javatuples), or a loud skip naming the package.
fn toolchain(lang: Language) -> Option<Toolchain> {
    match lang.check_toolchain() {
        Ok(t) if lang == Language::Java => Some(t.with_javatuples(&data_dir().join("javatuples-1.2.jar")).unwrap()),
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("SKIP multipl-e {lang}: install {} ({e})", lang.debian_packages().join(" "));
            None
        }
    }
}

fn problems(lang: Language) -> Vec<Problem> {
    multipl_e::load(&lang.data_file(&data_dir()), lang).unwrap()
}

/// Hand-checked completions pass and wrong ones fail, in one language.
fn check_language(lang: Language) {
    let Some(tc) = toolchain(lang) else { return };
    let problems = problems(lang);
    let mine: Vec<_> = solutions().into_iter().filter(|s| s.language == lang.name()).collect();
    assert!(mine.iter().filter(|s| s.expect == "pass").count() >= 3, "{lang}: fewer than 3 hand-checked solutions");
    assert!(mine.iter().any(|s| s.expect == "fail"), "{lang}: no wrong completion");
    let samples: Vec<_> = mine
        .iter()
        .map(|s| {
            let p = problems.iter().find(|p| p.name == s.task_id).unwrap_or_else(|| panic!("{lang}: {} is not in the data", s.task_id));
            // The fixture's completions must survive the language's stop tokens unchanged,
            // i.e. they are what a model stopped at the right place would return.
            assert_eq!(
                multipl_e::truncate(&s.completion, &multipl_e::stop_tokens(p, lang)),
                s.completion,
                "{lang} {}: the completion contains a stop token",
                s.task_id
            );
            (p, s.completion.clone())
        })
        .collect();
    let isolation = detect_isolation();
    let scored = multipl_e::score(&tc, &samples, 2, &Limits::default(), isolation).unwrap();
    for (s, want) in scored.iter().zip(&mine) {
        assert_eq!(s.language, lang);
        match want.expect.as_str() {
            "pass" => assert_eq!(s.result, RunResult::Passed, "{lang} {}: a hand-checked solution did not pass ({isolation:?})", s.task_id),
            _ => assert!(
                matches!(s.result, RunResult::Failed { .. }),
                "{lang} {}: a wrong completion did not fail: {:?}",
                s.task_id,
                s.result
            ),
        }
    }
}

#[test]
fn cpp_solutions() {
    check_language(Language::Cpp);
}
#[test]
fn java_solutions() {
    check_language(Language::Java);
}
#[test]
fn js_solutions() {
    check_language(Language::Js);
}
#[test]
fn ts_solutions() {
    check_language(Language::Ts);
}
#[test]
fn cs_solutions() {
    check_language(Language::Cs);
}
#[test]
fn sh_solutions() {
    check_language(Language::Sh);
}
#[test]
fn php_solutions() {
    check_language(Language::Php);
}
#[test]
fn go_solutions() {
    check_language(Language::Go);
}
#[test]
fn rs_solutions() {
    check_language(Language::Rs);
}

#[test]
fn every_data_file_loads_with_its_record_count() {
    for lang in Language::ALL {
        let ps = problems(lang);
        assert_eq!(ps.len(), lang.expected_problems(), "{lang}");
        assert!(ps.iter().all(|p| !p.stop_tokens.is_empty() && !p.prompt.is_empty() && !p.test.is_empty()), "{lang}");
    }
    // TypeScript gets DeepSeek's extra stop words; the others only the data's.
    let ts = &problems(Language::Ts)[0];
    assert!(multipl_e::stop_tokens(ts, Language::Ts).contains(&"\nexport".to_string()));
    let js = &problems(Language::Js)[0];
    assert_eq!(multipl_e::stop_tokens(js, Language::Js), js.stop_tokens);
}

#[test]
fn a_file_of_the_wrong_language_or_a_bad_line_is_named() {
    let err = multipl_e::load(&Language::Cpp.data_file(&data_dir()), Language::Java).unwrap_err().to_string();
    assert!(err.contains("humaneval-cpp.jsonl") && err.contains("expected java"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("humaneval-sh.jsonl");
    std::fs::write(
        &bad,
        "{\"name\": \"x\", \"language\": \"sh\", \"prompt\": \"p\", \"stop_tokens\": [], \"test\": \"t\"}\n{\"name\": \"y\"}\n",
    )
    .unwrap();
    let err = multipl_e::load(&bad, Language::Sh).unwrap_err().to_string();
    assert!(err.contains("humaneval-sh.jsonl") && err.contains("line 2") && err.contains("language"), "{err}");
}

#[test]
fn truncation_and_program_assembly_follow_deepseek() {
    let cpp = problems(Language::Cpp).into_iter().find(|p| p.name == "HumanEval_23_strlen").unwrap();
    let stop = multipl_e::stop_tokens(&cpp, Language::Cpp);
    assert_eq!(multipl_e::truncate("\n    return string.size();\n}\nint main() {}", &stop), "\n    return string.size();");
    let prog = multipl_e::program(&cpp, Language::Cpp, "\n    return 0;");
    // The prompt already includes <bits/stdc++.h> and <assert.h>; DeepSeek's missing includes
    // come first, then prompt + "\n" + completion + "\n" + test.
    assert!(prog.starts_with("#include<stdlib.h>\n"), "{prog}");
    assert!(prog.contains(&format!("{}\n\n    return 0;\n{}", cpp.prompt, cpp.test)), "{prog}");
    let php = problems(Language::Php).into_iter().next().unwrap();
    let prog = multipl_e::program(&php, Language::Php, "x");
    assert!(prog.starts_with("<?php") && prog.ends_with("?>") && prog.matches("<?php").count() == 1, "{prog}");
    let cs = problems(Language::Cs).into_iter().next().unwrap();
    assert!(multipl_e::program(&cs, Language::Cs, "x").starts_with("using System.Numerics;\n"));
    assert_eq!(Language::parse("go_test.go"), Some(Language::Go));
}

#[test]
fn a_compile_error_is_a_failure_with_the_compilers_message() {
    for lang in [Language::Cpp, Language::Rs, Language::Java, Language::Ts, Language::Cs, Language::Go] {
        let Some(tc) = toolchain(lang) else { continue };
        let p = problems(lang).into_iter().find(|p| p.name == "HumanEval_53_add").unwrap();
        let scored =
            multipl_e::score(&tc, &[(&p, "\n    return x +;\n}\n".to_string())], 1, &Limits::default(), detect_isolation()).unwrap();
        let RunResult::Failed { stderr, .. } = &scored[0].result else { panic!("{lang}: {:?}", scored[0].result) };
        // The compiler's message points into the program file (`go test` compiles and runs in
        // one step, so its message comes without the "compilation error" prefix).
        assert!(stderr.contains(lang.file_name()), "{lang}: no compiler message: {stderr}");
        if lang != Language::Go {
            assert!(stderr.starts_with("compilation error: "), "{lang}: {stderr}");
        }
    }
}

#[test]
fn an_infinite_loop_times_out_in_cpp_and_js() {
    let limits = Limits { timeout: Duration::from_secs(2), ..Limits::default() };
    for (lang, body) in [(Language::Cpp, "\n    while (true) {}\n    return 0;"), (Language::Js, "\n  while (true) {}\n}\n")] {
        let Some(tc) = toolchain(lang) else { continue };
        let p = problems(lang).into_iter().find(|p| p.name == "HumanEval_53_add").unwrap();
        let t = Instant::now();
        let scored = multipl_e::score(&tc, &[(&p, body.to_string())], 1, &limits, detect_isolation()).unwrap();
        assert_eq!(scored[0].result, RunResult::TimedOut, "{lang}");
        // Compiling C++ takes a few seconds of its own; the program itself was stopped at 2 s.
        assert!(t.elapsed() < Duration::from_secs(40), "{lang}: {:?}", t.elapsed());
    }
}

#[test]
fn javascript_that_prints_fails_as_in_deepseek() {
    let Some(tc) = toolchain(Language::Js) else { return };
    let p = problems(Language::Js).into_iter().find(|p| p.name == "HumanEval_53_add").unwrap();
    let scored = multipl_e::score(
        &tc,
        &[(&p, "\n  process.stdout.write('hi');\n  return x + y;\n}\n".to_string())],
        1,
        &Limits::default(),
        detect_isolation(),
    )
    .unwrap();
    assert!(matches!(&scored[0].result, RunResult::Failed { stderr, .. } if stderr.contains("hi")), "{:?}", scored[0].result);
}

#[test]
fn a_missing_toolchain_names_the_package_to_install() {
    let empty = tempfile::tempdir().unwrap();
    for lang in Language::ALL {
        let err = lang.check_toolchain_in(empty.path().as_os_str()).unwrap_err();
        assert!(matches!(err, EvalError::Toolchain { .. }), "{lang}: {err:?}");
        let msg = err.to_string();
        for pkg in lang.debian_packages() {
            assert!(msg.contains(pkg), "{lang}: {msg}");
        }
        assert!(msg.contains(lang.commands()[0].0), "{lang}: {msg}");
    }
    assert!(Language::Cpp.check_toolchain_in(OsStr::new("")).unwrap_err().to_string().contains("apt-get install g++"));
    // Java without its jar is refused up front, naming the jar.
    if let Some(tc) = toolchain(Language::Java) {
        let err = tc.with_javatuples(&empty.path().join("javatuples-1.2.jar")).unwrap_err().to_string();
        assert!(err.contains("javatuples-1.2.jar"), "{err}");
    }
}
