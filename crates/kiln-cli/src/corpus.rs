//! `kiln corpus build | stats | inspect`: the corpus pipeline of kiln-corpus, wired to flags.

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use kiln_corpus::pipeline::{self, BuildPlan, TaskStatus};
use kiln_corpus::{BenchmarkSource, CorpusConfig, Manifest};

/// `kiln corpus ...`
#[derive(Debug, Subcommand)]
pub enum CorpusCommand {
    /// Build a repository-level corpus: filter, order, render, dedup, decontaminate, write
    /// Parquet shards and manifest.json to --out. Rerun the same command to resume.
    Build {
        /// Repositories (directories, git repositories, .tar/.tar.gz/.zip archives) or dataset
        /// files with one row per source file (.jsonl, .jsonl.gz, .parquet; columns
        /// content/path/repo, The Stack's names accepted); with --repos-root, directories whose
        /// entries are repositories.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output directory (shards, manifest.json, config.json, tasks/).
        #[arg(long)]
        out: PathBuf,
        /// Treat each INPUT as a directory of repositories.
        #[arg(long)]
        repos_root: bool,
        /// Run only this task (0-based) of --tasks, without the merge (for job arrays); run the
        /// command again without --task to merge once every task is done.
        #[arg(long, requires = "tasks")]
        task: Option<usize>,
        /// Number of tasks the sorted input list is split into (default: the count of the markers already in OUT/tasks, else four per thread, 16 to 256, at most one per input).
        #[arg(long)]
        tasks: Option<usize>,
        /// JSON config (fields of kiln_corpus::CorpusConfig; omitted fields take the paper's defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Benchmarks for decontamination: a directory with humaneval/HumanEval.jsonl.gz and
        /// mbpp/mbpp.jsonl (default: the HumanEval and MBPP built into kiln).
        #[arg(long)]
        benchmarks: Option<PathBuf>,
        /// Skip decontamination (recorded in the manifest).
        #[arg(long, conflicts_with = "benchmarks")]
        no_decontam: bool,
        /// Skip the tree-sitter quality screen (config `quality_screen: false`): no file is
        /// parsed, files with syntax errors stay, and the build runs several times faster (the
        /// parse is most of it). Imports come from kiln-repo's parse-free scanner either way.
        #[arg(long)]
        no_quality_screen: bool,
    },
    /// Print the paper's Table 1 (per language: size, files, share) and the drop table.
    Stats {
        /// A finished corpus directory.
        dir: PathBuf,
        /// Print the manifest as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Print samples of a finished corpus.
    Inspect {
        /// A finished corpus directory.
        dir: PathBuf,
        /// How many samples (from the first shard on).
        #[arg(long, default_value_t = 3)]
        n: usize,
        /// Print the sample with this id instead.
        #[arg(long)]
        id: Option<String>,
        /// Print JSON lines (with file spans) instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `kiln corpus` subcommand.
pub fn run(cmd: CorpusCommand) -> Result<()> {
    match cmd {
        CorpusCommand::Build { inputs, out, repos_root, task, tasks, config, benchmarks, no_decontam, no_quality_screen } => {
            let mut config = match &config {
                Some(p) => CorpusConfig::from_file(p)?,
                None => CorpusConfig::default(),
            };
            if no_quality_screen {
                config.quality_screen = false;
            }
            let benchmarks = match benchmarks {
                _ if no_decontam => None,
                None => Some(BenchmarkSource::Bundled),
                Some(dir) => {
                    if !dir.is_dir() {
                        bail!(
                            "--benchmarks {}: not a directory (give one with humaneval/HumanEval.jsonl.gz and mbpp/mbpp.jsonl, leave it out for the copy built into kiln, or --no-decontam)",
                            dir.display()
                        );
                    }
                    Some(BenchmarkSource::Dir(std::fs::canonicalize(&dir).with_context(|| format!("--benchmarks {}", dir.display()))?))
                }
            };
            let inputs = pipeline::list_inputs(&inputs, repos_root)?;
            let plan = BuildPlan::new(inputs, out, config, benchmarks, tasks)?;
            if let Some(t) = task {
                let status = pipeline::run_single_task(&plan, t)?;
                let what = if status == TaskStatus::Reused { "already finished" } else { "done" };
                eprintln!("task {t} of {}: {what}", plan.tasks);
                return Ok(());
            }
            let progress = BuildProgress::new(plan.tasks);
            let outcome = pipeline::build_observed(&plan, None, &progress);
            progress.bar.finish_and_clear();
            let outcome = outcome?;
            let m = &outcome.manifest;
            eprintln!(
                "{} samples kept of {} ({} exact dup, {} near dup, {} contaminated) in {} shard(s); tasks run {}, reused {}; {}",
                m.samples.kept,
                m.samples.candidates,
                m.samples.exact_duplicates,
                m.samples.near_duplicates,
                m.samples.contaminated,
                m.shards.len(),
                outcome.tasks_run,
                outcome.tasks_reused,
                plan.out.join("manifest.json").display()
            );
            Ok(())
        }
        CorpusCommand::Stats { dir, json } => {
            let m = Manifest::load(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                print!("{}", m.format_stats());
            }
            Ok(())
        }
        CorpusCommand::Inspect { dir, n, id, json } => {
            for s in pipeline::inspect(&dir, n, id.as_deref())? {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"id": s.id, "repo": s.repo, "languages": s.languages, "files": s.files, "text": s.text})
                    );
                } else {
                    println!("=== {} ({}, {} files, {} bytes, {})", s.id, s.repo, s.files.len(), s.text.len(), s.languages.join(", "));
                    print!("{}", s.text);
                }
            }
            Ok(())
        }
    }
}

/// The `corpus build` progress bar on stderr: tasks done of all, bytes through the pipeline and
/// the rate. indicatif draws nothing when stderr is not a terminal (CI logs, pipes).
struct BuildProgress {
    bar: indicatif::ProgressBar,
    bytes: std::sync::atomic::AtomicU64,
    start: std::time::Instant,
}

impl BuildProgress {
    fn new(tasks: usize) -> Self {
        let bar = indicatif::ProgressBar::new(tasks as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} tasks  {msg}")
                .expect("progress template is valid"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        BuildProgress { bar, bytes: 0.into(), start: std::time::Instant::now() }
    }
}

impl pipeline::BuildObserver for BuildProgress {
    fn task_finished(&self, _task: usize, _status: TaskStatus) {
        self.bar.inc(1);
    }

    fn bytes_processed(&self, bytes: u64) {
        let total = self.bytes.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed) + bytes;
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!("{:.1} MB, {:.1} MB/s", total as f64 / 1e6, total as f64 / 1e6 / secs));
    }
}
