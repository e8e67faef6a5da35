//! The one loop every execution benchmark goes through (HumanEval, MBPP, infilling, MultiPL-E):
//! completions for every (task, sample) not yet scored, from the canonical solutions, a model
//! decoded in batches by kiln-infer's engine, or an OpenAI-compatible endpoint; each scored in
//! the sandbox by N workers and appended to the run directory at once (a rerun resumes); then
//! pass@k / exact match overall and per language, as JSON and a Markdown table.
//!
//! A new benchmark builds its [`Task`]s and calls [`run_tasks`]. The caller (the CLI) chooses the
//! settings and prints the result; this module never prints.

use std::collections::HashSet;

use rayon::prelude::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kiln_infer::{prompt, Engine, GenerateParams, LoadedModel, Request, SamplingParams};
use serde_json::{json, Value};

use crate::client::{Endpoint, FimApi, Sampling};
use crate::record::{self, RunDir};
use crate::sandbox::{detect_isolation, Limits};
use crate::task::{Prompt, Task, TestProgram};
use crate::{DataFile, EvalError};

/// Where completions come from.
pub enum Source {
    /// The tasks' reference solutions (checks the harness).
    Canonical,
    /// An OpenAI-compatible server, asked to fill in the middle through `FimApi`.
    Endpoint(Box<Endpoint>, FimApi),
    /// A model in this process, decoded in batches.
    Model(Box<LoadedModel>),
}

impl Source {
    /// The name in the summary: `canonical`, `endpoint` or `model`.
    pub fn name(&self) -> &'static str {
        match self {
            Source::Canonical => "canonical",
            Source::Endpoint(..) => "endpoint",
            Source::Model(_) => "model",
        }
    }
}

/// Everything that shapes the completions and scores of a run besides the tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// The benchmark's name (`humaneval`, `multipl-e-cpp`, ...).
    pub benchmark: String,
    /// The benchmark file the tasks came from.
    pub data: DataFile,
    /// Who answers, as recorded in `run.json`: `canonical`, `endpoint URL` or `model PATH`.
    pub target: String,
    /// The endpoint's FIM API (`suffix`/`infill`), `-` otherwise.
    pub fim: String,
    /// The model's compute dtype when it was chosen (`F32`, ...).
    pub dtype: Option<String>,
    /// Most new tokens per completion.
    pub max_tokens: usize,
    /// Completions per task (at least 1).
    pub samples: usize,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Seed of sample i of every task: seed + i.
    pub seed: u64,
    /// Sequences decoded together by an in-process model.
    pub batch: usize,
    /// Programs run at once.
    pub workers: usize,
    /// Endpoint requests in flight at once (the completions do not depend on it).
    pub concurrency: usize,
    /// Seconds per test program.
    pub timeout_s: u64,
    /// Only the first N tasks.
    pub limit: Option<usize>,
    /// Run directory (run.json, samples.jsonl, summary.json, summary.md); `None`: nothing kept.
    pub out: Option<PathBuf>,
}

impl RunOptions {
    /// The settings a resumed run must match, as `run.json` records them.
    fn settings(&self, tasks: usize) -> Value {
        json!({
            "benchmark": self.benchmark, "data": self.data.to_string(), "problems": tasks, "target": self.target,
            "fim": self.fim, "dtype": self.dtype,
            "samples": self.samples, "temperature": self.temperature, "top_p": self.top_p, "seed": self.seed,
            "max_tokens": self.max_tokens, "timeout_s": self.timeout_s,
        })
    }
}

/// Hears how a run advances (a progress bar in the CLI).
pub trait RunObserver {
    /// The run starts with `samples` samples left to generate and score.
    fn start(&self, _samples: u64) {}
    /// Now `generating` or `scoring`.
    fn phase(&self, _phase: &str) {}
    /// One more sample scored.
    fn scored(&self) {}
    /// The loop is over.
    fn finish(&self) {}
}

/// A run's outcome.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// `summary.json`'s content.
    pub summary: Value,
    /// The Markdown table (`summary.md`).
    pub table: String,
    /// Completions asked for in this run.
    pub attempted: usize,
    /// Of those, how many failed (no completion: the sample scores 0).
    pub failed: usize,
    /// The first failure's reason.
    pub first_error: Option<String>,
    /// The completions came from the reference solutions.
    pub canonical: bool,
}

