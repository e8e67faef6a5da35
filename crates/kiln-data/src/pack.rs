//! Packing a kiln corpus into fixed-length training windows (data-pipeline.md §7, §8).
//!
//! For each corpus sample, in shard order: pick its split by repository ([`Split::of_repo`]),
//! apply FIM ([`FimConfig::apply`], keyed by the sample id), lay it out as tokens
//! ([`FimDoc::tokens`]: `BOS … EOS`), and append the tokens to that split's stream. Each stream is
//! cut into windows of exactly `seq_len + 1` tokens, written as one Megatron sequence and one
//! Megatron document each, to `OUT/train.bin/.idx` and `OUT/val.bin/.idx`; `OUT/meta.json`
//! ([`PackSummary`]) is written last.
//!
//! * **`seq_len + 1`**: a window gives the trainer inputs `w[..seq_len]` and targets `w[1..]`,
//!   so every one of the `seq_len` positions has a target and no token is lost between windows'
//!   targets. Document boundaries inside a window are the BOS/EOS tokens (the trainer can reset
//!   attention there); no side file is needed.
//! * **The tail**: the last, partial window of each split is dropped, not padded: padding would
//!   need a pad id and a loss mask in the pre-training format, for at most `seq_len` tokens of a
//!   whole corpus. The count is `dropped_tokens` in `meta.json`.
//! * **Determinism**: samples are tokenized in parallel (rayon) one chunk at a time and the
//!   results are consumed in sample order, and FIM/split draws depend only on the sample's id
//!   and repository, so the output is byte-identical for any thread count.
//! * **Memory**: one chunk of samples (`chunk_docs` rows of a Parquet shard) and its tokens are
//!   in flight, plus less than one window per split. A sample over `stream_bytes` (default
//!   16 MiB; a repository-level sample of a large repository) is taken out of the parallel
//!   chunk and tokenized alone, segment by segment into the windows, so its tokens are never all
//!   in memory; its text is, as one Parquet value of the corpus.

use std::collections::HashSet;
use std::path::Path;

use kiln_corpus::shard::{AtomicFile, Sample};
use kiln_corpus::{CorpusError, Manifest};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::encode::DocEncoder;
use crate::error::{io_err, DataError, Result};
use crate::fim::{FimConfig, FimDoc};
use crate::megatron::{DType, MegatronWriter};
use crate::meta::{PackSummary, SplitCounts, TokenizerFile, TokenizerInfo, META_FILE, META_FORMAT, META_VERSION};
use crate::split::Split;

/// Packing settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PackConfig {
    /// Model context length; windows hold `seq_len + 1` tokens (DeepSeek-Coder pre-training: 4096).
    pub seq_len: usize,
    /// FIM settings (DeepSeek-Coder: rate 0.5, PSM).
    pub fim: FimConfig,
    /// Fraction of repositories held out for validation (0: none).
    pub val_fraction: f64,
    /// Seed of the repository hash that decides the split.
    pub split_seed: u64,
    /// Samples tokenized per parallel chunk (bounds memory; does not change the output).
    pub chunk_docs: usize,
    /// Samples with more text than this are tokenized on their own, in segments of this size
    /// streamed into the windows, so no sample's tokens are all in memory at once.
    pub stream_bytes: usize,
}

impl Default for PackConfig {
    fn default() -> Self {
        Self { seq_len: 4096, fim: FimConfig::default(), val_fraction: 0.01, split_seed: 0, chunk_docs: 1024, stream_bytes: 16 << 20 }
    }
}

impl PackConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        if self.seq_len == 0 || self.seq_len >= i32::MAX as usize {
            return Err(DataError::Config {
                field: "seq_len",
                value: self.seq_len.to_string(),
                message: "must be at least 1 (and below 2^31-1)".into(),
            });
        }
        if !(0.0..=1.0).contains(&self.val_fraction) {
            return Err(DataError::Config {
                field: "val_fraction",
                value: self.val_fraction.to_string(),
                message: "must be between 0 and 1".into(),
            });
        }
        if self.stream_bytes == 0 {
            return Err(DataError::Config { field: "stream_bytes", value: "0".into(), message: "must be at least 1".into() });
        }
        if self.chunk_docs == 0 {
            return Err(DataError::Config { field: "chunk_docs", value: "0".into(), message: "must be at least 1".into() });
        }
        self.fim.validate()
    }
}

