//! One task: read its inputs, filter, order and render each repository's files into samples,
//! fingerprint them, and write the task's candidate file and, last, its completion marker.

use kiln_repo::graph::{build_graph_from_facts, order};
use kiln_repo::imports::{file_syntax, FileFacts};
use kiln_repo::ingest::{ingest_path, IngestOptions};
use kiln_repo::render::{file_header, render_sample};
use kiln_repo::scan::scan;
use kiln_repo::{Repo, SourceFile};
use rayon::prelude::*;
use tracing::{info, warn};
use xxhash_rust::xxh3::xxh3_128;

use super::{BuildObserver, BuildPlan, NoProgress};
use crate::config::{CorpusConfig, DecontamUnit};
use crate::dataset::{is_dataset, read_dataset};
use crate::decontam::DecontamIndex;
use crate::dedup::{dedup_unit, DedupUnit, MinHasher};
use crate::error::{CorpusError, Result};
use crate::filters::{check_file, DropReason};
use crate::manifest::{ContaminationRecord, FailedInput, TaskMarker, TaskReport};
use crate::quality::check_quality;
use crate::shard::{AtomicFile, FileSpan, Sample, ShardWriter};

/// Whether a task ran or was reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// The task ran and wrote its outputs.
    Ran,
    /// The task's marker existed (same plan): nothing done.
    Reused,
}

/// Checks a task's completion marker: `Ok(true)` when it exists and matches the plan.
fn task_finished(plan: &BuildPlan, task: usize) -> Result<bool> {
    Ok(read_marker(plan, task)?.is_some())
}

/// The task's completion marker, if it exists and was made by this plan (a marker of another
/// config or input list is an error: the caller must not mix the two).
pub(super) fn read_marker(plan: &BuildPlan, task: usize) -> Result<Option<TaskMarker>> {
    let path = plan.task_path(task, "done");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CorpusError::Io { path, source: e }),
    };
    let marker: TaskMarker = serde_json::from_str(&text).map_err(|e| CorpusError::Manifest {
        path: path.clone(),
        message: format!("damaged completion marker: {e}; delete it to rerun the task"),
    })?;
    let stale = |what: &str| CorpusError::StaleTask { marker: path.clone(), tasks_dir: plan.tasks_dir(), what: what.into() };
    if marker.config != plan.fingerprint() {
        return Err(stale("config or benchmarks"));
    }
    if marker.report.inputs != plan.input_names(task) {
        return Err(stale("input list"));
    }
    Ok(Some(marker))
}

/// Runs task `task` of the plan unless its marker says it is done.
pub fn run_task(plan: &BuildPlan, index: Option<&DecontamIndex>, task: usize) -> Result<TaskStatus> {
    run_task_observed(plan, index, task, &NoProgress)
}

