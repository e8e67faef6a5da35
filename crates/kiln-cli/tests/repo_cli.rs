//! `kiln repo order` / `kiln repo context` on the committed fixture repositories
//! (tests/fixtures/repos/, described in its README).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn repo(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/repos").join(name)
}

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).output().expect("kiln runs")
}

fn json_of(out: Output) -> Value {
    assert!(out.status.success(), "kiln failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

fn position(order: &[String], path: &str) -> usize {
    order.iter().position(|p| p == path).unwrap_or_else(|| panic!("{path} missing from {order:?}"))
}

#[test]
fn order_lists_every_file_once_and_dependencies_first() {
    let got = json_of(kiln(&["repo", "order", repo("python").to_str().unwrap(), "--json", "--seed", "3"]));
    let all: Vec<String> = got["components"].as_array().unwrap().iter().flat_map(strings).collect();
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), all.len(), "a file appears twice: {all:?}");
    assert_eq!(all.len(), got["files"].as_u64().unwrap() as usize);
    // The diamond a -> {b, c} -> d, from the fixture README.
    let edges: Vec<(String, String)> =
        got["edges"].as_array().unwrap().iter().map(|e| (e["from"].as_str().unwrap().into(), e["to"].as_str().unwrap().into())).collect();
    for (from, to) in [("app/a.py", "app/b.py"), ("app/a.py", "app/c.py"), ("app/b.py", "app/d.py"), ("app/c.py", "app/d.py")] {
        assert!(edges.contains(&(from.to_string(), to.to_string())), "missing edge {from} -> {to}: {edges:?}");
        assert!(position(&all, to) < position(&all, from), "{to} must come before {from}");
    }
    assert!(got["external"]["app/d.py"].as_array().unwrap().iter().any(|m| m == "numpy"));
    // Same seed, same order.
    let again = json_of(kiln(&["repo", "order", repo("python").to_str().unwrap(), "--json", "--seed", "3"]));
    assert_eq!(again["components"], got["components"]);
}

#[test]
fn context_holds_transitive_imports_in_order_and_respects_the_budget() {
    let path = repo("python");
    let full = json_of(kiln(&["repo", "context", path.to_str().unwrap(), "--file", "main.py", "--json"]));
    let files = strings(&full["files"]);
    for f in ["app/a.py", "app/b.py", "app/c.py", "app/d.py", "app/x.py", "app/y.py", "src/mylib/tools.py"] {
        assert!(files.contains(&f.to_string()), "{f} missing from {files:?}");
    }
    assert!(!files.contains(&"main.py".to_string()), "the target itself is not its own context");
    assert!(position(&files, "app/d.py") < position(&files, "app/b.py"));
    assert!(position(&files, "app/b.py") < position(&files, "app/a.py"));
    let text = full["text"].as_str().unwrap();
    assert!(text.starts_with(&format!("# {}\n", files[0])), "path header first: {text:?}");

    let budget = full["tokens"].as_u64().unwrap() / 2;
    let cut =
        json_of(kiln(&["repo", "context", path.to_str().unwrap(), "--file", "main.py", "--max-tokens", &budget.to_string(), "--json"]));
    assert!(cut["tokens"].as_u64().unwrap() <= budget, "{cut}");
    let kept = strings(&cut["files"]);
    let dropped = strings(&cut["dropped"]);
    assert!(!dropped.is_empty());
    // Farthest first: a direct import is never dropped while a second-hand one is kept.
    for second_hand in ["app/b.py", "app/c.py", "app/d.py", "app/y.py"] {
        if kept.contains(&second_hand.to_string()) {
            for direct in ["app/a.py", "app/x.py", "src/mylib/tools.py"] {
                assert!(kept.contains(&direct.to_string()), "{direct} dropped while {second_hand} kept");
            }
        }
    }
}

#[test]
fn bad_paths_are_explained() {
    let out = kiln(&["repo", "context", repo("python").to_str().unwrap(), "--file", "nope.py"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--file nope.py") && err.contains("kiln repo order"), "{err}");
    let out = kiln(&["repo", "order", "/no/such/repo"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/repo"));
}
