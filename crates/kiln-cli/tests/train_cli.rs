//! `kiln train` end to end: corpus → pack → train from a preset → generate from the checkpoint →
//! resume; bad invocations fail with reasons.
use std::path::Path;
mod common;
use common::{kiln, ok};

#[test]
fn pack_train_generate_resume() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = tempfile::tempdir().unwrap();
    let p = |rel: &str| tmp.path().join(rel).to_str().unwrap().to_string();
    ok(&kiln(&[
        "corpus",
        "build",
        "--repos-root",
        root.join("tests/fixtures/repos").to_str().unwrap(),
        "--out",
        &p("corpus"),
        "--no-decontam",
    ]));
    let tok = root.join("tests/fixtures/tiny-llama");
    ok(&kiln(&[
        "data",
        "pack",
        "--corpus",
        &p("corpus"),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--seq-len",
        "32",
        "--val-fraction",
        "0.3",
        "--out",
        &p("packed"),
    ]));
    ok(&kiln(&[
        "train",
        "--data",
        &p("packed"),
        "--out",
        &p("run"),
        "--preset",
        "tiny",
        "--steps",
        "6",
        "--micro-batch",
        "2",
        "--accumulation",
        "1",
        "--eval-every",
        "3",
        "--checkpoint-every",
        "3",
    ]));
    let metrics = std::fs::read_to_string(tmp.path().join("run/metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().filter(|m| m["kind"] == "train").count(), 6);
    assert!(lines.iter().any(|m| m["kind"] == "eval"), "val loss is evaluated: {metrics}");
    for png in ["loss.png", "lr.png"] {
        assert!(std::fs::read(tmp.path().join("run").join(png)).unwrap().starts_with(b"\x89PNG"), "{png}");
    }
    std::fs::remove_file(tmp.path().join("run/loss.png")).unwrap();
    ok(&kiln(&["train", "--plot", &p("run")]));
    assert!(tmp.path().join("run/loss.png").is_file());
    // The checkpoint is a model directory `kiln generate` runs, tokenizer included.
    let ckpt = p("run/checkpoint-00000006");
    let out: serde_json::Value = serde_json::from_str(&ok(&kiln(&[
        "generate",
        "--model",
        &ckpt,
        "--prompt",
        "def f(",
        "--max-tokens",
        "4",
        "--temperature",
        "0",
        "--json",
    ])))
    .unwrap();
    assert_eq!(out["prompt_ids"][0], 400, "BOS of the data's tokenizer");
    // Resuming a finished run does nothing more; flags that would change its config are refused.
    ok(&kiln(&["train", "--resume", &p("run")]));
    let again = kiln(&["train", "--resume", &p("run"), "--steps", "9"]);
    assert!(!again.status.success());
    // Continued training from an existing model directory (the tiny-llama fixture).
    ok(&kiln(&[
        "train",
        "--data",
        &p("packed"),
        "--out",
        &p("run2"),
        "--init",
        tok.to_str().unwrap(),
        "--steps",
        "2",
        "--micro-batch",
        "2",
        "--eval-every",
        "0",
    ]));
    assert!(tmp.path().join("run2/checkpoint-00000002/model.safetensors").is_file());
    let none = kiln(&["train", "--data", &p("packed"), "--out", &p("run3"), "--steps", "2"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("--preset"));
}

#[test]
fn sft_data_then_instruction_tuning() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tok = root.join("tests/fixtures/tiny-llama");
    let tmp = tempfile::tempdir().unwrap();
    let p = |rel: &str| tmp.path().join(rel).to_str().unwrap().to_string();
    let mut jsonl = String::new();
    for i in 0..12 {
        jsonl.push_str(&serde_json::json!({"instruction": format!("add {i} and 1"), "output": format!("{}", i + 1)}).to_string());
        jsonl.push('\n');
    }
    jsonl.push_str(&serde_json::json!({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}).to_string());
    jsonl.push('\n');
    std::fs::write(tmp.path().join("chat.jsonl"), &jsonl).unwrap();
    ok(&kiln(&[
        "data",
        "sft",
        "--input",
        &p("chat.jsonl"),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--val-fraction",
        "0.2",
        "--out",
        &p("sft"),
    ]));
    for f in ["train.bin", "train.idx", "train.mask", "tokenizer.json"] {
        assert!(tmp.path().join("sft").join(f).is_file(), "{f}");
    }
    ok(&kiln(&[
        "train",
        "--data",
        &p("sft"),
        "--out",
        &p("run"),
        "--init",
        tok.to_str().unwrap(),
        "--steps",
        "3",
        "--micro-batch",
        "2",
        "--eval-every",
        "3",
        "--lr",
        "1e-5",
        "--schedule",
        "cosine",
    ]));
    assert!(tmp.path().join("run/checkpoint-00000003/tokenizer.json").is_file());
    // A bad line names the file and line.
    std::fs::write(tmp.path().join("bad.jsonl"), "{\"instruction\": \"x\"}\n").unwrap();
    let bad = kiln(&["data", "sft", "--input", &p("bad.jsonl"), "--tokenizer", tok.to_str().unwrap(), "--out", &p("sft2")]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("bad.jsonl:1") && err.contains("messages"), "{err}");
}
