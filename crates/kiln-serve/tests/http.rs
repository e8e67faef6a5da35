//! The real server on a loopback port with the committed tiny model, spoken to over HTTP.
//!
//! Every test runs twice (see `both!` at the end): on the float model (candle) and on the same
//! model written as a Q8_0 GGUF file and run by kiln's CPU network over quantized weights, so
//! that everything the server does (completions, infill, streaming, batching, prefix reuse,
//! repository context, errors) is shown to work through the model seam for both.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kiln_infer::{prompt, Engine, GenerateParams, LoadedModel, SamplingParams};
use kiln_serve::{AppState, ServeConfig};
use serde_json::{json, Value};

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama")
}

/// Which runtime a test's models run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The model folder, computed by candle in f32.
    Float,
    /// The model folder written as a Q8_0 GGUF file (`kiln quantize --type q8_0`), computed by
    /// kiln's CPU network over the quantized weights.
    GgufQ8,
}

/// The model in folder `dir` (with a tokenizer) as `kind`. The GGUF file is written to a
/// temporary folder that is gone when this returns: the model keeps its memory map.
fn load_as(dir: &std::path::Path, kind: Kind) -> LoadedModel {
    match kind {
        Kind::Float => LoadedModel::load(dir, None, &candle_core::Device::Cpu).unwrap(),
        Kind::GgufQ8 => {
            let tmp = tempfile::tempdir().unwrap();
            let gguf = tmp.path().join("model-q8_0.gguf");
            kiln_infer::loaded::quantize_dir(dir, kiln_model::gguf_export::ExportType::Q8_0, &gguf).unwrap();
            LoadedModel::load_with(&gguf, None, &candle_core::Device::Cpu, None).unwrap()
        }
    }
}

/// The committed tiny model as `kind`.
fn load(kind: Kind) -> LoadedModel {
    load_as(&model_dir(), kind)
}

/// A random model with the fixture's tokenizer, many positions and no EOS: generations that
/// last seconds (a slot stays busy long enough to observe).
fn slow_model(kind: Kind) -> LoadedModel {
    let tokenizer = kiln_tokenizer::Tokenizer::from_dir(&model_dir()).unwrap();
    let mut cfg = kiln_model::Config::from_file(&model_dir().join("config.json")).unwrap();
    (cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.head_dim, cfg.max_position_embeddings) = (256, 512, 4, 64, 16384);
    let model = kiln_model::Llama::random(cfg, kiln_model::WeightDType::F32, &candle_core::Device::Cpu, 1).unwrap();
    let mut loaded = match kind {
        Kind::Float => LoadedModel { model: Box::new(model), tokenizer, eos_ids: vec![] },
        Kind::GgufQ8 => {
            let dir = tempfile::tempdir().unwrap();
            model.save(dir.path(), None).unwrap();
            for f in ["tokenizer.json", "tokenizer_config.json"] {
                std::fs::copy(model_dir().join(f), dir.path().join(f)).unwrap();
            }
            load_as(dir.path(), kind)
        }
    };
    loaded.eos_ids.clear();
    loaded
}

/// Starts a server on a free port in a background runtime; returns its address.
fn start(model: LoadedModel, cfg: ServeConfig) -> SocketAddr {
    start_state(AppState::new(model, cfg))
}

fn start_state(state: std::sync::Arc<AppState>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            kiln_serve::serve(listener, state, std::future::pending()).await.unwrap();
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

/// One HTTP/1.1 request; returns (status, body).
fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: application/json\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap();
    let body = if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = request(addr, "POST", path, &[], body.to_string().as_bytes());
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")))
}

/// The `data:` payloads of an SSE body.
fn sse_data(body: &str) -> Vec<String> {
    body.lines().filter_map(|l| l.strip_prefix("data: ")).map(String::from).collect()
}

/// What `kiln generate` / `kiln infill` produce: the library generation with the same settings.
fn direct(model: &LoadedModel, ids: &[u32], max_tokens: usize) -> String {
    let params = GenerateParams {
        max_new_tokens: max_tokens,
        sampling: SamplingParams::default(),
        eos_ids: model.eos_ids.clone(),
        stop: vec![],
        ..Default::default()
    };
    Engine::new(model.model.as_ref(), &model.tokenizer).unwrap().generate(ids, &params, |_| {}).unwrap().text
}

