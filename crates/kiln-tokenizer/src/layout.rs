//! DeepSeek-Coder's tokenizer layout as Hugging Face `tokenizer.json` + `tokenizer_config.json`,
//! built from parts: used by `kiln tokenizer import-gguf` (parts from a GGUF vocabulary) and by
//! `kiln tokenizer train` (parts from a BPE training run), so both write the same format.
//!
//! The layout (spec §3): no normalizer; pre-tokenizer `Sequence[Split ×4 (Isolated), Digits
//! (individual), ByteLevel (no prefix space, no regex)]` with the four patterns of spec §3.4
//! (newlines isolated, letter runs, punctuation runs, CJK runs); ByteLevel decoder; a BPE model
//! with no unknown token; added tokens matched in the raw text before BPE (which is why a literal
//! `ü` in input becomes DeepSeek's added id 32009, not two byte tokens); a BOS post-processor.

use std::path::Path;

use serde_json::{json, Value};

use crate::gguf::{read_metadata, Array, Metadata};
use crate::{special, TokenizerError};

/// The four isolating split patterns of DeepSeek-Coder's pre-tokenizer, in order (spec §3.4).
pub const SPLIT_PATTERNS: [&str; 4] = ["[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+"];

/// An added token: matched in raw text before the pre-tokenizer, never split or merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// Its id.
    pub id: u32,
    /// Its text.
    pub content: String,
    /// Whether `decode(skip_special = true)` drops it (BOS, EOS, EOT in DeepSeek's files).
    pub special: bool,
}

/// DeepSeek-Coder's nine role tokens in their release order, with the `special` flags of the
/// released files (spec §3.2): BOS, EOS, FIM hole/begin/end, pad, User, Assistant, EOT.
pub fn role_tokens() -> [(&'static str, bool); 9] {
    [
        (special::BOS, true),
        (special::EOS, true),
        (special::FIM_HOLE, false),
        (special::FIM_BEGIN, false),
        (special::FIM_END, false),
        (special::PAD, false),
        (special::USER, false),
        (special::ASSISTANT, false),
        (special::EOT, true),
    ]
}

/// The pre-tokenizer JSON.
pub fn pre_tokenizer() -> Value {
    let mut steps: Vec<Value> =
        SPLIT_PATTERNS.iter().map(|p| json!({"type": "Split", "pattern": {"Regex": p}, "behavior": "Isolated", "invert": false})).collect();
    steps.push(json!({"type": "Digits", "individual_digits": true}));
    steps.push(json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}));
    json!({"type": "Sequence", "pretokenizers": steps})
}

/// `tokenizer.json` from a BPE vocabulary (`vocab[i]` has id `i`), its merges (`"a b"`), and the
/// added tokens (ids may interleave with or follow the vocabulary).
pub fn tokenizer_json(vocab: &[(String, u32)], merges: &[String], added: &[Added]) -> Value {
    let bos = added.iter().find(|a| a.content == special::BOS);
    let post = match bos {
        Some(b) => json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": b.content, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": b.content, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": b.content, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {b.content.clone(): {"id": b.content, "ids": [b.id], "tokens": [b.content]}}
        }),
        None => Value::Null,
    };
    let vocab_map: serde_json::Map<String, Value> = vocab.iter().map(|(t, id)| (t.clone(), json!(id))).collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added.iter().map(|a| json!({
            "id": a.id, "content": a.content, "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": true, "special": a.special
        })).collect::<Vec<_>>(),
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer(),
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab_map, "merges": merges
        }
    })
}

