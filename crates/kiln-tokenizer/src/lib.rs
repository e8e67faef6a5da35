//! kiln-tokenizer: loading a Hugging Face `tokenizer.json` (no hub download) and the
//! DeepSeek-Coder special tokens and prompt strings, defined once in [`special`].
//!
//! In: a model directory or a `tokenizer.json` (plus the optional `tokenizer_config.json` beside
//! it, which says whether BOS is prepended). Out: token ids, text, the ids of the special tokens,
//! and [`TextStream`] for printing generated text as it arrives without splitting UTF-8 characters.
#![deny(missing_docs)]

pub mod gguf;
pub mod layout;
pub mod special;
pub mod train;

use std::path::{Path, PathBuf};

/// Errors of this crate; each names the file involved and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// No tokenizer file where one was expected.
    #[error("{path}: not found; a model directory needs tokenizer.json (Hugging Face `tokenizers` format)")]
    MissingFile {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The file exists but `tokenizers` cannot read it.
    #[error("{path}: cannot load tokenizer: {message}")]
    Load {
        /// The tokenizer file.
        path: PathBuf,
        /// The library's message.
        message: String,
    },
    /// tokenizer_config.json is malformed.
    #[error("{path}: invalid tokenizer config: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Encoding or decoding failed.
    #[error("tokenizer: {0}")]
    Codec(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, TokenizerError>;

/// Ids of the DeepSeek-Coder special tokens that exist in this vocabulary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialIds {
    /// `<｜begin▁of▁sentence｜>`
    pub bos: Option<u32>,
    /// `<｜end▁of▁sentence｜>`
    pub eos: Option<u32>,
    /// `<｜fim▁begin｜>`
    pub fim_begin: Option<u32>,
    /// `<｜fim▁hole｜>`
    pub fim_hole: Option<u32>,
    /// `<｜fim▁end｜>`
    pub fim_end: Option<u32>,
    /// `<|EOT|>`
    pub eot: Option<u32>,
}

/// A loaded tokenizer with DeepSeek-Coder's BOS rule.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    add_bos: bool,
    special: SpecialIds,
    /// Added tokens by id: `(content, special)`. See [`Tokenizer::decode`].
    added: std::collections::HashMap<u32, (String, bool)>,
    /// Whether every `\n` ends a pre-token (see [`Tokenizer::encode_raw`]).
    newline_isolated: bool,
}

/// Texts longer than this are encoded in pieces cut after a newline, when that gives the same ids.
const CHUNK_BYTES: usize = 16 << 10;

/// Whether `tok` never lets a pre-token or an added token span a `\n`, so that text cut right
/// after any `\n` encodes to the same ids piece by piece as whole: no normalizer, a pre-tokenizer
/// whose first step isolates every CR and LF (DeepSeek-Coder's layout), and no added token with a
/// newline in it.
fn isolates_newlines(tok: &tokenizers::Tokenizer) -> bool {
    let Ok(json) = serde_json::to_value(tok) else { return false };
    let first = &json["pre_tokenizer"]["pretokenizers"][0];
    json["normalizer"].is_null()
        && first["type"] == "Split"
        && first["pattern"]["Regex"] == "[\r\n]"
        && first["behavior"] == "Isolated"
        && first["invert"] == false
        && !tok.get_added_tokens_decoder().values().any(|t| t.content.contains('\n'))
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("ids", &self.id_count()).field("add_bos", &self.add_bos).field("special", &self.special).finish()
    }
}

