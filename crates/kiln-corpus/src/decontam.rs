//! Benchmark decontamination (paper §2.4; spec §2.7; data-pipeline.md §3).
//!
//! In: benchmark tasks ([`Benchmarks`]: HumanEval prompts, canonical solutions and tests; MBPP
//! questions, code and test asserts) and sample texts. Out: for a contaminated sample, the
//! benchmark task ids it overlaps ([`Contamination`]); `None` for a clean one.
//!
//! Rules (the paper's, with one measured change): a sample sharing **10-grams** with a benchmark
//! string is contaminated (the paper: any one; kiln by default: at least 25 % of that string's
//! 10-grams, see *Shared idioms* below); a benchmark string of **3 to 9 grams** is matched
//! **exactly** (as a substring) instead.
//!
//! **Grams are word tokens**: maximal runs of alphanumeric/`_` characters, lower-cased, the same
//! tokens as near-dedup ([`crate::dedup::tokens`]). Why not whitespace-separated words: code is
//! written with free spacing (`a+b` / `a + b`, MBPP's `\r\n` and tabs), and a whitespace token
//! glues punctuation to names (`range(len(arr)):`), so a copy that was merely reformatted would
//! escape. Lower-casing follows BigCode's decontamination, which compares lower-cased text. The
//! cost is that word grams drop punctuation and so are less specific, which the two guards below
//! address. N-grams are stored as 64-bit hashes (xxh3 of the token hashes); with ~50 k benchmark
//! n-grams a chance match needs ~10^14 sample n-grams, so hashes are not verified.
//!
//! **Exact matching of short strings** is on text with every whitespace run collapsed to one space
//! and trimmed (on both sides), case-sensitive, so `assert count_ways(2) == 3` matches however it is
//! indented; strings with fewer than 3 word tokens are ignored.
//!
//! **Boilerplate, the false-positive risk, and the choices made** (all configurable in
//! [`DecontamConfig`]):
//! * *Template n-grams.* Many 10-grams are shared by many benchmark tasks and say nothing about any
//!   one of them: HumanEval's test harness (`METADATA = {'author': 'jt', 'dataset': 'test'} def
//!   check(candidate): assert candidate`, 29 tasks; "check some edge cases that are easy to work
//!   out by hand", 88 tasks) and number runs such as `1, 2, 3, 4, 5, 6, 7, 8, 9, 10` (30 tasks),
//!   which also occur in ordinary code and data. An n-gram found in more than
//!   [`DecontamConfig::max_task_df`] (default 2) distinct tasks is dropped from the index. A real
//!   copy of a task still matches through its task-specific n-grams, so this costs almost no
//!   recall. Across HumanEval + MBPP (~50 k distinct 10-grams) it drops about 380.
//! * *Literal n-grams* (every token digits only or a single character: array literals, tables of
//!   constants, `['a', 'b', 'c', ...]`, `r'r' * 10`) are not indexed either
//!   ([`DecontamConfig::skip_numeric_ngrams`]), for the same reason. Measured on the python3.11
//!   standard library (1814 files, file-level decontamination): with all-number n-grams only
//!   skipped, 22 files were dropped, all false positives; 8 of them only through letter runs
//!   (`a b c d e f g h i j` from MBPP/265, 732, 696 test asserts, `r r r ...` of MBPP/810).
//!   Skipping single-character tokens too removes those: 14 files dropped.
//! * *Shared idioms.* The 14 left matched a few n-grams of a long benchmark string: `def
//!   __init__(self, a, b): self.a = a; self.b = b` (3 of MBPP/601's solution n-grams),
//!   `{'one': 1, 'two': 2, ...}` (HumanEval/19), `for i in range(n) for j in range(n)`. A copy of
//!   a benchmark string holds most of its n-grams; an idiom holds a few. So a string counts as
//!   present only when a sample holds at least [`DecontamConfig::min_coverage`] (default 0.25) of
//!   its indexed n-grams (at least one). Measured on the same stdlib: coverage 0 (the paper's
//!   literal "any 10-gram") 14 files; 0.05: 9; 0.10: 4; 0.15: 1 (`collections/__init__.py`,
//!   whose `Counter.elements` docstring MBPP/810's question was copied from); 0.25: none. A pasted
//!   prompt, solution or test matches ~100 % of its n-grams, so recall is kept for copies, and
//!   lightly edited copies keep well over a quarter.
//! * *Short solutions.* HumanEval's shortest canonical solutions are idioms (`return x + y`,
//!   `return len(string)`, `return sorted(list(set(l)))`); an exact match on them would remove
//!   ordinary code everywhere. BigCode whitelists such strings (`HUMAN_EVAL_STRINGS_OK`); kiln
//!   does not match solutions under 10 grams at all ([`DecontamConfig::match_short_solutions`]
//!   = false). Short prompts, questions and test asserts (which name the task's function and its
//!   expected values) are matched.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::dedup::{self, hash_window, tokens};