fn completions_equal_the_cli_paths_and_streams_concatenate(kind: Kind) {
    let reference = load(kind);
    let addr = start(load(kind), ServeConfig::default());
    // Greedy completion = `kiln generate`.
    let (status, v) = post(addr, "/v1/completions", &json!({"model": "x", "prompt": "def add(a, b):", "max_tokens": 16, "temperature": 0}));
    assert_eq!(status, 200, "{v}");
    let want = direct(&reference, &prompt::completion_ids(&reference.tokenizer, "def add(a, b):").unwrap(), 16);
    assert_eq!(v["choices"][0]["text"], want);
    assert_eq!(v["object"], "text_completion");
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    // With a suffix = `kiln infill`.
    let (status, v) = post(
        addr,
        "/v1/completions",
        &json!({"prompt": "def f(x):\n    return ", "suffix": "\n\nprint(f(2))\n", "max_tokens": 12, "temperature": 0}),
    );
    assert_eq!(status, 200, "{v}");
    let want_fim = direct(&reference, &prompt::fim_ids(&reference.tokenizer, "def f(x):\n    return ", "\n\nprint(f(2))\n").unwrap(), 12);
    assert_eq!(v["choices"][0]["text"], want_fim);
    // Streamed chunks concatenate to the same text; the stream ends with [DONE], usage on request.
    let body =
        json!({"prompt": "def add(a, b):", "max_tokens": 16, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}});
    let (status, text) = request(addr, "POST", "/v1/completions", &[], body.to_string().as_bytes());
    assert_eq!(status, 200);
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let joined: String = chunks.iter().filter_map(|c| c["choices"].get(0).and_then(|ch| ch["text"].as_str())).collect();
    assert_eq!(joined, want);
    assert!(chunks.iter().any(|c| c["choices"].get(0).is_some_and(|ch| ch["finish_reason"].is_string())));
    assert!(chunks.last().unwrap()["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}

fn infill_puts_extra_files_before_the_fim_part(kind: Kind) {
    let reference = load(kind);
    let addr = start(load(kind), ServeConfig::default());
    let req = json!({
        "input_prefix": "def f(x):\n    return ", "input_suffix": "\n",
        "input_extra": [{"filename": "util.py", "text": "X = 1\n"}, {"filename": "lib/b.js", "text": "let y = 2;"}],
        "n_predict": 10, "temperature": 0,
    });
    let (status, v) = post(addr, "/infill", &req);
    assert_eq!(status, 200, "{v}");
    // The layout, spelled out: the extra files as a repository sample, then the cursor's file.
    let text = "<｜fim▁begin｜># util.py\nX = 1\n\n// lib/b.js\nlet y = 2;\n\ndef f(x):\n    return <｜fim▁hole｜>\n<｜fim▁end｜>";
    let ids = reference.tokenizer.encode(text).unwrap();
    assert_eq!(v["tokens_evaluated"].as_u64().unwrap() as usize, ids.len());
    assert_eq!(v["content"], direct(&reference, &ids, 10));
    assert_eq!(v["timings"]["prompt_n"].as_u64().unwrap() as usize, ids.len());
    assert!(v["timings"]["predicted_per_second"].as_f64().unwrap() >= 0.0);
    // Streaming: content pieces, then a last chunk with stop = true.
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    let (_, body) = request(addr, "POST", "/infill", &[], sreq.to_string().as_bytes());
    let chunks: Vec<Value> = sse_data(&body).iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let joined: String = chunks.iter().filter_map(|c| c["content"].as_str()).collect();
    assert_eq!(joined, v["content"].as_str().unwrap());
    assert_eq!(chunks.last().unwrap()["stop"], true);
}

fn concurrent_requests_return_what_they_return_alone(kind: Kind) {
    let addr = start(load(kind), ServeConfig { max_concurrency: 4, ..Default::default() });
    let prompts: Vec<String> = (0..16).map(|i| format!("def f{i}(x):\n    return x * {i}")).collect();
    let alone: Vec<Value> = prompts
        .iter()
        .map(|p| post(addr, "/v1/completions", &json!({"prompt": p, "max_tokens": 12, "temperature": 0.7, "seed": 5})).1)
        .collect();
    let together: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| {
                s.spawn(move || post(addr, "/v1/completions", &json!({"prompt": p, "max_tokens": 12, "temperature": 0.7, "seed": 5})).1)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (a, b) in alone.iter().zip(&together) {
        assert_eq!(a["choices"], b["choices"]);
    }
}

fn a_client_that_leaves_mid_stream_frees_its_slot(kind: Kind) {
    let addr = start(slow_model(kind), ServeConfig { max_concurrency: 1, ..Default::default() });
    let body = json!({"prompt": "x", "max_tokens": 16000, "temperature": 0, "stream": true}).to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "POST /v1/completions HTTP/1.1\r\nHost: l\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).contains("data: ") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    drop(s);
    // The single slot frees: a new request completes promptly.
    let start = Instant::now();
    let (status, _) = post(addr, "/v1/completions", &json!({"prompt": "y", "max_tokens": 4, "temperature": 0}));
    assert_eq!(status, 200);
    assert!(start.elapsed() < Duration::from_secs(10), "the abandoned generation (16,000 tokens) kept the slot");
    let (_, health) = request(addr, "GET", "/health", &[], b"");
    assert_eq!(serde_json::from_str::<Value>(&health).unwrap()["slots_busy"], 0);
}

fn bad_requests_get_their_status_and_a_json_error(kind: Kind) {
    let mut model = load(kind);
    model.eos_ids.clear();
    let max_pos = model.model.config().max_position_embeddings;
    let addr = start(model, ServeConfig { max_body_bytes: 1 << 16, ..Default::default() });
    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        ("/v1/completions", b"{not json".to_vec(), 400, None),
        ("/v1/completions", json!({"prompt": "x", "max_tokens": -5}).to_string().into_bytes(), 400, Some("max_tokens")),
        ("/v1/completions", json!({"prompt": "x", "max_tokens": 10_000_000}).to_string().into_bytes(), 400, Some("max_tokens")),
        ("/v1/completions", json!({"prompt": "x", "temperature": 7.5}).to_string().into_bytes(), 400, Some("temperature")),
        ("/v1/completions", json!({"prompt": "x", "echo": true}).to_string().into_bytes(), 400, Some("echo")),
        ("/v1/completions", json!({"prompt": "x", "logprobs": 3}).to_string().into_bytes(), 400, Some("logprobs")),
        ("/v1/completions", json!({"max_tokens": 3}).to_string().into_bytes(), 400, Some("prompt")),
        ("/v1/completions", json!({"prompt": "x ".repeat(max_pos * 2)}).to_string().into_bytes(), 413, None),
        ("/v1/completions", [b"{\"prompt\": \"".to_vec(), vec![0xff, 0xfe], b"\"}".to_vec()].concat(), 400, None),
        ("/v1/completions", vec![b' '; 1 << 17], 413, None),
        ("/infill", json!({"input_suffix": "x"}).to_string().into_bytes(), 400, Some("input_prefix")),
        ("/infill", json!({"input_prefix": "x", "input_suffix": "", "n_predict": 0}).to_string().into_bytes(), 400, Some("n_predict")),
        ("/infill", json!({"input_prefix": "x", "input_suffix": "", "n_indent": -2}).to_string().into_bytes(), 400, Some("n_indent")),
        (
            "/infill",
            json!({"input_prefix": "x", "input_suffix": "", "t_max_predict_ms": -1}).to_string().into_bytes(),
            400,
            Some("t_max_predict_ms"),
        ),
        ("/v1/completions", json!({"prompt": "x", "file": "../secret.py"}).to_string().into_bytes(), 400, Some("file")),
    ];
    for (path, body, status, param) in cases {
        let (got, text) = request(addr, "POST", path, &[], &body);
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} {status}: not JSON ({e}): {text}"));
        assert_eq!(got, status, "{path}: {text}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{text}");
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], p, "{text}");
        }
    }
    let (got, text) = request(addr, "GET", "/v2/nothing", &[], b"");
    assert_eq!(got, 404, "{text}");
    // Unknown fields are ignored.
    let (got, _) = post(addr, "/v1/completions", &json!({"prompt": "x", "max_tokens": 2, "user": "me", "whatever": [1, 2]}));
    assert_eq!(got, 200);
}

