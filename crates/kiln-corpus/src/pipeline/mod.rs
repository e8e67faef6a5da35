//! `kiln corpus build`: repositories in, Parquet shards and a manifest out.
//!
//! **Stages.** Per input: ingest ([`kiln_repo::ingest`]) → rule filters + quality screen per
//! file (a counter per [`DropReason`]; imports from [`kiln_repo::scan`], with or without the
//! screen, so the screen changes which files stay but not the order of the rest) → dependency graph and
//! Algorithm 1 order per repository
//! ([`kiln_repo::graph`]) → samples rendered with path comments ([`kiln_repo::render`]), per-file
//! byte spans recorded → MinHash signature (kept as LSH band keys). Decontamination drops
//! matching files before samples are formed (default), or with
//! [`crate::config::DecontamUnit::Sample`] checks each sample and drops it after dedup. Then,
//! globally: exact dedup (content hash) → near dedup (LSH bands, union-find, smallest id kept) →
//! (sample-level decontamination) → Parquet shards → `manifest.json`.
//!
//! **Samples and the paper's dedup split.** Each weakly connected component of a repository's
//! import graph is ordered by Algorithm 1. Its Python/Java/C#/C/C++ files form one repository
//! sample; every file of another language is a sample on its own (the paper concatenated and
//! near-deduplicated at repository level only for those five languages, DeepSeek-Coder issue
//! #43). So every sample is exactly one near-dedup unit of [`crate::dedup::dedup_unit`].
//! [`CorpusConfig::concat_all_languages`] keeps whole components instead.
//!
//! **Tasks.** The sorted input list is split round-robin into N tasks (task `i` takes inputs
//! `i, i+N, i+2N, ...`). A task reads only its inputs and writes only
//! `tasks/task-I-of-N.parquet` and finally `tasks/task-I-of-N.done`, its counts inside (both atomic, see
//! [`crate::shard::AtomicFile`]), so tasks can run anywhere (a Slurm array, a Kubernetes Indexed
//! Job: `--task i --tasks N`) and a rerun skips every task whose marker exists (resume). The merge
//! reads all task files and writes `shard-NNNNN.parquet` and, last, `manifest.json`: the manifest
//! is the commit point; a merge that dies before it leaves no manifest, and the next merge deletes
//! the stray shards and starts over (the merge is deterministic, so redoing it is safe). A
//! process killed mid-write leaves a hidden `.NAME.tmp-PID` file that is never read; it is not
//! deleted automatically, because under a job array it may belong to a task still running.
//!
//! **Determinism.** Sample ids depend only on the repository name and the sample's file paths,
//! dedup keeps the smallest `(id, input, seq)` of each cluster, and the merge emits samples in
//! input order: the output does not depend on the number of tasks, threads, or on resumption.
//!
//! **Memory.** A task holds one repository (at most `IngestOptions::max_total_bytes`, 1 GiB by
//! default; typical repositories are megabytes) plus its rendered samples. The merge keeps, in
//! memory, every candidate's id, content hash, LSH band keys and contamination ids (~250 bytes per
//! sample with 13 bands: 100 M samples ≈ 25 GB; beyond that, split the band keys into bucket
//! files as datatrove does), and streams text: at most two decoded batches (1024 rows each) per
//! task file being read, the row group being gathered (slices of those batches) and, with T
//! threads, up to T row groups being encoded at once (each at most
//! [`crate::shard::ROW_GROUP_TEXT_BYTES`] of text plus its encoded pages), so text memory is
//! bounded by the batch and row-group sizes, not by the corpus.
//!
//! **Files.** `plan.rs`: the plan and the task split; `task.rs`: one task (ingest to candidate
//! file and marker); `merge.rs`: the global dedup and decontamination, the shards, the manifest;
//! `inspect.rs`: reading a finished corpus. This file drives them ([`build`]).

mod inspect;
mod merge;
mod plan;
mod task;

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use tracing::info;

use crate::decontam::DecontamIndex;
use crate::error::{io_err, CorpusError, Result};
use crate::manifest::Manifest;
use crate::shard::AtomicFile;

pub use inspect::inspect;
pub use merge::{merge, sha256_file};
pub use plan::{default_tasks, list_inputs, BuildPlan};
pub use task::{file_spans, run_task, sample_id, TaskStatus};

