//! The typed configuration of `kiln corpus build`: every threshold of every stage, in one serde
//! struct that is validated before any work starts and saved, resolved, beside the output
//! (`config.json`) and inside the manifest.
//!
//! On disk (JSON) every top-level field is optional and takes its default (the paper's values);
//! a section that is given must be complete, and unknown fields are errors (a typo must not
//! silently fall back to a default).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::decontam::DecontamConfig;
use crate::dedup::LshParams;
use crate::error::{CorpusError, Result};
use crate::filters::FilterConfig;
use crate::quality::QualityConfig;

/// What a benchmark match removes.
///
/// `File` (default): the file containing the match is dropped before samples are formed (counted
/// as the file drop reason `contaminated`, recorded with its path), and its repository sample is
/// rendered without it. Why not the whole sample: a repository sample can be a whole package (the
/// python standard library renders as one 30 MB component), and a single matching file would
/// remove all of it; BigCode's decontamination also removes files. `Sample`: the sample is
/// checked as a whole after dedup and removed entirely (the literal reading of "any piece of
/// code ... is removed" applied to repository samples); n-grams spanning two files are caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecontamUnit {
    /// Drop contaminated files.
    File,
    /// Drop contaminated samples.
    Sample,
}

/// Settings of the whole pipeline. `Default` is the paper's pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorpusConfig {
    /// Files larger than this are skipped at ingestion (bytes; kiln-repo's default 1 MiB).
    pub max_file_bytes: u64,
    /// Rule filters (paper §2.1).
    pub filters: FilterConfig,
    /// Run the tree-sitter quality screen (paper §2.4's compiler step). On by default (the
    /// paper's recipe); it parses every file of the nine import grammars, most of a build's
    /// time. Off (`kiln corpus build --no-quality-screen`): no parse at all, ~5x faster per
    /// core. It only decides which files stay: imports come from [`kiln_repo::scan`] either way.
    pub quality_screen: bool,
    /// Quality screen threshold.
    pub quality: QualityConfig,
    /// Seed of Algorithm 1's tie-break between files of equal in-degree.
    pub order_seed: u64,
    /// Keep whole dependency components as one sample for every language. Off (the paper's
    /// split, DeepSeek-Coder issue #43): only Python, Java, C#, C and C++ files are concatenated
    /// into repository samples; files of other languages become one sample each, so that each
    /// sample is exactly one near-dedup unit of [`crate::dedup::dedup_unit`].
    pub concat_all_languages: bool,
    /// Near-dedup parameters (MinHash + LSH).
    pub lsh: LshParams,
    /// Decontamination rules (used when a benchmarks directory is given).
    pub decontam: DecontamConfig,
    /// What a benchmark match removes: one file (default) or the whole sample.
    pub decontam_unit: DecontamUnit,
    /// Target uncompressed text bytes per output shard (a shard closes once it reaches this).
    pub shard_bytes: u64,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        CorpusConfig {
            max_file_bytes: 1 << 20,
            filters: FilterConfig::default(),
            quality_screen: true,
            quality: QualityConfig::default(),
            order_seed: 0,
            concat_all_languages: false,
            lsh: LshParams::default(),
            decontam: DecontamConfig::default(),
            decontam_unit: DecontamUnit::File,
            // 256 MB of text: ~60 MB of zstd Parquet, a size HF datasets streams comfortably.
            shard_bytes: 256 << 20,
        }
    }
}

impl CorpusConfig {
    /// Reads a JSON config file and validates it.
    pub fn from_file(path: &Path) -> Result<CorpusConfig> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io_err(path))?;
        let cfg: CorpusConfig =
            serde_json::from_str(&text).map_err(|e| CorpusError::Config { path: path.to_path_buf(), message: e.to_string() })?;
        cfg.validate().map_err(|message| CorpusError::Config { path: path.to_path_buf(), message })?;
        Ok(cfg)
    }

    /// Checks the values that would make a stage meaningless; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let l = &self.lsh;
        if l.bands == 0 || l.rows == 0 || l.bands * l.rows > l.num_perm {
            return Err(format!("lsh: bands ({}) x rows ({}) must be >= 1 and at most num_perm ({})", l.bands, l.rows, l.num_perm));
        }
        if l.shingle == 0 {
            return Err("lsh.shingle must be at least 1".into());
        }
        if self.shard_bytes == 0 {
            return Err("shard_bytes must be at least 1".into());
        }
        if self.max_file_bytes == 0 {
            return Err("max_file_bytes must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.quality.max_error_share) {
            return Err("quality.max_error_share must be within 0..=1".into());
        }
        if self.decontam.n == 0 {
            return Err("decontam.n must be at least 1".into());
        }
        Ok(())
    }

    /// A short fingerprint of the resolved config, stored in task markers so that a rerun with a
    /// different config does not reuse stale task outputs.
    pub fn fingerprint(&self) -> String {
        // The signature version too: the same settings computed another way are another config.
        let json = serde_json::to_string(self).unwrap_or_default();
        let keyed = format!("{json}#signature-v{}", crate::dedup::SIGNATURE_VERSION);
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(keyed.as_bytes()))
    }
}
