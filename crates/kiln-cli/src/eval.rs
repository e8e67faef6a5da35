//! `kiln eval`: benchmarks with DeepSeek-Coder's protocols (kiln-eval).
//!
//! Every benchmark is turned into a list of [`Task`]s and goes through kiln-eval's one loop
//! ([`harness::run_tasks`]); this module turns flags into its settings, shows progress and prints
//! the summary. A new benchmark adds a subcommand that builds its tasks and calls [`run_tasks`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_eval::client::{ClientOptions, Endpoint, FimApi};
use kiln_eval::harness::{self, RunObserver, RunOptions, Source};
use kiln_eval::task::{self, InfillSet, Task};
use kiln_eval::{humaneval, infilling, mbpp, DataFile};
use kiln_infer::SamplingParams;

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
    /// Bits per byte of the model on source files or directories (how well it predicts code; run
    /// it on a float model and on its `kiln quantize` files to see what quantizing costs).
    Bpb(crate::eval_bpb::BpbArgs),
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
    /// Take completions from an OpenAI-compatible server (`http://host:port` or `https://...`,
    /// e.g. `kiln serve`, llama.cpp's server, vLLM, a hosted API).
    #[arg(long, conflicts_with = "model")]
    endpoint: Option<String>,
    /// PEM certificate to trust for an https endpoint instead of the system's roots (a private
    /// authority, or the server's self-signed certificate).
    #[arg(long, requires = "endpoint")]
    ca_cert: Option<PathBuf>,
    /// Proxy for the endpoint's requests (`http://HOST:PORT`); default: HTTPS_PROXY / HTTP_PROXY /
    /// ALL_PROXY (minus NO_PROXY) for non-loopback endpoints.
    #[arg(long, requires = "endpoint")]
    proxy: Option<String>,
    /// Endpoint requests in flight at once; the completions do not depend on it.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Extra attempts after a 429 or 5xx answer (waits 1 s, 2 s, 4 s, ..., or the server's
    /// Retry-After; at most 30 s each); then the sample scores 0 with the reason.
    #[arg(long, default_value_t = 3)]
    retries: u32,
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
        EvalCommand::Bpb(a) => crate::eval_bpb::run(a),
    }
}

/// Where completions come from: the reference solutions, an endpoint or a model directory.
fn open_source(a: &EvalArgs) -> Result<Source> {
    if a.canonical {
        return Ok(Source::Canonical);
    }
    if let Some(url) = &a.endpoint {
        let key = match &a.api_key_file {
            Some(f) => Some(std::fs::read_to_string(f).with_context(|| format!("--api-key-file {}", f.display()))?.trim().to_string()),
            None => None,
        };
        let fim = if a.fim == FimArg::Infill { FimApi::Infill } else { FimApi::Suffix };
        let client = ClientOptions {
            timeout: Duration::from_secs(a.request_timeout.max(1)),
            ca_cert: a.ca_cert.clone(),
            proxy: a.proxy.clone(),
            retries: a.retries,
            ..ClientOptions::default()
        };
        return Ok(Source::Endpoint(Box::new(Endpoint::connect(url, key, &client)?), fim));
    }
    let Some(m) = &a.model else { bail!("give --model DIR, --endpoint URL, or --canonical to check the harness") };
    Ok(Source::Model(Box::new(load(m)?)))
}

/// The run's settings from the flags (checked here, so that a bad flag is named as a flag).
fn run_options(benchmark: &str, data: &DataFile, default_timeout: u64, a: &EvalArgs) -> Result<RunOptions> {
    if a.samples == 0 {
        bail!("--samples must be at least 1");
    }
    if a.temperature == 0.0 && a.samples > 1 && !a.canonical {
        tracing::warn!("--samples {} with --temperature 0: greedy samples are all the same", a.samples);
    }
    SamplingParams { temperature: a.temperature, top_p: a.top_p, ..Default::default() }
        .validate()
        .map_err(|e| anyhow::anyhow!("--temperature/--top-p: {e}"))?;
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
    Ok(RunOptions {
        benchmark: benchmark.to_string(),
        data: data.clone(),
        target,
        fim: if a.endpoint.is_some() { format!("{:?}", a.fim).to_lowercase() } else { "-".into() },
        dtype: a.model.as_ref().and_then(|m| m.dtype.map(|d| format!("{d:?}"))),
        max_tokens: a.max_tokens,
        samples: a.samples,
        temperature: a.temperature,
        top_p: a.top_p,
        seed: a.seed,
        batch: a.batch,
        concurrency: a.concurrency.max(1),
        workers: a.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())).max(1),
        timeout_s: a.timeout.unwrap_or(default_timeout),
        limit: a.limit,
        out: a.out.clone(),
    })
}

/// A progress bar on stderr; hidden when stderr is not a terminal.
struct Bar(ProgressBar);

impl RunObserver for Bar {
    fn start(&self, samples: u64) {
        self.0.set_length(samples);
    }
    fn phase(&self, phase: &str) {
        self.0.set_message(phase.to_string());
    }
    fn scored(&self) {
        self.0.inc(1);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn progress() -> Bar {
    let target = if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(0), target);
    if let Ok(style) = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} samples, {elapsed} (eta {eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    Bar(bar)
}

/// Runs the benchmark's tasks through kiln-eval's harness and prints the summary.
pub fn run_tasks(benchmark: &str, data: &DataFile, tasks: Vec<Task>, default_timeout: u64, a: &EvalArgs) -> Result<()> {
    let opts = run_options(benchmark, data, default_timeout, a)?;
    let report = harness::run_tasks(tasks, &opts, a.canonical, || open_source(a), &progress())?;
    if a.json {
        println!("{}", report.summary);
    } else {
        println!("{}", report.table);
    }
    let attempted = report.attempted;
    if attempted > 0 && report.failed == attempted && !report.canonical {
        bail!("every completion request failed ({attempted} of {attempted}); the first error: {}", report.first_error.unwrap_or_default());
    }
    Ok(())
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
        let chosen = multipl_e::tasks_with_solutions(&tasks, file, lang, &data)?;
        tasks = chosen;
        m.common.canonical = true;
    }
    run_tasks(&format!("multipl-e-{lang}"), &data, tasks, 10, &m.common)
}