/// One split's output: the token stream being cut into windows.
struct WindowPacker {
    writer: MegatronWriter,
    window: usize,
    /// Tokens not yet in a window (fewer than `window` between documents).
    pending: Vec<u32>,
    counts: SplitCounts,
    repos: HashSet<String>,
}

impl WindowPacker {
    fn new(out: &Path, split: Split, dtype: DType, window: usize) -> Result<Self> {
        let writer = MegatronWriter::create(&PackSummary::prefix(out, split), dtype)?;
        Ok(Self { writer, window, pending: Vec::with_capacity(2 * window), counts: SplitCounts::default(), repos: HashSet::new() })
    }

    /// Counts one document (its tokens come through [`push_ids`](Self::push_ids)).
    fn start_document(&mut self, fim: bool, spm: bool, repo: &str) {
        self.counts.documents += 1;
        self.counts.fim_documents += u64::from(fim);
        self.counts.spm_documents += u64::from(spm);
        if !self.repos.contains(repo) {
            self.repos.insert(repo.to_string());
        }
    }

    fn push(&mut self, doc: &Prepared, repo: &str) -> Result<()> {
        self.start_document(doc.fim, doc.spm, repo);
        self.push_ids(&doc.ids)
    }

    /// Appends tokens to the stream and writes every full window.
    fn push_ids(&mut self, ids: &[u32]) -> Result<()> {
        self.counts.tokens += ids.len() as u64;
        self.pending.extend_from_slice(ids);
        let mut start = 0;
        while self.pending.len() - start >= self.window {
            self.writer.add_document(&self.pending[start..start + self.window])?;
            self.counts.windows += 1;
            start += self.window;
        }
        self.pending.drain(..start);
        Ok(())
    }

    fn finish(mut self) -> Result<SplitCounts> {
        self.counts.dropped_tokens = self.pending.len() as u64;
        self.counts.repos = self.repos.len() as u64;
        self.writer.finish()?;
        Ok(self.counts)
    }
}

/// A sample after split, FIM and tokenization.
struct Prepared {
    split: Split,
    fim: bool,
    spm: bool,
    ids: Vec<u32>,
}

/// Tokenizes a sample, or `None` when it is over `stream_bytes` (then [`stream`] does it).
fn prepare(sample: &Sample, enc: &DocEncoder<'_>, cfg: &PackConfig) -> Result<Option<Prepared>> {
    if sample.text.len() > cfg.stream_bytes {
        return Ok(None);
    }
    let split = Split::of_repo(&sample.repo, cfg.val_fraction, cfg.split_seed);
    let doc = cfg.fim.apply(&sample.text, FimConfig::key_of(&sample.id));
    let ids = doc.tokens(enc, &sample.id)?;
    Ok(Some(Prepared { split, fim: doc.is_fim(), spm: matches!(doc, FimDoc::Spm { .. }), ids }))
}

/// A large sample, tokenized segment by segment straight into its split's windows.
fn stream(sample: &Sample, enc: &DocEncoder<'_>, cfg: &PackConfig, packers: &mut [WindowPacker; 2]) -> Result<()> {
    let packer = match Split::of_repo(&sample.repo, cfg.val_fraction, cfg.split_seed) {
        Split::Train => &mut packers[0],
        Split::Val => &mut packers[1],
    };
    let doc = cfg.fim.apply(&sample.text, FimConfig::key_of(&sample.id));
    tracing::debug!(id = %sample.id, bytes = sample.text.len(), "streaming a large sample");
    packer.start_document(doc.is_fim(), matches!(doc, FimDoc::Spm { .. }), &sample.repo);
    doc.emit(enc, &sample.id, cfg.stream_bytes, &mut |ids| packer.push_ids(ids))
}

/// Calls `f` on each chunk of `rows` samples of a shard, stopping at the first error of `f`.
fn for_each_chunk(path: &Path, rows: usize, mut f: impl FnMut(Vec<Sample>) -> Result<()>) -> Result<()> {
    // `read_file` wants the callback's error to be a CorpusError; ours is kept aside and a
    // placeholder stops the read.
    let mut ours = None;
    let read = kiln_corpus::shard::read_file(path, rows, |chunk| {
        f(chunk).map_err(|e| {
            ours = Some(e);
            CorpusError::Plan("stopped by kiln-data".into())
        })
    });
    match (ours, read) {
        (Some(e), _) => Err(e),
        (None, r) => r.map_err(DataError::from),
    }
}