/// `tokenizer_config.json` in the released models' shape (spec §3.3): BOS prepended, no EOS
/// appended, `eos_token` = `eos` (EOS for base models, EOT for instruct), pad = EOS.
pub fn tokenizer_config_json(added: &[Added], eos: &str, model_max_length: u64) -> Value {
    let decoder: serde_json::Map<String, Value> = added
        .iter()
        .map(|a| {
            (
                a.id.to_string(),
                json!({"content": a.content, "lstrip": false, "normalized": true, "rstrip": false,
                                       "single_word": false, "special": a.special}),
            )
        })
        .collect();
    let has = |s: &str| added.iter().any(|a| a.content == s);
    json!({
        "add_bos_token": has(special::BOS),
        "add_eos_token": false,
        "added_tokens_decoder": decoder,
        "bos_token": if has(special::BOS) { json!(special::BOS) } else { Value::Null },
        "eos_token": eos,
        "pad_token": if has(special::EOS) { json!(special::EOS) } else { Value::Null },
        "unk_token": null,
        "clean_up_tokenization_spaces": false,
        "legacy": true,
        "model_max_length": model_max_length,
        "tokenizer_class": "LlamaTokenizerFast"
    })
}

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_NORMAL: i128 = 1;
const TOKEN_CONTROL: i128 = 3;
const TOKEN_USER_DEFINED: i128 = 4;

/// A tokenizer rebuilt from a GGUF vocabulary: `tokenizer.json` and `tokenizer_config.json`.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The `tokenizer.json` value.
    pub tokenizer: Value,
    /// The `tokenizer_config.json` value.
    pub config: Value,
    /// Number of ids (BPE vocabulary + added tokens; llama.cpp's `[PAD<id>]` fillers left out).
    pub ids: usize,
}

/// Rebuilds DeepSeek-Coder's tokenizer from a GGUF file's `tokenizer.ggml.*` metadata: tokens,
/// merges and token types (control and user-defined tokens become added tokens, control ones
/// `special`), for `tokenizer.ggml.model = gpt2` with pre-tokenizer `deepseek-coder`.
pub fn import_gguf(path: &Path) -> Result<Imported, TokenizerError> {
    // The error's own text already starts with the path; `Load` adds it again, so only the kind.
    let meta = read_metadata(path).map_err(|e| TokenizerError::Load { path: path.to_path_buf(), message: e.kind.to_string() })?;
    from_metadata(&meta, path)
}