fn keys_queue_limits_models_and_metrics(kind: Kind) {
    let addr = start(
        slow_model(kind),
        ServeConfig { api_keys: vec!["sekrit".into()], max_concurrency: 1, max_queue: 1, model_name: "tiny".into(), ..Default::default() },
    );
    let body = json!({"prompt": "x", "max_tokens": 2}).to_string();
    assert_eq!(request(addr, "POST", "/v1/completions", &[], body.as_bytes()).0, 401);
    assert_eq!(request(addr, "POST", "/v1/completions", &[("Authorization", "Bearer wrong")], body.as_bytes()).0, 401);
    assert_eq!(request(addr, "GET", "/health", &[], b"").0, 200, "health needs no key");
    let auth = [("Authorization", "Bearer sekrit")];
    let (status, models) = request(addr, "GET", "/v1/models", &auth, b"");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&models).unwrap()["data"][0]["id"], "tiny");
    let (status, v) = request(addr, "POST", "/v1/completions", &auth, body.as_bytes());
    assert_eq!(status, 200, "{v}");
    // One running, one waiting: the next ones are refused with 429 while the server stays up.
    let long = json!({"prompt": "x", "max_tokens": 150, "temperature": 0}).to_string();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let long = long.clone();
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(30 * i));
                    request(addr, "POST", "/v1/completions", &[("Authorization", "Bearer sekrit")], long.as_bytes()).0
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.iter().filter(|&&s| s == 200).count() >= 2, "{statuses:?}");
    let (status, metrics) = request(addr, "GET", "/metrics", &auth, b"");
    assert_eq!(status, 200);
    assert!(metrics.contains("kiln_requests_total{endpoint=\"/v1/completions\",status=\"429\"}"), "{metrics}");
    assert!(metrics.contains("kiln_generated_tokens_total"), "{metrics}");
}