impl Tokenizer {
    /// Loads `dir/tokenizer.json` and, if present, `dir/tokenizer_config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_file(&dir.join("tokenizer.json"))
    }

    /// Loads a `tokenizer.json`; a `tokenizer_config.json` beside it sets `add_bos_token`.
    /// Without one, BOS is prepended when the vocabulary has DeepSeek's BOS token, as the released
    /// models expect.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(TokenizerError::MissingFile { path: path.to_path_buf() });
        }
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| TokenizerError::Load { path: path.to_path_buf(), message: e.to_string() })?;
        let config_path = path.with_file_name("tokenizer_config.json");
        let config = match std::fs::read_to_string(&config_path) {
            Ok(text) => Some(
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| TokenizerError::Config { path: config_path.clone(), message: e.to_string() })?,
            ),
            Err(_) => None,
        };
        Self::from_parts(inner, config.as_ref(), &config_path)
    }

    /// The tokenizer a GGUF file carries (`tokenizer.ggml.*`), rebuilt in memory (see
    /// [`layout::import_gguf`]).
    pub fn from_gguf(path: &Path) -> Result<Self> {
        let imported = layout::import_gguf(path)?;
        let json = serde_json::to_vec(&imported.tokenizer).expect("a JSON value serialises");
        let inner = tokenizers::Tokenizer::from_bytes(&json)
            .map_err(|e| TokenizerError::Load { path: path.to_path_buf(), message: format!("the rebuilt tokenizer: {e}") })?;
        Self::from_parts(inner, Some(&imported.config), path)
    }

    /// A tokenizer from the `tokenizers` object and its `tokenizer_config.json` (`config_path`
    /// names it in errors).
    fn from_parts(inner: tokenizers::Tokenizer, config: Option<&serde_json::Value>, config_path: &Path) -> Result<Self> {
        let id = |s: &str| inner.token_to_id(s);
        let special = SpecialIds {
            bos: id(special::BOS),
            eos: id(special::EOS),
            fim_begin: id(special::FIM_BEGIN),
            fim_hole: id(special::FIM_HOLE),
            fim_end: id(special::FIM_END),
            eot: id(special::EOT),
        };
        let add_bos = match config.map(|v| v.get("add_bos_token")) {
            None | Some(None) | Some(Some(serde_json::Value::Null)) => special.bos.is_some(),
            Some(Some(b)) => b.as_bool().ok_or_else(|| TokenizerError::Config {
                path: config_path.to_path_buf(),
                message: format!("`add_bos_token` must be true or false, got {b}"),
            })?,
        };
        tracing::debug!(path = %config_path.display(), ids = inner.get_vocab_size(true), add_bos, "tokenizer loaded");
        let added = inner.get_added_tokens_decoder().into_iter().map(|(id, t)| (id, (t.content, t.special))).collect();
        let newline_isolated = isolates_newlines(&inner);
        Ok(Self { inner, add_bos, special, added, newline_isolated })
    }

    /// Ids of the special tokens.
    pub fn special(&self) -> &SpecialIds {
        &self.special
    }

    /// Whether [`encode`](Self::encode) prepends BOS.
    pub fn adds_bos(&self) -> bool {
        self.add_bos && self.special.bos.is_some()
    }

    /// Number of ids the tokenizer can produce (largest id + 1, added tokens included). A model's
    /// vocab_size must be at least this.
    pub fn id_count(&self) -> usize {
        let base = self.inner.get_vocab_size(true);
        let max_added = self.inner.get_added_tokens_decoder().keys().max().map(|&m| m as usize + 1).unwrap_or(0);
        base.max(max_added)
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Tokenizes `text` as the released models saw prompts: added tokens (FIM markers etc.)
    /// written literally in the text become their single ids, and BOS is prepended when the
    /// tokenizer config asks for it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        if self.adds_bos() {
            ids.extend(self.special.bos);
        }
        ids.extend(self.encode_raw(text)?);
        Ok(ids)
    }

    /// Tokenizes `text` with nothing prepended or appended.
    ///
    /// Long texts are encoded in pieces of about 16 KiB cut after a newline, in parallel, when
    /// the tokenizer guarantees the same ids that way (DeepSeek-Coder's pre-tokenizer isolates
    /// every newline; see `isolates_newlines`). Why: `tokenizers` keeps per-byte alignment
    /// tables for the whole input and copies them at every split, so a multi-megabyte
    /// repository sample spent most of its time in malloc and memmove (1.2 MB/s on 2 cores),
    /// and one huge sample kept one core busy while the others idled.
    pub fn encode_raw(&self, text: &str) -> Result<Vec<u32>> {
        if self.newline_isolated && text.len() > CHUNK_BYTES {
            return self.encode_in_pieces(text, CHUNK_BYTES);
        }
        self.encode_whole(text)
    }

    fn encode_whole(&self, text: &str) -> Result<Vec<u32>> {
        // The post-processor is bypassed: BOS is kiln's decision (see `encode`), so the result is
        // the same whether or not a tokenizer.json carries a TemplateProcessing.
        let enc = self.inner.encode_fast(text, false).map_err(|e| TokenizerError::Codec(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Cuts `text` after newlines into pieces of about `piece_bytes` (a piece without a newline
    /// stays whole) and encodes them with `tokenizers`' parallel batch encoder.
    fn encode_in_pieces(&self, text: &str, piece_bytes: usize) -> Result<Vec<u32>> {
        let mut pieces: Vec<&str> = Vec::with_capacity(text.len() / piece_bytes + 1);
        let mut rest = text;
        while rest.len() > piece_bytes {
            // Cut after the last '\n' before the target size, else after the first one past it.
            let cut = match rest.as_bytes()[..piece_bytes].iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => match rest.as_bytes()[piece_bytes..].iter().position(|&b| b == b'\n') {
                    Some(i) => piece_bytes + i + 1,
                    None => rest.len(),
                },
            };
            let (head, tail) = rest.split_at(cut);
            pieces.push(head);
            rest = tail;
        }
        if !rest.is_empty() {
            pieces.push(rest);
        }
        let encs = self.inner.encode_batch_fast(pieces, false).map_err(|e| TokenizerError::Codec(e.to_string()))?;
        Ok(encs.iter().flat_map(|e| e.get_ids().iter().copied()).collect())
    }

    /// Turns ids back into text; `skip_special` drops the tokens marked special (BOS, EOS, EOT),
    /// as transformers' `decode(skip_special_tokens=True)` does.
    ///
    /// Added tokens decode to their text as written. `tokenizers` instead passes them through the
    /// ByteLevel decoder, which garbles DeepSeek's ids 32000..32012: those are the single
    /// characters `õ ÷ Á ý À ÿ ø ú þ ü ù ö û`, matched literally in the input on encode (so
    /// "Führer" encodes `ü` as id 32009), but the ByteLevel decoder reads `ü` as the lone byte
    /// 0xFC and prints U+FFFD ("F�hrer"). kiln makes decode the inverse of encode instead; every
    /// other id decodes exactly as `tokenizers` (and transformers) decode it.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let codec = |e: tokenizers::Error| TokenizerError::Codec(e.to_string());
        if !ids.iter().any(|id| self.added.contains_key(id)) {
            return self.inner.decode(ids, skip_special).map_err(codec);
        }
        let mut out = String::new();
        let mut run_start = 0;
        for (i, id) in ids.iter().enumerate() {
            if let Some((content, special)) = self.added.get(id) {
                out.push_str(&self.inner.decode(&ids[run_start..i], skip_special).map_err(codec)?);
                if !(skip_special && *special) {
                    out.push_str(content);
                }
                run_start = i + 1;
            }
        }
        out.push_str(&self.inner.decode(&ids[run_start..], skip_special).map_err(codec)?);
        Ok(out)
    }
}

/// Incremental detokenizer: feed ids one at a time, get back only text that is complete. A
/// multi-byte character split across tokens is held back until its last byte arrives, so a stream
/// never prints U+FFFD for a character that is still being generated. Each step decodes only a
/// short window of recent ids (the scheme text-generation-inference uses), not the whole output.
pub struct TextStream<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<u32>,
    /// Start of the window whose text has already been handed out.
    prefix_offset: usize,
    /// End of that window.
    read_offset: usize,
    text: String,
    skip_special: bool,
}

