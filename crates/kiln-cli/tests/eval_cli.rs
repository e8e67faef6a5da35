//! `kiln eval` end to end: the harness on canonical solutions, and the same completions from an
//! in-process model and from `kiln serve` over HTTP.

mod common;
use common::{kiln, ok};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// (task id, completion) of every sample, sorted: samples are appended in the order they are
/// scored, which depends on the workers.
fn completions(out: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_to_string(out.join("samples.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["task_id"].as_str().unwrap().to_string(), v["completion"].as_str().unwrap().to_string())
        })
        .collect();
    v.sort();
    v
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n");
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    r.starts_with("HTTP/1.1 200")
}

/// Whether python3 with numpy is installed; says loudly when not (the test is then skipped).
fn python_with_numpy() -> bool {
    let ok = Command::new("python3").args(["-c", "import numpy"]).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: python3 with numpy is not installed (apt-get install python3 python3-numpy)");
    }
    ok
}

/// `kiln serve --model MODEL` on a free loopback port, once it answers /health.
fn serve(model: &Path) -> (Server, u16) {
    serve_with(model, &[])
}

/// [`serve`] with more arguments.
fn serve_with(model: &Path, extra: &[&str]) -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["serve", "--model", model.to_str().unwrap(), "--port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while !healthy(port) {
        assert!(start.elapsed() < Duration::from_secs(60), "kiln serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, port)
}

#[test]
fn endpoint_completions_equal_in_process_ones() {
    if !python_with_numpy() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks/humaneval/HumanEval.jsonl.gz");
    let (local, remote) = (tmp.path().join("local"), tmp.path().join("remote"));
    let common_args = ["--data", data.to_str().unwrap(), "--limit", "4", "--max-tokens", "12", "--json"];
    let summary: Value = serde_json::from_str(&ok(&kiln(
        &[&["eval", "humaneval", "--model", model.to_str().unwrap(), "--out", local.to_str().unwrap()][..], &common_args].concat(),
    )))
    .unwrap();
    assert_eq!(summary["problems"], 4);
    assert_eq!(summary["generation_errors"], 0);
    let (_server, port) = serve(&model);
    let url = format!("http://127.0.0.1:{port}");
    let summary: Value = serde_json::from_str(&ok(&kiln(
        &[&["eval", "humaneval", "--endpoint", &url, "--out", remote.to_str().unwrap()][..], &common_args].concat(),
    )))
    .unwrap();
    assert_eq!(summary["source"], "endpoint");
    assert_eq!(summary["generation_errors"], 0);
    let (a, b) = (completions(&local), completions(&remote));
    assert_eq!(a.len(), 4);
    assert_eq!(a, b, "per-sample completions differ between --model and --endpoint");
    // Infilling through OpenAI's `suffix` equals in-process FIM.
    let fim =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks/humaneval-infilling/HumanEval-SingleLineInfilling.jsonl.gz");
    let fim_args = ["--data", fim.to_str().unwrap(), "--limit", "3", "--max-tokens", "8", "--json"];
    let (fl, fr) = (tmp.path().join("fim-local"), tmp.path().join("fim-remote"));
    let s: Value = serde_json::from_str(&ok(&kiln(
        &[&["eval", "infill", "--model", model.to_str().unwrap(), "--out", fl.to_str().unwrap()][..], &fim_args].concat(),
    )))
    .unwrap();
    assert_eq!((s["problems"].as_u64(), s["generation_errors"].as_u64()), (Some(3), Some(0)), "{s}");
    ok(&kiln(&[&["eval", "infill", "--endpoint", &url, "--out", fr.to_str().unwrap()][..], &fim_args].concat()));
    assert_eq!(completions(&fl), completions(&fr), "infilling completions differ between --model and --endpoint");
    // llama.cpp's /infill gives the same middles as OpenAI's suffix field.
    let fi = tmp.path().join("fim-infill");
    ok(&kiln(&[&["eval", "infill", "--endpoint", &url, "--fim", "infill", "--out", fi.to_str().unwrap()][..], &fim_args].concat()));
    assert_eq!(completions(&fr), completions(&fi), "--fim infill differs from --fim suffix");
    // Multi-line infilling through the endpoint: same as in-process too.
    let (ml, mr) = (tmp.path().join("multi-local"), tmp.path().join("multi-remote"));
    let multi_data = fim.with_file_name("HumanEval-MultiLineInfilling.jsonl.gz");
    let multi = ["--set", "multi", "--data", multi_data.to_str().unwrap(), "--limit", "2", "--max-tokens", "8", "--json"];
    ok(&kiln(&[&["eval", "infill", "--model", model.to_str().unwrap(), "--out", ml.to_str().unwrap()][..], &multi].concat()));
    ok(&kiln(&[&["eval", "infill", "--endpoint", &url, "--fim", "infill", "--out", mr.to_str().unwrap()][..], &multi].concat()));
    assert_eq!(completions(&ml), completions(&mr));
    // A dead endpoint: every sample recorded with the reason, and the command fails with the
    // endpoint's error instead of reporting 0%.
    let dead_out = tmp.path().join("dead");
    let dead =
        kiln(&[&["eval", "humaneval", "--endpoint", "http://127.0.0.1:1", "--out", dead_out.to_str().unwrap()][..], &common_args].concat());
    assert!(!dead.status.success());
    let err = String::from_utf8_lossy(&dead.stderr);
    assert!(err.contains("every completion request failed") && err.contains("127.0.0.1:1") && err.contains("cannot connect"), "{err}");
    let dead: Value = serde_json::from_slice(&std::fs::read(dead_out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(dead["generation_errors"], 4);
    assert_eq!(dead["passed"], 0);
}

#[test]
fn canonical_solutions_score_everything_and_bad_data_is_named() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks/humaneval/HumanEval.jsonl.gz");
    let python_ok = Command::new("python3").args(["-c", "import numpy"]).status().is_ok_and(|s| s.success());
    if python_ok {
        let s: Value = serde_json::from_str(&ok(&kiln(&[
            "eval",
            "humaneval",
            "--canonical",
            "--data",
            data.to_str().unwrap(),
            "--limit",
            "12",
            "--json",
        ])))
        .unwrap();
        assert_eq!((s["passed"].as_u64(), s["problems"].as_u64()), (Some(12), Some(12)), "{s}");
    } else {
        eprintln!("SKIPPED (partly): python3 with numpy is not installed");
    }
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"task_id\": \"x\", \"prompt\": \"def f():\"}\n").unwrap();
    let out = kiln(&["eval", "humaneval", "--canonical", "--data", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jsonl") && err.contains("line 1") && err.contains("entry_point"), "{err}");
}

fn tiny_model(dir: &Path) -> std::path::PathBuf {
    let model = dir.join("model");
    ok(&kiln(&["model", "init", "--preset", "tiny", "--out", model.to_str().unwrap()]));
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture.join(f), model.join(f)).unwrap();
    }
    model
}

fn records(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("samples.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn keyed(out: &Path) -> Vec<(String, u64, String)> {
    let mut v: Vec<_> = records(out)
        .iter()
        .map(|r| (r["task_id"].as_str().unwrap().to_string(), r["sample"].as_u64().unwrap(), r["completion"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn batched_sampling_pass_at_k_resume_and_mismatch() {
    if !python_with_numpy() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let m = model.to_str().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks/humaneval/HumanEval.jsonl.gz");
    let d = data.to_str().unwrap();
    // Greedy: batched decoding gives exactly the unbatched completions.
    let (b1, b4) = (tmp.path().join("b1"), tmp.path().join("b4"));
    let greedy = ["eval", "humaneval", "--model", m, "--data", d, "--limit", "4", "--max-tokens", "12", "--json"];
    ok(&kiln(&[&greedy[..], &["--batch", "1", "--out", b1.to_str().unwrap()]].concat()));
    ok(&kiln(&[&greedy[..], &["--batch", "4", "--out", b4.to_str().unwrap()]].concat()));
    assert_eq!(keyed(&b1).len(), 4);
    assert_eq!(keyed(&b1), keyed(&b4), "batched greedy differs from unbatched");
    // N = 10 samples at T = 0.8: pass@1 and pass@10 reported, pass@100 not; the seed
    // reproduces the samples whatever the batch.
    let (s1, s2) = (tmp.path().join("s1"), tmp.path().join("s2"));
    let sampled = [
        "eval",
        "humaneval",
        "--model",
        m,
        "--data",
        d,
        "--limit",
        "2",
        "--max-tokens",
        "6",
        "--samples",
        "10",
        "--temperature",
        "0.8",
        "--seed",
        "7",
        "--json",
    ];
    let sum: Value = serde_json::from_str(&ok(&kiln(&[&sampled[..], &["--batch", "10", "--out", s1.to_str().unwrap()]].concat()))).unwrap();
    assert_eq!((sum["problems"].as_u64(), sum["samples"].as_u64()), (Some(2), Some(20)), "{sum}");
    assert!(sum["pass@1"].is_number() && sum["pass@10"].is_number() && sum.get("pass@100").is_none(), "{sum}");
    assert!(sum["per_language"]["python"]["pass_at_k"]["pass@10"].is_number(), "{sum}");
    let distinct: std::collections::HashSet<_> = keyed(&s1).into_iter().filter(|k| k.0 == "HumanEval/0").map(|k| k.2).collect();
    assert!(distinct.len() > 1, "sampling at T = 0.8 gave one completion 10 times");
    ok(&kiln(&[&sampled[..], &["--batch", "3", "--out", s2.to_str().unwrap()]].concat()));
    assert_eq!(keyed(&s1), keyed(&s2), "the same seed gave other samples");
    // Resume: as if killed after 13 samples, mid-line.
    let full = keyed(&s1);
    let text = std::fs::read_to_string(s1.join("samples.jsonl")).unwrap();
    let kept: Vec<&str> = text.lines().take(13).collect();
    std::fs::write(s1.join("samples.jsonl"), kept.join("\n") + "\n" + &text.lines().nth(13).unwrap()[..20]).unwrap();
    let sum: Value = serde_json::from_str(&ok(&kiln(&[&sampled[..], &["--out", s1.to_str().unwrap()]].concat()))).unwrap();
    assert_eq!((sum["resumed"].as_u64(), sum["generated_now"].as_u64(), sum["samples"].as_u64()), (Some(13), Some(7), Some(20)), "{sum}");
    assert_eq!(keyed(&s1), full, "the resumed run's samples differ");
    assert_eq!(records(&s1).len(), 20);
    // Nothing left: a rerun generates nothing and reports the same.
    let again: Value = serde_json::from_str(&ok(&kiln(&[&sampled[..], &["--out", s1.to_str().unwrap()]].concat()))).unwrap();
    assert_eq!((again["generated_now"].as_u64(), again["pass@10"].as_f64()), (Some(0), sum["pass@10"].as_f64()));
    // Other settings into the same directory: refused, naming the setting.
    let bad = kiln(&[
        "eval",
        "humaneval",
        "--model",
        m,
        "--data",
        d,
        "--limit",
        "2",
        "--max-tokens",
        "6",
        "--samples",
        "10",
        "--temperature",
        "0.5",
        "--seed",
        "7",
        "--out",
        s1.to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("temperature") && err.contains("0.8") && err.contains("0.5"), "{err}");
    let bad = kiln(&["eval", "mbpp", "--canonical", "--out", s1.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("benchmark"), "{}", String::from_utf8_lossy(&bad.stderr));
}

/// A loopback server answering connection i with `answers[i % len]` (or sleeping on "SLEEP").
fn bad_server(answers: Vec<&'static str>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(mut c) = conn else { continue };
            let answer = answers[i % answers.len()];
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
                let _ = c.read(&mut buf);
                if answer == "SLEEP" {
                    std::thread::sleep(Duration::from_secs(30));
                    return;
                }
                let _ = c.write_all(answer.as_bytes());
            });
        }
    });
    port
}

#[test]
fn garbage_and_silent_endpoints_score_zero_with_the_reason_and_all_failing_exits_non_zero() {
    if !python_with_numpy() {
        return;
    }
    const GOOD: &str =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"choices\":[{\"text\":\"    return True\\n\"}]}";
    const HTML: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<html><body>Bad Gateway</body></html>";
    const WRONG: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"result\": \"hello\"}";
    const JUNK: &str = "\x00\x01garbage that is not HTTP";
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks/humaneval/HumanEval.jsonl.gz");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mixed");
    let port = bad_server(vec![GOOD, HTML, WRONG, JUNK, "SLEEP"]);
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let s: Value = serde_json::from_str(&ok(&kiln(&[
        "eval",
        "humaneval",
        "--endpoint",
        &url,
        "--data",
        data.to_str().unwrap(),
        "--limit",
        "5",
        "--request-timeout",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(25), "a silent endpoint held the run");
    assert_eq!((s["samples"].as_u64(), s["generation_errors"].as_u64()), (Some(5), Some(4)), "{s}");
    let recs = records(&out);
    let reason = |id: &str| {
        recs.iter()
            .find(|r| r["task_id"] == id)
            .map(|r| (r["status"].as_str().unwrap().to_string(), r["error"].as_str().unwrap_or("").to_string()))
            .unwrap()
    };
    assert_eq!(reason("HumanEval/0").0, "failed", "the good answer is scored");
    assert!(reason("HumanEval/1").1.contains("not JSON") && reason("HumanEval/1").1.contains("<html>"), "{:?}", reason("HumanEval/1"));
    assert!(reason("HumanEval/2").1.contains("no choices[0].text"), "{:?}", reason("HumanEval/2"));
    assert!(reason("HumanEval/3").1.contains("not an HTTP response"), "{:?}", reason("HumanEval/3"));
    assert!(reason("HumanEval/4").1.contains("within"), "{:?}", reason("HumanEval/4"));
    for i in 1..5 {
        assert_eq!(reason(&format!("HumanEval/{i}")).0, "no_completion");
    }
    // Every request failing: a non-zero exit with the endpoint's error, not a silent 0%.
    let port = bad_server(vec![HTML, WRONG]);
    let all_bad = kiln(&[
        "eval",
        "humaneval",
        "--endpoint",
        &format!("http://127.0.0.1:{port}"),
        "--data",
        data.to_str().unwrap(),
        "--limit",
        "2",
        "--request-timeout",
        "2",
    ]);
    assert!(!all_bad.status.success());
    let err = String::from_utf8_lossy(&all_bad.stderr);
    assert!(err.contains("every completion request failed") && err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

/// `kiln serve` behind a TLS proxy (Python's ssl, the committed test certificate authority):
/// `--endpoint https://... --ca-cert` gives the same completions as plain HTTP, with one request
/// in flight or four; without `--ca-cert` the certificate is refused with the host and the flag
/// named.
#[test]
fn https_endpoint_through_a_tls_proxy_with_ca_cert_and_concurrency() {
    if !python_with_numpy() {
        return;
    }
    let tls = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tls");
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks/humaneval/HumanEval.jsonl.gz");
    let (_server, port) = serve_with(&model, &["--max-concurrency", "4"]);
    let mut proxy = Server(
        Command::new("python3")
            .arg(tls.join("tls_proxy.py"))
            .args([tls.join("server.pem"), tls.join("server.key")])
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(proxy.0.stdout.take().unwrap()), &mut line).unwrap();
    let https = format!("https://127.0.0.1:{}", line.trim());
    let ca = tls.join("ca.pem");
    let common = ["--data", data.to_str().unwrap(), "--limit", "6", "--max-tokens", "12", "--json"];
    let run = |url: &str, extra: &[&str], out: &Path| {
        let s: Value = serde_json::from_str(&ok(&kiln(
            &[&["eval", "humaneval", "--endpoint", url, "--out", out.to_str().unwrap()][..], extra, &common].concat(),
        )))
        .unwrap();
        assert_eq!(s["generation_errors"], 0, "{s}");
        completions(out)
    };
    let plain = run(&format!("http://127.0.0.1:{port}"), &[], &tmp.path().join("plain"));
    let tls_one = run(&https, &["--ca-cert", ca.to_str().unwrap()], &tmp.path().join("tls-1"));
    let tls_four = run(&https, &["--ca-cert", ca.to_str().unwrap(), "--concurrency", "4"], &tmp.path().join("tls-4"));
    assert_eq!(plain.len(), 6);
    assert_eq!(tls_one, plain, "HTTPS through the proxy gives the completions of plain HTTP");
    assert_eq!(tls_four, plain, "--concurrency 4 gives the per-sample results of 1");
    // The system's roots do not know the test authority: refused, with the host and --ca-cert named.
    let refused = kiln(&[&["eval", "humaneval", "--endpoint", &https][..], &common[..4]].concat());
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("TLS with 127.0.0.1 failed") && err.contains("--ca-cert"), "{err}");
    // A --ca-cert that holds no certificate is named before any request.
    let not_pem = tmp.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let bad = kiln(&[&["eval", "humaneval", "--endpoint", &https, "--ca-cert", not_pem.to_str().unwrap()][..], &common[..4]].concat());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("--ca-cert") && err.contains("not.pem"), "{err}");
}

/// An endpoint that answers 429 forever: a bounded number of attempts (the server counts them),
/// then the sample fails with the status; a proxy that refuses is named.
#[test]
fn an_endpoint_busy_forever_is_retried_a_bounded_number_of_times_and_a_dead_proxy_is_named() {
    if !python_with_numpy() {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 65536];
            let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = c.read(&mut buf);
            let body = "{\"error\": \"rate limited\"}";
            let _ = write!(
                c,
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks/humaneval/HumanEval.jsonl.gz");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("busy");
    let url = format!("http://127.0.0.1:{port}");
    let run = kiln(&[
        "eval",
        "humaneval",
        "--endpoint",
        &url,
        "--data",
        data.to_str().unwrap(),
        "--limit",
        "1",
        "--retries",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!run.status.success(), "the only request failed");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 3, "one attempt and two retries");
    let rec = &records(&out)[0];
    let reason = rec["error"].as_str().unwrap();
    assert!(rec["status"] == "no_completion" && reason.contains("HTTP 429 (after 3 attempts)") && reason.contains("rate limited"), "{rec}");
    // A proxy that refuses connections.
    let run =
        kiln(&["eval", "humaneval", "--endpoint", &url, "--proxy", "http://127.0.0.1:1", "--data", data.to_str().unwrap(), "--limit", "1"]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && err.contains("through proxy") && err.contains("127.0.0.1:1"), "{err}");
}

/// `kiln eval repo build` on a corpus built from the fixture repositories gives the same bench
/// as on the directories, and `kiln eval repo --model` scores both conditions.
#[test]
fn repo_benchmark_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixtures = root.join("crates/kiln-eval/tests/fixtures/repos");
    let repos: Vec<String> = ["pyshop", "rustcalc", "tsnotes"].iter().map(|r| fixtures.join(r).to_str().unwrap().to_string()).collect();
    let repo_args: Vec<&str> = repos.iter().map(String::as_str).collect();
    let corpus = tmp.path().join("corpus");
    ok(&kiln(&[&["corpus", "build"][..], &repo_args, &["--out", corpus.to_str().unwrap(), "--no-decontam"]].concat()));
    let (from_corpus, from_dirs) = (tmp.path().join("c.jsonl"), tmp.path().join("d.jsonl"));
    let printed =
        ok(&kiln(&["eval", "repo", "build", "--corpus", corpus.to_str().unwrap(), "--all-repos", "--out", from_corpus.to_str().unwrap()]));
    assert!(printed.contains("from 3 repositories"), "{printed}");
    ok(&kiln(&[&["eval", "repo", "build", "--all-repos", "--out", from_dirs.to_str().unwrap(), "--repos"][..], &repo_args].concat()));
    assert_eq!(std::fs::read(&from_corpus).unwrap(), std::fs::read(&from_dirs).unwrap(), "the corpus keeps every file the bench needs");
    // No held-out repository: a clear error that names the way out.
    let out = kiln(
        &[
            &["eval", "repo", "build", "--val-fraction", "0", "--out", tmp.path().join("x.jsonl").to_str().unwrap(), "--repos"][..],
            &repo_args,
        ]
        .concat(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--all-repos"));

    let model = root.join("tests/fixtures/tiny-llama");
    let results = tmp.path().join("results");
    let summary: Value = serde_json::from_str(&ok(&kiln(&[
        "eval",
        "repo",
        "--bench",
        from_corpus.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--max-tokens",
        "6",
        "--out",
        results.to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    let tasks = std::fs::read_to_string(&from_corpus).unwrap().lines().count();
    assert_eq!(summary["tasks"], tasks);
    assert_eq!(summary["generation_errors"], 0);
    for cond in ["with_context", "without_context"] {
        let es = summary[cond]["edit_similarity"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&es), "{cond}: {es}");
    }
    // The tiny model's 256-token window is lowered to fit: prompt + generation within it.
    assert!(summary["budgets"]["max_prompt_tokens"].as_u64().unwrap() + 6 <= 256);
    let rows: Vec<Value> =
        std::fs::read_to_string(results.join("results.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), tasks);
    for r in &rows {
        assert!(r["with_context"]["prompt_tokens"].as_u64().unwrap() <= 250);
        assert!(r["without_context"]["prediction"].is_string());
    }
    // The Markdown table has both conditions per language.
    let table = ok(&kiln(&[
        "eval",
        "repo",
        "--bench",
        from_corpus.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--max-tokens",
        "2",
        "--limit",
        "3",
    ]));
    assert!(table.contains("| with |") && table.contains("| without |") && table.contains("| all | 3 |"), "{table}");
}

/// `kiln eval repo --endpoint` (the rendered prompt text sent to `kiln serve`) gives the same
/// predictions as `--model` in-process, task by task and in both conditions.
#[test]
fn repo_benchmark_endpoint_equals_in_process() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixtures = root.join("crates/kiln-eval/tests/fixtures/repos");
    let bench = tmp.path().join("bench.jsonl");
    let repos: Vec<String> = ["pyshop", "rustcalc", "tsnotes"].iter().map(|r| fixtures.join(r).to_str().unwrap().to_string()).collect();
    let repo_args: Vec<&str> = repos.iter().map(String::as_str).collect();
    ok(&kiln(
        &[&["eval", "repo", "build", "--all-repos", "--max-tasks", "6", "--out", bench.to_str().unwrap(), "--repos"][..], &repo_args]
            .concat(),
    ));
    let model = root.join("tests/fixtures/tiny-llama");
    let (_server, port) = serve(&model);
    let (local, remote) = (tmp.path().join("local"), tmp.path().join("remote"));
    // The same prompt budget for both (the endpoint path cannot read the model's window).
    let common =
        ["--bench", bench.to_str().unwrap(), "--max-tokens", "6", "--max-prompt-tokens", "240", "--context-tokens", "100", "--json"];
    ok(&kiln(&[&["eval", "repo", "--model", model.to_str().unwrap(), "--out", local.to_str().unwrap()][..], &common].concat()));
    let url = format!("http://127.0.0.1:{port}");
    let tokenizer = model.join("tokenizer.json");
    let summary: Value = serde_json::from_str(&ok(&kiln(
        &[
            &["eval", "repo", "--endpoint", &url, "--tokenizer", tokenizer.to_str().unwrap(), "--out", remote.to_str().unwrap()][..],
            &common,
        ]
        .concat(),
    )))
    .unwrap();
    assert_eq!(summary["source"], "endpoint");
    assert_eq!(summary["generation_errors"], 0);
    let predictions = |dir: &Path| -> Vec<(String, String, String)> {
        std::fs::read_to_string(dir.join("results.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let p = |c: &str| v[c]["prediction"].as_str().unwrap().to_string();
                (v["task_id"].as_str().unwrap().to_string(), p("with_context"), p("without_context"))
            })
            .collect()
    };
    let (a, b) = (predictions(&local), predictions(&remote));
    assert_eq!(a.len(), 6);
    assert!(a.iter().any(|(_, with, _)| !with.is_empty()), "the model produced something to compare");
    assert_eq!(a, b);
    // Without --tokenizer the endpoint mode says what it needs.
    let out = kiln(&["eval", "repo", "--bench", bench.to_str().unwrap(), "--endpoint", &url]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tokenizer"));
}

fn multipl_e_data(lang: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../data/benchmarks/multipl-e/humaneval-{lang}.jsonl.gz"))
}

#[test]
fn multipl_e_scores_a_solutions_file_and_names_bad_rows() {
    // Bash is everywhere: 3 hand-checked solutions pass, the wrong one fails, other languages'
    // rows are skipped.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kiln-eval/tests/fixtures/multipl_e_solutions.jsonl");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let data = multipl_e_data("sh");
    let s: Value = serde_json::from_str(&ok(&kiln(&[
        "eval",
        "multipl-e",
        "--lang",
        "sh",
        "--data",
        data.to_str().unwrap(),
        "--solutions",
        fixture.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    assert_eq!((s["problems"].as_u64(), s["passed"].as_u64(), s["benchmark"].as_str()), (Some(4), Some(3), Some("multipl-e-sh")), "{s}");
    assert!(s["per_language"].to_string().contains("\"sh\""), "{s}");
    assert_eq!(completions(&out_dir).len(), 4);
    // A task that is not in the data is named with its row.
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"task_id\": \"HumanEval_53_add\", \"completion\": \"\"}\n{\"task_id\": \"HumanEval_999_nope\", \"completion\": \"\"}\n",
    )
    .unwrap();
    let out = kiln(&["eval", "multipl-e", "--lang", "sh", "--data", data.to_str().unwrap(), "--solutions", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jsonl") && err.contains("row 2") && err.contains("HumanEval_999_nope"), "{err}");
    // An unknown language lists the valid ones.
    let out = kiln(&["eval", "multipl-e", "--lang", "cobol", "--solutions", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cpp, java, js, ts, cs, sh, php, go, rs"));
}

#[test]
fn humaneval_with_a_python_that_lacks_numpy_stops_before_the_first_problem() {
    // A venv without numpy first on PATH: the protocol's prelude imports numpy, so every test
    // program would die on its first line and the run would report pass@1 = 0. The preflight
    // stops it with the module and how to install it, before the model is even opened.
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    let made = Command::new("python3").args(["-m", "venv", "--without-pip"]).arg(&venv).status().is_ok_and(|s| s.success());
    if !made {
        eprintln!("SKIPPED: `python3 -m venv` does not work here (Debian: apt-get install python3-venv)");
        return;
    }
    let has_numpy = Command::new(venv.join("bin/python3")).args(["-c", "import numpy"]).output().is_ok_and(|o| o.status.success());
    assert!(!has_numpy, "a fresh venv without system site packages should not see numpy");
    let path = format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let out_dir = tmp.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["eval", "humaneval", "--model", "/nonexistent-model", "--limit", "3", "--out", out_dir.to_str().unwrap()])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the run must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("preflight") && err.contains("numpy") && err.contains("pip install numpy"), "{err}");
    assert!(err.contains("venv/bin/python3"), "names the interpreter it checked: {err}");
    assert!(!err.contains("nonexistent-model"), "stops before the model is opened: {err}");
    assert!(!out_dir.join("samples.jsonl").exists() || std::fs::read_to_string(out_dir.join("samples.jsonl")).unwrap().is_empty());
    // Infilling's programs import nothing outside the standard library: the same python3 is fine
    // for them, so the check gets past the preflight to the (missing) model.
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["eval", "infill", "--model", "/nonexistent-model", "--limit", "3"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !err.contains("preflight") && err.contains("nonexistent-model"), "{err}");
}

#[test]
fn multipl_e_checks_the_toolchain_before_generating() {
    // On a PATH without g++ the run stops at once with the package to install, before it
    // would load the (nonexistent) model.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["eval", "multipl-e", "--lang", "cpp", "--model", "/nonexistent-model"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apt-get install g++") && !err.contains("nonexistent-model"), "{err}");
}

#[test]
fn multipl_e_generates_with_a_model_and_stops_at_the_language_stop_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    ok(&kiln(&["model", "init", "--preset", "tiny", "--out", model.to_str().unwrap()]));
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture.join(f), model.join(f)).unwrap();
    }
    let out_dir = tmp.path().join("out");
    let data = multipl_e_data("sh");
    let s: Value = serde_json::from_str(&ok(&kiln(&[
        "eval",
        "multipl-e",
        "--lang",
        "sh",
        "--data",
        data.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--limit",
        "2",
        "--max-tokens",
        "16",
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    assert_eq!((s["problems"].as_u64(), s["source"].as_str(), s["generation_errors"].as_u64()), (Some(2), Some("model"), Some(0)), "{s}");
    for (task, completion) in completions(&out_dir) {
        assert!(!completion.contains("\n}"), "{task}: not cut at the stop token: {completion:?}");
    }
}
