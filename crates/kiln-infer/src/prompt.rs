//! Prompt builders: plain completion, DeepSeek-Coder's PSM fill-in-the-middle layout, and the
//! same with repository context in front.
//! The strings themselves live in [`kiln_tokenizer::special`]; this module turns them into ids.

use kiln_tokenizer::{special, Tokenizer};

use crate::{InferError, Result};

/// Ids for a plain completion prompt (BOS first when the tokenizer adds it).
pub fn completion_ids(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    Ok(tokenizer.encode(text)?)
}

/// Ids for an infilling prompt: `BOS <｜fim▁begin｜>prefix<｜fim▁hole｜>suffix<｜fim▁end｜>`.
/// The markers are placed as ids, so this works even if the tokenizer's added-token table spells
/// them differently from the text; with DeepSeek's vocabulary it equals tokenizing the string
/// [`special::fim_prompt`] builds (the added tokens split the text at the same places).
pub fn fim_ids(tokenizer: &Tokenizer, prefix: &str, suffix: &str) -> Result<Vec<u32>> {
    // The repository layout with no context files is exactly this one.
    Ok(repo_fim_ids(tokenizer, &[], None, prefix, suffix)?.0)
}

/// A file given as context for a completion: a path (relative to the repository root) and its
/// text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Path relative to the repository root (it becomes the file's header comment).
    pub path: String,
    /// The file's text.
    pub text: String,
}

/// Ids for an infilling prompt with repository context, laid out as kiln's training samples
/// are (a repository's files in dependency order, each under its path comment, FIM applied to
/// the whole sample): `BOS <｜fim▁begin｜>` + the context files rendered by
/// [`kiln_repo::render::render_files`] + a blank line + (the current file's path comment when
/// `current_path` is given) + prefix `<｜fim▁hole｜>` suffix `<｜fim▁end｜>`.
///
/// The context comes first and is tokenized on its own (it ends in a newline, where DeepSeek's
/// pre-tokenizer always splits), so a request that changes only the text near the cursor shares
/// the whole context as a token prefix with the previous one: what a prefix cache reuses.
/// Returns the ids and how many of them (from the start) belong to the context.
pub fn repo_fim_ids(tokenizer: &Tokenizer, context: &[ContextFile], current_path: Option<&str>, prefix: &str, suffix: &str) -> Result<(Vec<u32>, usize)> {
    let s = tokenizer.special();
    let begin = s.fim_begin.ok_or(InferError::MissingSpecialToken(special::FIM_BEGIN))?;
    let hole = s.fim_hole.ok_or(InferError::MissingSpecialToken(special::FIM_HOLE))?;
    let end = s.fim_end.ok_or(InferError::MissingSpecialToken(special::FIM_END))?;
    let mut ids = Vec::new();
    if tokenizer.adds_bos() {
        ids.extend(s.bos);
    }
    ids.push(begin);
    let files: Vec<kiln_repo::SourceFile> = context.iter().map(|f| kiln_repo::SourceFile::new(f.path.clone(), f.text.clone())).collect();
    let mut rendered = kiln_repo::render::render_files(&files);
    if !rendered.is_empty() {
        rendered.push('\n'); // the blank line between files
    }
    ids.extend(tokenizer.encode_raw(&rendered)?);
    let context_len = ids.len();
    let mut head = String::new();
    if let Some(path) = current_path {
        head = kiln_repo::render::file_header(&kiln_repo::SourceFile::new(path, ""));
        head.push('\n');
    }
    ids.extend(tokenizer.encode_raw(&(head + prefix))?);
    ids.push(hole);
    ids.extend(tokenizer.encode_raw(suffix)?);
    ids.push(end);
    Ok((ids, context_len))
}
