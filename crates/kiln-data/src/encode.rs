//! Text to token ids for training data, with control tokens only where kiln puts them.
//!
//! Two rules keep the control tokens (BOS, EOS, the FIM sentinels, `<|EOT|>`) meaningful:
//!
//! * **Layouts are built from ids.** Each text piece (a FIM prefix, a response) is encoded on its
//!   own and the sentinel ids are inserted between the pieces, so a sentinel is never produced
//!   by concatenating strings and re-tokenizing.
//! * **Literal special-token strings in text stay text.** A source file that mentions
//!   `<｜fim▁hole｜>` (DeepSeek's own README, a tokenizer test) would otherwise become the
//!   sentinel id, because `Tokenizer::encode_raw` matches added tokens in its input. The text is
//!   cut one character into every such occurrence and the parts are encoded separately: the ids
//!   decode to the same text, but no control id appears. Only documents that contain such a
//!   string are affected; all others are encoded exactly as `encode_raw` does.

use aho_corasick::AhoCorasick;
use kiln_tokenizer::{special, Tokenizer};

use crate::error::{DataError, Result};

/// The three FIM sentinel ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FimIds {
    /// `<｜fim▁begin｜>`: starts a FIM document (before the prefix in PSM).
    pub begin: u32,
    /// `<｜fim▁hole｜>`: marks where the middle was cut out (before the suffix).
    pub hole: u32,
    /// `<｜fim▁end｜>`: ends the prompt part; the middle follows.
    pub end: u32,
}

/// Encodes text pieces for training samples; see the module docs.
#[derive(Debug, Clone)]
pub struct DocEncoder<'t> {
    tokenizer: &'t Tokenizer,
    bos: u32,
    eos: u32,
    fim: Option<FimIds>,
    eot: Option<u32>,
    /// Ids that must only come from layouts, never from text.
    control: Vec<u32>,
    /// Finds literal special-token strings of this vocabulary in text.
    literals: Option<AhoCorasick>,
}

impl<'t> DocEncoder<'t> {
    /// An encoder for `tokenizer`. BOS and EOS are required (every training document is
    /// `BOS … EOS`); the FIM sentinels and `<|EOT|>` are looked up and required only by the
    /// layouts that use them ([`fim_ids`](Self::fim_ids), [`eot`](Self::eot)).
    pub fn new(tokenizer: &'t Tokenizer) -> Result<Self> {
        let sp = tokenizer.special();
        let bos = sp.bos.ok_or(DataError::MissingSpecialToken {
            token: special::BOS,
            role: "BOS, which starts every training document",
            hint: "",
        })?;
        let eos = sp.eos.ok_or(DataError::MissingSpecialToken {
            token: special::EOS,
            role: "EOS, which ends every training document",
            hint: "",
        })?;
        let fim = match (sp.fim_begin, sp.fim_hole, sp.fim_end) {
            (Some(begin), Some(hole), Some(end)) => Some(FimIds { begin, hole, end }),
            _ => None,
        };
        let control: Vec<u32> = [Some(bos), Some(eos), sp.fim_begin, sp.fim_hole, sp.fim_end, sp.eot].into_iter().flatten().collect();
        let strings: Vec<&str> = [
            special::BOS,
            special::EOS,
            special::FIM_BEGIN,
            special::FIM_HOLE,
            special::FIM_END,
            special::PAD,
            special::USER,
            special::ASSISTANT,
            special::EOT,
        ]
        .into_iter()
        .filter(|s| tokenizer.token_id(s).is_some())
        .collect();
        // Every special string starts with '<' and contains no other '<', so cutting after the
        // first character breaks the match and cannot create a new one (see `encode_text`).
        debug_assert!(strings.iter().all(|s| s.starts_with('<') && s[1..].find('<').is_none()));
        let literals = if strings.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(&strings).expect("a handful of fixed literals always builds an automaton"))
        };
        Ok(Self { tokenizer, bos, eos, fim, eot: sp.eot, control, literals })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &'t Tokenizer {
        self.tokenizer
    }

    /// BOS id.
    pub fn bos(&self) -> u32 {
        self.bos
    }

    /// EOS id.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// The FIM sentinel ids, or an error naming the first one the vocabulary lacks.
    pub fn fim_ids(&self) -> Result<FimIds> {
        if let Some(f) = self.fim {
            return Ok(f);
        }
        let sp = self.tokenizer.special();
        let hint = "; or pack with --fim-rate 0";
        let (token, role) = if sp.fim_begin.is_none() {
            (special::FIM_BEGIN, "FIM begin sentinel")
        } else if sp.fim_hole.is_none() {
            (special::FIM_HOLE, "FIM hole sentinel")
        } else {
            (special::FIM_END, "FIM end sentinel")
        };
        Err(DataError::MissingSpecialToken { token, role, hint })
    }

    /// The `<|EOT|>` id (end of an instruct turn), or an error.
    pub fn eot(&self) -> Result<u32> {
        self.eot.ok_or(DataError::MissingSpecialToken {
            token: special::EOT,
            role: "end of turn, which closes every SFT response",
            hint: " (the instruct vocabulary has it)",
        })
    }

    /// Appends the ids of `text` to `out`; `what` names the piece in errors (a sample id).
    pub fn extend_text(&self, out: &mut Vec<u32>, text: &str, what: &str) -> Result<()> {
        let start = out.len();
        let mut from = 0;
        if let Some(ac) = &self.literals {
            for m in ac.find_iter(text) {
                // Cut one character into the literal: `<` | `｜fim▁hole｜>`.
                let cut = m.start() + 1;
                self.encode_into(out, &text[from..cut], what)?;
                from = cut;
            }
        }
        self.encode_into(out, &text[from..], what)?;
        if let Some(&id) = out[start..].iter().find(|id| self.control.contains(id)) {
            return Err(DataError::ControlIdInText { what: what.to_string(), id });
        }
        Ok(())
    }

    /// The ids of `text` (see [`extend_text`](Self::extend_text)).
    pub fn encode_text(&self, text: &str, what: &str) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.extend_text(&mut out, text, what)?;
        Ok(out)
    }

    fn encode_into(&self, out: &mut Vec<u32>, piece: &str, what: &str) -> Result<()> {
        if piece.is_empty() {
            return Ok(());
        }
        let ids = self.tokenizer.encode_raw(piece).map_err(|source| DataError::Tokenize { what: what.to_string(), source })?;
        out.extend(ids);
        Ok(())
    }
}
