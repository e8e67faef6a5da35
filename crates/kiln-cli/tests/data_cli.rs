//! `kiln data pack | inspect` end to end on the fixture repositories and tokenizer.
use std::path::Path;
mod common;
use common::{kiln, ok};

#[test]
fn pack_then_inspect_and_missing_sentinels_are_named() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    ok(&kiln(&[
        "corpus",
        "build",
        "--repos-root",
        root.join("tests/fixtures/repos").to_str().unwrap(),
        "--out",
        corpus.to_str().unwrap(),
        "--no-decontam",
    ]));
    let tok = root.join("tests/fixtures/tiny-llama");
    let packed = tmp.path().join("packed");
    ok(&kiln(&[
        "data",
        "pack",
        "--corpus",
        corpus.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--seq-len",
        "64",
        "--fim-rate",
        "1",
        "--val-fraction",
        "0",
        "--out",
        packed.to_str().unwrap(),
    ]));
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(packed.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["train"]["fim_documents"], meta["train"]["documents"], "{meta}");
    assert!(meta["train"]["windows"].as_u64().unwrap() > 5, "{meta}");
    let bin = std::fs::metadata(packed.join("train.bin")).unwrap().len();
    assert_eq!(bin, meta["train"]["windows"].as_u64().unwrap() * 65 * 2, "uint16 windows of seq_len + 1");
    let shown = ok(&kiln(&["data", "inspect", packed.to_str().unwrap(), "--window", "0"]));
    assert!(shown.contains("<｜begin▁of▁sentence｜><｜fim▁begin｜>"), "{shown}");
    // A tokenizer without FIM sentinels: the error names the missing token and the way out.
    let broken = tmp.path().join("nofim");
    std::fs::create_dir_all(&broken).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(tok.join("tokenizer.json")).unwrap()).unwrap();
    json["added_tokens"].as_array_mut().unwrap().retain(|t| !t["content"].as_str().unwrap().contains("fim"));
    std::fs::write(broken.join("tokenizer.json"), serde_json::to_vec(&json).unwrap()).unwrap();
    let out = kiln(&[
        "data",
        "pack",
        "--corpus",
        corpus.to_str().unwrap(),
        "--tokenizer",
        broken.to_str().unwrap(),
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("<｜fim▁begin｜>") && err.contains("--fim-rate 0"), "{err}");
}