/// Checks what the tasks' test programs need before any completion is made: for Python
/// programs, the interpreter and every module they import at the top (so a python3 without
/// numpy stops the run with what to install, instead of scoring every problem 0).
fn preflight(tasks: &[Task]) -> Result<(), EvalError> {
    let mut modules: Vec<String> = Vec::new();
    let mut python = false;
    for t in tasks {
        if let TestProgram::Python(src) = (t.program)("") {
            python = true;
            for m in crate::sandbox::python_imports(&src) {
                if !modules.contains(&m) {
                    modules.push(m);
                }
            }
        }
    }
    if python {
        crate::sandbox::check_python(&modules)?;
    }
    Ok(())
}

/// Runs `tasks`: completions for every (task, sample) not yet scored in `opts.out`, scored as
/// they come, then the summary over all samples. `open_source` is called only when there is work
/// (a fully resumed run loads no model and calls no endpoint).
pub fn run_tasks<E: std::fmt::Display>(
    mut tasks: Vec<Task>,
    opts: &RunOptions,
    canonical: bool,
    open_source: impl FnOnce() -> Result<Source, E>,
    observer: &dyn RunObserver,
) -> Result<RunReport, EvalError> {
    if let Some(n) = opts.limit {
        tasks.truncate(n);
    }
    let samples = opts.samples.max(1);
    let workers = opts.workers.max(1);
    let settings = opts.settings(tasks.len());
    let (mut run_dir, mut records) = match &opts.out {
        Some(dir) => {
            let (d, r) = RunDir::open(dir, &settings)?;
            (Some(d), r)
        }
        None => (None, Vec::new()),
    };
    let done: HashSet<(String, usize)> = records.iter().map(|r| (r.task_id.clone(), r.sample)).collect();
    let todo: Vec<(usize, usize)> = tasks
        .iter()
        .enumerate()
        .flat_map(|(i, t)| (0..samples).map(move |s| (i, s)).filter(|(_, s)| !done.contains(&(t.task_id.clone(), *s))).collect::<Vec<_>>())
        .collect();
    let resumed = records.len();
    if resumed > 0 {
        tracing::info!(resumed, left = todo.len(), "resuming: samples already scored are kept");
    }
    if !todo.is_empty() {
        preflight(&tasks)?;
    }
    let source = if todo.is_empty() && !canonical { None } else { Some(open_source().map_err(|e| EvalError::Source(format!("{e:#}")))?) };
    let isolation = detect_isolation();
    let limits = Limits { timeout: Duration::from_secs(opts.timeout_s), ..Limits::default() };
    observer.start(todo.len() as u64);
    let (mut generation_s, mut scoring_s) = (0.0, 0.0);
    let mut attempted = 0usize;
    let mut first_error: Option<String> = None;
    let mut failed_now = 0usize;
    let chunk = match &source {
        Some(Source::Model(_)) => opts.batch.max(1),
        _ => (workers * 4).max(opts.concurrency.max(1) * 2),
    };
    for part in todo.chunks(chunk) {
        observer.phase("generating");
        let t = Instant::now();
        let completions = complete(source.as_ref().expect("a source when there is work"), &tasks, part, opts)?;
        generation_s += t.elapsed().as_secs_f64();
        for c in &completions {
            attempted += 1;
            if let Err(e) = c {
                failed_now += 1;
                first_error.get_or_insert_with(|| e.clone());
            }
        }
        observer.phase("scoring");
        let t = Instant::now();
        let items: Vec<_> = part.iter().zip(completions).map(|(&(i, s), c)| (&tasks[i], s, c)).collect();
        record::score_many(items, workers, &limits, isolation, |r| {
            if let Some(d) = run_dir.as_mut() {
                d.append(&r)?;
            }
            records.push(r);
            observer.scored();
            Ok(())
        })?;
        scoring_s += t.elapsed().as_secs_f64();
    }
    observer.finish();
    let (all, per_language) = record::summarize(&records);
    let mut summary = json!({
        "benchmark": opts.benchmark, "problems": all.problems, "samples": all.samples, "passed": all.passed,
        "timed_out": all.timed_out, "generation_errors": all.generation_errors,
        "source": source.as_ref().map_or("resumed", Source::name), "isolation": isolation, "workers": workers,
        "generated_now": attempted, "resumed": resumed, "generation_s": generation_s, "scoring_s": scoring_s,
        "settings": settings, "per_language": per_language,
    });
    for (k, v) in &all.pass_at_k {
        summary[k] = json!(v);
    }
    if let Some(em) = all.exact_match {
        summary["exact_match"] = json!(em);
    }
    let table = record::markdown(&opts.benchmark, &all, &per_language);
    if let Some(d) = &run_dir {
        let json = serde_json::to_vec_pretty(&summary).expect("a JSON value serialises");
        record::write_atomic(&d.dir().join("summary.json"), &json)?;
        record::write_atomic(&d.dir().join("summary.md"), table.as_bytes())?;
    }
    let canonical = matches!(source, Some(Source::Canonical));
    Ok(RunReport { summary, table, attempted, failed: failed_now, first_error, canonical })
}