pub(super) fn run_task_observed(
    plan: &BuildPlan,
    index: Option<&DecontamIndex>,
    task: usize,
    observer: &dyn BuildObserver,
) -> Result<TaskStatus> {
    if task_finished(plan, task)? {
        info!(task, "task already finished; reused");
        return Ok(TaskStatus::Reused);
    }
    let cfg = &plan.config;
    let opts = IngestOptions { max_file_bytes: cfg.max_file_bytes, ..IngestOptions::default() };
    let hasher = MinHasher::from_params(&cfg.lsh);
    let mut report = TaskReport { task, tasks: plan.tasks, inputs: plan.input_names(task), ..TaskReport::default() };
    let pq_path = plan.task_path(task, "parquet");
    let mut writer = ShardWriter::new(AtomicFile::create(&pq_path)?, &pq_path, true)?;
    for (j, input) in plan.task_inputs(task) {
        let read = if is_dataset(input) {
            read_dataset(input, &opts)
                .map(|d| {
                    report.datasets += 1;
                    report.dataset_repos += d.repos.len() as u64;
                    if d.bad_records > 0 {
                        *report.ingest_skipped.entry("bad_record".into()).or_default() += d.bad_records;
                    }
                    d.repos
                })
                .map_err(|e| e.to_string())
        } else {
            ingest_path(input, &opts).map(|r| vec![r]).map_err(|e| e.to_string())
        };
        let repos = match read {
            Ok(r) => r,
            Err(e) => {
                warn!(input = %input.display(), error = %e, "input not read; counted as failed");
                report.failed.push(FailedInput { input: input.display().to_string(), error: e });
                continue;
            }
        };
        // `(input, seq)` identifies a sample within the run; a dataset input holds many repositories.
        let mut next_seq = 0u32;
        for (repo, summary) in repos {
            report.repos += 1;
            report.files_ingested += summary.files as u64;
            report.bytes_ingested += summary.bytes;
            let bytes = summary.bytes;
            for (reason, n) in &summary.skipped {
                *report.ingest_skipped.entry(reason.as_str().to_string()).or_default() += *n as u64;
            }
            if repo.files.is_empty() {
                report.empty_repos += 1;
                continue;
            }
            let samples = process_repo(repo, j as u32, next_seq, cfg, &hasher, index, &mut report);
            next_seq += samples.len() as u32;
            report.samples += samples.len() as u64;
            writer.write(&samples)?;
            observer.bytes_processed(bytes);
        }
    }
    writer.finish()?.commit()?;
    let marker = TaskMarker { config: plan.fingerprint(), report };
    // The marker is written last: its presence means the candidate file is complete.
    AtomicFile::write_all_to(&plan.task_path(task, "done"), &serde_json::to_vec_pretty(&marker).expect("marker serialises"))?;
    Ok(TaskStatus::Ran)
}

/// Filters, orders, renders and fingerprints one repository's files.
fn process_repo(
    repo: Repo,
    input: u32,
    first_seq: u32,
    cfg: &CorpusConfig,
    hasher: &MinHasher,
    index: Option<&DecontamIndex>,
    report: &mut TaskReport,
) -> Vec<Sample> {
    // Per file: the first rule that drops it, or the benchmark tasks it contains.
    let file_index = index.filter(|_| cfg.decontam_unit == DecontamUnit::File);
    // Imports always come from kiln-repo's parse-free scanner, as in `kiln repo` and serving: it
    // is identical to the tree-sitter query on every file that parses cleanly (kiln-repo's scan
    // tests; by hand over the python3 stdlib and the cargo registry) and reads statements as
    // written where error recovery would drop some. So the screen only decides which files stay,
    // never the order of the rest, and its parse is just the parse (running the import query on
    // the tree too cost ~10% of a default build: the parse is ~80% of it).
    let verdicts: Vec<std::result::Result<Option<FileFacts>, Drop>> = repo
        .files
        .par_iter()
        .map(|f| {
            check_file(f, &cfg.filters).map_err(Drop::Rule)?;
            if cfg.quality_screen {
                check_quality(f, &cfg.quality).map_err(Drop::Rule)?;
            }
            let facts = file_syntax(f).map(|s| scan(s, &f.text));
            if let Some(c) = file_index.and_then(|ix| ix.check(&f.text)) {
                return Err(Drop::Contaminated(c.tasks));
            }
            Ok(facts)
        })
        .collect();
    let mut kept = Vec::new();
    let mut kept_facts = Vec::new();
    for (f, v) in repo.files.into_iter().zip(verdicts) {
        match v {
            Ok(facts) => {
                kept.push(f);
                kept_facts.push(facts);
            }
            Err(Drop::Rule(reason)) => *report.files_dropped.entry(reason_name(reason)).or_default() += 1,
            Err(Drop::Contaminated(tasks)) => {
                *report.files_dropped.entry("contaminated".into()).or_default() += 1;
                report.contamination.push(ContaminationRecord {
                    sample: String::new(),
                    repo: repo.name.clone(),
                    path: Some(f.path),
                    tasks,
                });
            }
        }
    }
    report.files_kept += kept.len() as u64;
    let repo = Repo { name: repo.name, files: kept };
    if repo.files.is_empty() {
        return Vec::new();
    }
    let graph = build_graph_from_facts(&repo, &kept_facts);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for comp in order(&graph, cfg.order_seed) {
        if cfg.concat_all_languages {
            groups.push(comp);
            continue;
        }
        let (repo_level, single): (Vec<usize>, Vec<usize>) =
            comp.into_iter().partition(|&i| repo.files[i].language.is_some_and(|l| dedup_unit(l) == DedupUnit::RepoSample));
        if !repo_level.is_empty() {
            groups.push(repo_level);
        }
        groups.extend(single.into_iter().map(|i| vec![i]));
    }
    let mut samples: Vec<Sample> = groups
        .par_iter()
        .enumerate()
        .map(|(seq, files)| make_sample(&repo, files, input, first_seq + seq as u32, cfg, hasher, index))
        .collect();
    samples.sort_by_key(|s| s.seq);
    samples
}