/// Errors loading benchmark data.
#[derive(Debug, thiserror::Error)]
pub enum DecontamError {
    /// A benchmark file could not be read.
    #[error("cannot read benchmark file {path}: {source} (a benchmarks directory holds humaneval/HumanEval.jsonl.gz and mbpp/mbpp.jsonl, like the repository's data/benchmarks; leave --benchmarks out to use the copy built into kiln)")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not the expected JSON record.
    #[error("{path}:{line}: not a {kind} record: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// `HumanEval` or `MBPP`.
        kind: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// What part of a task a benchmark string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// HumanEval prompt or MBPP question text.
    Prompt,
    /// HumanEval canonical solution or MBPP reference code.
    Solution,
    /// HumanEval test code or one MBPP test assert.
    Test,
}

/// One benchmark string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchmarkText {
    /// Task id, e.g. `HumanEval/0` or `MBPP/11`.
    pub task: String,
    /// Which part of the task.
    pub field: Field,
    /// The text.
    pub text: String,
}

/// A set of benchmark strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Benchmarks {
    /// All strings, in load order.
    pub texts: Vec<BenchmarkText>,
}

fn open(path: &Path) -> Result<Box<dyn BufRead>, DecontamError> {
    let io = |source| DecontamError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    Ok(reader(path, file))
}

/// Lines of `raw`, gunzipped when `name` ends in `.gz`.
fn reader(name: &Path, raw: impl Read + 'static) -> Box<dyn BufRead> {
    let raw: Box<dyn Read> =
        if name.extension().is_some_and(|e| e == "gz") { Box::new(flate2::read::GzDecoder::new(raw)) } else { Box::new(raw) };
    Box::new(BufReader::new(raw))
}

/// Calls `f` on each non-empty JSON line of `lines` (read from `path`, which errors name) with
/// its 1-based number.
fn for_each_record(
    path: &Path,
    lines: Box<dyn BufRead>,
    kind: &'static str,
    mut f: impl FnMut(usize, serde_json::Value) -> Result<(), String>,
) -> Result<(), DecontamError> {
    for (i, line) in lines.lines().enumerate() {
        let line = line.map_err(|source| DecontamError::Io { path: path.to_path_buf(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let rec = |message: String| DecontamError::Record { path: path.to_path_buf(), line: i + 1, kind, message };
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|e| rec(e.to_string()))?;
        f(i + 1, value).map_err(rec)?;
    }
    Ok(())
}

fn str_field<'a>(v: &'a serde_json::Value, key: &str) -> Result<&'a str, String> {
    v.get(key).and_then(|x| x.as_str()).ok_or_else(|| format!("missing string field `{key}`"))
}

impl Benchmarks {
    /// Adds HumanEval (`task_id`, `prompt`, `canonical_solution`, `test`) from a `.jsonl` or
    /// `.jsonl.gz` file.
    pub fn add_humaneval(&mut self, path: &Path) -> Result<usize, DecontamError> {
        self.add_humaneval_lines(path, open(path)?)
    }

    fn add_humaneval_lines(&mut self, path: &Path, lines: Box<dyn BufRead>) -> Result<usize, DecontamError> {
        let before = self.texts.len();
        for_each_record(path, lines, "HumanEval", |_, v| {
            let task = str_field(&v, "task_id")?.to_string();
            for (key, field) in [("prompt", Field::Prompt), ("canonical_solution", Field::Solution), ("test", Field::Test)] {
                self.texts.push(BenchmarkText { task: task.clone(), field, text: str_field(&v, key)?.to_string() });
            }
            Ok(())
        })?;
        Ok((self.texts.len() - before) / 3)
    }

