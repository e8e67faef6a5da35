//! `meta.json` of a packed output directory, and the tokenizer file it records.
//!
//! `meta.json` says everything needed to use or reproduce the windows: the window length, the
//! dtype, the tokenizer (path and sha256, so a trainer can refuse a different vocabulary), the
//! FIM and split settings, and per split the counts. It is written last and removed first by
//! `pack_corpus`, so its presence means the directory is complete.

use std::path::{Path, PathBuf};

use kiln_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::fim::FimConfig;
use crate::megatron::DType;
use crate::split::Split;

/// `meta.json`'s `format`.
pub const META_FORMAT: &str = "kiln-packed";
/// `meta.json`'s `version` (bumped when a field changes meaning).
pub const META_VERSION: u32 = 1;
/// The file name.
pub const META_FILE: &str = "meta.json";

/// A tokenizer with the file it came from, so packed data can name its exact vocabulary.
#[derive(Debug, Clone)]
pub struct TokenizerFile {
    /// The `tokenizer.json` (canonical path when it can be resolved).
    pub path: PathBuf,
    /// sha256 of that file, hex.
    pub sha256: String,
    /// The loaded tokenizer.
    pub tokenizer: Tokenizer,
}

impl TokenizerFile {
    /// Loads a `tokenizer.json`, or `DIR/tokenizer.json` when `path` is a directory.
    pub fn load(path: &Path) -> Result<Self> {
        let file = if path.is_dir() { path.join("tokenizer.json") } else { path.to_path_buf() };
        let tokenizer = Tokenizer::from_file(&file)?;
        let (sha256, _) = kiln_corpus::pipeline::sha256_file(&file)?;
        let path = std::fs::canonicalize(&file).unwrap_or(file);
        Ok(Self { path, sha256, tokenizer })
    }
}

/// The tokenizer as recorded in `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    /// Path of the `tokenizer.json` used.
    pub path: PathBuf,
    /// Its sha256 (hex).
    pub sha256: String,
    /// Ids it can produce (largest id + 1).
    pub vocab_size: usize,
}

/// Counts of one split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitCounts {
    /// Corpus samples (documents) in this split.
    pub documents: u64,
    /// Documents that were FIM-transformed (PSM + SPM).
    pub fim_documents: u64,
    /// Of those, SPM.
    pub spm_documents: u64,
    /// Distinct repositories.
    pub repos: u64,
    /// Tokens of all documents (BOS, sentinels and EOS included) = windows × window + dropped.
    pub tokens: u64,
    /// Windows written.
    pub windows: u64,
    /// Tokens of the trailing partial window, not written.
    pub dropped_tokens: u64,
}

/// What `pack_corpus` did; also the content of `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackSummary {
    /// [`META_FORMAT`].
    pub format: String,
    /// [`META_VERSION`].
    pub version: u32,
    /// kiln version that packed it.
    pub kiln_version: String,
    /// The corpus directory.
    pub corpus: PathBuf,
    /// Model context length the windows are cut for.
    pub seq_len: usize,
    /// Tokens per stored window: `seq_len + 1` (inputs `w[..seq_len]`, targets `w[1..]`).
    pub window_tokens: usize,
    /// On-disk token type.
    pub dtype: DType,
    /// The tokenizer.
    pub tokenizer: TokenizerInfo,
    /// Whether every document starts with BOS (always true; recorded for readers).
    pub bos_per_document: bool,
    /// FIM settings.
    pub fim: FimConfig,
    /// What one FIM document is: `"sample"` (a whole corpus sample) or `"file"` (one file of
    /// it, with [`crate::FileOrder::File`]).
    pub fim_unit: String,
    /// How samples became documents (absent in older packs: dependency order).
    #[serde(default)]
    pub order: crate::FileOrder,
    /// The SPM layout used for SPM documents.
    pub spm_layout: String,
    /// Fraction of repositories sent to `val`.
    pub val_fraction: f64,
    /// Seed of the repository hash.
    pub split_seed: u64,
    /// How the split is decided, in words.
    pub split_rule: String,
    /// What happens to the trailing partial window of each split.
    pub tail: String,
    /// Counts of the train split.
    pub train: SplitCounts,
    /// Counts of the val split.
    pub val: SplitCounts,
}

impl PackSummary {
    /// Loads `DIR/meta.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::Meta {
            path: path.clone(),
            message: format!("cannot read: {e} (is this the --out directory of a finished `kiln data pack`? meta.json is written last)"),
        })?;
        let m: PackSummary = serde_json::from_str(&text).map_err(|e| DataError::Meta {
            path: path.clone(),
            message: format!("not a valid pack summary: {e} (rerun `kiln data pack`)"),
        })?;
        if m.format != META_FORMAT || m.version != META_VERSION {
            return Err(DataError::Meta {
                path,
                message: format!("format {} v{} is not {META_FORMAT} v{META_VERSION}; repack with this kiln", m.format, m.version),
            });
        }
        Ok(m)
    }

    /// Counts of one split.
    pub fn split(&self, split: Split) -> &SplitCounts {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// The Megatron path prefix of a split in `dir` (`DIR/train`, `DIR/val`).
    pub fn prefix(dir: &Path, split: Split) -> PathBuf {
        dir.join(split.name())
    }
}