/// Completions of `part` ((task index, sample index) pairs): each finished (stop words cut) or
/// the reason there is none.
fn complete(source: &Source, tasks: &[Task], part: &[(usize, usize)], opts: &RunOptions) -> Result<Vec<Result<String, String>>, EvalError> {
    let warn = |i: usize, s: usize, e: &str| tracing::warn!(task = %tasks[i].task_id, sample = s, error = %e, "no completion; the sample scores 0");
    Ok(match source {
        Source::Canonical => part.iter().map(|&(i, _)| Ok(tasks[i].canonical.clone())).collect(),
        Source::Endpoint(e, fim) => {
            // Requests are independent: `concurrency` of them in flight, answers kept in order.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(opts.concurrency.max(1))
                .build()
                .map_err(|e| EvalError::Source(format!("request threads: {e}")))?;
            pool.install(|| {
                part.par_iter()
                    .map(|&(i, s)| {
                        let t = &tasks[i];
                        let sampling = Sampling {
                            temperature: opts.temperature as f64,
                            top_p: opts.top_p.map(f64::from),
                            seed: (opts.temperature > 0.0).then_some(opts.seed.wrapping_add(s as u64)),
                        };
                        let stop: Vec<&str> = t.stop.iter().map(String::as_str).collect();
                        let r = match &t.prompt {
                            Prompt::Completion(p) => e.complete_sampled(p, opts.max_tokens, &stop, &sampling),
                            Prompt::Fim { prefix, suffix } => e.complete_fim_with(*fim, prefix, suffix, opts.max_tokens, &sampling),
                        };
                        r.map(|text| (t.finish)(&text)).map_err(|err| {
                            warn(i, s, &err.to_string());
                            err.to_string()
                        })
                    })
                    .collect()
            })
        }
        Source::Model(m) => {
            let engine =
                Engine::new(m.model.as_ref(), &m.tokenizer).map_err(|e| EvalError::Source(e.to_string()))?.with_max_batch(opts.batch);
            let requests: Vec<Result<Request, String>> = part
                .iter()
                .map(|&(i, s)| {
                    let t = &tasks[i];
                    let ids = match &t.prompt {
                        Prompt::Completion(p) => prompt::completion_ids(&m.tokenizer, p),
                        Prompt::Fim { prefix, suffix } => prompt::fim_ids(&m.tokenizer, prefix, suffix),
                    };
                    let params = GenerateParams {
                        max_new_tokens: opts.max_tokens,
                        sampling: SamplingParams {
                            temperature: opts.temperature,
                            top_p: opts.top_p,
                            seed: opts.seed.wrapping_add(s as u64),
                            ..Default::default()
                        },
                        eos_ids: m.eos_ids.clone(),
                        stop: t.stop.clone(),
                        ..Default::default()
                    };
                    ids.map(|ids| Request { ids, params, cache_prompt: false }).map_err(|e| e.to_string())
                })
                .collect();
            // Prompts that could not be built keep their error; the rest decode together.
            let mut generated = engine.generate_batch(requests.iter().filter_map(|r| r.as_ref().ok().cloned()).collect()).into_iter();
            requests
                .into_iter()
                .map(|r| r.and_then(|_| generated.next().expect("one result per request").map(|g| g.text).map_err(|e| e.to_string())))
                .zip(part)
                .map(|(r, &(i, s))| r.map(|text| (tasks[i].finish)(&text)).inspect_err(|e| warn(i, s, e)))
                .collect()
        }
    })
}
