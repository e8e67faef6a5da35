//! The build plan: inputs listed and checked, the task count chosen (or resumed from the markers
//! on disk), and which inputs each task takes (round-robin).

use std::path::{Path, PathBuf};

use crate::config::CorpusConfig;
use crate::decontam::BenchmarkSource;
use crate::error::{CorpusError, Result};

/// A checked build plan: everything resolved before any heavy work starts.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// Repository paths, sorted and deduplicated.
    pub inputs: Vec<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// Resolved configuration.
    pub config: CorpusConfig,
    /// Benchmarks for decontamination (`None`: no decontamination).
    pub benchmarks: Option<BenchmarkSource>,
    /// Number of tasks the inputs are split into.
    pub tasks: usize,
}

/// Lists the repositories of `inputs`: each input itself, or with `repos_root` each input's
/// repositories ([`kiln_repo::ingest::list_repos_root`], nothing read yet). Sorted, deduplicated.
pub fn list_inputs(inputs: &[PathBuf], repos_root: bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if !input.exists() {
            return Err(CorpusError::Plan(format!("input {}: does not exist", input.display())));
        }
        if !repos_root {
            out.push(input.clone());
            continue;
        }
        out.extend(kiln_repo::ingest::list_repos_root(input).map_err(|e| CorpusError::Plan(e.to_string()))?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The task count a local build picks: four per worker thread (so uneven repositories still
/// balance), at least 16 (resume granularity), at most 256 and at most one per input.
///
/// Why not one task per input: each task writes a candidate file and a marker (creates, fsyncs,
/// renames, a Parquet writer and codec contexts) that the merge opens and reads again: ~4 ms of
/// a core per task on this project's reference machine. Over the 404 crates of a cargo
/// registry, 256 tasks took 4.8 s and 16 tasks 3.8 s for the same corpus.
pub fn default_tasks(inputs: usize, threads: usize) -> usize {
    (4 * threads).clamp(16, 256).min(inputs).max(1)
}

/// The `N` of the `task-I-of-N.done` markers in `out/tasks`, when there are markers and they
/// all have the same `N`: a rerun without `--tasks` resumes with the split that made them, even
/// on a machine whose default differs.
fn marker_task_count(out: &Path) -> Option<usize> {
    let mut seen = None;
    for entry in std::fs::read_dir(out.join("tasks")).ok()?.flatten() {
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".done"))
            .and_then(|n| n.rsplit_once("-of-"))
            .and_then(|(_, n)| n.parse::<usize>().ok())
        else {
            continue;
        };
        match seen {
            None => seen = Some(n),
            Some(m) if m != n => return None,
            _ => {}
        }
    }
    seen.filter(|&n| n > 0)
}

impl BuildPlan {
    /// Checks and resolves a plan. `tasks: None` resumes with the task count of the markers
    /// already in `OUT/tasks` when they all agree, and otherwise picks [`default_tasks`].
    pub fn new(
        inputs: Vec<PathBuf>,
        out: PathBuf,
        config: CorpusConfig,
        benchmarks: Option<BenchmarkSource>,
        tasks: Option<usize>,
    ) -> Result<BuildPlan> {
        if inputs.is_empty() {
            return Err(CorpusError::Plan("no input repositories (give paths, or --repos-root with a directory of repositories)".into()));
        }
        config.validate().map_err(|message| CorpusError::Config { path: "<resolved config>".into(), message })?;
        if tasks == Some(0) {
            return Err(CorpusError::Plan("--tasks must be at least 1".into()));
        }
        let tasks = tasks.or_else(|| marker_task_count(&out)).unwrap_or_else(|| default_tasks(inputs.len(), rayon::current_num_threads()));
        if let Some(BenchmarkSource::Dir(b)) = &benchmarks {
            if !b.is_dir() {
                return Err(CorpusError::Plan(format!(
                    "benchmarks directory {} does not exist (expected humaneval/HumanEval.jsonl.gz and mbpp/mbpp.jsonl inside; pass --benchmarks DIR)",
                    b.display()
                )));
            }
        }
        Ok(BuildPlan { inputs, out, config, benchmarks, tasks })
    }

    pub(super) fn tasks_dir(&self) -> PathBuf {
        self.out.join("tasks")
    }

    pub(super) fn task_path(&self, task: usize, ext: &str) -> PathBuf {
        self.tasks_dir().join(format!("task-{task:05}-of-{:05}.{ext}", self.tasks))
    }

    /// The inputs of `task`, with their global indices.
    pub fn task_inputs(&self, task: usize) -> Vec<(usize, &PathBuf)> {
        self.inputs.iter().enumerate().filter(|(j, _)| j % self.tasks == task).collect()
    }

    pub(super) fn fingerprint(&self) -> String {
        let bench = self.benchmarks.as_ref().map(BenchmarkSource::label).unwrap_or_else(|| "none".into());
        format!("{} benchmarks={bench}", self.config.fingerprint())
    }

    pub(super) fn input_names(&self, task: usize) -> Vec<String> {
        self.task_inputs(task).into_iter().map(|(_, p)| p.display().to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_task_count_is_four_per_thread_within_16_to_256_and_the_inputs() {
        assert_eq!(default_tasks(404, 1), 16);
        assert_eq!(default_tasks(404, 2), 16);
        assert_eq!(default_tasks(404, 8), 32);
        assert_eq!(default_tasks(404, 128), 256);
        assert_eq!(default_tasks(5, 8), 5);
        assert_eq!(default_tasks(1, 1), 1);
    }

    /// A rerun without --tasks takes N from the markers when they agree, and the default when
    /// there are none or they disagree.
    #[test]
    fn rerun_takes_the_task_count_of_existing_markers() {
        let dir = tempfile::tempdir().unwrap();
        let inputs: Vec<PathBuf> = (0..40).map(|i| dir.path().join(format!("r{i}"))).collect();
        let make = || BuildPlan::new(inputs.clone(), dir.path().to_path_buf(), CorpusConfig::default(), None, None).unwrap().tasks;
        assert_eq!(make(), default_tasks(40, rayon::current_num_threads()));
        let tasks = dir.path().join("tasks");
        std::fs::create_dir_all(&tasks).unwrap();
        std::fs::write(tasks.join("task-00002-of-00007.done"), "{}").unwrap();
        std::fs::write(tasks.join("task-00002-of-00007.parquet"), "").unwrap();
        std::fs::write(tasks.join(".task-00003-of-00007.done.tmp-12"), "").unwrap();
        assert_eq!(make(), 7);
        let explicit = BuildPlan::new(inputs.clone(), dir.path().to_path_buf(), CorpusConfig::default(), None, Some(3)).unwrap();
        assert_eq!(explicit.tasks, 3, "--tasks wins over the markers");
        std::fs::write(tasks.join("task-00000-of-00005.done"), "{}").unwrap();
        assert_eq!(make(), default_tasks(40, rayon::current_num_threads()), "markers disagree");
    }
}
