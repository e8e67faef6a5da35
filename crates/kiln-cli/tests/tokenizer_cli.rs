//! `kiln tokenizer import-gguf | encode | decode | train` end to end.
use std::path::Path;
mod common;
use common::{kiln, ok};

#[test]
fn import_gguf_encode_decode() {
    let gguf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/deepseek-coder-vocab/ggml-vocab-deepseek-coder.gguf");
    assert!(gguf.is_file(), "the committed vocabulary is missing: {}", gguf.display());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds/tokenizer.json");
    ok(&kiln(&["tokenizer", "import-gguf", gguf.to_str().unwrap(), "--out", out.to_str().unwrap()]));
    assert!(out.with_file_name("tokenizer_config.json").is_file());
    let dir = out.parent().unwrap().to_str().unwrap();
    // llama.cpp's golden ids for "Führer"; with --bos the released tokenizer's BOS 32013 first.
    assert_eq!(ok(&kiln(&["tokenizer", "encode", "--tokenizer", dir, "--text", "Führer"])).trim(), "37 32009 71 6247");
    assert_eq!(ok(&kiln(&["tokenizer", "encode", "--tokenizer", dir, "--text", "Führer", "--bos"])).trim(), "32013 37 32009 71 6247");
    assert_eq!(
        ok(&kiln(&["tokenizer", "decode", "--tokenizer", dir, "32013,37", "32009", "71", "6247"])).trim_end(),
        "<｜begin▁of▁sentence｜>Führer"
    );
    assert_eq!(ok(&kiln(&["tokenizer", "decode", "--tokenizer", dir, "--skip-special", "32013", "37"])).trim_end(), "F");
    let bad = kiln(&["tokenizer", "decode", "--tokenizer", dir, "40000"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("out of range"));
    // A file that is not GGUF: the error names it.
    let junk = tmp.path().join("junk.gguf");
    std::fs::write(&junk, b"not a gguf").unwrap();
    let bad = kiln(&["tokenizer", "import-gguf", junk.to_str().unwrap(), "--out", tmp.path().join("x.json").to_str().unwrap()]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("junk.gguf") && err.contains("GGUF"), "{err}");
    assert!(!tmp.path().join("x.json").exists(), "nothing written on failure");
}

#[test]
fn train_on_a_corpus_then_encode() {
    let tmp = tempfile::tempdir().unwrap();
    let repos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/repos");
    let corpus = tmp.path().join("corpus");
    ok(&kiln(&["corpus", "build", "--repos-root", repos.to_str().unwrap(), "--out", corpus.to_str().unwrap(), "--no-decontam"]));
    let out = tmp.path().join("tok/tokenizer.json");
    ok(&kiln(&["tokenizer", "train", "--corpus", corpus.to_str().unwrap(), "--vocab-size", "400", "--out", out.to_str().unwrap()]));
    let dir = out.parent().unwrap().to_str().unwrap();
    let ids = ok(&kiln(&["tokenizer", "encode", "--tokenizer", dir, "--text", "import os<｜fim▁hole｜>"]));
    let ids: Vec<u32> = ids.split_whitespace().map(|t| t.parse().unwrap()).collect();
    assert_eq!(*ids.last().unwrap(), 402, "fim hole is the 3rd role token after 400 BPE ids");
    // Not a corpus: a clear error.
    let bad = kiln(&["tokenizer", "train", "--corpus", repos.to_str().unwrap(), "--out", tmp.path().join("y.json").to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a kiln corpus"));
}
