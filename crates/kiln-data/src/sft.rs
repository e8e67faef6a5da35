//! Supervised fine-tuning samples in DeepSeek-Coder-Instruct's chat template (spec §8.2, §8.3).
//!
//! A conversation (optional system message, then instruction/response turns) becomes
//!
//! ```text
//! BOS  system-prompt  "### Instruction:\n" q "\n"  "### Response:\n"  a "\n" <|EOT|>  ["\n" next turn …]
//! mask 0 ………………………………………………………………………………………………………………………………  1 ……… 1     1       0 …
//! ```
//!
//! The text is exactly [`kiln_tokenizer::special::chat_prompt`]'s rendering (the released
//! `tokenizer_config.json` template), with the default system prompt when there is no system
//! message, and without the newline after the last `<|EOT|>` (as `finetune_deepseekcoder.py`,
//! whose target is `output + "\n<|EOT|>"`). The loss mask is 1 on each response's tokens, its
//! closing newline and its `<|EOT|>` — what the model must learn to produce, including stopping —
//! and 0 on BOS, the system prompt and the instructions. `<|EOT|>` is inserted as an id, and the
//! prompt and response are encoded separately, so the mask boundary is a token boundary and
//! text that spells `<|EOT|>` stays text ([`crate::encode`]).
//!
//! **Files**: tokens go to a Megatron pair `PREFIX.bin/.idx` (one sequence and one document per
//! conversation); the mask goes to `PREFIX.mask`: raw `u8` (0 or 1), one byte per token, in the
//! same order as the tokens of `.bin`, no header. The mask of sequence `i` is
//! `mask[t .. t + len_i]` with `t` = the sequence's byte offset in `.bin` / dtype size
//! ([`MegatronReader::token_offset`]). It is committed together with the pair (before `.idx`).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use kiln_corpus::shard::AtomicFile;
use kiln_tokenizer::special::{chat_prompt, Role, EOT};

use crate::encode::DocEncoder;
use crate::error::{io_err, DataError, Result};
use crate::megatron::{with_suffix, Bytes, DType, DatasetCounts, MegatronReader, MegatronWriter};

/// Token ids of one conversation and its loss mask (same length).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SftTokens {
    /// `BOS prompt response <|EOT|> …`
    pub ids: Vec<u32>,
    /// 1 where the loss applies (response tokens and their `<|EOT|>`), else 0.
    pub mask: Vec<u8>,
}

impl SftTokens {
    /// Tokens the loss applies to.
    pub fn target_tokens(&self) -> usize {
        self.mask.iter().filter(|&&m| m == 1).count()
    }

    fn push_text(&mut self, enc: &DocEncoder<'_>, text: &str, target: bool) -> Result<()> {
        enc.extend_text(&mut self.ids, text, if target { "SFT response" } else { "SFT prompt" })?;
        self.mask.resize(self.ids.len(), u8::from(target));
        Ok(())
    }
}

/// Checks the shape the template and the mask need: an optional system message first, then
/// instruction/response pairs, ending with a response.
fn check_shape(messages: &[(Role, &str)]) -> Result<()> {
    let turns = match messages.first() {
        Some((Role::System, _)) => &messages[1..],
        _ => messages,
    };
    if turns.is_empty() {
        return Err(DataError::Conversation("no instruction/response turns".into()));
    }
    for (i, (role, _)) in turns.iter().enumerate() {
        let want = if i % 2 == 0 { Role::User } else { Role::Assistant };
        if *role != want {
            return Err(DataError::Conversation(format!(
                "message {} is {role:?}, expected {want:?}: after an optional first system message, turns alternate instruction (user), response (assistant)",
                i + messages.len() - turns.len()
            )));
        }
    }
    if turns.len() % 2 == 1 {
        return Err(DataError::Conversation("the last message is an instruction without a response; nothing to train on".into()));
    }
    Ok(())
}

