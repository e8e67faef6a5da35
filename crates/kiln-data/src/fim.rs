//! Document-level fill-in-the-middle (Bavarian et al. 2022, "Efficient Training of Language
//! Models to Fill in the Middle"), as DeepSeek-Coder trained it: FIM applied to whole documents
//! before packing, PSM mode, rate 0.5 (spec §4.1; data-pipeline.md §8).
//!
//! **Unit.** A document is one corpus sample (a repository-level sample of dependency-ordered
//! files, or a single file), the paper's "document level". The split is not done per file inside
//! a sample; `meta.json` records this as `fim.unit = "sample"`.
//!
//! **Split.** With probability `rate` a document is transformed: two positions are drawn
//! uniformly from the character boundaries `0..=chars` (characters, not bytes, so a cut never
//! falls inside a UTF-8 sequence), sorted, and the text is cut into prefix / middle / suffix
//! (any of them may be empty). Each draw comes from a SplitMix64 stream keyed by `(seed, document
//! key)`, so a document's split depends only on its id, never on thread scheduling or on which
//! other documents are in the corpus.
//!
//! **Token layouts** (built from ids; each text piece encoded separately, see [`crate::encode`]):
//!
//! ```text
//! plain  BOS text EOS
//! PSM    BOS <｜fim▁begin｜> prefix <｜fim▁hole｜> suffix <｜fim▁end｜> middle EOS
//! SPM    BOS <｜fim▁begin｜> <｜fim▁hole｜> suffix <｜fim▁end｜> prefix middle EOS
//! ```
//!
//! * **BOS on every document**: the released tokenizer prepends BOS to every prompt at
//!   inference (`add_bos_token: true`), including FIM prompts (`BOS <｜fim▁begin｜>…`), so
//!   training documents start the same way. It costs one token per document.
//! * **EOS ends every document**, also after the middle: the model learns to stop infilling (the
//!   inference side stops at EOS, spec §4.3).
//! * **SPM** is Bavarian et al.'s "SPM variant 2", the one StarCoder and Megatron-LM
//!   (`--fim-spm-rate`) produce: the sentinels keep their PSM roles (begin≈`<PRE>`,
//!   hole≈`<SUF>`, end≈`<MID>`) and the prefix comes right before the middle, so the middle is a
//!   plain left-to-right continuation of the prefix. That is the property the paper recommends
//!   SPM for, and it lets an SPM prompt and a PSM prompt share the same sentinel vocabulary.
//!   DeepSeek-Coder itself trained PSM only, hence `spm_rate` defaults to 0.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::encode::DocEncoder;
use crate::error::{DataError, Result};
use crate::rng::SplitMix64;

/// How documents are FIM-transformed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FimConfig {
    /// Fraction of documents that are FIM-transformed (DeepSeek-Coder: 0.5).
    pub rate: f64,
    /// Fraction of the FIM documents laid out as SPM instead of PSM (DeepSeek-Coder: 0).
    pub spm_rate: f64,
    /// Seed of the per-document random streams.
    pub seed: u64,
}

impl Default for FimConfig {
    fn default() -> Self {
        Self { rate: 0.5, spm_rate: 0.0, seed: 0 }
    }
}

/// A document after the FIM decision: borrowed pieces of the original text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FimDoc<'a> {
    /// Left to right, unchanged.
    Plain(&'a str),
    /// Prefix-suffix-middle.
    Psm {
        /// Text before the first cut.
        prefix: &'a str,
        /// Text between the cuts (what the model learns to fill in).
        middle: &'a str,
        /// Text after the second cut.
        suffix: &'a str,
    },
    /// Suffix-prefix-middle (variant 2; see the module docs).
    Spm {
        /// Text before the first cut.
        prefix: &'a str,
        /// Text between the cuts.
        middle: &'a str,
        /// Text after the second cut.
        suffix: &'a str,
    },
}

impl<'a> FimDoc<'a> {
    /// Whether the document was transformed.
    pub fn is_fim(&self) -> bool {
        !matches!(self, FimDoc::Plain(_))
    }

    /// `(prefix, middle, suffix)`; a plain document is all prefix.
    pub fn pieces(&self) -> (&'a str, &'a str, &'a str) {
        match *self {
            FimDoc::Plain(t) => (t, "", ""),
            FimDoc::Psm { prefix, middle, suffix } | FimDoc::Spm { prefix, middle, suffix } => (prefix, middle, suffix),
        }
    }

    /// The token layout of the module docs. `what` names the document in errors.
    pub fn tokens(&self, enc: &DocEncoder<'_>, what: &str) -> Result<Vec<u32>> {
        let (p, m, s) = self.pieces();
        let mut out = Vec::with_capacity((p.len() + m.len() + s.len()) / 3 + 6);
        self.emit(enc, what, usize::MAX, &mut |ids| {
            out.extend_from_slice(ids);
            Ok(())
        })?;
        Ok(out)
    }

