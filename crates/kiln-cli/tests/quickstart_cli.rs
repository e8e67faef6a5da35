//! `kiln quickstart` end to end on a small real source set (eight python3 standard library
//! packages, about 1 MB, and kiln-eval's four cross-file fixture repositories) with a fixed
//! number of steps: every artefact exists, the model loads
//! and `kiln serve` answers with it, the loss went down, a rerun resumes, the corpus and
//! tokenizer are reproduced bit for bit, and bad inputs fail clearly.

mod common;
use common::{kiln, ok};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The python3 standard library packages used as repositories, or None (test skipped, said).
fn stdlib_packages() -> Option<Vec<PathBuf>> {
    let out = Command::new("python3").args(["-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"]).output().ok()?;
    let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let pkgs: Vec<PathBuf> = ["json", "email", "http", "logging", "urllib", "concurrent", "xmlrpc", "wsgiref"]
        .iter()
        .map(|p| root.join(p))
        .filter(|p| p.join("__init__.py").is_file())
        .collect();
    (pkgs.len() >= 4).then_some(pkgs)
}

/// The repository's `data/benchmarks` (committed: a missing folder fails the test).
fn benchmarks() -> Option<PathBuf> {
    let b = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks");
    assert!(b.join("humaneval").is_dir(), "no benchmarks at {}", b.display());
    Some(b)
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http(port: u16, request: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut r = String::new();
    s.read_to_string(&mut r).ok()?;
    Some(r)
}

/// Every file under `dir` (relative path → bytes), for bit-for-bit comparisons.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn quickstart_runs_end_to_end_resumes_and_reproduces() {
    let Some(pkgs) = stdlib_packages() else {
        eprintln!("SKIPPED: python3 (with its standard library) is not installed; apt-get install python3");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("qs");
    let mut args: Vec<String> =
        ["quickstart", "--out", out.to_str().unwrap(), "--steps", "40", "--seq-len", "128", "--eval-lines", "10", "--sources"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    args.extend(pkgs.iter().map(|p| p.display().to_string()));
    // Four small repositories whose files use each other's definitions, so the held-out set has
    // lines for the repository-level comparison (kiln-eval's fixtures).
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kiln-eval/tests/fixtures/repos");
    args.extend(["pyshop", "rustcalc", "tsnotes", "javabank"].iter().map(|r| fixtures.join(r).display().to_string()));
    if let Some(b) = benchmarks() {
        args.extend(["--benchmarks".to_string(), b.display().to_string()]);
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = ok(&kiln(&argv));
    assert!(stdout.contains("kiln serve --model"), "{stdout}");

    // Every artefact.
    for f in [
        "corpus/manifest.json",
        "tokenizer/tokenizer.json",
        "data/meta.json",
        "data/train.bin",
        "data/val.idx",
        "train/metrics.jsonl",
        "model/config.json",
        "model/model.safetensors",
        "model/tokenizer.json",
        "report.md",
        "loss.png",
        "corpus_languages.png",
        "quickstart.json",
        "quickstart.log",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    for png in ["loss.png", "corpus_languages.png"] {
        assert_eq!(&std::fs::read(out.join(png)).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in [
        "bits per byte",
        "zstd -19, each file alone",
        "zstd -19, all files as one stream",
        "Single-line infilling on 10 held-out lines",
        "| Python |",
        "kiln serve --model",
    ] {
        assert!(report.contains(needle), "report.md lacks {needle:?}:\n{report}");
    }

    // The loss went down: the mean of the last 5 training losses is below the first loss.
    let losses: Vec<f64> = std::fs::read_to_string(out.join("train/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "train")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 40);
    let tail = losses[35..].iter().sum::<f64>() / 5.0;
    assert!(tail < losses[0] - 0.5, "loss did not go down: {} -> {tail}", losses[0]);

    // The evaluation numbers are real measurements: positive, and the model's within sense.
    let state: Value = serde_json::from_str(&std::fs::read_to_string(out.join("quickstart.json")).unwrap()).unwrap();
    let eval = &state["stages"]["eval"]["info"];
    let bpb = eval["model_bits_per_byte"].as_f64().unwrap();
    let zstd = eval["zstd_each_bits_per_byte"].as_f64().unwrap();
    assert!(bpb > 0.5 && bpb < 8.0 && zstd > 0.5 && zstd < 4.0, "{eval}");
    assert!(eval["zstd_concat_bits_per_byte"].as_f64().unwrap() <= zstd + 1e-9);
    assert_eq!(eval["infill"]["lines"], 10);
    // The repository-level comparison ran on held-out lines, in both conditions.
    let repo = &eval["repo"];
    assert!(repo["tasks"].as_u64().unwrap() >= 1, "{eval}");
    for k in ["em_with", "em_without", "es_with", "es_without"] {
        assert!((0.0..=100.0).contains(&repo[k].as_f64().unwrap()), "{k}: {repo}");
    }
    assert!(report.contains("| all |") && report.contains("| with |") && report.contains("| without |"), "{report}");
    // What the suffix and the imported files are worth, in bits per byte.
    let middles = &eval["middles"];
    assert!(middles["lines"].as_u64().unwrap() >= 1, "{eval}");
    for k in ["with_suffix_bits_per_byte", "prefix_only_bits_per_byte"] {
        let v = middles[k].as_f64().unwrap();
        assert!(v > 0.1 && v < 30.0, "{k}: {middles}");
    }
    let cross = &eval["cross_file"];
    assert!(cross["lines"].as_u64().unwrap() >= 1 && cross["synthetic_lines"].as_u64().unwrap() >= 1, "{eval}");
    assert!(cross["with_context_bits_per_byte"].as_f64().unwrap() > 0.0, "{cross}");
    assert!(report.contains("What the code after a hole is worth") && report.contains("What the imported files are worth"), "{report}");

    // The model loads and generates.
    let model = out.join("model");
    ok(&kiln(&["generate", "--model", model.to_str().unwrap(), "--prompt", "import json\n", "--max-tokens", "4", "--temperature", "0"]));

    // kiln serve answers a completion request with it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["serve", "--model", model.to_str().unwrap(), "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while !http(port, "GET /health HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
        assert!(start.elapsed() < Duration::from_secs(60), "kiln serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let body = r#"{"prompt": "def parse(text):\n", "suffix": "\n    return result\n", "max_tokens": 8, "temperature": 0}"#;
    let reply = http(port, &format!("POST /v1/completions HTTP/1.1\r\nHost: l\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let json: Value = serde_json::from_str(reply.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(json["usage"]["completion_tokens"].as_u64().unwrap() >= 1, "{json}");

    // A rerun resumes: nothing is rebuilt, the training is not redone.
    let metrics_before = std::fs::read(out.join("train/metrics.jsonl")).unwrap();
    let shards_before = files_under(&out.join("corpus"));
    let rerun = kiln(&argv);
    ok(&rerun);
    assert!(String::from_utf8_lossy(&rerun.stderr).contains("resuming"), "{}", String::from_utf8_lossy(&rerun.stderr));
    assert_eq!(std::fs::read(out.join("train/metrics.jsonl")).unwrap(), metrics_before);
    assert_eq!(files_under(&out.join("corpus")), shards_before);

    // Another seed in the same folder is refused, naming the setting.
    let mut other = argv.clone();
    other.extend(["--seed", "1"]);
    let refused = kiln(&other);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--seed"), "{}", String::from_utf8_lossy(&refused.stderr));

    // Same seed and sources elsewhere: the same corpus shards and tokenizer, bit for bit.
    let again = tmp.path().join("again");
    let mut repro: Vec<&str> = argv.clone();
    repro[2] = again.to_str().unwrap();
    repro.extend(["--until", "tokenizer"]);
    ok(&kiln(&repro));
    let shards = |d: &Path| files_under(&d.join("corpus")).into_iter().filter(|(p, _)| p.ends_with(".parquet")).collect::<Vec<_>>();
    assert!(!shards(&out).is_empty());
    assert_eq!(shards(&again), shards(&out), "corpus shards differ between two runs with the same seed");
    assert_eq!(
        std::fs::read(again.join("tokenizer/tokenizer.json")).unwrap(),
        std::fs::read(out.join("tokenizer/tokenizer.json")).unwrap()
    );
}

#[test]
fn quickstart_fails_clearly_on_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    // A source folder without code.
    let empty = tmp.path().join("notes");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("todo.txt"), "nothing here").unwrap();
    let r = kiln(&["quickstart", "--out", tmp.path().join("a").to_str().unwrap(), "--sources", empty.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("no source code") && err.contains(empty.to_str().unwrap()), "{err}");

    // No default sources at all (no cargo registry, no python3): both named, and what to do.
    let nowhere = tmp.path().join("nowhere");
    std::fs::create_dir_all(&nowhere).unwrap();
    let r = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["quickstart", "--out", tmp.path().join("c").to_str().unwrap()])
        .env("CARGO_HOME", &nowhere)
        .env("HOME", &nowhere)
        .env("PATH", &nowhere)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("cargo registry") && err.contains("python3") && err.contains("--sources"), "{err}");

    // A budget too small to train: the stages before training run, then a clear message.
    let Some(pkgs) = stdlib_packages() else {
        eprintln!("SKIPPED (budget part): python3 is not installed; apt-get install python3");
        return;
    };
    let out = tmp.path().join("b");
    let mut args = vec!["quickstart", "--out", out.to_str().unwrap(), "--minutes", "0.2", "--seq-len", "128", "--sources"];
    let p: Vec<String> = pkgs.iter().take(4).map(|p| p.display().to_string()).collect();
    args.extend(p.iter().map(String::as_str));
    let r = kiln(&args);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("too small to train") && err.contains("--minutes"), "{err}");
    assert!(out.join("data/meta.json").is_file(), "the finished stages are kept for a rerun");
}

/// With a time budget instead of --steps, training is sized by timing a few steps, re-planned
/// from its real pace, and ends at its planned step count (the config on disk agrees).
#[test]
fn a_time_budget_sizes_the_training() {
    let Some(pkgs) = stdlib_packages() else {
        eprintln!("SKIPPED: python3 (with its standard library) is not installed; apt-get install python3");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q");
    let mut args =
        vec!["quickstart", "--out", out.to_str().unwrap(), "--minutes", "1.6", "--seq-len", "128", "--until", "train", "--sources"];
    let p: Vec<String> = pkgs.iter().take(4).map(|p| p.display().to_string()).collect();
    args.extend(p.iter().map(String::as_str));
    ok(&kiln(&args));
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(out.join("train/config.json")).unwrap()).unwrap();
    let planned = cfg["steps"].as_u64().unwrap();
    let steps =
        std::fs::read_to_string(out.join("train/metrics.jsonl")).unwrap().lines().filter(|l| l.contains("\"kind\":\"train\"")).count()
            as u64;
    assert!(planned >= 30 && steps == planned, "planned {planned}, trained {steps}");
    assert!(out.join("model/model.safetensors").is_file());
    assert!(!out.join("train-calibration").exists(), "the calibration run is removed");
}