/// Tokenizes a conversation with its loss mask (see the module docs). Needs BOS and `<|EOT|>`.
pub fn tokenize_conversation(enc: &DocEncoder<'_>, messages: &[(Role, &str)]) -> Result<SftTokens> {
    check_shape(messages)?;
    let eot = enc.eot()?;
    let full = chat_prompt(messages, false);
    let mut out = SftTokens { ids: vec![enc.bos()], mask: vec![0] };
    let mut done = 0;
    for (i, (role, content)) in messages.iter().enumerate() {
        if *role != Role::Assistant {
            continue;
        }
        // The response starts right after the generation prompt plus its newline.
        let start = chat_prompt(&messages[..i], true).len() + 1;
        let end = start + content.len() + 1;
        let rendered = full.get(start - "### Response:\n".len()..end + EOT.len());
        let expected = format!("### Response:\n{content}\n{EOT}");
        if rendered != Some(expected.as_str()) {
            return Err(DataError::Conversation(format!(
                "the chat template does not render message {i} as `### Response:\\n…\\n{EOT}`; kiln_tokenizer::special::chat_prompt changed, update kiln-data's SFT layout"
            )));
        }
        out.push_text(enc, &full[done..start], false)?;
        out.push_text(enc, &full[start..end], true)?;
        out.ids.push(eot);
        out.mask.push(1);
        done = end + EOT.len();
    }
    Ok(out)
}

/// Tokenizes one instruction/response pair with the default system prompt.
pub fn tokenize_example(enc: &DocEncoder<'_>, instruction: &str, response: &str) -> Result<SftTokens> {
    tokenize_conversation(enc, &[(Role::User, instruction), (Role::Assistant, response)])
}

/// `PREFIX.mask`.
pub fn mask_path(prefix: &Path) -> PathBuf {
    with_suffix(prefix, ".mask")
}

/// Writes SFT samples: a Megatron pair plus the `.mask` sidecar (see the module docs).
#[derive(Debug)]
pub struct SftWriter {
    tokens: MegatronWriter,
    mask_path: PathBuf,
    mask: BufWriter<AtomicFile>,
}

impl SftWriter {
    /// Starts `PREFIX.bin/.idx/.mask`; nothing appears under the final names before
    /// [`finish`](Self::finish).
    pub fn create(prefix: &Path, dtype: DType) -> Result<Self> {
        let mask_path = mask_path(prefix);
        let mask = BufWriter::with_capacity(1 << 20, AtomicFile::create(&mask_path)?);
        Ok(Self { tokens: MegatronWriter::create(prefix, dtype)?, mask_path, mask })
    }

    /// Appends one sample as one sequence and one document.
    pub fn add(&mut self, sample: &SftTokens) -> Result<()> {
        if sample.ids.len() != sample.mask.len() {
            return Err(DataError::BadDataset {
                path: self.mask_path.clone(),
                message: format!("a sample has {} ids but {} mask values", sample.ids.len(), sample.mask.len()),
            });
        }
        self.tokens.add_document(&sample.ids)?;
        self.mask.write_all(&sample.mask).map_err(io_err(&self.mask_path))
    }

    /// Writes everything and moves the files into place (`.idx` last).
    pub fn finish(self) -> Result<DatasetCounts> {
        let mask = self.mask.into_inner().map_err(|e| DataError::Io { path: self.mask_path.clone(), source: e.into_error() })?;
        self.tokens.finish_with(vec![mask])
    }
}

/// Reads SFT samples written by [`SftWriter`].
#[derive(Debug)]
pub struct SftReader {
    tokens: MegatronReader,
    mask: Bytes,
}

