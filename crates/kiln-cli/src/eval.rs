//! `kiln eval`: benchmarks with DeepSeek-Coder's protocols (kiln-eval).
//!
//! Every benchmark is turned into a list of [`Task`]s and goes through one loop ([`run_tasks`]):
//! completions (canonical, in-process model decoded in batches, or an endpoint), scoring in the
//! sandbox with N workers, each scored sample appended to `--out/samples.jsonl` at once (a rerun
//! resumes), then pass@k / exact match overall and per language, as JSON and a Markdown table.
//! A new benchmark adds a subcommand that builds its tasks and calls [`run_tasks`].

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_eval::client::{Endpoint, FimApi, Sampling};
use kiln_eval::record::{self, RunDir};
use kiln_eval::sandbox::{detect_isolation, Limits};
use kiln_eval::task::{self, InfillSet, Prompt, Task};
use kiln_eval::{humaneval, infilling, mbpp, DataFile};
use kiln_infer::{prompt, Engine, GenerateParams, LoadedModel, Request, SamplingParams};
use serde_json::{json, Value};

use crate::generate::{load, ModelArgs};

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// HumanEval (164 Python problems): DeepSeek's stop words, prelude and 10 s limit.
    Humaneval(EvalArgs),
    /// HumanEval infilling (single-line 1,033 / multi-line 5,815 / random-span 1,640 / light 164
    /// tasks): the middle by FIM, scored by execution (3 s per program) and exact match.
    Infill(InfillArgs),
    /// MBPP (500 test problems) with DeepSeek's 3-shot prompt, "[DONE]" stop and 10 s limit.
    Mbpp(EvalArgs),
    /// MultiPL-E: HumanEval in another language (--lang cpp|java|js|ts|cs|sh|php|go|rs), compiled
    /// and run with DeepSeek's per-language commands and pass rules. `--data` is the language's
    /// file (default: the copy built into kiln, data/benchmarks/multipl-e/humaneval-LANG.jsonl.gz). There are no canonical
    /// solutions: check the harness with `--solutions FILE` (JSONL of task_id, completion).
    MultiplE(MultiplEArgs),
    /// Repository-level line completion (CrossCodeEval-style): `build` selects lines needing a
    /// symbol from another imported file; scoring gives EM and ES with and without that context.
    Repo(crate::eval_repo::RepoArgs),
}

#[derive(Debug, Args)]
pub struct MultiplEArgs {
    /// The language: cpp, java, js, ts, cs, sh, php, go or rs.
    #[arg(long, value_parser = parse_language)]
    lang: kiln_eval::multipl_e::Language,
    /// Score the completions of a JSONL file (task_id, completion; rows with another
    /// `language` are skipped) instead of generating.
    #[arg(long, conflicts_with_all = ["model", "endpoint", "canonical"])]
    solutions: Option<PathBuf>,
    /// javatuples-1.2.jar for Java (default: beside the --data file, else the copy built into kiln).
    #[arg(long)]
    javatuples: Option<PathBuf>,
    #[command(flatten)]
    common: EvalArgs,
}

fn parse_language(s: &str) -> std::result::Result<kiln_eval::multipl_e::Language, String> {
    kiln_eval::multipl_e::Language::parse(s)
        .ok_or_else(|| format!("unknown MultiPL-E language {s:?}; use one of cpp, java, js, ts, cs, sh, php, go, rs"))
}

/// Which FIM API an endpoint is asked through.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum FimArg {
    /// OpenAI `/v1/completions` with `suffix`.
    Suffix,
    /// llama.cpp `POST /infill`.
    Infill,
}

/// `--set` of `kiln eval infill`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SetArg {
    Single,
    Multi,
    RandomSpan,
    RandomSpanLight,
}