impl<'a> TextStream<'a> {
    /// A stream over `tokenizer`.
    pub fn new(tokenizer: &'a Tokenizer, skip_special: bool) -> Self {
        Self { tokenizer, ids: Vec::new(), prefix_offset: 0, read_offset: 0, text: String::new(), skip_special }
    }

    /// Adds one id and returns the newly completed text (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let done = self.tokenizer.decode(&self.ids[self.prefix_offset..self.read_offset], self.skip_special)?;
        let all = self.tokenizer.decode(&self.ids[self.prefix_offset..], self.skip_special)?;
        // A trailing U+FFFD means an incomplete UTF-8 sequence: wait for more bytes.
        if all.len() <= done.len() || all.ends_with('\u{FFFD}') || !all.starts_with(&done) {
            return Ok(String::new());
        }
        let new = all[done.len()..].to_string();
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        self.text.push_str(&new);
        Ok(new)
    }

    /// Flushes whatever is held back (an incomplete character comes out as U+FFFD).
    pub fn finish(&mut self) -> Result<String> {
        let done = self.tokenizer.decode(&self.ids[self.prefix_offset..self.read_offset], self.skip_special)?;
        let all = self.tokenizer.decode(&self.ids[self.prefix_offset..], self.skip_special)?;
        let rest = all.strip_prefix(done.as_str()).unwrap_or("").to_string();
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        self.text.push_str(&rest);
        Ok(rest)
    }

    /// The text handed out so far.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod piece_tests {
    use super::*;

    /// Cutting after newlines gives the ids of the whole text, for the fixture tokenizer (which
    /// has DeepSeek's pre-tokenizer) on text with CRLF, tabs, long lines, sentinels and emoji.
    #[test]
    fn encoding_in_pieces_equals_encoding_whole() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama");
        let tok = Tokenizer::from_dir(&dir).unwrap();
        assert!(tok.newline_isolated);
        let mut text = String::new();
        for i in 0..300 {
            text.push_str(&format!("def f_{i}(x):\r\n\treturn x * {i}  # 東京 😀 <｜fim▁hole｜>\n\n   \n"));
            if i % 50 == 0 {
                text.push_str(&"long_line_without_newline ".repeat(40));
            }
        }
        let whole = tok.encode_whole(&text).unwrap();
        for piece in [1, 7, 100, 1000, 4096] {
            assert_eq!(tok.encode_in_pieces(&text, piece).unwrap(), whole, "pieces of {piece} bytes");
        }
        assert_eq!(tok.encode_raw(&text).unwrap(), whole);
    }
}
