//! Scored samples on disk, and the scores computed from them.
//!
//! A run directory holds `run.json` (the settings that shape completions: a rerun with other
//! settings is refused, naming the setting, rather than mixing two runs' samples),
//! `samples.jsonl` (one [`Record`] per scored sample, appended and flushed as soon as it is
//! scored, so a crash loses at most the line being written; a torn last line is dropped and
//! redone on the next run), and `summary.json` / `summary.md`, rewritten atomically (temporary
//! file + rename) from every record.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metrics::pass_at_k;
use crate::sandbox::{self, Isolation, Limits, RunResult};
use crate::task::{Task, TestProgram};
use crate::EvalError;

/// Bytes of a completion (and of a prompt) kept in the samples file; longer text is cut there,
/// and the record says so (`completion_truncated`, `completion_bytes`). Scoring always uses
/// the whole completion.
pub const KEEP_BYTES: usize = 64 * 1024;

/// Bytes of a failing program's stderr kept.
pub const STDERR_BYTES: usize = 1024;

/// How a sample ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The test program passed.
    Passed,
    /// The test program failed (non-zero exit, exception, signal).
    Failed,
    /// The test program ran past its limit.
    TimedOut,
    /// No completion could be had (endpoint error, prompt too long); scores 0.
    NoCompletion,
}

/// One scored sample: a line of `samples.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The problem.
    pub task_id: String,
    /// Which of the problem's samples (0-based).
    pub sample: usize,
    /// The per-language breakdown row.
    pub language: String,
    /// What the model was given (FIM: prefix `<FILL>` suffix), cut at [`KEEP_BYTES`].
    pub prompt: String,
    /// The scored completion, cut at [`KEEP_BYTES`] when longer.
    pub completion: String,
    /// Whether `completion` was cut here.
    #[serde(default)]
    pub completion_truncated: bool,
    /// Length of the whole completion in bytes.
    #[serde(default)]
    pub completion_bytes: usize,
    /// How it ended.
    pub status: Status,
    /// `status == passed`.
    pub passed: bool,
    /// Exact match against the reference, for benchmarks that score it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<bool>,
    /// The end of the test program's stderr (failures), or why there was no completion.
    #[serde(default)]
    pub stderr: String,
    /// Why the sample has no completion (endpoint error, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Cuts `s` to at most `max` bytes at a character boundary; says whether it cut.
pub fn cut(s: &str, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s.to_string(), false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (s[..end].to_string(), true)
}

/// Runs a test program in the sandbox.
pub fn run_program(program: &TestProgram, limits: &Limits, isolation: Isolation) -> Result<RunResult, EvalError> {
    Ok(match program {
        TestProgram::Python(src) => sandbox::run_python(src, limits, isolation)?,
        TestProgram::Command { files, argv } => {
            let dir = tempfile::tempdir()?;
            for (name, text) in files {
                std::fs::write(dir.path().join(name), text)?;
            }
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            sandbox::run(&argv, dir.path(), limits, isolation)?
        }
        TestProgram::Compiled { toolchain, source } => crate::multipl_e::run_one(toolchain, source, "", limits, isolation)?,
    })
}

/// Scores one completion of `task` (or records why there is none), building the record.
pub fn score(
    task: &Task,
    sample: usize,
    completion: Result<String, String>,
    limits: &Limits,
    isolation: Isolation,
) -> Result<Record, EvalError> {
    let (prompt, _) = cut(&task.prompt.display(), KEEP_BYTES);
    let (text, error) = match completion {
        Ok(c) => (c, None),
        Err(e) => (String::new(), Some(e)),
    };
    let (status, stderr) = match &error {
        Some(e) => (Status::NoCompletion, e.clone()),
        None => match run_program(&(task.program)(&text), limits, isolation)? {
            RunResult::Passed => (Status::Passed, String::new()),
            RunResult::Failed { stderr, .. } => (Status::Failed, stderr),
            RunResult::TimedOut => (Status::TimedOut, String::new()),
        },
    };
    let (kept, truncated) = cut(&text, KEEP_BYTES);
    if truncated {
        tracing::warn!(task = %task.task_id, sample, bytes = text.len(), "completion cut to {KEEP_BYTES} bytes in samples.jsonl (scored whole)");
    }
    let tail_start = stderr.len().saturating_sub(STDERR_BYTES);
    let tail_start = (tail_start..=stderr.len()).find(|i| stderr.is_char_boundary(*i)).unwrap_or(stderr.len());
    Ok(Record {
        task_id: task.task_id.clone(),
        sample,
        language: task.language.clone(),
        prompt,
        completion: kept,
        completion_truncated: truncated,
        completion_bytes: text.len(),
        passed: status == Status::Passed,
        status,
        exact_match: if error.is_some() { task.exact_reference.as_ref().map(|_| false) } else { task.exact_match(&text) },
        stderr: stderr[tail_start..].to_string(),
        error,
    })
}