impl SftReader {
    /// Opens `PREFIX.bin/.idx/.mask` and checks that the mask has one 0/1 byte per token.
    pub fn open(prefix: &Path) -> Result<Self> {
        let tokens = MegatronReader::open(prefix)?;
        let path = mask_path(prefix);
        let mask = Bytes::open(&path)?;
        let m = mask.as_slice();
        if m.len() as u64 != tokens.total_tokens() {
            return Err(DataError::BadDataset { path, message: format!("{} mask bytes for {} tokens", m.len(), tokens.total_tokens()) });
        }
        if let Some(p) = m.iter().position(|&b| b > 1) {
            return Err(DataError::BadDataset { path, message: format!("byte {p} is {}, mask values are 0 or 1", m[p]) });
        }
        Ok(Self { tokens, mask })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Sample `i`.
    pub fn sample(&self, i: usize) -> Result<SftTokens> {
        let ids = self.tokens.sequence(i)?;
        let start = self.tokens.token_offset(i)? as usize;
        let mask = self.mask.as_slice()[start..start + ids.len()].to_vec();
        Ok(SftTokens { ids, mask })
    }
}
/// One conversation of an SFT JSONL line: `{"instruction", "output"}`, or `{"messages": [{"role",
/// "content"}, ...]}` with roles system, user and assistant.
pub fn conversation(v: &serde_json::Value) -> std::result::Result<Vec<(Role, String)>, String> {
    if let (Some(i), Some(o)) = (v.get("instruction").and_then(|x| x.as_str()), v.get("output").and_then(|x| x.as_str())) {
        return Ok(vec![(Role::User, i.to_string()), (Role::Assistant, o.to_string())]);
    }
    let msgs = v.get("messages").and_then(|m| m.as_array()).ok_or("needs `instruction` and `output` strings, or a `messages` array")?;
    msgs.iter()
        .map(|m| {
            let role = match m.get("role").and_then(|r| r.as_str()) {
                Some("system") => Role::System,
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                other => return Err(format!("message role {other:?} is not system, user or assistant")),
            };
            let content = m.get("content").and_then(|c| c.as_str()).ok_or("a message without string `content`")?;
            Ok((role, content.to_string()))
        })
        .collect()
}

/// What [`build_sft`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SftBuild {
    /// Conversations in `train`.
    pub train: usize,
    /// Conversations in `val`.
    pub val: usize,
    /// The token dtype of the files.
    pub dtype: DType,
}

/// `kiln data sft`: tokenizes every conversation of the JSONL file `input` with the tokenizer
/// (a tokenizer.json or its directory) into `out/train` and `out/val` (`.bin/.idx/.mask`; a
/// conversation goes to val when a hash of its line number under `seed` falls below
/// `val_fraction`), and copies the tokenizer files beside them so checkpoints trained on the data
/// are complete model directories. A bad line is an error naming the file and line.
pub fn build_sft(input: &Path, tokenizer: &Path, val_fraction: f64, seed: u64, out: &Path) -> Result<SftBuild> {
    if !(0.0..=1.0).contains(&val_fraction) {
        return Err(DataError::Config {
            field: "val_fraction",
            value: val_fraction.to_string(),
            message: "must be between 0 and 1".into(),
        });
    }
    let tf = crate::meta::TokenizerFile::load(tokenizer)?;
    let enc = DocEncoder::new(&tf.tokenizer)?;
    let text = std::fs::read_to_string(input).map_err(io_err(input))?;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let dtype = DType::for_vocab(tf.tokenizer.id_count());
    let mut train = SftWriter::create(&out.join("train"), dtype)?;
    let mut val = SftWriter::create(&out.join("val"), dtype)?;
    let (mut n_train, mut n_val) = (0usize, 0usize);
    let bad = |line: usize, message: String| DataError::BadLine { path: input.to_path_buf(), line, message };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(i + 1, format!("not JSON: {e}")))?;
        let conv = conversation(&v).map_err(|e| bad(i + 1, e))?;
        let refs: Vec<(Role, &str)> = conv.iter().map(|(r, c)| (*r, c.as_str())).collect();
        let tokens = tokenize_conversation(&enc, &refs).map_err(|e| bad(i + 1, e.to_string()))?;
        let to_val = crate::rng::unit_interval(crate::rng::SplitMix64::keyed(seed, &(i as u64).to_le_bytes()).next_u64()) < val_fraction;
        if to_val {
            val.add(&tokens)?;
            n_val += 1;
        } else {
            train.add(&tokens)?;
            n_train += 1;
        }
    }
    if n_train == 0 {
        return Err(DataError::NoConversations { path: input.to_path_buf() });
    }
    train.finish()?;
    val.finish()?;
    // The tokenizer travels with the data, so checkpoints trained on it are complete model dirs.
    let dir = if tokenizer.is_dir() { tokenizer.to_path_buf() } else { tokenizer.parent().map(PathBuf::from).unwrap_or_default() };
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        let src = if file == "tokenizer.json" && !tokenizer.is_dir() { tokenizer.to_path_buf() } else { dir.join(file) };
        if src.is_file() {
            std::fs::copy(&src, out.join(file)).map_err(io_err(&src))?;
        }
    }
    Ok(SftBuild { train: n_train, val: n_val, dtype })
}
