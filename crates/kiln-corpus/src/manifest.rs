//! Task reports, the run manifest, and the stats tables printed from it.
//!
//! * `tasks/task-I-of-N.json` ([`TaskReport`]): what one task saw: inputs, ingestion skips, rule
//!   drops, samples rendered. Written atomically after the task's candidate Parquet file; a
//!   `tasks/task-I-of-N.done` marker ([`TaskMarker`]) written last makes the task complete.
//! * `manifest.json` ([`Manifest`]): the merged counts, the resolved config, the shard list with
//!   sha256, the contamination report. Written last by the merge; its presence means the output
//!   directory is complete (readers require it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::CorpusConfig;
use crate::error::{CorpusError, Result};

/// Manifest format name and version (bumped when a field changes meaning).
pub const MANIFEST_FORMAT: &str = "kiln-corpus-manifest";
/// Current manifest version.
pub const MANIFEST_VERSION: u32 = 1;

/// Files and bytes of one language.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LangCount {
    /// Files.
    pub files: u64,
    /// Bytes of file text (path headers not counted).
    pub bytes: u64,
}

/// An input that could not be read as a repository (counted, not fatal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedInput {
    /// The input path.
    pub input: String,
    /// The error.
    pub error: String,
}

/// What one task did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    /// Task index.
    pub task: usize,
    /// Number of tasks.
    pub tasks: usize,
    /// Inputs handled by this task, in order.
    pub inputs: Vec<String>,
    /// Repositories read (from repository inputs and from dataset files).
    pub repos: u64,
    /// Dataset files read (JSONL/Parquet inputs, see [`crate::dataset`]).
    #[serde(default)]
    pub datasets: u64,
    /// Of `repos`, those that came from dataset files.
    #[serde(default)]
    pub dataset_repos: u64,
    /// Repositories with no file left after ingestion (counted, produce no sample).
    pub empty_repos: u64,
    /// Inputs that could not be read.
    pub failed: Vec<FailedInput>,
    /// Files read by ingestion.
    pub files_ingested: u64,
    /// Bytes read by ingestion.
    pub bytes_ingested: u64,
    /// Files (or pruned directories) left out by ingestion, by kiln-repo skip reason.
    pub ingest_skipped: BTreeMap<String, u64>,
    /// Files dropped by the rule filters and the quality screen, by reason.
    pub files_dropped: BTreeMap<String, u64>,
    /// Files kept after filters.
    pub files_kept: u64,
    /// Samples rendered (candidates for dedup).
    pub samples: u64,
    /// Files dropped by decontamination (`decontam_unit: file`).
    pub contamination: Vec<ContaminationRecord>,
}

impl TaskReport {
    /// Adds another task's counts.
    pub fn merge(&mut self, o: &TaskReport) {
        self.inputs.extend(o.inputs.iter().cloned());
        self.repos += o.repos;
        self.datasets += o.datasets;
        self.dataset_repos += o.dataset_repos;
        self.empty_repos += o.empty_repos;
        self.failed.extend(o.failed.iter().cloned());
        self.files_ingested += o.files_ingested;
        self.bytes_ingested += o.bytes_ingested;
        for (k, v) in &o.ingest_skipped {
            *self.ingest_skipped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.files_dropped {
            *self.files_dropped.entry(k.clone()).or_default() += v;
        }
        self.files_kept += o.files_kept;
        self.samples += o.samples;
        self.contamination.extend(o.contamination.iter().cloned());
    }
}

/// The completion marker of a task: what plan made it, so a rerun can tell whether to reuse it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMarker {
    /// [`CorpusConfig::fingerprint`] plus the benchmarks used.
    pub config: String,
    /// The task's counts, read by the merge, with its index, the task count and its inputs
    /// (which a rerun compares with its plan). They travel in the marker rather than a file of
    /// their own: every file a task writes is a create, an fsync and a rename, and with
    /// hundreds of small repositories those were a tenth of a build's time.
    pub report: TaskReport,
}

/// Counts of the merge stage (sample level).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleCounts {
    /// Samples rendered by all tasks.
    pub candidates: u64,
    /// Removed as exact duplicates (same text).
    pub exact_duplicates: u64,
    /// Removed as near duplicates (MinHash LSH).
    pub near_duplicates: u64,
    /// Removed by decontamination.
    pub contaminated: u64,
    /// Written to the shards.
    pub kept: u64,
}

/// One shard of the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name inside the output directory.
    pub file: String,
    /// Samples.
    pub rows: u64,
    /// Text bytes.
    pub text_bytes: u64,
    /// File size.
    pub file_bytes: u64,
    /// sha256 of the file, hex.
    pub sha256: String,
}

/// A removed contaminated sample or file and the benchmark tasks it overlaps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContaminationRecord {
    /// Sample id (empty for a file dropped before samples were formed).
    pub sample: String,
    /// Repository.
    pub repo: String,
    /// The file, when a file was dropped (`decontam_unit: file`).
    pub path: Option<String>,
    /// Benchmark task ids (`HumanEval/12`, `MBPP/7`).
    pub tasks: Vec<String>,
}