/// An open run directory.
#[derive(Debug)]
pub struct RunDir {
    dir: PathBuf,
    samples: std::fs::File,
}

impl RunDir {
    /// Opens (or creates) `dir` for a run with `settings` (a JSON object). Returns the records
    /// already scored there. Fails when `run.json` holds other settings (naming the first
    /// differing one), or when a line other than the last of `samples.jsonl` is damaged.
    pub fn open(dir: &Path, settings: &Value) -> Result<(Self, Vec<Record>), EvalError> {
        let bad = |p: &Path, m: String| EvalError::Data { path: p.to_path_buf(), message: m };
        std::fs::create_dir_all(dir).map_err(|e| bad(dir, format!("cannot create the output directory: {e}")))?;
        let run_json = dir.join("run.json");
        if run_json.exists() {
            let text = std::fs::read_to_string(&run_json).map_err(|e| bad(&run_json, e.to_string()))?;
            let old: Value =
                serde_json::from_str(&text).map_err(|e| bad(&run_json, format!("not JSON ({e}); delete the directory to start over")))?;
            if let Some(diff) = first_difference(&old, settings) {
                return Err(EvalError::Mismatch { dir: dir.to_path_buf(), setting: diff.0, was: diff.1, now: diff.2 });
            }
        } else {
            write_atomic(&run_json, &serde_json::to_vec_pretty(settings).expect("JSON"))?;
        }
        let path = dir.join("samples.jsonl");
        let mut records = Vec::new();
        if path.exists() {
            let text = std::fs::read(&path).map_err(|e| bad(&path, e.to_string()))?;
            let text = String::from_utf8_lossy(&text);
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let mut good_len = 0usize;
            let mut seen = HashSet::new();
            for (i, line) in lines.iter().enumerate() {
                let parsed = if line.ends_with('\n') {
                    serde_json::from_str::<Record>(line.trim_end()).map_err(|e| e.to_string())
                } else {
                    Err("no newline at the end (torn write)".into())
                };
                match parsed {
                    Ok(r) => {
                        good_len += line.len();
                        if seen.insert((r.task_id.clone(), r.sample)) {
                            records.push(r);
                        }
                    }
                    Err(e) if i + 1 == lines.len() => {
                        tracing::warn!(file = %path.display(), line = i + 1, error = %e, "dropping a torn last line; that sample is redone");
                    }
                    Err(e) => {
                        return Err(bad(&path, format!("line {}: {e} (not a sample record; delete the directory to start over)", i + 1)))
                    }
                }
            }
            if good_len < text.len() {
                let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| bad(&path, e.to_string()))?;
                f.set_len(good_len as u64).map_err(|e| bad(&path, e.to_string()))?;
            }
        }
        let samples = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| bad(&path, e.to_string()))?;
        Ok((Self { dir: dir.to_path_buf(), samples }, records))
    }

    /// Appends one record as a line and flushes it.
    pub fn append(&mut self, r: &Record) -> Result<(), EvalError> {
        let mut line = serde_json::to_string(r).expect("JSON");
        line.push('\n');
        self.samples
            .write_all(line.as_bytes())
            .and_then(|_| self.samples.flush())
            .map_err(|e| EvalError::Data { path: self.dir.join("samples.jsonl"), message: format!("cannot append: {e}") })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The first top-level key whose value differs: (key, old, new).
fn first_difference(old: &Value, new: &Value) -> Option<(String, String, String)> {
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else {
        return (old != new).then(|| ("settings".into(), old.to_string(), new.to_string()));
    };
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .find(|k| a.get(*k) != b.get(*k))
        .map(|k| (k.clone(), a.get(k).map_or("(unset)".into(), |v| v.to_string()), b.get(k).map_or("(unset)".into(), |v| v.to_string())))
}

/// Writes `path` atomically ([`kiln_base::fs::write_atomic`]: a temporary file beside it, fsync,
/// then a rename). Errors name `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    kiln_base::fs::write_atomic(path, bytes)
        .map_err(|e| EvalError::Data { path: path.to_path_buf(), message: format!("cannot write: {}", e.source) })
}