use task::run_task_observed;

/// What [`build`] did.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The manifest written.
    pub manifest: Manifest,
    /// Tasks run in this call.
    pub tasks_run: usize,
    /// Tasks found finished and reused.
    pub tasks_reused: usize,
}

fn load_index(plan: &BuildPlan) -> Result<Option<DecontamIndex>> {
    match &plan.benchmarks {
        None => Ok(None),
        Some(source) => {
            let b = source.load()?;
            Ok(Some(DecontamIndex::build(&b, &plan.config.decontam)))
        }
    }
}

fn prepare_out(plan: &BuildPlan) -> Result<()> {
    std::fs::create_dir_all(plan.tasks_dir()).map_err(io_err(plan.tasks_dir()))?;
    // The resolved config beside the output, as the conventions ask.
    let cfg = serde_json::to_vec_pretty(&plan.config).expect("config serialises");
    AtomicFile::write_all_to(&plan.out.join("config.json"), &cfg)
}

/// Hears how a [`build`] advances, from any of its worker threads: for a progress display.
/// (Libraries log with `tracing`; drawing is the binary's business.)
pub trait BuildObserver: Sync {
    /// A task finished (ran or was found done).
    fn task_finished(&self, _task: usize, _status: TaskStatus) {}
    /// One repository's bytes went through ingestion, filters, ordering and hashing.
    fn bytes_processed(&self, _bytes: u64) {}
}

/// The observer that ignores everything.
pub struct NoProgress;

impl BuildObserver for NoProgress {}

/// Runs every task (in parallel, skipping finished ones) and then the merge.
///
/// `abort_after_tasks` is a test hook: once that many tasks have finished in this call, no further
/// task starts and the call returns [`CorpusError::Aborted`] without merging (as if the process
/// had been killed between tasks). Pass `None` in normal use.
pub fn build(plan: &BuildPlan, abort_after_tasks: Option<usize>) -> Result<BuildOutcome> {
    build_observed(plan, abort_after_tasks, &NoProgress)
}

/// [`build`], reporting progress to `observer`.
pub fn build_observed(plan: &BuildPlan, abort_after_tasks: Option<usize>, observer: &dyn BuildObserver) -> Result<BuildOutcome> {
    prepare_out(plan)?;
    let index = load_index(plan)?;
    let done = AtomicUsize::new(0);
    let reused = AtomicUsize::new(0);
    info!(inputs = plan.inputs.len(), tasks = plan.tasks, out = %plan.out.display(), "corpus build");
    let results: Vec<Result<()>> = (0..plan.tasks)
        .into_par_iter()
        .map(|t| {
            if abort_after_tasks.is_some_and(|k| done.load(Ordering::SeqCst) >= k) {
                return Err(CorpusError::Aborted { completed: done.load(Ordering::SeqCst) });
            }
            let status = run_task_observed(plan, index.as_ref(), t, observer)?;
            observer.task_finished(t, status);
            match status {
                TaskStatus::Ran => {
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    info!(task = t, finished = n, tasks = plan.tasks, "task done");
                }
                TaskStatus::Reused => {
                    reused.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok(())
        })
        .collect();
    // A real error beats the abort hook's error in what is reported.
    let mut aborted = false;
    for r in results {
        match r {
            Err(CorpusError::Aborted { .. }) => aborted = true,
            Err(e) => return Err(e),
            Ok(()) => {}
        }
    }
    if aborted {
        return Err(CorpusError::Aborted { completed: done.load(Ordering::SeqCst) });
    }
    let manifest = merge(plan)?;
    Ok(BuildOutcome { manifest, tasks_run: done.into_inner(), tasks_reused: reused.into_inner() })
}

/// Runs one task alone (`--task i --tasks N`), loading the benchmarks itself.
pub fn run_single_task(plan: &BuildPlan, task: usize) -> Result<TaskStatus> {
    if task >= plan.tasks {
        return Err(CorpusError::Plan(format!("--task {task} is out of range for --tasks {} (tasks are numbered from 0)", plan.tasks)));
    }
    prepare_out(plan)?;
    let index = load_index(plan)?;
    run_task(plan, index.as_ref(), task)
}
