//! The harness on the real HumanEval data: canonical solutions pass, wrong ones fail, runaway
//! programs are stopped and contained, and the scores match the reference implementations.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use kiln_eval::humaneval;
use kiln_eval::metrics::{difflib_ratio, edit_similarity};
use kiln_eval::run::score_humaneval;
use kiln_eval::sandbox::{detect_isolation, run_python, Isolation, Limits, RunResult};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks/humaneval/HumanEval.jsonl.gz")
}

/// python3 with numpy, or a loud skip (CI installs both).
fn python_ready() -> bool {
    let ok = Command::new("python3").args(["-c", "import numpy"]).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: python3 with numpy is not installed (apt-get install python3 python3-numpy)");
    }
    ok
}

#[test]
fn canonical_solutions_pass_and_wrong_ones_fail() {
    if !python_ready() {
        return;
    }
    let problems = humaneval::load(&data()).unwrap();
    assert_eq!(problems.len(), 164);
    let isolation = detect_isolation();
    let samples: Vec<_> = problems.iter().map(|p| (p, humaneval::canonical_completion(p))).collect();
    let scored = score_humaneval(&samples, 2, &Limits::default(), isolation).unwrap();
    let failed: Vec<_> =
        scored.iter().filter(|s| s.result != RunResult::Passed).map(|s| format!("{}: {:?}", s.task_id, s.result)).collect();
    assert!(
        failed.is_empty(),
        "{} of 164 canonical solutions failed ({isolation:?}), first: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    let wrong: Vec<_> = problems.iter().take(8).map(|p| (p, "\n    return None\n".to_string())).collect();
    let scored = score_humaneval(&wrong, 2, &Limits::default(), isolation).unwrap();
    assert!(scored.iter().all(|s| matches!(s.result, RunResult::Failed { .. })), "{scored:?}");
    // The failure names what went wrong.
    let RunResult::Failed { stderr, .. } = &scored[0].result else { unreachable!() };
    assert!(stderr.contains("AssertionError") || stderr.contains("Error"), "{stderr}");
}

#[test]
fn runaway_programs_are_stopped_and_contained() {
    if !python_ready() {
        return;
    }
    let isolation = detect_isolation();
    let limits = Limits { timeout: Duration::from_secs(2), ..Limits::default() };
    let t = Instant::now();
    assert_eq!(run_python("while True:\n    pass\n", &limits, isolation).unwrap(), RunResult::TimedOut);
    assert!(t.elapsed() < Duration::from_secs(6), "the loop was stopped near the limit: {:?}", t.elapsed());
    // A loop that ignores the driver's timer is killed by the sandbox's clock.
    let t = Instant::now();
    let r =
        run_python("import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass\n", &limits, isolation).unwrap();
    assert_eq!(r, RunResult::TimedOut);
    assert!(t.elapsed() < Duration::from_secs(6));
    // 10 GB: refused by the address-space limit.
    let r = run_python("x = bytearray(10 * 1024 ** 3)\n", &limits, isolation).unwrap();
    assert!(matches!(&r, RunResult::Failed { stderr, .. } if stderr.contains("MemoryError")), "{r:?}");
    // Forking and shelling out are disabled.
    let r = run_python("import os\nos.fork()\n", &limits, isolation).unwrap();
    assert!(matches!(r, RunResult::Failed { .. }), "{r:?}");
    let r = run_python("import subprocess\nsubprocess.Popen(['true'])\n", &limits, isolation).unwrap();
    assert!(matches!(r, RunResult::Failed { .. }), "{r:?}");
    if isolation == Isolation::Bubblewrap {
        // No network, and nothing outside the sample's directory is writable.
        let r = run_python("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)\n", &limits, isolation).unwrap();
        assert!(matches!(r, RunResult::Failed { .. }), "{r:?}");
        let r = run_python("open('/usr/kiln-escape', 'w').write('x')\n", &limits, isolation).unwrap();
        assert!(matches!(r, RunResult::Failed { .. }), "{r:?}");
        assert!(!std::path::Path::new("/usr/kiln-escape").exists());
    } else {
        eprintln!("SKIPPED (partly): bubblewrap is not installed, so network and filesystem isolation are not tested (apt-get install bubblewrap)");
    }
}

#[test]
fn edit_similarity_equals_python_difflib() {
    let long_a: String = (0..60).map(|i| format!("x{} = f(y{}) + 1\n", i % 7, i % 5)).collect();
    let long_b: String = (0..55).map(|i| format!("x{} = g(y{}) - 1\n", i % 6, i % 5)).collect();
    let pairs: Vec<(String, String)> = vec![
        ("return a + b".into(), "return a+b".into()),
        ("foo(bar)".into(), "foo(baz)".into()),
        ("".into(), "x".into()),
        ("abc".into(), "abc".into()),
        ("for i in range(10):".into(), "for j in range(len(xs)):".into()),
        ("    if x is None:\n        return".into(), "    if not x:\n        return None".into()),
        ("héllo wörld".into(), "hello world".into()),
        (long_a.clone(), long_b.clone()),
        (long_b, long_a),
    ];
    let json = serde_json::to_string(&pairs).unwrap();
    let script = "import json, sys, difflib\nfor a, b in json.loads(sys.stdin.read()):\n    r = difflib.SequenceMatcher(None, a, b).ratio()\n    print(repr(r), 100 if a == b else (0 if not a or not b else round(100 * r)))\n";
    let out = Command::new("python3").args(["-c", script]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn();
    let Ok(mut child) = out else {
        eprintln!("SKIPPED: python3 is not installed");
        return;
    };
    use std::io::Write;
    child.stdin.take().unwrap().write_all(json.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for ((a, b), line) in pairs.iter().zip(text.lines()) {
        let mut parts = line.split(' ');
        let want_ratio: f64 = parts.next().unwrap().parse().unwrap();
        let want_es: u32 = parts.next().unwrap().parse().unwrap();
        assert!(
            (difflib_ratio(a, b) - want_ratio).abs() < 1e-12,
            "ratio of {a:?} / {b:?}: {} vs difflib {want_ratio}",
            difflib_ratio(a, b)
        );
        assert_eq!(edit_similarity(a, b), want_es, "{a:?} / {b:?}");
    }
}

/// Single-line infilling: the removed lines (200 sampled over the 1,033 tasks, as the
/// reference check did) pass when put back, and match exactly; a wrong line fails.
#[test]
fn infilling_ground_truth_lines_pass() {
    if !python_ready() {
        return;
    }
    use kiln_eval::infilling;
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks/humaneval-infilling/HumanEval-SingleLineInfilling.jsonl.gz");
    let problems = infilling::load(&path).unwrap();
    assert_eq!(problems.len(), 1033);
    let sample: Vec<_> = problems.iter().step_by(5).take(200).collect();
    let limits = Limits { timeout: Duration::from_secs(3), ..Limits::default() };
    let programs: Vec<_> =
        sample.iter().map(|p| (p.task_id.clone(), p.canonical_solution.clone(), infilling::program(p, &p.canonical_solution))).collect();
    let scored = kiln_eval::run::score_programs(&programs, 2, &limits, detect_isolation()).unwrap();
    let failed: Vec<_> = scored.iter().filter(|s| s.result != RunResult::Passed).map(|s| &s.task_id).collect();
    assert!(failed.is_empty(), "{} of 200 ground-truth lines failed: {failed:?}", failed.len());
    assert!(sample.iter().all(|p| infilling::exact_match(p, &format!("  {}  ", p.canonical_solution))));
    let p = sample[0];
    assert!(!infilling::exact_match(p, "    return 0\n"));
    let wrong = kiln_eval::run::score_programs(
        &[(p.task_id.clone(), String::new(), infilling::program(p, "    return 0\n"))],
        1,
        &limits,
        detect_isolation(),
    )
    .unwrap();
    assert_ne!(wrong[0].result, RunResult::Passed);
}

#[test]
fn python_imports_are_the_top_level_modules_a_program_names() {
    let program = "import math\nimport numpy as np, os.path\nfrom collections import *\nfrom .local import x\n# import commented\ndef f():\n    import inner\nx = 'import nothing'\n";
    assert_eq!(kiln_eval::sandbox::python_imports(program), ["math", "numpy", "os", "collections"]);
    let prelude_modules = kiln_eval::sandbox::python_imports(kiln_eval::humaneval::PRELUDE);
    assert!(prelude_modules.contains(&"numpy".to_string()) && prelude_modules.contains(&"typing".to_string()), "{prelude_modules:?}");
}

#[test]
fn the_python_preflight_names_a_missing_module_or_interpreter() {
    let Some(python) = ["python3"].into_iter().find(|p| std::process::Command::new(p).arg("-V").output().is_ok()) else {
        eprintln!("SKIPPED: python3 is not installed");
        return;
    };
    kiln_eval::sandbox::check_python_with(python, &["math".into(), "json".into()]).expect("the standard library imports");
    let err = kiln_eval::sandbox::check_python_with(python, &["math".into(), "no_such_module_kiln".into()]).unwrap_err().to_string();
    assert!(err.contains("cannot import no_such_module_kiln") && err.contains("pip install no_such_module_kiln"), "{err}");
    let err = kiln_eval::sandbox::check_python_with("/nonexistent/python3", &[]).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/python3") && err.contains("install python3"), "{err}");
}
