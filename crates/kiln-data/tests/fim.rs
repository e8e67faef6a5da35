//! Document-level FIM: rates, splits, reassembly, determinism and token layouts.

mod common;

use std::collections::HashSet;

use kiln_data::{DataError, DocEncoder, FimConfig, FimDoc};
use kiln_tokenizer::special::{EOT, FIM_BEGIN, FIM_END, FIM_HOLE};

fn texts() -> Vec<String> {
    vec![
        "def add(a, b):\n    return a + b\n".to_string(),
        "fn main() { println!(\"🦀 héllo 世界\"); }\n// 注释 🎉🎉\n".to_string(),
        "中文代码注释：计算两个数的和".to_string(),
        format!("print('{FIM_BEGIN}') # {FIM_HOLE} and {FIM_END} {EOT} inside text"),
        "e\u{301}\u{200d}👩‍👩‍👧 combining and ZWJ".to_string(),
        "x".to_string(),
        String::new(),
    ]
}

fn cfg(rate: f64, spm_rate: f64, seed: u64) -> FimConfig {
    FimConfig { rate, spm_rate, seed }
}

#[test]
fn rate_zero_is_all_plain_and_rate_one_is_all_fim() {
    let text = "some text to split";
    for key in 0..500u64 {
        assert_eq!(cfg(0.0, 0.0, 1).apply(text, key), FimDoc::Plain(text));
        assert!(cfg(1.0, 0.0, 1).apply(text, key).is_fim());
        assert!(matches!(cfg(1.0, 1.0, 1).apply(text, key), FimDoc::Spm { .. }));
        assert!(matches!(cfg(1.0, 0.0, 1).apply(text, key), FimDoc::Psm { .. }));
    }
}

#[test]
fn observed_rates_are_within_four_sigma() {
    let n = 2000u64;
    let c = cfg(0.5, 0.5, 42);
    let docs: Vec<FimDoc> = (0..n).map(|k| c.apply("abcdefghij", FimConfig::key_of(&format!("doc-{k}")))).collect();
    let fim = docs.iter().filter(|d| d.is_fim()).count() as f64;
    let sigma = (n as f64 * 0.25).sqrt();
    assert!((fim - n as f64 * 0.5).abs() <= 4.0 * sigma, "{fim} FIM docs of {n}");
    let spm = docs.iter().filter(|d| matches!(d, FimDoc::Spm { .. })).count() as f64;
    let sigma_spm = (fim * 0.25).sqrt();
    assert!((spm - fim * 0.5).abs() <= 4.0 * sigma_spm, "{spm} SPM of {fim} FIM docs");
}

#[test]
fn pieces_reassemble_the_text_at_character_boundaries() {
    let c = cfg(1.0, 0.3, 7);
    for text in texts() {
        for key in 0..300u64 {
            let doc = c.apply(&text, key);
            let (p, m, s) = doc.pieces();
            assert_eq!(format!("{p}{m}{s}"), text);
            // The cuts are at character boundaries of the original text.
            assert!(text.is_char_boundary(p.len()));
            assert!(text.is_char_boundary(p.len() + m.len()));
        }
    }
}

#[test]
fn every_pair_of_cut_points_occurs() {
    // 3 characters (multi-byte): cut pairs (lo <= hi) over boundaries 0..=3 give 10 splits.
    let text = "é中🦀";
    let c = cfg(1.0, 0.0, 3);
    let mut seen = HashSet::new();
    for key in 0..2000u64 {
        let (p, m, _) = c.apply(text, key).pieces();
        seen.insert((p.chars().count(), p.chars().count() + m.chars().count()));
    }
    assert_eq!(seen.len(), 10, "{seen:?}");
}

#[test]
fn same_seed_same_split_and_other_seeds_differ() {
    let text = "a".repeat(200);
    let a: Vec<_> = (0..200u64).map(|k| cfg(0.5, 0.2, 11).apply(&text, k)).collect();
    let b: Vec<_> = (0..200u64).map(|k| cfg(0.5, 0.2, 11).apply(&text, k)).collect();
    let other: Vec<_> = (0..200u64).map(|k| cfg(0.5, 0.2, 12).apply(&text, k)).collect();
    assert_eq!(a, b);
    let differ = a.iter().zip(&other).filter(|(x, y)| x != y).count();
    assert!(differ > 100, "only {differ} of 200 docs changed with the seed");
    // The key matters too: the same text under different keys is split differently.
    let keys: HashSet<_> = a.iter().map(|d| d.pieces().0.len()).collect();
    assert!(keys.len() > 20);
}