/// A second request sharing a long prefix (the repository context) reuses its KV state: it
/// reports the cached tokens and processes the prompt faster; `cache_prompt: false` opts out.
fn a_shared_prefix_is_taken_from_the_cache(kind: Kind) {
    let addr = start(slow_model(kind), ServeConfig::default());
    let context: String = (0..120).map(|i| format!("def helper_{i}(x):\n    return x + {i}\n")).collect();
    let req = |prefix: &str, cache: bool| {
        json!({
            "input_extra": [{"filename": "helpers.py", "text": context}],
            "input_prefix": prefix, "input_suffix": "\n", "n_predict": 4, "temperature": 0, "cache_prompt": cache,
        })
    };
    let (status, cold) = post(addr, "/infill", &req("def main():\n    return helper_", true));
    assert_eq!(status, 200, "{cold}");
    let total = cold["tokens_evaluated"].as_u64().unwrap();
    assert!(total > 1000, "a long prompt: {total} tokens");
    assert_eq!(cold["tokens_cached"], 0);
    // The next keystroke: same context and prefix start, one more character typed.
    let (_, warm) = post(addr, "/infill", &req("def main():\n    return helper_1", true));
    let cached = warm["tokens_cached"].as_u64().unwrap();
    assert!(cached + 20 >= total && cached < warm["tokens_evaluated"].as_u64().unwrap(), "cached {cached} of {total}");
    assert_eq!(warm["timings"]["prompt_n"].as_u64().unwrap(), warm["tokens_evaluated"].as_u64().unwrap() - cached);
    let (cold_ms, warm_ms) = (cold["timings"]["prompt_ms"].as_f64().unwrap(), warm["timings"]["prompt_ms"].as_f64().unwrap());
    assert!(warm_ms < cold_ms / 2.0, "prompt processing {warm_ms} ms with the cache vs {cold_ms} ms without");
    let (_, off) = post(addr, "/infill", &req("def main():\n    return helper_1", false));
    assert_eq!(off["tokens_cached"], 0);
    // OpenAI's field for it.
    let long = format!("{context}\ndef main():");
    let _ = post(addr, "/v1/completions", &json!({"prompt": long, "max_tokens": 2, "temperature": 0}));
    let (_, v) = post(addr, "/v1/completions", &json!({"prompt": format!("{long}\n"), "max_tokens": 2, "temperature": 0}));
    assert!(v["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap() > 1000, "{v}");
    let (_, metrics) = request(addr, "GET", "/metrics", &[], b"");
    assert!(metrics.lines().any(|l| l.starts_with("kiln_prompt_cache_hit_tokens_total ") && !l.ends_with(" 0")), "{metrics}");
}

/// Chat completions render DeepSeek-Coder instruct's template and stop at <|EOT|>; the stream's
/// deltas concatenate to the whole reply; bad messages are 400s naming the field.
fn chat_completions_use_the_instruct_template(kind: Kind) {
    use kiln_tokenizer::special::{chat_prompt, Role};
    let reference = load(kind);
    let addr = start(load(kind), ServeConfig::default());
    let messages =
        json!([{"role": "system", "content": "Be brief.\n"}, {"role": "user", "content": [{"type": "text", "text": "Write add(a, b)."}]}]);
    let (status, v) = post(addr, "/v1/chat/completions", &json!({"messages": messages, "max_tokens": 12, "temperature": 0}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let ids = prompt::completion_ids(
        &reference.tokenizer,
        &chat_prompt(&[(Role::System, "Be brief.\n"), (Role::User, "Write add(a, b).")], true),
    )
    .unwrap();
    let mut eos = reference.eos_ids.clone();
    eos.extend(reference.tokenizer.special().eot);
    let params =
        GenerateParams { max_new_tokens: 12, sampling: SamplingParams::default(), eos_ids: eos, stop: vec![], ..Default::default() };
    let want = Engine::new(reference.model.as_ref(), &reference.tokenizer).unwrap().generate(&ids, &params, |_| {}).unwrap().text;
    assert_eq!(v["choices"][0]["message"]["content"], want);
    assert_eq!(v["usage"]["prompt_tokens"].as_u64().unwrap() as usize, ids.len());
    let body = json!({"messages": messages, "max_tokens": 12, "temperature": 0, "stream": true});
    let (_, text) = request(addr, "POST", "/v1/chat/completions", &[], body.to_string().as_bytes());
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let joined: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(joined, want);
    for (bad, param) in [
        (json!({"messages": []}), "messages"),
        (json!({"messages": [{"role": "robot", "content": "x"}]}), "messages[0].role"),
        (json!({"messages": [{"role": "user", "content": 5}]}), "messages[0].content"),
        (json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}), "tools"),
    ] {
        let (status, v) = post(addr, "/v1/chat/completions", &bad);
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"]["param"], param, "{v}");
    }
}

/// With `--repo`, a request naming its `file` gets the files that file imports, dependency
/// ordered under their path comments, before the cursor's file (with its own path comment);
/// a path outside the repository is a 400 and nothing is read.
fn repo_context_precedes_the_cursor_file(kind: Kind) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/repos/python");
    let index = kiln_infer::repo::RepoIndex::load(&root).unwrap();
    let model = slow_model(kind);
    let tokenizer = kiln_tokenizer::Tokenizer::from_dir(&model_dir()).unwrap();
    let addr = start_state(AppState::new_with_repo(model, ServeConfig::default(), Some(index)));
    let main = std::fs::read_to_string(root.join("main.py")).unwrap();
    let cut = main.find("tool(app").unwrap();
    let (prefix, suffix) = main.split_at(cut);
    let (status, v) = post(
        addr,
        "/infill",
        &json!({"file": "./main.py", "input_prefix": prefix, "input_suffix": suffix, "n_predict": 3, "temperature": 0}),
    );
    assert_eq!(status, 200, "{v}");
    // main.py imports app.a (which pulls in the rest of app/) and mylib.tools: dependencies first.
    let order = ["app/d.py", "app/c.py", "app/b.py", "app/a.py", "app/x.py", "app/y.py", "src/mylib/tools.py"];
    let mut text = String::from("<｜fim▁begin｜>");
    for path in order {
        let body = std::fs::read_to_string(root.join(path)).unwrap();
        text.push_str(&format!("# {path}\n{body}"));
        if !body.ends_with('\n') {
            text.push('\n');
        }
        text.push('\n');
    }
    text.push_str(&format!("# main.py\n{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>"));
    assert_eq!(v["tokens_evaluated"].as_u64().unwrap() as usize, tokenizer.encode(&text).unwrap().len(), "layout of {text}");
    // The same through OpenAI's endpoint (suffix = FIM).
    let (status, o) =
        post(addr, "/v1/completions", &json!({"file": "main.py", "prompt": prefix, "suffix": suffix, "max_tokens": 3, "temperature": 0}));
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["usage"]["prompt_tokens"], v["tokens_evaluated"]);
    for bad in ["../../etc/passwd", "/etc/passwd"] {
        let (status, e) = post(addr, "/infill", &json!({"file": bad, "input_prefix": "x", "input_suffix": ""}));
        assert_eq!(status, 400, "{e}");
        assert_eq!(e["error"]["param"], "file");
    }
}

