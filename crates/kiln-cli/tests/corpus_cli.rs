//! `kiln corpus build | stats | inspect` on the committed fixture repositories.

use std::path::PathBuf;
mod common;
use common::{kiln, ok};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/repos")
}

#[test]
fn build_stats_inspect_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("corpus");
    let (root, out_s) = (fixtures().display().to_string(), out.display().to_string());
    // Job-array style: each task alone, then the merge.
    for t in ["0", "1"] {
        ok(&kiln(&["corpus", "build", &root, "--repos-root", "--out", &out_s, "--no-decontam", "--tasks", "2", "--task", t]));
    }
    assert!(!out.join("manifest.json").exists(), "--task does not merge");
    let build = kiln(&["corpus", "build", &root, "--repos-root", "--out", &out_s, "--no-decontam", "--tasks", "2"]);
    ok(&build);
    assert!(String::from_utf8_lossy(&build.stderr).contains("reused 2"), "{}", String::from_utf8_lossy(&build.stderr));

    let stats = ok(&kiln(&["corpus", "stats", &out_s]));
    assert!(stats.contains("Language") && stats.contains("Python") && stats.contains("files ingested"), "{stats}");
    let json: serde_json::Value = serde_json::from_str(&ok(&kiln(&["corpus", "stats", &out_s, "--json"]))).unwrap();
    let kept = json["samples"]["kept"].as_u64().unwrap();
    assert!(kept > 0);

    let text = ok(&kiln(&["corpus", "inspect", &out_s, "--n", "2"]));
    assert_eq!(text.matches("=== ").count(), 2, "{text}");
    let line = ok(&kiln(&["corpus", "inspect", &out_s, "--n", "1", "--json"]));
    let first: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let id = first["id"].as_str().unwrap();
    let by_id = ok(&kiln(&["corpus", "inspect", &out_s, "--id", id, "--json"]));
    assert_eq!(serde_json::from_str::<serde_json::Value>(by_id.trim()).unwrap(), first);

    // Errors name the file.
    std::fs::write(out.join("manifest.json"), "{ truncated").unwrap();
    let bad = kiln(&["corpus", "stats", &out_s]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("manifest.json"), "{}", String::from_utf8_lossy(&bad.stderr));
    let missing = kiln(&["corpus", "build", &root, "--out", &out_s, "--benchmarks", "/nonexistent/bench"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--benchmarks"));
}