#[derive(Debug, Args)]
pub struct InfillArgs {
    /// Which infilling set (the default file is picked from it unless --data is given).
    #[arg(long, value_enum, default_value = "single")]
    set: SetArg,
    #[command(flatten)]
    common: EvalArgs,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The benchmark file (default: the copy built into kiln, from the repository's data/benchmarks/).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Score the reference solutions instead of a model's completions (checks the harness).
    #[arg(long, conflicts_with_all = ["model", "endpoint"])]
    canonical: bool,
    /// Take completions from an OpenAI-compatible server (`http://host:port`, e.g. `kiln serve`).
    #[arg(long, conflicts_with = "model")]
    endpoint: Option<String>,
    /// File holding the endpoint's API key.
    #[arg(long, requires = "endpoint")]
    api_key_file: Option<PathBuf>,
    /// How an endpoint is asked to fill in the middle: OpenAI `suffix` or llama.cpp `/infill`.
    #[arg(long, value_enum, default_value = "suffix")]
    fim: FimArg,
    /// Seconds an endpoint request may take in all; past it the sample scores 0 with the reason.
    #[arg(long, default_value_t = 300)]
    request_timeout: u64,
    #[command(flatten)]
    model: Option<ModelArgs>,
    /// Most new tokens per completion (DeepSeek: 500).
    #[arg(long, default_value_t = 500)]
    max_tokens: usize,
    /// Completions per problem (pass@k is reported for k in 1, 10, 100 up to this).
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Sampling temperature; 0 is greedy (the paper's setting). Above 0 needs --samples.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this total probability.
    #[arg(long)]
    top_p: Option<f32>,
    /// Seed of sample i of every problem: seed + i (the same seed gives the same samples).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sequences decoded together in-process (--model); results do not depend on it.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Programs run at once (default: every core).
    #[arg(long)]
    workers: Option<usize>,
    /// Seconds per test program (default: 10; infilling 3).
    #[arg(long)]
    timeout: Option<u64>,
    /// Only the first N problems.
    #[arg(long)]
    limit: Option<usize>,
    /// Run directory: run.json, samples.jsonl (appended as samples are scored; a rerun resumes),
    /// summary.json and summary.md.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the summary as JSON instead of the Markdown table.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Humaneval(a) => {
            let data = DataFile::or_bundled(a.data.as_deref(), kiln_benchdata::HUMANEVAL);
            let tasks = task::humaneval_tasks(&humaneval::load_data(&data)?);
            run_tasks("humaneval", &data, tasks, 10, &a)
        }
        EvalCommand::Mbpp(a) => {
            let data = DataFile::or_bundled(a.data.as_deref(), kiln_benchdata::MBPP);
            let tasks = task::mbpp_tasks(&mbpp::load_data(&data)?);
            run_tasks("mbpp", &data, tasks, 10, &a)
        }
        EvalCommand::Infill(InfillArgs { set, common: a }) => {
            let (set, name) = match set {
                SetArg::Single => (InfillSet::Single, "humaneval-single-line-infilling"),
                SetArg::Multi => (InfillSet::Multi, "humaneval-multi-line-infilling"),
                SetArg::RandomSpan => (InfillSet::RandomSpan, "humaneval-random-span-infilling"),
                SetArg::RandomSpanLight => (InfillSet::RandomSpanLight, "humaneval-random-span-infilling-light"),
            };
            let data = DataFile::or_bundled(a.data.as_deref(), set.bundled());
            let tasks = task::infilling_tasks(&infilling::load_data(&data)?, set);
            run_tasks(name, &data, tasks, 3, &a)
        }
        EvalCommand::MultiplE(m) => run_multipl_e(m),
        EvalCommand::Repo(a) => crate::eval_repo::run(a),
    }
}

/// Where completions come from.
enum Source {
    Canonical,
    Endpoint(Endpoint, FimApi),
    Model(Box<LoadedModel>),
}

impl Source {
    fn open(a: &EvalArgs) -> Result<Self> {
        if a.canonical {
            return Ok(Source::Canonical);
        }
        if let Some(url) = &a.endpoint {
            let key = match &a.api_key_file {
                Some(f) => Some(std::fs::read_to_string(f).with_context(|| format!("--api-key-file {}", f.display()))?.trim().to_string()),
                None => None,
            };
            let fim = if a.fim == FimArg::Infill { FimApi::Infill } else { FimApi::Suffix };
            return Ok(Source::Endpoint(Endpoint::parse(url, key, Duration::from_secs(a.request_timeout.max(1)))?, fim));
        }
        let Some(m) = &a.model else { bail!("give --model DIR, --endpoint URL, or --canonical to check the harness") };
        Ok(Source::Model(Box::new(load(m)?)))
    }

    fn name(&self) -> &'static str {
        match self {
            Source::Canonical => "canonical",
            Source::Endpoint(..) => "endpoint",
            Source::Model(_) => "model",
        }
    }
}

/// The settings that shape completions and scores: a resumed run must match them all.
fn settings(benchmark: &str, data: &DataFile, tasks: usize, timeout: u64, a: &EvalArgs) -> Value {
    let target = if a.canonical {
        "canonical".to_string()
    } else if let Some(u) = &a.endpoint {
        format!("endpoint {u}")
    } else {
        a.model
            .as_ref()
            .map(|m| format!("model {}", std::fs::canonicalize(&m.model).unwrap_or(m.model.clone()).display()))
            .unwrap_or_default()
    };
    json!({
        "benchmark": benchmark, "data": data.to_string(), "problems": tasks, "target": target,
        "fim": if a.endpoint.is_some() { format!("{:?}", a.fim).to_lowercase() } else { "-".into() },
        "dtype": a.model.as_ref().and_then(|m| m.dtype.map(|d| format!("{d:?}"))),
        "samples": a.samples, "temperature": a.temperature, "top_p": a.top_p, "seed": a.seed,
        "max_tokens": a.max_tokens, "timeout_s": timeout,
    })
}

