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
    /// How a repository's files become documents (DeepSeek-Coder: dependency order, one
    /// document per repository).
    pub order: FileOrder,
}

impl Default for PackConfig {
    fn default() -> Self {
        Self {
            seq_len: 4096,
            fim: FimConfig::default(),
            val_fraction: 0.01,
            split_seed: 0,
            chunk_docs: 1024,
            stream_bytes: 16 << 20,
            order: FileOrder::Dependency,
        }
    }
}

/// How a corpus sample (a repository's files, rendered in dependency order with a path comment
/// above each) becomes training documents: the paper's repository-level pre-training and the two
/// baselines its Table 7 and the ablations need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOrder {
    /// As the corpus has it: one document per repository, a file after the files it imports.
    #[default]
    Dependency,
    /// One document per repository, its files in a random order (seeded by the sample id and
    /// the FIM seed), so only the order differs from `Dependency`.
    Random,
    /// One document per file (file-level pre-training): no file sees another in its context.
    File,
}

impl FileOrder {
    /// Every order.
    pub const ALL: [FileOrder; 3] = [FileOrder::Dependency, FileOrder::Random, FileOrder::File];

    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FileOrder::Dependency => "dependency",
            FileOrder::Random => "random",
            FileOrder::File => "file",
        }
    }
}

impl std::str::FromStr for FileOrder {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        FileOrder::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| format!("unknown file order {s:?}; expected one of {}", FileOrder::ALL.map(|o| o.name()).join(", ")))
    }
}

