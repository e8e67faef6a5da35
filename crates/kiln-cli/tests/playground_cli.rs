//! `kiln serve`'s playground page in a real headless browser (Playwright driving Debian's
//! Chromium; `.ci/run` installs both): the page lists the `--repo` files, an infill with a file
//! chosen in the picker streams text and lists the context files sent, the `/metrics` panel
//! fills, nothing loads from elsewhere, and with `--api-key-file` the page shows the 401 form
//! and no data until the key is given. Screenshots go to this test's target tmp directory (the
//! path is printed).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n");
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    r
}

fn serve(model: &Path, repo: &Path, extra: &[&str]) -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["serve", "--model", model.to_str().unwrap(), "--repo", repo.to_str().unwrap(), "--port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while !get(port, "/health").starts_with("HTTP/1.1 200") {
        assert!(start.elapsed() < Duration::from_secs(60), "kiln serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, port)
}

/// Whether Playwright and a Chromium are installed; says loudly when not.
fn browser_available() -> bool {
    let chromium = std::env::var("KILN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let playwright = Command::new("python3").args(["-c", "import playwright.sync_api"]).output().is_ok_and(|o| o.status.success());
    if !playwright || !Path::new(&chromium).exists() {
        eprintln!(
            "SKIPPED: the playground browser test needs Playwright for Python and Chromium (pip install playwright; apt-get install chromium); found playwright: {playwright}, {chromium}: {}",
            Path::new(&chromium).exists()
        );
        return false;
    }
    true
}

#[test]
fn the_playground_streams_an_infill_with_repository_context_and_asks_for_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let model = fixture.join("tiny-llama");
    let repo = fixture.join("repos/python");
    let (_open, open_port) = serve(&model, &repo, &[]);
    // Without a browser: the page and the picker's endpoints, over plain HTTP.
    let page = get(open_port, "/");
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("<title>kiln playground</title>"), "{}", &page[..page.len().min(300)]);
    assert!(!page.contains("http://") && !page.contains("https://"), "the page loads nothing from elsewhere");
    let files = get(open_port, "/v1/repo/files");
    assert!(files.contains("\"main.py\"") && files.contains("\"app/a.py\""), "{files}");
    let file = get(open_port, "/v1/repo/file?path=main.py");
    assert!(file.contains("from mylib.tools import tool"), "{file}");
    assert!(get(open_port, "/v1/repo/file?path=../secret").starts_with("HTTP/1.1 400"));
    assert!(get(open_port, "/v1/repo/file?path=nope.py").starts_with("HTTP/1.1 404"));
    let key_file = tmp.path().join("key");
    std::fs::write(&key_file, "s3cret-key\n").unwrap();
    let (_keyed, keyed_port) = serve(&model, &repo, &["--api-key-file", key_file.to_str().unwrap()]);
    assert!(get(keyed_port, "/").starts_with("HTTP/1.1 200"), "the page shell holds no data and is served without the key");
    assert!(get(keyed_port, "/v1/repo/files").starts_with("HTTP/1.1 401"), "its data needs the key");
    assert!(get(keyed_port, "/v1/repo/file?path=main.py").starts_with("HTTP/1.1 401"));

    if !browser_available() {
        return;
    }
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/playground_check.py"))
        .args([&format!("http://127.0.0.1:{open_port}/"), &format!("http://127.0.0.1:{keyed_port}/"), "s3cret-key"])
        .arg(shots)
        .output()
        .unwrap();
    assert!(out.status.success(), "the browser check failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Written to the stderr handle, not with eprintln!: libtest captures the print macros of a
    // passing test, and CI's log should show where the screenshot is.
    let _ = writeln!(std::io::stderr(), "playground screenshot: {}", seen["screenshot"].as_str().unwrap_or("?"));
    assert!(seen["files"].as_array().unwrap().iter().any(|f| f == "app/a.py"), "{seen}");
    assert!(seen["pieces"].as_u64().unwrap() >= 2, "the answer streamed in pieces: {seen}");
    assert!(!seen["output"].as_str().unwrap().is_empty(), "{seen}");
    assert_eq!(seen["error"], "", "{seen}");
    // main.py imports app.a, app.x and mylib.tools: their files go before it, the farthest
    // dropped first when the fixture model's few positions run out.
    let context: Vec<&str> = seen["context"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(context.contains(&"app/a.py") && !context.contains(&"main.py"), "{seen}");
    assert!(seen["prompt_tokens"].as_str().unwrap().parse::<u64>().unwrap() > 10, "{seen}");
    assert!(seen["metrics"].as_str().unwrap().contains("tokens generated"), "{seen}");
    assert_eq!(seen["foreign_requests"].as_array().unwrap().len(), 0, "{seen}");
    assert!(Path::new(seen["screenshot"].as_str().unwrap()).is_file());
    // The keyed server: locked, no data, a wrong key refused, the right one opens it.
    assert_eq!(seen["locked_app_hidden"], true, "{seen}");
    assert!(seen["locked_heading"].as_str().unwrap().contains("401"), "{seen}");
    assert_eq!(seen["locked_files"], 0, "no file list before the key: {seen}");
    assert!(seen["wrong_key_message"].as_str().unwrap().contains("invalid API key"), "{seen}");
    assert!(seen["unlocked_files"].as_u64().unwrap() > 5, "{seen}");
}