    /// The same layout as [`tokens`](Self::tokens), handed to `sink` a part at a time: each text
    /// piece is encoded in segments of at most about `segment_bytes`, cut after a newline, so a
    /// huge document never has all its tokens in memory at once. For a tokenizer whose
    /// pre-tokenizer isolates newlines (DeepSeek-Coder's) the ids are the same as
    /// [`tokens`](Self::tokens); for others they may differ at a segment boundary.
    pub fn emit(&self, enc: &DocEncoder<'_>, what: &str, segment_bytes: usize, sink: &mut dyn FnMut(&[u32]) -> Result<()>) -> Result<()> {
        let text = |piece: &str, sink: &mut dyn FnMut(&[u32]) -> Result<()>| -> Result<()> {
            for segment in segments(piece, segment_bytes) {
                sink(&enc.encode_text(segment, what)?)?;
            }
            Ok(())
        };
        sink(&[enc.bos()])?;
        match self {
            FimDoc::Plain(t) => text(t, sink)?,
            FimDoc::Psm { prefix, middle, suffix } => {
                let f = enc.fim_ids()?;
                sink(&[f.begin])?;
                text(prefix, sink)?;
                sink(&[f.hole])?;
                text(suffix, sink)?;
                sink(&[f.end])?;
                text(middle, sink)?;
            }
            FimDoc::Spm { prefix, middle, suffix } => {
                let f = enc.fim_ids()?;
                sink(&[f.begin, f.hole])?;
                text(suffix, sink)?;
                sink(&[f.end])?;
                text(prefix, sink)?;
                text(middle, sink)?;
            }
        }
        sink(&[enc.eos()])
    }
}

/// `text` cut after newlines into parts of about `max_bytes` (a part with no newline in reach
/// runs on to the next one); one part when `text` is short.
fn segments(text: &str, max_bytes: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = if rest.len() <= max_bytes {
            rest.len()
        } else {
            match rest.as_bytes()[..max_bytes].iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => rest.as_bytes()[max_bytes..].iter().position(|&b| b == b'\n').map_or(rest.len(), |i| max_bytes + i + 1),
            }
        };
        let (head, tail) = rest.split_at(cut);
        rest = tail;
        Some(head)
    })
}

impl FimConfig {
    /// Checks that the rates are probabilities.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [("fim.rate", self.rate), ("fim.spm_rate", self.spm_rate)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(DataError::Config { field, value: v.to_string(), message: "must be between 0 and 1".into() });
            }
        }
        Ok(())
    }

    /// The stable key of a document with this id (xxh3-64 of the id), for [`apply`](Self::apply).
    pub fn key_of(id: &str) -> u64 {
        xxh3_64(id.as_bytes())
    }

    /// Decides and performs the FIM split of `text`, keyed by `key` (see the module docs). Rates
    /// outside `[0, 1]` behave as clamped; call [`validate`](Self::validate) first to reject them.
    pub fn apply<'a>(&self, text: &'a str, key: u64) -> FimDoc<'a> {
        let mut rng = SplitMix64::keyed(self.seed, &key.to_le_bytes());
        if rng.next_f64() >= self.rate {
            return FimDoc::Plain(text);
        }
        let spm = rng.next_f64() < self.spm_rate;
        let chars = text.chars().count() as u64;
        let a = rng.below(chars + 1) as usize;
        let b = rng.below(chars + 1) as usize;
        let (lo, hi) = (a.min(b), a.max(b));
        let (lo, hi) = (char_to_byte(text, lo), char_to_byte(text, hi));
        let (prefix, middle, suffix) = (&text[..lo], &text[lo..hi], &text[hi..]);
        if spm {
            FimDoc::Spm { prefix, middle, suffix }
        } else {
            FimDoc::Psm { prefix, middle, suffix }
        }
    }
}

/// Byte offset of the `n`-th character boundary (`n == chars` gives `text.len()`).
fn char_to_byte(text: &str, n: usize) -> usize {
    text.char_indices().nth(n).map_or(text.len(), |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_to_byte_walks_characters() {
        let t = "aé中🦀";
        let bounds: Vec<usize> = (0..=4).map(|n| char_to_byte(t, n)).collect();
        assert_eq!(bounds, vec![0, 1, 3, 6, 10]);
    }

    #[test]
    fn invalid_rates_are_rejected() {
        assert!(FimConfig { rate: 1.5, ..Default::default() }.validate().is_err());
        assert!(FimConfig { spm_rate: -0.1, ..Default::default() }.validate().is_err());
        assert!(FimConfig { rate: f64::NAN, ..Default::default() }.validate().is_err());
        assert!(FimConfig::default().validate().is_ok());
    }
}