/// Packs the corpus in `corpus_dir` (a finished `kiln corpus build` output) into `out_dir`
/// (created if needed): `train.bin/.idx`, `val.bin/.idx`, `meta.json`. See the module docs.
/// Uses the current rayon pool (run it inside `ThreadPool::install` to choose the threads).
pub fn pack_corpus(corpus_dir: &Path, tokenizer: &TokenizerFile, out_dir: &Path, cfg: &PackConfig) -> Result<PackSummary> {
    cfg.validate()?;
    let manifest = Manifest::load(corpus_dir)?;
    let rows: u64 = manifest.shards.iter().map(|s| s.rows).sum();
    if rows == 0 {
        return Err(DataError::EmptyCorpus { dir: corpus_dir.to_path_buf(), shards: manifest.shards.len() });
    }
    let tok = &tokenizer.tokenizer;
    let enc = DocEncoder::new(tok)?;
    if cfg.fim.rate > 0.0 {
        enc.fim_ids()?;
    }
    let vocab_size = tok.id_count();
    let dtype = DType::for_vocab(vocab_size);
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    // meta.json marks a complete directory: it goes first and comes back last.
    let meta_path = out_dir.join(META_FILE);
    match std::fs::remove_file(&meta_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&meta_path)(e)),
        _ => {}
    }
    let window = cfg.seq_len + 1;
    let mut packers = [WindowPacker::new(out_dir, Split::Train, dtype, window)?, WindowPacker::new(out_dir, Split::Val, dtype, window)?];
    tracing::info!(corpus = %corpus_dir.display(), shards = manifest.shards.len(), samples = rows, seq_len = cfg.seq_len, dtype = dtype.name(), "packing");
    for (n, shard) in manifest.shard_paths(corpus_dir).iter().enumerate() {
        for_each_chunk(shard, cfg.chunk_docs, |chunk| {
            let prepared: Vec<Result<Option<Prepared>>> = chunk.par_iter().map(|s| prepare(s, &enc, cfg)).collect();
            for (sample, doc) in chunk.iter().zip(prepared) {
                let Some(doc) = doc? else {
                    stream(sample, &enc, cfg, &mut packers)?;
                    continue;
                };
                let packer = match doc.split {
                    Split::Train => &mut packers[0],
                    Split::Val => &mut packers[1],
                };
                packer.push(&doc, &sample.repo)?;
            }
            Ok(())
        })?;
        tracing::info!(shard = %shard.display(), done = n + 1, of = manifest.shards.len(), "shard packed");
    }
    let [train, val] = packers;
    let (train, val) = (train.finish()?, val.finish()?);
    for (split, c) in [(Split::Train, &train), (Split::Val, &val)] {
        if c.documents > 0 && c.windows == 0 {
            tracing::warn!(split = split.name(), tokens = c.tokens, window, "split has fewer tokens than one window: nothing written");
        }
    }
    let summary = PackSummary {
        format: META_FORMAT.into(),
        version: META_VERSION,
        kiln_version: env!("CARGO_PKG_VERSION").into(),
        corpus: std::fs::canonicalize(corpus_dir).unwrap_or_else(|_| corpus_dir.to_path_buf()),
        seq_len: cfg.seq_len,
        window_tokens: window,
        dtype,
        tokenizer: TokenizerInfo { path: tokenizer.path.clone(), sha256: tokenizer.sha256.clone(), vocab_size },
        bos_per_document: true,
        fim: cfg.fim,
        fim_unit: "sample".into(),
        spm_layout: "BOS <fim_begin> <fim_hole> suffix <fim_end> prefix middle EOS (Bavarian et al. SPM variant 2)".into(),
        val_fraction: cfg.val_fraction,
        split_seed: cfg.split_seed,
        split_rule: "repository to val iff (xxh3_64(repo, seed = split_seed) >> 11) / 2^53 < val_fraction".into(),
        tail: "dropped".into(),
        train,
        val,
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| DataError::Meta { path: meta_path.clone(), message: e.to_string() })?;
    AtomicFile::write_all_to(&meta_path, &json)?;
    tracing::info!(train_windows = train.windows, val_windows = val.windows, "packed");
    Ok(summary)
}