/// input_extra chunks that do not fit the context are dropped oldest first (`truncated`), the
/// text near the cursor is kept; language stop words are opt-in and checked.
fn extra_chunks_are_dropped_oldest_first_and_language_stops_are_checked(kind: Kind) {
    let reference = load(kind);
    let addr = start(load(kind), ServeConfig::default());
    let big = "value = compute(value) + 1\n".repeat(60); // far over the tiny model's 256 positions
    let req = json!({
        "input_extra": [{"filename": "old.py", "text": big}, {"filename": "new.py", "text": "X = 1\n"}],
        "input_prefix": "def f(x):\n    return ", "input_suffix": "\n", "n_predict": 4, "temperature": 0,
    });
    let (status, v) = post(addr, "/infill", &req);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["truncated"], true);
    let text = "<｜fim▁begin｜># new.py\nX = 1\n\ndef f(x):\n    return <｜fim▁hole｜>\n<｜fim▁end｜>";
    assert_eq!(v["tokens_evaluated"].as_u64().unwrap() as usize, reference.tokenizer.encode(text).unwrap().len());
    // Opt-in language stop words.
    let mut r = req.clone();
    r["input_extra"] = json!([]);
    r["language_stops"] = json!(true);
    r["file"] = json!("pkg/mod.py");
    assert_eq!(post(addr, "/infill", &r).0, 200);
    r["language"] = json!("Klingon");
    let (status, e) = post(addr, "/infill", &r);
    assert_eq!((status, e["error"]["param"].as_str()), (400, Some("language")), "{e}");
    let (status, e) = post(addr, "/v1/completions", &json!({"prompt": "x", "language_stops": true}));
    assert_eq!((status, e["error"]["param"].as_str()), (400, Some("language_stops")), "{e}");
}

