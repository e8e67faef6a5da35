//! The tokenizer against transformers' `LlamaTokenizerFast` on the committed fixtures
//! (tests/fixtures/*/expected.json, made by scripts/make_tiny_fixtures.py).

#[path = "../../../tests/support/fixtures.rs"]
mod fixtures;
use fixtures::*;

use kiln_tokenizer::{special, TextStream, Tokenizer};

const FIXTURES: [&str; 2] = ["tiny-llama", "tiny-llama-sharded-bf16"];

#[test]
fn prompts_encode_and_decode_like_transformers() {
    for name in FIXTURES {
        let tok = Tokenizer::from_dir(&fixture(name)).unwrap();
        for p in expected(name)["prompts"].as_array().unwrap() {
            let text = p["text"].as_str().unwrap();
            let want = ids(&p["input_ids"]);
            assert_eq!(tok.encode(text).unwrap(), want, "{name}: {text:?}");
            assert_eq!(tok.decode(&want, false).unwrap(), p["decode"].as_str().unwrap(), "{name}: {text:?}");
            assert_eq!(tok.decode(&want, true).unwrap(), p["decode_skip_special"].as_str().unwrap(), "{name}: {text:?}");
        }
    }
}

#[test]
fn edge_cases_encode_and_decode_like_transformers() {
    // Both merge spellings ("a b" strings and [a, b] pairs) are covered: one per fixture.
    for name in FIXTURES {
        let tok = Tokenizer::from_dir(&fixture(name)).unwrap();
        let cases = expected(name)["tokenizer_cases"].as_array().unwrap().clone();
        assert!(cases.len() >= 10);
        for c in cases {
            let text = c["text"].as_str().unwrap();
            assert_eq!(tok.encode_raw(text).unwrap(), ids(&c["ids_no_special"]), "{name}: {text:?}");
            assert_eq!(tok.encode(text).unwrap(), ids(&c["ids_with_special"]), "{name}: {text:?}");
            let with = ids(&c["ids_with_special"]);
            assert_eq!(tok.decode(&with, false).unwrap(), c["decode"].as_str().unwrap(), "{name}: {text:?}");
            assert_eq!(tok.decode(&with, true).unwrap(), c["decode_skip_special"].as_str().unwrap(), "{name}: {text:?}");
        }
    }
}

#[test]
fn special_ids_are_found_by_their_deepseek_strings() {
    let tok = Tokenizer::from_dir(&fixture("tiny-llama")).unwrap();
    let e = &expected("tiny-llama")["special_ids"];
    let s = tok.special();
    let id = |k: &str| Some(e[k].as_u64().unwrap() as u32);
    assert_eq!(s.bos, id("bos"));
    assert_eq!(s.eos, id("eos"));
    assert_eq!(s.fim_begin, id("fim_begin"));
    assert_eq!(s.fim_hole, id("fim_hole"));
    assert_eq!(s.fim_end, id("fim_end"));
    assert_eq!(s.eot, id("eot"));
    assert_eq!(tok.token_id(special::PAD), id("pad_literal"));
    assert!(tok.adds_bos());
    assert_eq!(tok.id_count(), expected("tiny-llama")["tokenizer_vocab_size"].as_u64().unwrap() as usize);
}

#[test]
fn streaming_detokenizer_adds_up_to_the_full_decode() {
    // Greedy outputs of random weights are full of split multi-byte characters: a good stress test.
    for name in FIXTURES {
        let tok = Tokenizer::from_dir(&fixture(name)).unwrap();
        for p in expected(name)["prompts"].as_array().unwrap() {
            let out = ids(&p["greedy_ids"]);
            let mut stream = TextStream::new(&tok, true);
            let mut pieces = String::new();
            for &id in &out {
                let piece = stream.push(id).unwrap();
                assert!(!piece.ends_with('\u{FFFD}'), "{name}: streamed an incomplete character");
                pieces.push_str(&piece);
            }
            pieces.push_str(&stream.finish().unwrap());
            assert_eq!(pieces, tok.decode(&out, true).unwrap(), "{name}: prompt {}", p["name"]);
            assert_eq!(stream.text(), pieces);
        }
    }
}

#[test]
fn missing_and_broken_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json") && err.contains("not found"), "{err}");
    std::fs::write(dir.path().join("tokenizer.json"), "{\"model\": 3}").unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json") && err.contains("cannot load"), "{err}");
    std::fs::copy(fixture("tiny-llama").join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    std::fs::write(dir.path().join("tokenizer_config.json"), "{\"add_bos_token\": \"yes\"}").unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("tokenizer_config.json") && err.contains("add_bos_token"), "{err}");
    std::fs::write(dir.path().join("tokenizer_config.json"), "{\"add_bos_token\": false}").unwrap();
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.encode("x").unwrap(), tok.encode_raw("x").unwrap());
}