/// Why process_repo drops a file.
enum Drop {
    Rule(DropReason),
    Contaminated(Vec<String>),
}

fn reason_name(r: DropReason) -> String {
    serde_json::to_value(r).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| format!("{r:?}"))
}

/// The stable id of a sample: repository name and file paths, nothing that depends on the run.
pub fn sample_id(repo: &str, paths: &[&str]) -> String {
    let mut key = String::from(repo);
    for p in paths {
        key.push('\n');
        key.push_str(p);
    }
    format!("{:032x}", xxh3_128(key.as_bytes()))
}

/// Byte spans of each file's text in `render_sample(repo, files)`, from the format documented
/// in [`kiln_repo::render`] (header line, text, `\n` appended when missing, one blank line
/// between files). `render_spans_match_render_sample` in the tests holds the two together.
pub fn file_spans(repo: &Repo, files: &[usize]) -> Vec<FileSpan> {
    let mut off = 0u64;
    let mut out = Vec::with_capacity(files.len());
    for (k, &i) in files.iter().enumerate() {
        let f: &SourceFile = &repo.files[i];
        if k > 0 {
            off += 1;
        }
        let start = off + file_header(f).len() as u64 + 1;
        let end = start + f.text.len() as u64;
        off = end + u64::from(!f.text.is_empty() && !f.text.ends_with('\n'));
        out.push(FileSpan { path: f.path.clone(), language: f.language.map(|l| l.name().to_string()), start, end });
    }
    out
}

fn make_sample(
    repo: &Repo,
    files: &[usize],
    input: u32,
    seq: u32,
    cfg: &CorpusConfig,
    hasher: &MinHasher,
    index: Option<&DecontamIndex>,
) -> Sample {
    let text = render_sample(repo, files);
    let spans = file_spans(repo, files);
    debug_assert!(spans.iter().zip(files).all(|(s, &i)| text[s.start as usize..s.end as usize] == repo.files[i].text));
    let paths: Vec<&str> = files.iter().map(|&i| repo.files[i].path.as_str()).collect();
    let mut languages: Vec<String> = spans.iter().filter_map(|s| s.language.clone()).collect();
    languages.sort();
    languages.dedup();
    let sig = hasher.signature(&text);
    let (b, r) = (cfg.lsh.bands, cfg.lsh.rows);
    // Only the band keys travel to the merge: 8 bytes per band instead of 8 per permutation.
    let bands = sig.band_keys(b, r);
    let contaminated_by = match index {
        Some(ix) if cfg.decontam_unit == DecontamUnit::Sample => ix.check(&text).map(|c| c.tasks).unwrap_or_default(),
        _ => Vec::new(),
    };
    Sample {
        id: sample_id(&repo.name, &paths),
        repo: repo.name.clone(),
        languages,
        content_hash: format!("{:032x}", xxh3_128(text.as_bytes())),
        text,
        files: spans,
        input,
        seq,
        bands,
        contaminated_by,
    }
}
