//! The `kiln` binary end to end on the committed fixtures: the acceptance command's output equals
//! transformers', and bad input gives a clear message and a failing exit code.

#[path = "../../../tests/support/fixtures.rs"]
mod fixtures;
use fixtures::*;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).output().expect("kiln runs")
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "kiln failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn stderr_of_failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure, got: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn set_config(dir: &Path, key: &str, value: Value) {
    let path = dir.join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v[key] = value;
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn generate_prints_transformers_ids_and_text() {
    // The README's acceptance command.
    let model = fixture("tiny-llama");
    let out = kiln(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "def add(a, b):",
        "--max-tokens",
        "16",
        "--temperature",
        "0",
        "--json",
    ]);
    let got = stdout_json(&out);
    let want = &expected("tiny-llama")["generate"];
    assert_eq!(got["prompt_ids"], want["input_ids"]);
    assert_eq!(got["ids"], want["new_ids"]);
    assert_eq!(got["text"], want["text"]);
    assert_eq!(got["finish_reason"], "eos");

    // Plain mode streams the same text to stdout.
    let out = kiln(&["generate", "--model", model.to_str().unwrap(), "--prompt", "def add(a, b):", "--max-tokens", "16"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{}\n", want["text"].as_str().unwrap()));
}

#[test]
fn prompt_file_and_stop_strings() {
    let dir = tempfile::tempdir().unwrap();
    let prompt = dir.path().join("prompt.txt");
    std::fs::write(&prompt, "def add(a, b):").unwrap();
    let model = fixture("tiny-llama-sharded-bf16");
    let base = [
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt-file",
        prompt.to_str().unwrap(),
        "--max-tokens",
        "16",
        "--json",
        "--dtype",
        "f32",
    ];
    let full = stdout_json(&kiln(&base));
    let want = &expected("tiny-llama-sharded-bf16")["generate"];
    assert_eq!(full["ids"], want["new_ids"]);
    // Stop at a piece of the known output: the text is cut right before it.
    let text = full["text"].as_str().unwrap().to_string();
    let stop: String = text.chars().skip(5).take(3).collect();
    let cut = text.find(&stop).unwrap();
    let mut args = base.to_vec();
    args.extend(["--stop", stop.as_str()]);
    let stopped = stdout_json(&kiln(&args));
    assert_eq!(stopped["text"].as_str().unwrap(), &text[..cut]);
    assert_eq!(stopped["finish_reason"], "stop");
}

#[test]
fn infill_builds_the_psm_prompt() {
    let model = fixture("tiny-llama");
    let dir = tempfile::tempdir().unwrap();
    let (pre, suf) = (dir.path().join("pre.py"), dir.path().join("suf.py"));
    std::fs::write(&pre, "def f(x):\n    ").unwrap();
    std::fs::write(&suf, "\n    return y").unwrap();
    let got = stdout_json(&kiln(&[
        "infill",
        "--model",
        model.to_str().unwrap(),
        "--prefix-file",
        pre.to_str().unwrap(),
        "--suffix-file",
        suf.to_str().unwrap(),
        "--max-tokens",
        "8",
        "--json",
    ]));
    let fim = expected("tiny-llama")["prompts"].as_array().unwrap().iter().find(|p| p["name"] == "fim").unwrap().clone();
    assert_eq!(got["prompt_ids"], fim["input_ids"]);
    // Greedy continuation of the FIM prompt is the fixture's greedy run (which ignores EOS).
    let want: Vec<Value> = fim["greedy_ids"].as_array().unwrap().iter().take(got["ids"].as_array().unwrap().len()).cloned().collect();
    assert_eq!(got["ids"].as_array().unwrap(), &want);
}

/// `kiln complete` at a cursor in a repository file: the prompt is the FIM layout with the
/// file's imports (as far as the tiny model's 256 positions allow) and its path comment, and
/// the same as `kiln infill` gives for the text with that context written out by hand.
#[test]
fn complete_puts_the_repository_context_before_the_cursor() {
    let model = fixture("tiny-llama");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/repos/python");
    let got = stdout_json(&kiln(&[
        "complete",
        "--model",
        model.to_str().unwrap(),
        "--repo",
        repo.to_str().unwrap(),
        "--file",
        "main.py",
        "--line",
        "8",
        "--column",
        "4",
        "--max-tokens",
        "4",
        "--json",
    ]));
    let prompt: Vec<u64> = got["prompt_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let tok = kiln_tokenizer::Tokenizer::from_dir(&model).unwrap();
    let decoded = tok.decode(&prompt.iter().map(|&i| i as u32).collect::<Vec<_>>(), false).unwrap();
    assert!(decoded.contains("<｜fim▁begin｜>") && decoded.contains("<｜fim▁hole｜>") && decoded.ends_with("<｜fim▁end｜>"), "{decoded}");
    assert!(decoded.contains("# main.py\nimport sys\n"), "the cursor file's header precedes its text: {decoded}");
    let ctx_at = decoded.find("# app/").expect("some dependency of main.py fits the budget");
    assert!(ctx_at < decoded.find("# main.py").unwrap(), "context first: {decoded}");
    assert!(decoded.contains("    <｜fim▁hole｜>tool(app.a.run(), x.X)\n<｜fim▁end｜>"), "cursor at line 8, column 4: {decoded}");
    let out = kiln(&[
        "complete",
        "--model",
        model.to_str().unwrap(),
        "--repo",
        repo.to_str().unwrap(),
        "--file",
        "../../etc/passwd",
        "--line",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(stderr_of_failure(&out).contains("without `..`"));
    let out =
        kiln(&["complete", "--model", model.to_str().unwrap(), "--repo", repo.to_str().unwrap(), "--file", "main.py", "--line", "99"]);
    assert!(stderr_of_failure(&out).contains("--line 99"), "{}", stderr_of_failure(&out));
}

#[test]
fn model_info_reports_the_shape() {
    let model = fixture("tiny-llama-sharded-bf16");
    let got = stdout_json(&kiln(&["model", "info", model.to_str().unwrap(), "--json"]));
    assert_eq!(got["num_key_value_heads"], 2);
    assert_eq!(got["num_attention_heads"], 4);
    assert_eq!(got["dtype"], "bfloat16");
    // bf16 checkpoints are computed in f32 on the CPU unless --dtype bf16 is given.
    assert_eq!(got["cpu_compute_dtype"], "float32");
    assert_eq!(got["rope_scaling"], "linear x4");
    assert_eq!(got["weight_files"].as_array().unwrap().len(), 2);
    // 2 bytes per bf16 parameter: the shards hold exactly the parameters plus small headers.
    let params = got["parameters"].as_u64().unwrap();
    let bytes = got["weight_bytes"].as_u64().unwrap();
    assert!(bytes > 2 * params && bytes < 2 * params + 20_000, "{params} params, {bytes} bytes");
}

#[test]
fn tokenizer_larger_than_vocab_is_refused() {
    let dir = copy_of("tiny-llama");
    set_config(dir.path(), "vocab_size", 405.into()); // the tokenizer has 409 ids
    let err = stderr_of_failure(&kiln(&["generate", "--model", dir.path().to_str().unwrap(), "--prompt", "x"]));
    assert!(err.contains("409") && err.contains("vocab_size is 405"), "{err}");
}

#[test]
fn prompt_longer_than_the_context_is_refused() {
    let model = fixture("tiny-llama");
    let long = "word ".repeat(300);
    let err = stderr_of_failure(&kiln(&["generate", "--model", model.to_str().unwrap(), "--prompt", &long]));
    assert!(err.contains("max_position_embeddings 256"), "{err}");
}

#[test]
fn generation_stops_at_the_context_limit() {
    let model = fixture("tiny-llama");
    let got = stdout_json(&kiln(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        &"word ".repeat(30),
        "--max-tokens",
        "500",
        "--ignore-eos",
        "--json",
    ]));
    let total = got["prompt_ids"].as_array().unwrap().len() + got["ids"].as_array().unwrap().len();
    assert_eq!(total, 256);
    assert_eq!(got["finish_reason"], "context_full");
}

#[test]
fn bad_arguments_are_explained() {
    let model = fixture("tiny-llama");
    let err = stderr_of_failure(&kiln(&["generate", "--model", model.to_str().unwrap(), "--prompt", "x", "--top-p", "1.5"]));
    assert!(err.contains("top-p"), "{err}");
    let err = stderr_of_failure(&kiln(&["generate", "--model", "/no/such/dir", "--prompt", "x"]));
    assert!(err.contains("/no/such/dir") && err.contains("not a directory"), "{err}");
    let err = stderr_of_failure(&kiln(&["generate", "--model", model.to_str().unwrap(), "--prompt-file", "/no/such/prompt.txt"]));
    assert!(err.contains("/no/such/prompt.txt"), "{err}");
    let err = stderr_of_failure(&kiln(&["generate", "--model", model.to_str().unwrap(), "--prompt", "x", "--dtype", "f8"]));
    assert!(err.contains("f8"), "{err}");
}

#[test]
fn quantize_writes_a_gguf_that_info_generate_and_eval_bpb_read() {
    let model = fixture("tiny-llama");
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tmp.path().join("tiny-q8_0.gguf");
    let out = kiln(&["quantize", model.to_str().unwrap(), "--type", "q8_0", "--out", gguf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stderr);
    // The fixture's 176-wide ffn_down does not fit Q8_0's 32-value blocks: the fallback is said.
    assert!(said.contains("blk.0.ffn_down.weight: Q8_0 needs rows of a multiple of 32 values, this one has 176: written as F16"), "{said}");
    assert!(said.contains("14 Q8_0") && said.contains("2 F16") && said.contains("5 F32"), "{said}");

    let info = stdout_json(&kiln(&["model", "info", gguf.to_str().unwrap(), "--json"]));
    assert_eq!(
        (info["format"].as_str(), info["num_hidden_layers"].as_u64(), info["vocab_size"].as_u64()),
        (Some("gguf"), Some(2), Some(512))
    );
    assert_eq!(info["tensor_types"]["Q8_0"]["tensors"], 14);
    assert_eq!(info["tokenizer_ids"], 512);

    // --model FILE.gguf generates with the file's own tokenizer.
    let out = kiln(&["generate", "--model", gguf.to_str().unwrap(), "--prompt", "def add(a, b):", "--max-tokens", "8", "--json"]);
    let got = stdout_json(&out);
    assert_eq!(got["prompt_ids"], expected("tiny-llama")["generate"]["input_ids"]);
    assert!(!got["ids"].as_array().unwrap().is_empty());

    // `kiln eval bpb`: the same source files scored by the float model and by its Q8_0 file
    // (both caches) give nearly the same bits per byte; the f32 cache is closer.
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join(".hidden")).unwrap();
    let (a_py, b_rs) =
        ("def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n", "fn main() {\n    let x = 1 + 2;\n    println!(\"{x}\");\n}\n");
    std::fs::write(src.join("a.py"), a_py).unwrap();
    std::fs::write(src.join("b.rs"), b_rs).unwrap();
    std::fs::write(src.join("notes.bin"), [0u8, 159, 146, 150]).unwrap();
    std::fs::write(src.join(".hidden").join("c.py"), "x = 1\n").unwrap();
    let bpb = |m: &std::path::Path, extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["eval", "bpb", "--model", m.to_str().unwrap(), "--json", src.to_str().unwrap()];
        args.extend(extra);
        stdout_json(&kiln(&args))
    };
    let float = bpb(&model, &[]);
    // The .bin file (no known language) and the hidden directory are not walked.
    assert_eq!((float["files"].as_u64(), float["bytes"].as_u64()), (Some(2), Some((a_py.len() + b_rs.len()) as u64)), "{float}");
    let f16_cache = bpb(&gguf, &[]);
    let f32_cache = bpb(&gguf, &["--cache-type", "f32"]);
    let rel = |v: &serde_json::Value| (v["bits_per_byte"].as_f64().unwrap() / float["bits_per_byte"].as_f64().unwrap() - 1.0).abs();
    assert!(float["bits_per_byte"].as_f64().unwrap() > 1.0, "{float}");
    assert!(rel(&f16_cache) < 0.01 && rel(&f32_cache) < 0.01, "{float} {f16_cache} {f32_cache}");
    assert_ne!(f16_cache["bits_per_byte"], f32_cache["bits_per_byte"]);
    let e = stderr_of_failure(&kiln(&["eval", "bpb", "--model", model.to_str().unwrap(), src.join("nope").to_str().unwrap()]));
    assert!(e.contains("nope: no such file or directory"), "{e}");
    let e = stderr_of_failure(&kiln(&["eval", "bpb", "--model", model.to_str().unwrap(), "--cache-type", "f16", src.to_str().unwrap()]));
    assert!(e.contains("--cache-type f16 applies to GGUF models"), "{e}");
    let e = stderr_of_failure(&kiln(&["eval", "bpb", "--model", gguf.to_str().unwrap(), "--cache-type", "q4", src.to_str().unwrap()]));
    assert!(e.contains("unknown KV cache type `q4`"), "{e}");

    // Bad input: an unknown type, a folder that is not a model; nothing is written.
    let bad = tmp.path().join("bad.gguf");
    let e = stderr_of_failure(&kiln(&["quantize", model.to_str().unwrap(), "--type", "q3_xs", "--out", bad.to_str().unwrap()]));
    assert!(e.contains("--type q3_xs: unknown; use f32, f16, q8_0, q4_0 or q4_k_m"), "{e}");
    let e = stderr_of_failure(&kiln(&["quantize", tmp.path().to_str().unwrap(), "--type", "q8_0", "--out", bad.to_str().unwrap()]));
    assert!(e.contains("not a model directory (no config.json)"), "{e}");
    assert!(!bad.exists());
}