    /// Adds MBPP (`task_id` number, `text`, `code`, `test_list`) from a `.jsonl` file; each test
    /// assert is its own string. Task ids become `MBPP/<n>`.
    pub fn add_mbpp(&mut self, path: &Path) -> Result<usize, DecontamError> {
        self.add_mbpp_lines(path, open(path)?)
    }

    fn add_mbpp_lines(&mut self, path: &Path, lines: Box<dyn BufRead>) -> Result<usize, DecontamError> {
        let mut tasks = 0;
        for_each_record(path, lines, "MBPP", |_, v| {
            let id = v.get("task_id").and_then(|x| x.as_u64()).ok_or("missing numeric field `task_id`")?;
            let task = format!("MBPP/{id}");
            self.texts.push(BenchmarkText { task: task.clone(), field: Field::Prompt, text: str_field(&v, "text")?.into() });
            self.texts.push(BenchmarkText { task: task.clone(), field: Field::Solution, text: str_field(&v, "code")?.into() });
            let tests = v.get("test_list").and_then(|x| x.as_array()).ok_or("missing array field `test_list`")?;
            for t in tests {
                let text = t.as_str().ok_or("`test_list` holds a non-string")?.to_string();
                self.texts.push(BenchmarkText { task: task.clone(), field: Field::Test, text });
            }
            tasks += 1;
            Ok(())
        })?;
        Ok(tasks)
    }

    /// Loads `dir/humaneval/HumanEval.jsonl.gz` and `dir/mbpp/mbpp.jsonl` (the layout of the
    /// repository's `data/benchmarks`).
    pub fn load_dir(dir: &Path) -> Result<Benchmarks, DecontamError> {
        let mut b = Benchmarks::default();
        let he = b.add_humaneval(&dir.join("humaneval/HumanEval.jsonl.gz"))?;
        let mb = b.add_mbpp(&dir.join("mbpp/mbpp.jsonl"))?;
        tracing::info!(humaneval = he, mbpp = mb, dir = %dir.display(), "loaded benchmarks");
        Ok(b)
    }

    /// HumanEval and MBPP as shipped inside kiln (kiln-benchdata): what decontamination uses
    /// unless a directory is given.
    pub fn bundled() -> Result<Benchmarks, DecontamError> {
        let mut b = Benchmarks::default();
        let (he, mb) = (kiln_benchdata::HUMANEVAL, kiln_benchdata::MBPP);
        let (he_name, mb_name) = (PathBuf::from(he.label()), PathBuf::from(mb.label()));
        let he = b.add_humaneval_lines(&he_name, reader(&he_name, he.bytes))?;
        let mb = b.add_mbpp_lines(&mb_name, reader(&mb_name, mb.bytes))?;
        tracing::info!(humaneval = he, mbpp = mb, "loaded the bundled benchmarks");
        Ok(b)
    }
}

/// Where the decontamination benchmarks come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchmarkSource {
    /// HumanEval and MBPP shipped inside kiln ([`Benchmarks::bundled`]).
    Bundled,
    /// A directory with `humaneval/HumanEval.jsonl.gz` and `mbpp/mbpp.jsonl`.
    Dir(PathBuf),
}

impl BenchmarkSource {
    /// Loads the benchmarks.
    pub fn load(&self) -> Result<Benchmarks, DecontamError> {
        match self {
            BenchmarkSource::Bundled => Benchmarks::bundled(),
            BenchmarkSource::Dir(dir) => Benchmarks::load_dir(dir),
        }
    }

    /// How manifests and fingerprints name it: `bundled` or the directory.
    pub fn label(&self) -> String {
        match self {
            BenchmarkSource::Bundled => "bundled".into(),
            BenchmarkSource::Dir(dir) => dir.display().to_string(),
        }
    }
}

/// Decontamination settings; `Default` is the paper's rule plus the guards in the module doc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecontamConfig {
    /// n of the n-grams (paper: 10).
    pub n: usize,
    /// Benchmark strings with `min_short..n` grams are matched exactly (paper: 3).
    pub min_short: usize,
    /// Drop index n-grams found in more than this many distinct tasks (template text). `usize::MAX`
    /// disables the guard.
    pub max_task_df: usize,
    /// Do not index n-grams made only of literals: numbers and single characters.
    pub skip_numeric_ngrams: bool,
    /// Also match solutions shorter than `n` grams exactly (off: they are common idioms).
    pub match_short_solutions: bool,
    /// A benchmark string counts as present in a sample when the sample holds at least this share
    /// of the string's indexed n-grams (at least one). `0.0` is the paper's literal rule: any
    /// shared n-gram.
    #[serde(default = "default_min_coverage")]
    pub min_coverage: f64,
}