/// The manifest of a finished build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// kiln version that wrote it.
    pub kiln_version: String,
    /// The sorted input list.
    pub inputs: Vec<String>,
    /// Number of tasks the inputs were split into.
    pub tasks: usize,
    /// Benchmarks directory used for decontamination (`null`: not decontaminated).
    pub benchmarks: Option<String>,
    /// The resolved configuration.
    pub config: CorpusConfig,
    /// File-level counts (all tasks merged).
    pub files: TaskReport,
    /// Sample-level counts.
    pub samples: SampleCounts,
    /// Per language, files and bytes in the output.
    pub languages: BTreeMap<String, LangCount>,
    /// Removed contaminated samples (`decontam_unit: sample`) or files (`file`; also in
    /// `files.contamination`).
    pub contamination: Vec<ContaminationRecord>,
    /// Output shards, in order.
    pub shards: Vec<ShardInfo>,
}

impl Manifest {
    /// Loads `dir/manifest.json`, with errors that say what to do.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|e| CorpusError::Manifest {
            path: path.clone(),
            message: format!(
                "cannot read: {e} (is this the --out directory of a finished `kiln corpus build`? the manifest is written last)"
            ),
        })?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| CorpusError::Manifest {
            path: path.clone(),
            message: format!("not a valid manifest: {e} (damaged? rerun `kiln corpus build` with the same --out to rewrite it)"),
        })?;
        if m.format != MANIFEST_FORMAT || m.version != MANIFEST_VERSION {
            return Err(CorpusError::Manifest {
                path,
                message: format!(
                    "format {} v{} is not {MANIFEST_FORMAT} v{MANIFEST_VERSION} (written by kiln {}); rebuild with this kiln",
                    m.format, m.version, m.kiln_version
                ),
            });
        }
        Ok(m)
    }

    /// Shard paths, in order.
    pub fn shard_paths(&self, dir: &Path) -> Vec<PathBuf> {
        self.shards.iter().map(|s| dir.join(&s.file)).collect()
    }

    /// The paper's Table 1 shape: one row per language, sorted by bytes (descending).
    pub fn table1(&self) -> Vec<(String, LangCount, f64)> {
        let total: u64 = self.languages.values().map(|c| c.bytes).sum();
        let mut rows: Vec<_> = self
            .languages
            .iter()
            .map(|(l, c)| (l.clone(), *c, if total == 0 { 0.0 } else { 100.0 * c.bytes as f64 / total as f64 }))
            .collect();
        rows.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(&b.0)));
        rows
    }

    /// The stats report as text: Table 1, then the drop table (library code returns it; the CLI
    /// prints it).
    pub fn format_stats(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "{:<20} {:>12} {:>10} {:>8}", "Language", "Size (GB)", "Files", "Share");
        let rows = self.table1();
        for (l, c, share) in &rows {
            let _ = writeln!(s, "{:<20} {:>12.6} {:>10} {:>7.2}%", l, c.bytes as f64 / 1e9, c.files, share);
        }
        let (tf, tb) = rows.iter().fold((0, 0), |(f, b), r| (f + r.1.files, b + r.1.bytes));
        let _ = writeln!(s, "{:<20} {:>12.6} {:>10} {:>7.2}%", "Total", tb as f64 / 1e9, tf, if rows.is_empty() { 0.0 } else { 100.0 });
        let f = &self.files;
        let _ = writeln!(s, "\nStage                       Count");
        let _ = writeln!(s, "inputs                 {:>10}", self.inputs.len());
        if f.datasets > 0 {
            let _ = writeln!(s, "dataset files read     {:>10}", f.datasets);
        }
        let _ = writeln!(s, "repositories read      {:>10}", f.repos);
        let _ = writeln!(s, "  empty                {:>10}", f.empty_repos);
        let _ = writeln!(s, "  failed               {:>10}", f.failed.len());
        let _ = writeln!(s, "files ingested         {:>10}", f.files_ingested);
        for (k, v) in &f.ingest_skipped {
            let _ = writeln!(s, "  skipped at ingest: {:<20} {v:>8}", k);
        }
        for (k, v) in &f.files_dropped {
            let _ = writeln!(s, "  dropped: {:<29} {v:>8}", k);
        }
        let _ = writeln!(s, "files kept             {:>10}", f.files_kept);
        let c = &self.samples;
        let _ = writeln!(s, "samples rendered       {:>10}", c.candidates);
        let _ = writeln!(s, "  exact duplicates     {:>10}", c.exact_duplicates);
        let _ = writeln!(s, "  near duplicates      {:>10}", c.near_duplicates);
        let _ = writeln!(s, "  contaminated         {:>10}", c.contaminated);
        let _ = writeln!(s, "samples kept           {:>10}", c.kept);
        let _ = writeln!(s, "shards                 {:>10}", self.shards.len());
        s
    }
}