/// Scores of a set of samples (all languages, or one).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Scores {
    /// Problems with at least one sample.
    pub problems: usize,
    /// Samples.
    pub samples: usize,
    /// Samples that passed.
    pub passed: usize,
    /// Samples that timed out.
    pub timed_out: usize,
    /// Samples without a completion.
    pub generation_errors: usize,
    /// `pass@k` for k in {1, 10, 100} where every problem has at least k samples.
    pub pass_at_k: BTreeMap<String, f64>,
    /// Fraction of samples matching the reference exactly, where the benchmark scores it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<f64>,
}

/// The scores of `records`, overall and per language.
pub fn summarize(records: &[Record]) -> (Scores, BTreeMap<String, Scores>) {
    let mut langs: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in records {
        langs.entry(r.language.clone()).or_default().push(r);
    }
    let all: Vec<&Record> = records.iter().collect();
    (scores(&all), langs.into_iter().map(|(l, rs)| (l, scores(&rs))).collect())
}

fn scores(records: &[&Record]) -> Scores {
    let mut per: HashMap<&str, (usize, usize)> = HashMap::new();
    for r in records {
        let e = per.entry(r.task_id.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(r.passed);
    }
    let min_n = per.values().map(|v| v.0).min().unwrap_or(0);
    let mut pass_at = BTreeMap::new();
    for k in [1usize, 10, 100] {
        if min_n >= k {
            let mean = per.values().map(|&(n, c)| pass_at_k(n, c, k).unwrap_or(0.0)).sum::<f64>() / per.len() as f64;
            pass_at.insert(format!("pass@{k}"), mean);
        }
    }
    let em: Vec<bool> = records.iter().filter_map(|r| r.exact_match).collect();
    Scores {
        problems: per.len(),
        samples: records.len(),
        passed: records.iter().filter(|r| r.passed).count(),
        timed_out: records.iter().filter(|r| r.status == Status::TimedOut).count(),
        generation_errors: records.iter().filter(|r| r.status == Status::NoCompletion).count(),
        pass_at_k: pass_at,
        exact_match: (!em.is_empty()).then(|| em.iter().filter(|x| **x).count() as f64 / em.len() as f64),
    }
}

/// A Markdown table: one row per language, plus an "all" row when there are several.
pub fn markdown(benchmark: &str, all: &Scores, per_language: &BTreeMap<String, Scores>) -> String {
    let ks: Vec<&String> = all.pass_at_k.keys().collect();
    let em = all.exact_match.is_some();
    let mut s = format!(
        "| benchmark | language | problems | samples | {}{} | timed out | no completion |\n",
        ks.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" | "),
        if em { " | exact match" } else { "" }
    );
    s.push_str(&format!("|---|---|---|---|{}{}---|---|\n", "---|".repeat(ks.len()), if em { "---|" } else { "" }));
    let mut row = |lang: &str, sc: &Scores| {
        let pk: Vec<String> = ks.iter().map(|k| sc.pass_at_k.get(*k).map_or("–".into(), |v| format!("{:.1}%", 100.0 * v))).collect();
        let e = if em { format!(" | {}", sc.exact_match.map_or("–".into(), |v| format!("{:.1}%", 100.0 * v))) } else { String::new() };
        s.push_str(&format!(
            "| {benchmark} | {lang} | {} | {} | {}{e} | {} | {} |\n",
            sc.problems,
            sc.samples,
            pk.join(" | "),
            sc.timed_out,
            sc.generation_errors
        ));
    };
    for (lang, sc) in per_language {
        row(lang, sc);
    }
    if per_language.len() > 1 {
        row("all", all);
    }
    s
}

/// One sample to score: its task, its index, and its completion or why there is none.
pub type Pending<'t> = (&'t Task, usize, Result<String, String>);

/// Scores `items` with `workers` programs at once, calling `done` (on the calling thread, in
/// completion order) with each record as soon as it is scored, so it can be saved at once.
pub fn score_many(
    items: Vec<Pending<'_>>,
    workers: usize,
    limits: &Limits,
    isolation: Isolation,
    mut done: impl FnMut(Record) -> Result<(), EvalError>,
) -> Result<(), EvalError> {
    use rayon::prelude::*;
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(workers.max(1)).build().map_err(|e| EvalError::Exec(std::io::Error::other(e)))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(move || {
            pool.install(|| {
                items.into_par_iter().for_each_with(tx, |tx, (task, sample, completion)| {
                    let _ = tx.send(score(task, sample, completion, limits, isolation));
                })
            })
        });
        // The sender is dropped when every item is scored; an error stops saving, and the
        // remaining results are drained so the scorer threads can finish.
        let mut first_err = None;
        for r in rx {
            if first_err.is_none() {
                if let Err(e) = r.and_then(&mut done) {
                    first_err = Some(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    })
}
