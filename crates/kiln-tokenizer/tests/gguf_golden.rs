//! The real DeepSeek-Coder vocabulary, imported from llama.cpp's GGUF, tokenizes llama.cpp's test
//! strings (`.gguf.inp`) into exactly the ids of `.gguf.out` and decodes them back.
//!
//! Files: `tests/fixtures/deepseek-coder-vocab/` (copied from llama.cpp's `models/`, MIT: see the
//! licence file beside them).
use std::path::{Path, PathBuf};

use kiln_tokenizer::layout::import_gguf;
use kiln_tokenizer::Tokenizer;

/// The committed vocabulary; a missing file fails the test (it is part of the repository).
fn vocab_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/deepseek-coder-vocab");
    assert!(d.join("ggml-vocab-deepseek-coder.gguf").is_file(), "no DeepSeek-Coder GGUF vocabulary at {}", d.display());
    Some(d)
}

fn import(dir: &Path) -> (tempfile::TempDir, Tokenizer, usize) {
    let imported = import_gguf(&dir.join("ggml-vocab-deepseek-coder.gguf")).unwrap();
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("tokenizer.json"), serde_json::to_vec(&imported.tokenizer).unwrap()).unwrap();
    std::fs::write(out.path().join("tokenizer_config.json"), serde_json::to_vec(&imported.config).unwrap()).unwrap();
    let tok = Tokenizer::from_dir(out.path()).unwrap();
    (out, tok, imported.ids)
}

#[test]
fn imported_gguf_vocabulary_matches_llama_cpp_golden_ids() {
    let Some(dir) = vocab_dir() else { return };
    let (_tmp, tok, ids) = import(&dir);
    assert_eq!(ids, 32022, "32,000 BPE ids + 22 added tokens (spec §3.1)");
    let inp = std::fs::read_to_string(dir.join("ggml-vocab-deepseek-coder.gguf.inp")).unwrap();
    let out = std::fs::read_to_string(dir.join("ggml-vocab-deepseek-coder.gguf.out")).unwrap();
    let cases: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    let expected: Vec<&str> = out.split('\n').collect();
    // The file ends with a separator: one empty trailing piece on each side.
    assert_eq!(cases.len(), expected.len());
    assert!(cases.len() > 40);
    let mut failures = Vec::new();
    for (text, want) in cases.iter().zip(&expected).take(cases.len() - 1) {
        let want: Vec<u32> = want.split_whitespace().map(|t| t.parse().unwrap()).collect();
        let got = tok.encode_raw(text).unwrap();
        if got != want {
            failures.push(format!("{text:?}\n  want {want:?}\n  got  {got:?}"));
            continue;
        }
        let back = tok.decode(&got, false).unwrap();
        if back != *text {
            failures.push(format!("{text:?} decodes to {back:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len() - 1, failures.join("\n"));
}

#[test]
fn imported_special_tokens_have_deepseek_ids_and_roles() {
    let Some(dir) = vocab_dir() else { return };
    let (_tmp, tok, _) = import(&dir);
    let s = tok.special();
    assert_eq!(
        (s.bos, s.eos, s.fim_hole, s.fim_begin, s.fim_end, s.eot),
        (Some(32013), Some(32014), Some(32015), Some(32016), Some(32017), Some(32021))
    );
    assert!(tok.adds_bos());
    assert_eq!(tok.encode("x").unwrap()[0], 32013);
    // BOS/EOS/EOT are dropped by skip_special; FIM sentinels are not special in the release.
    let ids = [32013, 32016, 87, 32015, 32017, 32014];
    assert_eq!(tok.decode(&ids, true).unwrap(), "<｜fim▁begin｜>x<｜fim▁hole｜><｜fim▁end｜>");
}

/// A long text (encoded in pieces cut after newlines) gets the ids of its lines encoded one by
/// one, with the real vocabulary: newlines never join a pre-token, so cutting there is exact.
#[test]
fn long_texts_encode_like_their_lines() {
    let Some(dir) = vocab_dir() else { return };
    let (_tmp, tok, _) = import(&dir);
    let inp = std::fs::read_to_string(dir.join("ggml-vocab-deepseek-coder.gguf.inp")).unwrap();
    let text = inp.replace("\n__ggml_vocab_test__\n", "\r\n").repeat(80);
    assert!(text.len() > 50_000);
    let by_line: Vec<u32> = text.split_inclusive('\n').flat_map(|l| tok.encode_raw(l).unwrap()).collect();
    assert_eq!(tok.encode_raw(&text).unwrap(), by_line);
}

/// The tokenizer read straight from a GGUF file (what `kiln generate --model FILE.gguf` uses)
/// is the imported one; a file written before llama.cpp recorded `tokenizer.ggml.pre` gets
/// DeepSeek-Coder's pre-tokenizer when its vocabulary is DeepSeek's.
#[test]
fn tokenizer_from_a_gguf_file_with_and_without_the_pre_tokenizer_key() {
    let Some(dir) = vocab_dir() else { return };
    let gguf = dir.join("ggml-vocab-deepseek-coder.gguf");
    let (_tmp, imported, _) = import(&dir);
    let direct = Tokenizer::from_gguf(&gguf).unwrap();
    let text = "def Führer(x):\n\treturn x  # 🦀 ok\r\n";
    assert_eq!(direct.encode(text).unwrap(), imported.encode(text).unwrap());
    assert_eq!(direct.encode_raw("Führer").unwrap(), vec![37, 32009, 71, 6247]);
    assert!(direct.adds_bos());
    // The same vocabulary without `tokenizer.ggml.pre`.
    let file = kiln_gguf::GgufFile::open(&gguf).unwrap();
    let mut w = kiln_gguf::GgufWriter::new();
    for (k, v) in file.metadata().filter(|(k, _)| *k != "tokenizer.ggml.pre") {
        w.add_metadata(k, v.clone());
    }
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old.gguf");
    w.write(&old).unwrap();
    let from_old = Tokenizer::from_gguf(&old).unwrap();
    assert_eq!(from_old.encode(text).unwrap(), imported.encode(text).unwrap());
}