fn default_min_coverage() -> f64 {
    DecontamConfig::default().min_coverage
}

impl Default for DecontamConfig {
    fn default() -> Self {
        DecontamConfig { n: 10, min_short: 3, max_task_df: 2, skip_numeric_ngrams: true, match_short_solutions: false, min_coverage: 0.25 }
    }
}

/// Why a sample is contaminated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contamination {
    /// Benchmark task ids matched, sorted.
    pub tasks: Vec<String>,
    /// How many of the sample's n-grams are in the index.
    pub ngram_hits: usize,
    /// How many short benchmark strings occur in the sample.
    pub exact_hits: usize,
}

/// The n-gram index and short-string matcher built from [`Benchmarks`].
#[derive(Debug, Clone)]
pub struct DecontamIndex {
    n: usize,
    tasks: Vec<String>,
    /// N-gram hash → the benchmark strings (indices into `strings`) that contain it.
    ngrams: HashMap<u64, Vec<u32>>,
    /// Per benchmark string with n-grams: its task, and how many distinct indexed n-grams a
    /// sample must share with it to count as containing it.
    strings: Vec<(u32, u32)>,
    short: Option<AhoCorasick>,
    /// Per short pattern, the tasks it comes from.
    short_tasks: Vec<Vec<u32>>,
}