/// The documents `sample` becomes under `order`, as (id, text): the id keys the FIM draw. A
/// file's piece of the text runs from the end of the file before it (so it starts with the
/// file's path comment) to the end of its span; text after the last span stays with the last.
fn documents<'a>(sample: &'a Sample, order: FileOrder, seed: u64) -> Vec<(std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)> {
    use std::borrow::Cow;
    if order == FileOrder::Dependency || sample.files.len() < 2 {
        return vec![(Cow::Borrowed(sample.id.as_str()), Cow::Borrowed(sample.text.as_str()))];
    }
    let text = sample.text.as_str();
    let mut bounds: Vec<usize> = sample.files.iter().map(|f| f.end as usize).filter(|&e| e <= text.len()).collect();
    bounds.dedup();
    if let Some(last) = bounds.last_mut() {
        *last = text.len();
    }
    let mut pieces = Vec::with_capacity(bounds.len());
    let mut from = 0;
    for end in bounds {
        // Spans are char-aligned in a valid corpus; a damaged one is kept whole rather than cut.
        let Some(piece) = text.get(from..end) else {
            return vec![(Cow::Borrowed(sample.id.as_str()), Cow::Borrowed(text))];
        };
        if !piece.is_empty() {
            pieces.push(piece);
        }
        from = end;
    }
    match order {
        FileOrder::Dependency => unreachable!("returned above"),
        FileOrder::Random => {
            // "order" in ASCII: a stream of its own, apart from the FIM draws of the same seed.
            crate::rng::SplitMix64::keyed(seed ^ 0x006f_7264_6572, sample.id.as_bytes()).shuffle(&mut pieces);
            vec![(Cow::Borrowed(sample.id.as_str()), Cow::Owned(pieces.concat()))]
        }
        FileOrder::File => {
            pieces.into_iter().enumerate().map(|(i, p)| (Cow::Owned(format!("{}#{i}", sample.id)), Cow::Borrowed(p))).collect()
        }
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

/// A document after FIM and tokenization.
struct Prepared {
    fim: bool,
    spm: bool,
    ids: Vec<u32>,
}

/// Tokenizes a sample's documents, or `None` when it is over `stream_bytes` (then [`stream`]
/// does it).
fn prepare(sample: &Sample, enc: &DocEncoder<'_>, cfg: &PackConfig) -> Result<Option<Vec<Prepared>>> {
    if sample.text.len() > cfg.stream_bytes {
        return Ok(None);
    }
    let mut docs = Vec::new();
    for (id, text) in documents(sample, cfg.order, cfg.fim.seed) {
        let doc = cfg.fim.apply(&text, FimConfig::key_of(&id));
        let ids = doc.tokens(enc, &id)?;
        docs.push(Prepared { fim: doc.is_fim(), spm: matches!(doc, FimDoc::Spm { .. }), ids });
    }
    Ok(Some(docs))
}

/// A large sample, tokenized segment by segment straight into its split's windows.
fn stream(sample: &Sample, enc: &DocEncoder<'_>, cfg: &PackConfig, packers: &mut [WindowPacker; 2]) -> Result<()> {
    let packer = &mut packers[split_index(sample, cfg)];
    tracing::debug!(id = %sample.id, bytes = sample.text.len(), "streaming a large sample");
    for (id, text) in documents(sample, cfg.order, cfg.fim.seed) {
        let doc = cfg.fim.apply(&text, FimConfig::key_of(&id));
        packer.start_document(doc.is_fim(), matches!(doc, FimDoc::Spm { .. }), &sample.repo);
        doc.emit(enc, &id, cfg.stream_bytes, &mut |ids| packer.push_ids(ids))?;
    }
    Ok(())
}

/// The packer of the sample's split: 0 train, 1 val.
fn split_index(sample: &Sample, cfg: &PackConfig) -> usize {
    match Split::of_repo(&sample.repo, cfg.val_fraction, cfg.split_seed) {
        Split::Train => 0,
        Split::Val => 1,
    }
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
            let prepared: Vec<Result<Option<Vec<Prepared>>>> = chunk.par_iter().map(|s| prepare(s, &enc, cfg)).collect();
            for (sample, docs) in chunk.iter().zip(prepared) {
                let Some(docs) = docs? else {
                    stream(sample, &enc, cfg, &mut packers)?;
                    continue;
                };
                let packer = &mut packers[split_index(sample, cfg)];
                for doc in &docs {
                    packer.push(doc, &sample.repo)?;
                }
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
        fim_unit: if cfg.order == FileOrder::File { "file".into() } else { "sample".into() },
        order: cfg.order,
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

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_corpus::shard::FileSpan;

    fn sample(files: &[(&str, &str)]) -> Sample {
        let mut text = String::new();
        let mut spans = Vec::new();
        for (path, body) in files {
            text.push_str(&format!("# {path}\n"));
            let start = text.len() as u64;
            text.push_str(body);
            spans.push(FileSpan { path: path.to_string(), language: Some("Python".into()), start, end: text.len() as u64 });
            text.push('\n');
        }
        Sample {
            id: "repo-a/0".into(),
            repo: "repo-a".into(),
            languages: vec!["Python".into()],
            text,
            files: spans,
            input: 0,
            seq: 0,
            content_hash: String::new(),
            bands: Vec::new(),
            contaminated_by: Vec::new(),
        }
    }

    /// Random order permutes whole files (path comment with its file); file order gives one
    /// document per file; dependency order leaves the sample alone.
    #[test]
    fn file_orders_keep_every_file_whole() {
        let files: Vec<(String, String)> = (0..8).map(|i| (format!("m{i}.py"), format!("def f{i}():\n    return {i}\n"))).collect();
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, b)| (p.as_str(), b.as_str())).collect();
        let s = sample(&refs);
        let dep = documents(&s, FileOrder::Dependency, 0);
        assert_eq!(dep.len(), 1);
        assert_eq!(dep[0].1, s.text);

        let per_file = documents(&s, FileOrder::File, 0);
        assert_eq!(per_file.len(), 8);
        assert_eq!(per_file.iter().map(|(_, t)| t.as_ref()).collect::<String>(), s.text, "the pieces tile the text");
        for (i, (id, t)) in per_file.iter().enumerate() {
            assert!(t.contains(&format!("# m{i}.py\n")) && t.contains(&format!("return {i}\n")), "{t:?}");
            assert_eq!(id.as_ref(), format!("repo-a/0#{i}"));
        }

        let random = documents(&s, FileOrder::Random, 0);
        assert_eq!(random.len(), 1);
        let text = random[0].1.as_ref();
        assert_ne!(text, s.text, "8 files stay in order with chance 1/40320");
        // The text is the file pieces, each once, in some order.
        let mut left: Vec<&str> = per_file.iter().map(|(_, t)| t.as_ref()).collect();
        let mut rest = text;
        while !rest.is_empty() {
            let i =
                left.iter().position(|p| rest.starts_with(p)).unwrap_or_else(|| panic!("{rest:?} does not start with a whole file piece"));
            rest = &rest[left.swap_remove(i).len()..];
        }
        assert!(left.is_empty(), "{left:?} missing");
        assert_eq!(documents(&s, FileOrder::Random, 0)[0].1, random[0].1, "seeded");
        assert_ne!(documents(&s, FileOrder::Random, 1)[0].1, random[0].1, "another seed, another order");
        assert_eq!("file".parse::<FileOrder>().unwrap(), FileOrder::File);
        assert!("shuffled".parse::<FileOrder>().unwrap_err().contains("dependency, random, file"));
    }
}