/// Many requests at once: the ones beyond the slots and the queue get 429 at once, the others
/// complete, and the server stays up.
fn a_burst_of_requests_gets_429s_and_the_server_stays_up(kind: Kind) {
    let addr = start(slow_model(kind), ServeConfig { max_concurrency: 2, max_queue: 4, ..Default::default() });
    let body = json!({"prompt": "x", "max_tokens": 64, "temperature": 0}).to_string();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..120).map(|_| s.spawn(|| request(addr, "POST", "/v1/completions", &[], body.as_bytes()).0)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let busy = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(ok + busy, statuses.len(), "only 200s and 429s: {statuses:?}");
    assert!(ok >= 2 && busy > 0, "{ok} completed, {busy} refused");
    let (status, _) = post(addr, "/v1/completions", &json!({"prompt": "y", "max_tokens": 2}));
    assert_eq!(status, 200, "the server still serves");
}

/// Each test on the float model (`float::NAME`) and on its Q8_0 GGUF (`gguf_q8::NAME`).
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod float {
            $(#[test] fn $name() { super::$name(super::Kind::Float) })*
        }
        mod gguf_q8 {
            $(#[test] fn $name() { super::$name(super::Kind::GgufQ8) })*
        }
    };
}

both!(
    completions_equal_the_cli_paths_and_streams_concatenate,
    infill_puts_extra_files_before_the_fim_part,
    concurrent_requests_return_what_they_return_alone,
    a_client_that_leaves_mid_stream_frees_its_slot,
    bad_requests_get_their_status_and_a_json_error,
    keys_queue_limits_models_and_metrics,
    a_shared_prefix_is_taken_from_the_cache,
    chat_completions_use_the_instruct_template,
    repo_context_precedes_the_cursor_file,
    extra_chunks_are_dropped_oldest_first_and_language_stops_are_checked,
    a_burst_of_requests_gets_429s_and_the_server_stays_up,
);