/// Collapses whitespace runs to one space and trims.
fn squash_ws(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn token_hashes(text: &str) -> Vec<(u64, bool)> {
    tokens(text).map(|t| (xxh3_64(t.as_bytes()), t.chars().count() <= 1 || t.bytes().all(|b| b.is_ascii_digit()))).collect()
}

impl DecontamIndex {
    /// Builds the index.
    pub fn build(bench: &Benchmarks, cfg: &DecontamConfig) -> DecontamIndex {
        let n = cfg.n.max(1);
        let mut task_ids: HashMap<&str, u32> = HashMap::new();
        let mut tasks: Vec<String> = Vec::new();
        // String index → its task; n-gram → string indices.
        let mut string_task: Vec<u32> = Vec::new();
        let mut ngrams: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut short: HashMap<String, Vec<u32>> = HashMap::new();
        for bt in &bench.texts {
            let tid = *task_ids.entry(&bt.task).or_insert_with(|| {
                tasks.push(bt.task.clone());
                (tasks.len() - 1) as u32
            });
            let toks = token_hashes(&bt.text);
            if toks.len() >= n {
                let sid = string_task.len() as u32;
                string_task.push(tid);
                let hashes: Vec<u64> = toks.iter().map(|t| t.0).collect();
                for (w, win) in toks.windows(n).zip(hashes.windows(n)) {
                    if cfg.skip_numeric_ngrams && w.iter().all(|t| t.1) {
                        continue;
                    }
                    let e = ngrams.entry(hash_window(win)).or_default();
                    if !e.contains(&sid) {
                        e.push(sid);
                    }
                }
            } else if toks.len() >= cfg.min_short && (bt.field != Field::Solution || cfg.match_short_solutions) {
                let e = short.entry(squash_ws(&bt.text)).or_default();
                if !e.contains(&tid) {
                    e.push(tid);
                }
            }
        }
        let before = ngrams.len();
        ngrams.retain(|_, sids| {
            let mut ts: Vec<u32> = sids.iter().map(|&s| string_task[s as usize]).collect();
            ts.sort_unstable();
            ts.dedup();
            ts.len() <= cfg.max_task_df
        });
        // Each string's threshold, from the n-grams it kept after the template guard.
        let mut kept = vec![0u32; string_task.len()];
        for sids in ngrams.values() {
            for &s in sids {
                kept[s as usize] += 1;
            }
        }
        let strings: Vec<(u32, u32)> = string_task
            .iter()
            .zip(&kept)
            .map(|(&t, &k)| (t, ((cfg.min_coverage.clamp(0.0, 1.0) * k as f64).ceil() as u32).max(1)))
            .collect();
        let mut short: Vec<(String, Vec<u32>)> = short.into_iter().collect();
        short.sort(); // deterministic pattern ids
        let (patterns, short_tasks): (Vec<String>, Vec<Vec<u32>>) = short.into_iter().unzip();
        let matcher = if patterns.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(&patterns).expect("a few thousand short literal patterns fit the automaton"))
        };
        tracing::info!(
            tasks = tasks.len(),
            ngrams = ngrams.len(),
            template_ngrams_dropped = before - ngrams.len(),
            short_strings = patterns.len(),
            "decontamination index built"
        );
        DecontamIndex { n, tasks, ngrams, strings, short: matcher, short_tasks }
    }

    /// Number of distinct n-grams indexed.
    pub fn ngram_count(&self) -> usize {
        self.ngrams.len()
    }

    /// Number of short strings matched exactly.
    pub fn short_count(&self) -> usize {
        self.short_tasks.len()
    }

    /// What matches in `text`, for diagnosis: each indexed n-gram found (its tokens joined by
    /// spaces) and each short string found, with the task ids it is indexed under, in text order.
    pub fn explain(&self, text: &str) -> Vec<(String, Vec<String>)> {
        let toks: Vec<String> = tokens(text).collect();
        let hashes: Vec<u64> = toks.iter().map(|t| xxh3_64(t.as_bytes())).collect();
        let names = |ts: &[u32]| ts.iter().map(|&t| self.tasks[t as usize].clone()).collect::<Vec<_>>();
        let mut out = Vec::new();
        for (i, w) in hashes.windows(self.n).enumerate() {
            if let Some(sids) = self.ngrams.get(&hash_window(w)) {
                let mut ts: Vec<u32> = sids.iter().map(|&s| self.strings[s as usize].0).collect();
                ts.dedup();
                out.push((toks[i..i + self.n].join(" "), names(&ts)));
            }
        }
        if let Some(ac) = &self.short {
            let squashed = squash_ws(text);
            for m in ac.find_overlapping_iter(&squashed) {
                out.push((squashed[m.range()].to_string(), names(&self.short_tasks[m.pattern().as_usize()])));
            }
        }
        out
    }

    /// Checks one sample; `None` if it is clean.
    pub fn check(&self, text: &str) -> Option<Contamination> {
        let mut hit: HashSet<u32> = HashSet::new();
        let mut ngram_hits = 0;
        let hashes: Vec<u64> = dedup::token_hashes(text);
        // Distinct n-grams found, then per benchmark string how many of its n-grams they cover.
        let mut found: HashSet<u64> = HashSet::new();
        for w in hashes.windows(self.n) {
            let h = hash_window(w);
            if self.ngrams.contains_key(&h) {
                ngram_hits += 1;
                found.insert(h);
            }
        }
        let mut covered: HashMap<u32, u32> = HashMap::new();
        for h in &found {
            for &s in &self.ngrams[h] {
                *covered.entry(s).or_default() += 1;
            }
        }
        hit.extend(covered.into_iter().filter(|&(s, c)| c >= self.strings[s as usize].1).map(|(s, _)| self.strings[s as usize].0));
        let mut exact_hits = 0;
        if let Some(ac) = &self.short {
            for m in ac.find_overlapping_iter(&squash_ws(text)) {
                exact_hits += 1;
                hit.extend(&self.short_tasks[m.pattern().as_usize()]);
            }
        }
        if hit.is_empty() {
            return None;
        }
        let mut tasks: Vec<String> = hit.into_iter().map(|t| self.tasks[t as usize].clone()).collect();
        tasks.sort();
        Some(Contamination { tasks, ngram_hits, exact_hits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's `data/benchmarks` (committed: a missing file fails the test).
    fn shared_benchmarks() -> Option<Benchmarks> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks");
        Some(Benchmarks::load_dir(&dir).expect("the repository's benchmark files parse"))
    }

    #[test]
    fn bundled_benchmarks_are_the_repository_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks");
        let bundled = BenchmarkSource::Bundled.load().unwrap();
        assert_eq!(bundled, BenchmarkSource::Dir(dir).load().unwrap());
        assert_eq!(bundled.texts.iter().filter(|t| t.task.starts_with("MBPP/") && t.field == Field::Solution).count(), 974);
        assert_eq!(BenchmarkSource::Bundled.label(), "bundled");
        // A missing directory names the file it wanted and how to fix it.
        let e = BenchmarkSource::Dir("/nonexistent/bench".into()).load().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/bench/humaneval/HumanEval.jsonl.gz") && e.contains("--benchmarks"), "{e}");
    }

    fn task<'a>(b: &'a Benchmarks, id: &str, field: Field) -> &'a str {
        &b.texts.iter().find(|t| t.task == id && t.field == field).expect("task present").text
    }

    fn words(text: &str) -> Vec<String> {
        tokens(text).collect()
    }

    #[test]
    fn humaneval_solution_in_a_sample_is_reported_with_its_task_id() {
        let Some(b) = shared_benchmarks() else { return };
        assert_eq!(b.texts.iter().filter(|t| t.task.starts_with("HumanEval/")).count(), 164 * 3);
        let index = DecontamIndex::build(&b, &DecontamConfig::default());
        let solution = task(&b, "HumanEval/0", Field::Solution);
        let sample = format!("import sys\n\n\ndef close_pair(numbers, threshold):\n{solution}\n\nprint(close_pair([1.0], 0.5))\n");
        let c = index.check(&sample).expect("contaminated");
        assert_eq!(c.tasks, ["HumanEval/0"]);
        assert!(c.ngram_hits > 0);
        // HumanEval/20 (find_closest_elements) has the same double loop
        // `for idx, elem in enumerate(numbers): for idx2, elem2 in enumerate(numbers): if idx != idx2`,
        // so the sample shares a few of its 10-grams too: reported only under the paper's literal
        // any-10-gram rule, not at the default coverage.
        let literal = DecontamIndex::build(&b, &DecontamConfig { min_coverage: 0.0, ..DecontamConfig::default() });
        assert_eq!(literal.check(&sample).unwrap().tasks, ["HumanEval/0", "HumanEval/20"]);
        // Reformatting does not hide it (word grams ignore spacing and case).
        let squeezed = sample.replace(", ", ",").replace(" = ", "=").replace("return True", "return  True");
        assert!(index.check(&squeezed).expect("still contaminated").tasks.contains(&"HumanEval/0".to_string()));
    }

    #[test]
    fn sharing_only_a_9_gram_with_mbpp_is_kept() {
        let Some(b) = shared_benchmarks() else { return };
        let index = DecontamIndex::build(&b, &DecontamConfig::default());
        // MBPP/1's code has `def min_cost(cost, m, n): tc = [[0 for x in range(C)] for x in range(R)]`.
        let code = words(task(&b, "MBPP/1", Field::Solution));
        let nine = ["tc", "0", "for", "x", "in", "range", "c", "for", "x"];
        assert!(code.windows(9).any(|w| w == nine), "MBPP/1 contains the 9-gram");
        // Same 9 grams; the gram before (`c` vs MBPP's `n`) and after (`_` vs `in`) differ.
        let sample = "def grid(rows, C):\n    tc = [[0 for x in range(C)] for x, _ in zip(rows, rows)]\n    return tc\n";
        assert_eq!(index.check(sample), None);
        // Kept even under the paper's literal any-10-gram rule...
        let literal = DecontamIndex::build(&b, &DecontamConfig { min_coverage: 0.0, ..DecontamConfig::default() });
        assert_eq!(literal.check(sample), None);
        // ...and the control: extend it to MBPP's 10th gram and that rule catches it.
        let ten = "def grid(C):\n    tc = [[0 for x in range(C)] for x in range(R)]\n    return tc\n";
        assert!(literal.check(ten).expect("10-gram shared").tasks.contains(&"MBPP/1".to_string()));
    }

    #[test]
    fn short_mbpp_asserts_match_exactly_and_short_solutions_do_not() {
        let Some(b) = shared_benchmarks() else { return };
        let index = DecontamIndex::build(&b, &DecontamConfig::default());
        // MBPP/5 test: `assert count_ways(2) == 3` (4 word grams): matched exactly, any spacing.
        let c = index.check("if __name__ == '__main__':\n        assert   count_ways(2) == 3\n").expect("short match");
        assert_eq!((c.tasks.as_slice(), c.exact_hits), (&["MBPP/5".to_string()][..], 1));
        // HumanEval/53's solution `return x + y` is an idiom: not matched.
        assert_eq!(index.check("def add(x, y):\n    return x + y\n"), None);
        // Template text shared by many tasks is not indexed: the HumanEval test preamble alone is clean.
        let preamble = "METADATA = {\n    'author': 'jt',\n    'dataset': 'test'\n}\n\n\ndef check(candidate):\n    assert candidate";
        assert_eq!(index.check(preamble), None);
        assert_eq!(index.check("x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]"), None);
        // Letter runs (MBPP/265's test list; observed in CPython's test/re_tests.py) are literal data.
        assert_eq!(index.check("('a|b|c|d|e|f|g|h|i|j|k|l|m', 'a b c d e f g h i j k l m', SUCCEED)"), None);
    }

    #[test]
    fn rules_on_synthetic_benchmarks() {
        let mut b = Benchmarks::default();
        let t = |task: &str, field, text: &str| BenchmarkText { task: task.into(), field, text: text.into() };
        b.texts = vec![
            t("A/1", Field::Prompt, "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda"),
            t("A/1", Field::Test, "assert foo(1) == 2"),
            t("A/2", Field::Solution, "return bar(x)"),
            t("A/2", Field::Prompt, "one two"),
        ];
        let cfg = DecontamConfig::default();
        let idx = DecontamIndex::build(&b, &cfg);
        assert_eq!((idx.ngram_count(), idx.short_count()), (2, 1));
        // 10 consecutive grams (in any case and punctuation) → contaminated; 9 → clean.
        assert!(idx.check("# Alpha, beta; gamma delta epsilon zeta eta theta iota KAPPA").is_some());
        assert_eq!(idx.check("alpha beta gamma delta epsilon zeta eta theta iota"), None);
        // Short strings: exact (whitespace-normalised, case-sensitive); 2-gram strings ignored.
        assert!(idx.check("x\n  assert foo(1)   == 2\n").is_some());
        assert_eq!(idx.check("assert FOO(1) == 2"), None);
        assert_eq!(idx.check("one two three"), None);
        assert_eq!(idx.check("return bar(x)"), None, "short solutions are not matched by default");
        let all = DecontamIndex::build(&b, &DecontamConfig { match_short_solutions: true, ..cfg.clone() });
        assert_eq!(all.check("return bar(x)").unwrap().tasks, ["A/2"]);
    }

    /// `min_coverage`: one shared 10-gram of a 40-gram solution is boilerplate at the default
    /// (1 of 31 n-grams < 25 %) but contamination under the paper's literal rule; a quarter of the
    /// solution is contamination either way.
    #[test]
    fn coverage_threshold_separates_shared_idioms_from_copies() {
        let words: Vec<String> = (0..40).map(|i| format!("w{i}x")).collect();
        let b = Benchmarks { texts: vec![BenchmarkText { task: "A/1".into(), field: Field::Solution, text: words.join(" ") }] };
        let default = DecontamIndex::build(&b, &DecontamConfig::default());
        let literal = DecontamIndex::build(&b, &DecontamConfig { min_coverage: 0.0, ..DecontamConfig::default() });
        assert_eq!(default.ngram_count(), 31);
        let one_gram = words[5..15].join(" ");
        assert_eq!(default.check(&one_gram), None);
        assert_eq!(literal.check(&one_gram).unwrap().tasks, ["A/1"]);
        // ceil(0.25 · 31) = 8 n-grams = 17 consecutive words: contaminated; 16 words (7): clean.
        assert_eq!(default.check(&words[3..20].join(" ")).unwrap().tasks, ["A/1"]);
        assert_eq!(default.check(&words[3..19].join(" ")), None);
        assert!(default.check(&words.join(" ")).is_some());
    }

    #[test]
    fn bad_benchmark_files_name_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("kiln-decontam-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.jsonl");
        std::fs::write(&p, "{\"task_id\": 1, \"text\": \"q\", \"code\": \"c\", \"test_list\": []}\n{\"task_id\": 2}\n").unwrap();
        let err = Benchmarks::default().add_mbpp(&p).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl:2") && err.contains("`text`"), "{err}");
        let missing = Benchmarks::default().add_humaneval(&dir.join("nope.jsonl.gz")).unwrap_err().to_string();
        assert!(missing.contains("nope.jsonl.gz"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