fn from_metadata(meta: &Metadata, path: &Path) -> Result<Imported, TokenizerError> {
    let bad = |message: String| TokenizerError::Load { path: path.to_path_buf(), message };
    let get = |key: &str| meta.get(key).ok_or_else(|| bad(format!("no `{key}` key: not a tokenizer GGUF")));
    let model = get("tokenizer.ggml.model")?.as_str().unwrap_or("?");
    if model != "gpt2" {
        return Err(bad(format!("`tokenizer.ggml.model` is `{model}`; kiln imports byte-level BPE vocabularies (`gpt2`)")));
    }
    let pre = match meta.get("tokenizer.ggml.pre").and_then(|v| v.as_str()) {
        Some(pre) => pre,
        // Files written before llama.cpp recorded the pre-tokenizer (2024-04) have none: a
        // DeepSeek-Coder vocabulary gets its own, anything else gets it too, with a warning.
        None => {
            let deepseek = get("tokenizer.ggml.tokens")?
                .as_array()
                .and_then(|a| a.as_strings())
                .is_some_and(|t| t.iter().any(|s| s == special::FIM_HOLE) && t.iter().any(|s| s == special::BOS));
            if !deepseek {
                tracing::warn!(path = %path.display(), "no `tokenizer.ggml.pre` and not DeepSeek-Coder's vocabulary: using DeepSeek-Coder's pre-tokenizer anyway; texts may tokenize differently than in llama.cpp");
            }
            "deepseek-coder"
        }
    };
    if pre != "deepseek-coder" {
        return Err(bad(format!("pre-tokenizer `{pre}` is not supported; kiln rebuilds the `deepseek-coder` pre-tokenizer only")));
    }
    // An empty array of any element type holds no non-string (or non-integer).
    let strings = |key: &str| -> Result<Vec<&str>, TokenizerError> {
        let a = get(key)?.as_array().ok_or_else(|| bad(format!("`{key}` is not an array")))?;
        match a {
            Array::String(v) => Ok(v.iter().map(String::as_str).collect()),
            a if a.is_empty() => Ok(Vec::new()),
            _ => Err(bad(format!("`{key}` holds a non-string"))),
        }
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let types: Vec<i128> = match meta.get("tokenizer.ggml.token_type") {
        Some(v) => {
            let a = v.as_array().ok_or_else(|| bad("`tokenizer.ggml.token_type` is not an array".into()))?;
            match a.to_ints() {
                Some(ints) => ints,
                None if a.is_empty() => Vec::new(),
                None => return Err(bad("`tokenizer.ggml.token_type` holds a non-integer".into())),
            }
        }
        None => vec![TOKEN_NORMAL; tokens.len()],
    };
    if types.len() != tokens.len() {
        return Err(bad(format!("{} token types for {} tokens", types.len(), tokens.len())));
    }
    let merges: Vec<String> = strings("tokenizer.ggml.merges")?.into_iter().map(str::to_string).collect();
    let mut vocab = Vec::new();
    let mut added = Vec::new();
    let roles = role_tokens();
    let mut padding = 0usize;
    for (id, (tok, ty)) in tokens.iter().zip(&types).enumerate() {
        match *ty {
            // llama.cpp pads the vocabulary to the embedding's row count with `[PAD<id>]`
            // user-defined tokens (DeepSeek: 32022..32255). They are not in the released
            // tokenizer: as added tokens they would turn the text "[PAD32022]" into one id.
            TOKEN_USER_DEFINED if *tok == format!("[PAD{id}]") => padding += 1,
            TOKEN_CONTROL | TOKEN_USER_DEFINED => {
                // GGUF marks only BOS/EOS as control; the released tokenizer.json also marks
                // `<|EOT|>` special (skipped by `decode(skip_special)`). Known role tokens take
                // the release's flag, others the GGUF type.
                let special = roles.iter().find(|(s, _)| s == tok).map_or(*ty == TOKEN_CONTROL, |(_, sp)| *sp);
                added.push(Added { id: id as u32, content: tok.to_string(), special })
            }
            _ => vocab.push((tok.to_string(), id as u32)),
        }
    }
    let eos_id = meta.get("tokenizer.ggml.eos_token_id").and_then(|v| v.as_int());
    let eos = eos_id.and_then(|i| tokens.get(i as usize)).copied().unwrap_or(special::EOS);
    // The first such key in sorted order (as the former BTreeMap-based parser found it).
    let max_len = meta
        .metadata()
        .filter(|(k, _)| k.ends_with(".context_length"))
        .min_by_key(|(k, _)| *k)
        .and_then(|(_, v)| v.as_int())
        .unwrap_or(16384) as u64;
    tracing::info!(path = %path.display(), bpe = vocab.len(), added = added.len(), padding, merges = merges.len(), "GGUF vocabulary imported");
    Ok(Imported {
        ids: vocab.len() + added.len(),
        tokenizer: tokenizer_json(&vocab, &merges, &added),
        config: tokenizer_config_json(&added, eos, max_len),
    })
}

/// The `tokenizer.ggml.*` metadata of a GGUF file for the tokenizer in `dir` (`tokenizer.json`
/// and `tokenizer_config.json`): the inverse of [`import_gguf`], for `kiln quantize`. `rows` is
/// the model's embedding row count: ids the tokenizer does not use (padding rows) become
/// `[PAD<id>]` user-defined tokens, as llama.cpp's converter writes them. Special added tokens
/// are control tokens, other added tokens user-defined. The FIM ids are DeepSeek-Coder's
/// (`<｜fim▁begin｜>` prefix, `<｜fim▁hole｜>` suffix, `<｜fim▁end｜>` middle) when the vocabulary
/// has them, so llama.cpp's `/infill` works on the file.
pub fn gguf_metadata(dir: &Path, rows: usize) -> Result<Vec<(String, kiln_gguf::Value)>, TokenizerError> {
    let path = dir.join("tokenizer.json");
    let bad = |message: String| TokenizerError::Load { path: path.clone(), message };
    let text = std::fs::read_to_string(&path).map_err(|_| TokenizerError::MissingFile { path: path.clone() })?;
    let json: Value = serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let model = &json["model"];
    if model["type"] != "BPE" {
        return Err(bad(format!("model type {}: GGUF export writes byte-level BPE (`gpt2`) vocabularies", model["type"])));
    }
    let mut tokens: Vec<Option<(String, i32)>> = vec![None; rows];
    let mut put = |id: u64, tok: &str, ty: i32| -> Result<(), TokenizerError> {
        let slot =
            tokens.get_mut(id as usize).ok_or_else(|| bad(format!("token id {id} ({tok:?}) is past the model's {rows} embedding rows")))?;
        *slot = Some((tok.to_string(), ty));
        Ok(())
    };
    let vocab = model["vocab"].as_object().ok_or_else(|| bad("`model.vocab` is not an object".into()))?;
    for (tok, id) in vocab {
        put(id.as_u64().ok_or_else(|| bad(format!("vocab entry {tok:?} has no integer id")))?, tok, TOKEN_NORMAL as i32)?;
    }
    for t in json["added_tokens"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let (Some(id), Some(content)) = (t["id"].as_u64(), t["content"].as_str()) else {
            return Err(bad(format!("added token without id or content: {t}")));
        };
        let ty = if t["special"].as_bool() == Some(true) { TOKEN_CONTROL } else { TOKEN_USER_DEFINED };
        put(id, content, ty as i32)?;
    }
    let (mut names, mut types) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for (id, t) in tokens.into_iter().enumerate() {
        let (tok, ty) = t.unwrap_or_else(|| (format!("[PAD{id}]"), TOKEN_USER_DEFINED as i32));
        names.push(tok);
        types.push(ty);
    }
    let merges: Vec<String> = model["merges"]
        .as_array()
        .ok_or_else(|| bad("`model.merges` is not an array".into()))?
        .iter()
        .map(|m| match m {
            Value::String(s) => Ok(s.clone()),
            Value::Array(pair) => match (pair.first().and_then(Value::as_str), pair.get(1).and_then(Value::as_str)) {
                (Some(a), Some(b)) => Ok(format!("{a} {b}")),
                _ => Err(bad(format!("merge {m} is not a pair of strings"))),
            },
            other => Err(bad(format!("merge {other} is neither \"a b\" nor [a, b]"))),
        })
        .collect::<Result<_, _>>()?;
    let tokenizer = crate::Tokenizer::from_dir(dir)?;
    let id_of = |s: &str| names.iter().position(|n| n == s).map(|i| i as u32);
    let mut out: Vec<(String, kiln_gguf::Value)> = vec![
        ("tokenizer.ggml.model".into(), "gpt2".into()),
        ("tokenizer.ggml.pre".into(), "deepseek-coder".into()),
        ("tokenizer.ggml.tokens".into(), names.iter().map(String::as_str).collect::<Vec<_>>().into()),
        ("tokenizer.ggml.token_type".into(), types.into()),
        ("tokenizer.ggml.merges".into(), merges.iter().map(String::as_str).collect::<Vec<_>>().into()),
        ("tokenizer.ggml.add_bos_token".into(), tokenizer.adds_bos().into()),
        ("tokenizer.ggml.add_eos_token".into(), false.into()),
    ];
    let s = tokenizer.special();
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", s.bos),
        ("tokenizer.ggml.eos_token_id", s.eos),
        ("tokenizer.ggml.eot_token_id", s.eot),
        ("tokenizer.ggml.fim_pre_token_id", s.fim_begin),
        ("tokenizer.ggml.fim_suf_token_id", s.fim_hole),
        ("tokenizer.ggml.fim_mid_token_id", s.fim_end),
    ] {
        if let Some(id) = id {
            out.push((key.into(), id.into()));
        }
    }
    if let Some(pad) = id_of(special::EOS) {
        // DeepSeek-Coder pads with EOS (its generation_config's pad_token_id).
        out.push(("tokenizer.ggml.padding_token_id".into(), pad.into()));
    }
    Ok(out)
}
