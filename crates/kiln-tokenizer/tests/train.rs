//! `train_bpe`: DeepSeek-Coder's pre-tokenizer rules hold in a tokenizer kiln trains itself.
use std::path::Path;

use kiln_tokenizer::layout::role_tokens;
use kiln_tokenizer::train::{train_bpe, TrainOptions};
use kiln_tokenizer::Tokenizer;

/// Code from the fixture repositories plus text exercising digits, CJK, emoji and whitespace.
fn corpus() -> Vec<String> {
    let mut texts = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/repos")];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = std::fs::read_to_string(&p) {
                texts.push(t);
            }
        }
    }
    for i in 0..200 {
        texts.push(format!(
            "def total_{i}(values):\r\n\treturn sum(values) + {i} * 31415926  # 合计 {i} 😀\n\
             // 東京 données ünïcödé {i}\nlet x{i} = [1, 22, 333, 4444];\n"
        ));
    }
    texts
}

fn trained(vocab_size: usize) -> (tempfile::TempDir, Tokenizer, serde_json::Value) {
    let t = train_bpe(corpus().into_iter(), &TrainOptions { vocab_size, ..TrainOptions::default() }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), serde_json::to_vec(&t.tokenizer).unwrap()).unwrap();
    std::fs::write(dir.path().join("tokenizer_config.json"), serde_json::to_vec(&t.config).unwrap()).unwrap();
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    (dir, tok, t.tokenizer)
}

#[test]
fn trained_tokenizer_keeps_deepseek_rules() {
    let (_dir, tok, json) = trained(700);
    // BPE ids first, then the nine role tokens in the release's order.
    assert_eq!(tok.id_count(), 700 + 9);
    for (i, (role, _)) in role_tokens().iter().enumerate() {
        assert_eq!(tok.token_id(role), Some(700 + i as u32), "{role}");
        assert_eq!(tok.encode_raw(role).unwrap(), [700 + i as u32], "{role} is one id");
    }
    let s = tok.special();
    assert_eq!((s.bos, s.eos, s.eot), (Some(700), Some(701), Some(708)));
    // Digits are never merged: no vocabulary entry holds a digit next to anything else.
    let vocab = json["model"]["vocab"].as_object().unwrap();
    for token in vocab.keys() {
        if token.chars().any(|c| c.is_ascii_digit()) {
            assert_eq!(token.chars().count(), 1, "token {token:?} merges a digit");
        }
    }
    assert_eq!(tok.encode_raw("31415926").unwrap().len(), 8);
    // Round trips, including the sentinels written in the text.
    for text in [
        "def f(x):\r\n\treturn x  # ok\r\n",
        "\t\t  mixed \t whitespace   \n\n\n",
        "emoji 😀🚀 and CJK 東京 合计 한국어 and ünïcödé",
        "prefix <｜fim▁begin｜>a<｜fim▁hole｜>b<｜fim▁end｜>c<|EOT|> suffix",
        "bytes never seen in training: ☃ ∮ ℵ \u{1F9EC}",
        "",
    ] {
        let ids = tok.encode_raw(text).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text, "{ids:?}");
    }
    // Encoding with BOS (as the released tokenizer does) and dropping it again.
    let ids = tok.encode("x = 1").unwrap();
    assert_eq!(ids[0], 700);
    assert_eq!(tok.decode(&ids, true).unwrap(), "x = 1");
}

#[test]
fn training_is_deterministic() {
    let (_a, _, first) = trained(500);
    let (_b, _, second) = trained(500);
    assert_eq!(first, second);
}

#[test]
fn empty_corpus_and_tiny_vocab_are_errors() {
    let e = train_bpe(std::iter::empty(), &TrainOptions::default()).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    let e = train_bpe(corpus().into_iter(), &TrainOptions { vocab_size: 100, ..TrainOptions::default() }).unwrap_err().to_string();
    assert!(e.contains("too small"), "{e}");
}
