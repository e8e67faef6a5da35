//! Prompt builders: plain completion and DeepSeek-Coder's PSM fill-in-the-middle layout.
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
    let s = tokenizer.special();
    let begin = s.fim_begin.ok_or(InferError::MissingSpecialToken(special::FIM_BEGIN))?;
    let hole = s.fim_hole.ok_or(InferError::MissingSpecialToken(special::FIM_HOLE))?;
    let end = s.fim_end.ok_or(InferError::MissingSpecialToken(special::FIM_END))?;
    let mut ids = Vec::new();
    if tokenizer.adds_bos() {
        ids.extend(s.bos);
    }
    ids.push(begin);
    ids.extend(tokenizer.encode_raw(prefix)?);
    ids.push(hole);
    ids.extend(tokenizer.encode_raw(suffix)?);
    ids.push(end);
    Ok(ids)
}