/// The shared loop: completions for every (task, sample) not yet scored in `--out`, scored as
/// they come, then the summary over all samples.
pub fn run_tasks(benchmark: &str, data: &DataFile, mut tasks: Vec<Task>, default_timeout: u64, a: &EvalArgs) -> Result<()> {
    if let Some(n) = a.limit {
        tasks.truncate(n);
    }
    if a.samples == 0 {
        bail!("--samples must be at least 1");
    }
    if a.temperature == 0.0 && a.samples > 1 && !a.canonical {
        tracing::warn!("--samples {} with --temperature 0: greedy samples are all the same", a.samples);
    }
    SamplingParams { temperature: a.temperature, top_p: a.top_p, ..Default::default() }
        .validate()
        .map_err(|e| anyhow::anyhow!("--temperature/--top-p: {e}"))?;
    let timeout = a.timeout.unwrap_or(default_timeout);
    let workers = a.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())).max(1);
    let settings = settings(benchmark, data, tasks.len(), timeout, a);
    let (mut run_dir, mut records) = match &a.out {
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
        .flat_map(|(i, t)| {
            (0..a.samples).map(move |s| (i, s)).filter(|(_, s)| !done.contains(&(t.task_id.clone(), *s))).collect::<Vec<_>>()
        })
        .collect();
    let resumed = records.len();
    if resumed > 0 {
        tracing::info!(resumed, left = todo.len(), "resuming: samples already scored are kept");
    }
    let source = if todo.is_empty() && !a.canonical { None } else { Some(Source::open(a)?) };
    let isolation = detect_isolation();
    let limits = Limits { timeout: Duration::from_secs(timeout), ..Limits::default() };
    let bar = progress(todo.len() as u64);
    let (mut generation_s, mut scoring_s) = (0.0, 0.0);
    let mut attempted = 0usize;
    let mut first_error: Option<String> = None;
    let mut failed_now = 0usize;
    let chunk = match &source {
        Some(Source::Model(_)) => a.batch.max(1),
        _ => workers.max(1) * 4,
    };
    for part in todo.chunks(chunk) {
        bar.set_message("generating");
        let t = Instant::now();
        let completions = complete(source.as_ref().expect("a source when there is work"), &tasks, part, a)?;
        generation_s += t.elapsed().as_secs_f64();
        for c in &completions {
            attempted += 1;
            if let Err(e) = c {
                failed_now += 1;
                first_error.get_or_insert_with(|| e.clone());
            }
        }
        bar.set_message("scoring");
        let t = Instant::now();
        let items: Vec<_> = part.iter().zip(completions).map(|(&(i, s), c)| (&tasks[i], s, c)).collect();
        record::score_many(items, workers, &limits, isolation, |r| {
            if let Some(d) = run_dir.as_mut() {
                d.append(&r)?;
            }
            records.push(r);
            bar.inc(1);
            Ok(())
        })?;
        scoring_s += t.elapsed().as_secs_f64();
    }
    bar.finish_and_clear();
    let (all, per_language) = record::summarize(&records);
    let mut summary = json!({
        "benchmark": benchmark, "problems": all.problems, "samples": all.samples, "passed": all.passed,
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
    let table = record::markdown(benchmark, &all, &per_language);
    if let Some(d) = &run_dir {
        record::write_atomic(&d.dir().join("summary.json"), &serde_json::to_vec_pretty(&summary)?)?;
        record::write_atomic(&d.dir().join("summary.md"), table.as_bytes())?;
    }
    if a.json {
        println!("{summary}");
    } else {
        println!("{table}");
    }
    if attempted > 0 && failed_now == attempted && !matches!(source, Some(Source::Canonical)) {
        bail!("every completion request failed ({attempted} of {attempted}); the first error: {}", first_error.unwrap_or_default());
    }
    Ok(())
}

/// A progress bar on stderr; hidden when stderr is not a terminal.
fn progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    if let Ok(style) = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} samples, {elapsed} (eta {eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Completions of `part` ((task index, sample index) pairs): each finished (stop words cut) or
/// the reason there is none.
fn complete(source: &Source, tasks: &[Task], part: &[(usize, usize)], a: &EvalArgs) -> Result<Vec<Result<String, String>>> {
    Ok(match source {
        Source::Canonical => part.iter().map(|&(i, _)| Ok(tasks[i].canonical.clone())).collect(),
        Source::Endpoint(e, fim) => part
            .iter()
            .map(|&(i, s)| {
                let t = &tasks[i];
                let sampling = Sampling {
                    temperature: a.temperature as f64,
                    top_p: a.top_p.map(f64::from),
                    seed: (a.temperature > 0.0).then_some(a.seed.wrapping_add(s as u64)),
                };
                let stop: Vec<&str> = t.stop.iter().map(String::as_str).collect();
                let r = match &t.prompt {
                    Prompt::Completion(p) => e.complete_sampled(p, a.max_tokens, &stop, &sampling),
                    Prompt::Fim { prefix, suffix } => e.complete_fim_with(*fim, prefix, suffix, a.max_tokens, &sampling),
                };
                r.map(|text| (t.finish)(&text)).map_err(|err| {
                    tracing::warn!(task = %t.task_id, sample = s, error = %err, "no completion; the sample scores 0");
                    err.to_string()
                })
            })
            .collect(),
        Source::Model(m) => {
            let engine = Engine::new(m.model.as_ref(), &m.tokenizer)?.with_max_batch(a.batch);
            let requests: Vec<Result<Request, String>> = part
                .iter()
                .map(|&(i, s)| {
                    let t = &tasks[i];
                    let ids = match &t.prompt {
                        Prompt::Completion(p) => prompt::completion_ids(&m.tokenizer, p),
                        Prompt::Fim { prefix, suffix } => prompt::fim_ids(&m.tokenizer, prefix, suffix),
                    };
                    let params = GenerateParams {
                        max_new_tokens: a.max_tokens,
                        sampling: SamplingParams {
                            temperature: a.temperature,
                            top_p: a.top_p,
                            seed: a.seed.wrapping_add(s as u64),
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
                .map(|(r, &(i, s))| {
                    r.map(|text| (tasks[i].finish)(&text)).map_err(|e| {
                        tracing::warn!(task = %tasks[i].task_id, sample = s, error = %e, "no completion; the sample scores 0");
                        e
                    })
                })
                .collect()
        }
    })
}

/// A row of `--solutions`.
#[derive(serde::Deserialize)]
struct SolutionRow {
    task_id: String,
    completion: String,
    #[serde(default)]
    language: Option<String>,
}

fn run_multipl_e(mut m: MultiplEArgs) -> Result<()> {
    use kiln_eval::multipl_e;
    let lang = m.lang;
    // The toolchain first: a missing compiler is one clear message, before any data, model or
    // endpoint is touched.
    let mut toolchain = lang.check_toolchain()?;
    let data = DataFile::or_bundled(m.common.data.as_deref(), lang.bundled_data());
    if lang == multipl_e::Language::Java {
        // --javatuples, else the jar beside a --data file, else the copy built into kiln.
        let beside_data = m.common.data.as_ref().map(|d| d.parent().unwrap_or(Path::new(".")).join("javatuples-1.2.jar"));
        toolchain = match m.javatuples.clone().or(beside_data) {
            Some(jar) => toolchain.with_javatuples(&jar)?,
            None => toolchain.with_bundled_javatuples(),
        };
    }
    let problems = multipl_e::load_data(&data, lang)?;
    let mut tasks = task::multipl_e_tasks(&problems, lang, std::sync::Arc::new(toolchain));
    if m.common.canonical {
        bail!("MultiPL-E has no canonical solutions; check the harness with --solutions FILE (JSONL of task_id, completion)");
    }
    if let Some(file) = &m.solutions {
        // The file's completions become the tasks' references, scored as --canonical would.
        let rows: Vec<SolutionRow> = kiln_eval::load_jsonl(file, "task_id, completion (and optionally language)")?;
        let mut chosen = Vec::new();
        for (i, r) in rows.into_iter().enumerate() {
            if r.language.as_deref().is_some_and(|l| multipl_e::Language::parse(l) != Some(lang)) {
                continue;
            }
            let Some(t) = tasks.iter().find(|t| t.task_id == r.task_id) else {
                bail!("{}: row {}: task_id {:?} is not a problem of {data}", file.display(), i + 1, r.task_id);
            };
            let mut t = t.clone();
            t.canonical = r.completion;
            // A second row for the same problem is scored as its own task (`ID#2`), so every
            // row gets a result and a resumed run can tell them apart.
            let seen =
                chosen.iter().filter(|c: &&Task| c.task_id == t.task_id || c.task_id.starts_with(&format!("{}#", t.task_id))).count();
            if seen > 0 {
                t.task_id = format!("{}#{}", t.task_id, seen + 1);
            }
            chosen.push(t);
        }
        tasks = chosen;
        m.common.canonical = true;
    }
    run_tasks(&format!("multipl-e-{lang}"), &data, tasks, 10, &m.common)
}