/// Splits a layout at the positions of the given ids (each must occur exactly once).
fn cut<'a>(ids: &'a [u32], markers: &[u32]) -> Vec<&'a [u32]> {
    let mut out = Vec::new();
    let mut rest = ids;
    for m in markers {
        let at = rest.iter().position(|x| x == m).unwrap_or_else(|| panic!("marker {m} missing in {ids:?}"));
        out.push(&rest[..at]);
        rest = &rest[at + 1..];
    }
    out.push(rest);
    out
}

#[test]
fn token_layouts_are_bos_sentinels_eos_and_text_never_yields_control_ids() {
    let tok = common::tokenizer();
    let enc = DocEncoder::new(&tok).unwrap();
    let sp = tok.special().clone();
    let (bos, eos) = (sp.bos.unwrap(), sp.eos.unwrap());
    let (b, h, e) = (sp.fim_begin.unwrap(), sp.fim_hole.unwrap(), sp.fim_end.unwrap());
    let control = [bos, eos, b, h, e, sp.eot.unwrap()];
    let dec = |ids: &[u32]| tok.decode(ids, false).unwrap();
    for text in texts() {
        for key in 0..40u64 {
            for doc in [cfg(0.0, 0.0, 5).apply(&text, key), cfg(1.0, 0.0, 5).apply(&text, key), cfg(1.0, 1.0, 5).apply(&text, key)] {
                let ids = doc.tokens(&enc, "test").unwrap();
                assert_eq!(ids[0], bos);
                assert_eq!(*ids.last().unwrap(), eos);
                let body = &ids[1..ids.len() - 1];
                let (p, m, s) = doc.pieces();
                match doc {
                    FimDoc::Plain(t) => {
                        assert!(body.iter().all(|x| !control.contains(x)), "{t:?} gave a control id");
                        assert_eq!(dec(body), t);
                    }
                    FimDoc::Psm { .. } => {
                        let parts = cut(body, &[b, h, e]);
                        assert!(parts[0].is_empty(), "PSM starts with <fim_begin>");
                        assert_eq!([dec(parts[1]), dec(parts[2]), dec(parts[3])], [p, s, m]);
                        for part in &parts[1..] {
                            assert!(part.iter().all(|x| !control.contains(x)));
                        }
                    }
                    FimDoc::Spm { .. } => {
                        let parts = cut(body, &[b, h, e]);
                        assert!(parts[0].is_empty() && parts[1].is_empty(), "SPM starts with <fim_begin><fim_hole>");
                        assert_eq!(dec(parts[2]), s);
                        assert_eq!(dec(parts[3]), format!("{p}{m}"));
                        assert!(parts[2..].iter().all(|part| part.iter().all(|x| !control.contains(x))));
                    }
                }
            }
        }
    }
}

#[test]
fn missing_sentinels_are_named() {
    // The tiny tokenizer without its FIM tokens.
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(common::tokenizer_path()).unwrap()).unwrap();
    let added = json["added_tokens"].as_array_mut().unwrap();
    added.retain(|t| !t["content"].as_str().unwrap().contains("fim"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let tok = kiln_tokenizer::Tokenizer::from_file(&path).unwrap();
    assert_eq!(tok.special().fim_begin, None);
    let enc = DocEncoder::new(&tok).unwrap();
    let err = enc.fim_ids().unwrap_err();
    assert!(matches!(err, DataError::MissingSpecialToken { token, .. } if token == FIM_BEGIN), "{err}");
    assert!(err.to_string().contains(FIM_BEGIN), "{err}");
    let doc = cfg(1.0, 0.0, 0).apply("abc", 1);
    assert!(doc.tokens(&enc, "doc").is_err());
    // Plain documents still work.
    let ids = FimDoc::Plain("abc").tokens(&enc, "doc").unwrap();
    assert_eq!(tok.decode(&ids[1..ids.len() - 1], false).unwrap(), "abc");
}
