//! `kiln eval`: benchmarks with DeepSeek-Coder's protocols (kiln-eval).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use kiln_eval::humaneval;
use kiln_eval::metrics::pass_at_k;
use kiln_eval::run::score_humaneval;
use kiln_eval::sandbox::{detect_isolation, Limits, RunResult};
use kiln_infer::{prompt, GenerateParams, Generator, SamplingParams};
use serde_json::json;

use crate::generate::{load, ModelArgs};

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// HumanEval (164 Python problems): greedy completions, DeepSeek's stop words, prelude and 10 s limit.
    Humaneval(HumanevalArgs),
    /// HumanEval single-line infilling (1,033 tasks): the middle line by FIM, scored by execution
    /// (3 s per program) and exact match. Takes the same options (`--max-tokens` default 500: use ~64).
    Infill(HumanevalArgs),
    /// Repository-level line completion (CrossCodeEval-style): `build` selects lines needing a
    /// symbol from another imported file; scoring gives EM and ES with and without that context.
    Repo(crate::eval_repo::RepoArgs),
    /// MultiPL-E: HumanEval in another language (--lang cpp|java|js|ts|cs|sh|php|go|rs), compiled
    /// and run with DeepSeek's per-language commands and pass rules. `--data` is the language's
    /// file (default ../shared/benchmarks/multipl-e/humaneval-LANG.jsonl). There are no canonical
    /// solutions: check the harness with `--solutions FILE` (JSONL of task_id, completion).
    MultiplE(MultiplEArgs),
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
    /// javatuples-1.2.jar for Java (default: beside the data file).
    #[arg(long)]
    javatuples: Option<PathBuf>,
    #[command(flatten)]
    common: HumanevalArgs,
}

fn parse_language(s: &str) -> std::result::Result<kiln_eval::multipl_e::Language, String> {
    kiln_eval::multipl_e::Language::parse(s).ok_or_else(|| format!("unknown MultiPL-E language {s:?}; use one of cpp, java, js, ts, cs, sh, php, go, rs"))
}

#[derive(Debug, Args)]
pub struct HumanevalArgs {
    /// HumanEval.jsonl(.gz) (default: ../shared/benchmarks/humaneval/HumanEval.jsonl.gz).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Score the canonical solutions instead of a model's completions (checks the harness).
    #[arg(long, conflicts_with_all = ["model", "endpoint"])]
    canonical: bool,
    /// Take completions from an OpenAI-compatible server (`http://host:port`, e.g. `kiln serve`).
    #[arg(long, conflicts_with = "model")]
    endpoint: Option<String>,
    /// File holding the endpoint's API key.
    #[arg(long, requires = "endpoint")]
    api_key_file: Option<PathBuf>,
    #[command(flatten)]
    model: Option<ModelArgs>,
    /// Most new tokens per problem (DeepSeek: 500).
    #[arg(long, default_value_t = 500)]
    max_tokens: usize,
    /// Programs run at once.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Seconds per test program (DeepSeek: 10).
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// Only the first N problems.
    #[arg(long)]
    limit: Option<usize>,
    /// Write samples.jsonl and summary.json here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Humaneval(a) => run_humaneval(a),
        EvalCommand::Infill(a) => run_infill(a),
        EvalCommand::Repo(a) => crate::eval_repo::run(a),
        EvalCommand::MultiplE(a) => run_multipl_e(a),
    }
}

/// One completion per problem from `complete`, post-processed by `finish` (stop words, one
/// line). A problem that gets no completion (a prompt over the model's context, an endpoint
/// error) scores 0, is counted in `errors` and logged; the run goes on.
fn complete_each<P>(problems: &[P], id: impl Fn(&P) -> &str, errors: &mut usize, finish: impl Fn(&str) -> String, mut complete: impl FnMut(&P) -> Result<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(problems.len());
    for (i, p) in problems.iter().enumerate() {
        match complete(p) {
            Ok(text) => out.push(finish(&text)),
            Err(e) => {
                tracing::warn!(task = id(p), error = %e, "no completion; the problem scores 0");
                *errors += 1;
                out.push(String::new());
            }
        }
        tracing::info!(task = id(p), done = i + 1, of = problems.len(), "generated");
    }
    out
}

/// The `--endpoint` target, with its key from `--api-key-file`.
fn endpoint(a: &HumanevalArgs, url: &str) -> Result<kiln_eval::client::Endpoint> {
    let key = match &a.api_key_file {
        Some(f) => Some(std::fs::read_to_string(f).with_context(|| format!("--api-key-file {}", f.display()))?.trim().to_string()),
        None => None,
    };
    Ok(kiln_eval::client::Endpoint::parse(url, key, Duration::from_secs(300))?)
}

/// Where the completions came from, for the summary.
fn source(a: &HumanevalArgs) -> &'static str {
    if a.canonical {
        "canonical"
    } else if a.endpoint.is_some() {
        "endpoint"
    } else {
        "model"
    }
}

/// Writes `samples.jsonl` and `summary.json` into `--out` (when given) and prints the summary
/// as JSON (`--json`) or as the Markdown `table`.
fn report(a: &HumanevalArgs, scored: &[kiln_eval::run::Scored], summary: &serde_json::Value, table: String) -> Result<()> {
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("--out {}", dir.display()))?;
        let mut f = std::fs::File::create(dir.join("samples.jsonl"))?;
        for s in scored {
            writeln!(f, "{}", serde_json::to_string(s)?)?;
        }
        std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(summary)?)?;
    }
    if a.json {
        println!("{summary}");
    } else {
        println!("{table}");
    }
    Ok(())
}

fn run_humaneval(a: HumanevalArgs) -> Result<()> {
    let data = a.data.clone().unwrap_or_else(|| PathBuf::from("../shared/benchmarks/humaneval/HumanEval.jsonl.gz"));
    let mut problems = humaneval::load(&data)?;
    if let Some(n) = a.limit {
        problems.truncate(n);
    }
    let started = Instant::now();
    let mut generation_errors = 0usize;
    let completions: Vec<String> = if a.canonical {
        problems.iter().map(humaneval::canonical_completion).collect()
    } else if let Some(url) = &a.endpoint {
        let endpoint = endpoint(&a, url)?;
        complete_each(&problems, |p| &p.task_id, &mut generation_errors, |t| humaneval::truncate(t).to_string(), |p| {
            Ok(endpoint.complete(humaneval::model_input(p), a.max_tokens, &humaneval::STOP)?)
        })
    } else {
        let Some(margs) = &a.model else { bail!("give --model DIR, --endpoint URL, or --canonical to check the harness") };
        let loaded = load(margs)?;
        let generator = Generator::new(&loaded.model, &loaded.tokenizer)?;
        let params = GenerateParams {
            max_new_tokens: a.max_tokens,
            sampling: SamplingParams::default(),
            eos_ids: loaded.eos_ids.clone(),
            stop: humaneval::STOP.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        complete_each(&problems, |p| &p.task_id, &mut generation_errors, |t| humaneval::truncate(t).to_string(), |p| {
            let ids = prompt::completion_ids(&loaded.tokenizer, humaneval::model_input(p))?;
            Ok(generator.generate(&ids, &params, |_| {})?.text)
        })
    };
    let generated_s = started.elapsed().as_secs_f64();
    let isolation = detect_isolation();
    let limits = Limits { timeout: Duration::from_secs(a.timeout), ..Limits::default() };
    let samples: Vec<_> = problems.iter().zip(completions).collect();
    let t = Instant::now();
    let scored = score_humaneval(&samples, a.workers, &limits, isolation)?;
    let scoring_s = t.elapsed().as_secs_f64();
    let passed = scored.iter().filter(|s| s.result == RunResult::Passed).count();
    let timed_out = scored.iter().filter(|s| s.result == RunResult::TimedOut).count();
    let pass1 = scored.iter().map(|s| pass_at_k(1, usize::from(s.result == RunResult::Passed), 1).unwrap_or(0.0)).sum::<f64>() / scored.len().max(1) as f64;
    let summary = json!({
        "benchmark": "humaneval", "problems": scored.len(), "passed": passed, "timed_out": timed_out,
        "pass@1": pass1, "generation_errors": generation_errors, "source": source(&a),
        "isolation": isolation, "workers": a.workers, "generation_s": generated_s, "scoring_s": scoring_s,
    });
    let table = format!(
        "| benchmark | problems | pass@1 | timed out | isolation | scoring |\n|---|---|---|---|---|---|\n| humaneval | {} | {:.1}% | {timed_out} | {isolation:?} | {scoring_s:.1} s with {} workers |",
        scored.len(),
        pass1 * 100.0,
        a.workers
    );
    report(&a, &scored, &summary, table)?;
    Ok(())
}

/// A generated middle for single-line infilling: up to and including its first newline (the
/// task removed one line; anything after it would be code the suffix already has).
fn one_line(middle: &str) -> String {
    match middle.find('\n') {
        Some(i) => middle[..=i].to_string(),
        None => middle.to_string(),
    }
}

fn run_infill(a: HumanevalArgs) -> Result<()> {
    use kiln_eval::infilling;
    let data = a.data.clone().unwrap_or_else(|| PathBuf::from("../shared/benchmarks/humaneval-infilling/HumanEval-SingleLineInfilling.jsonl.gz"));
    let mut problems = infilling::load(&data)?;
    if let Some(n) = a.limit {
        problems.truncate(n);
    }
    let mut errors = 0usize;
    let middles: Vec<String> = if a.canonical {
        problems.iter().map(|p| p.canonical_solution.clone()).collect()
    } else if let Some(url) = &a.endpoint {
        let endpoint = endpoint(&a, url)?;
        complete_each(&problems, |p| &p.task_id, &mut errors, one_line, |p| Ok(endpoint.complete_fim(&p.prompt, &p.suffix, a.max_tokens)?))
    } else {
        let Some(margs) = &a.model else { bail!("give --model DIR, --endpoint URL, or --canonical to check the harness") };
        let loaded = load(margs)?;
        let generator = Generator::new(&loaded.model, &loaded.tokenizer)?;
        let params = GenerateParams { max_new_tokens: a.max_tokens, sampling: SamplingParams::default(), eos_ids: loaded.eos_ids.clone(), ..Default::default() };
        complete_each(&problems, |p| &p.task_id, &mut errors, one_line, |p| Ok(generator.generate(&prompt::fim_ids(&loaded.tokenizer, &p.prompt, &p.suffix)?, &params, |_| {})?.text))
    };
    let exact = problems.iter().zip(&middles).filter(|(p, m)| infilling::exact_match(p, m)).count();
    let programs: Vec<_> = problems.iter().zip(&middles).map(|(p, m)| (p.task_id.clone(), m.clone(), infilling::program(p, m))).collect();
    let isolation = detect_isolation();
    let limits = Limits { timeout: Duration::from_secs(a.timeout.min(3)), ..Limits::default() };
    let t = Instant::now();
    let scored = kiln_eval::run::score_programs(&programs, a.workers, &limits, isolation)?;
    let passed = scored.iter().filter(|s| s.result == RunResult::Passed).count();
    let n = scored.len().max(1) as f64;
    let summary = json!({
        "benchmark": "humaneval-single-line-infilling", "problems": scored.len(), "passed": passed, "pass@1": passed as f64 / n,
        "exact_match": exact as f64 / n, "generation_errors": errors,
        "source": source(&a), "isolation": isolation, "workers": a.workers, "scoring_s": t.elapsed().as_secs_f64(),
    });
    let table = format!(
        "| benchmark | tasks | pass@1 | exact match | isolation |\n|---|---|---|---|---|\n| humaneval single-line infilling | {} | {:.1}% | {:.1}% | {isolation:?} |",
        scored.len(),
        100.0 * passed as f64 / n,
        100.0 * exact as f64 / n
    );
    report(&a, &scored, &summary, table)
}

/// A row of `--solutions`.
#[derive(serde::Deserialize)]
struct SolutionRow {
    task_id: String,
    completion: String,
    #[serde(default)]
    language: Option<String>,
}

fn run_multipl_e(m: MultiplEArgs) -> Result<()> {
    use kiln_eval::multipl_e;
    let lang = m.lang;
    let a = &m.common;
    // The toolchain first: a missing compiler is one clear message, before any generation.
    let mut toolchain = lang.check_toolchain()?;
    let data = a.data.clone().unwrap_or_else(|| lang.data_file(std::path::Path::new("../shared/benchmarks/multipl-e")));
    if lang == multipl_e::Language::Java {
        let jar = m.javatuples.clone().unwrap_or_else(|| data.parent().unwrap_or(std::path::Path::new(".")).join("javatuples-1.2.jar"));
        toolchain = toolchain.with_javatuples(&jar)?;
    }
    let mut problems = multipl_e::load(&data, lang)?;
    if let Some(n) = a.limit {
        problems.truncate(n);
    }
    let started = Instant::now();
    let mut generation_errors = 0usize;
    let samples: Vec<(&multipl_e::Problem, String)> = if let Some(file) = &m.solutions {
        let rows: Vec<SolutionRow> = kiln_eval::load_jsonl(file, "task_id, completion (and optionally language)")?;
        let mut out = Vec::new();
        for (i, r) in rows.into_iter().enumerate() {
            if r.language.as_deref().is_some_and(|l| multipl_e::Language::parse(l) != Some(lang)) {
                continue;
            }
            let Some(p) = problems.iter().find(|p| p.name == r.task_id) else {
                bail!("{}: row {}: task_id {:?} is not a problem of {} (or is past --limit)", file.display(), i + 1, r.task_id, data.display());
            };
            out.push((p, r.completion));
        }
        out
    } else if a.canonical {
        bail!("MultiPL-E has no canonical solutions; check the harness with --solutions FILE (JSONL of task_id, completion)");
    } else if let Some(url) = &a.endpoint {
        let endpoint = endpoint(a, url)?;
        let texts = complete_each(&problems, |p| &p.name, &mut generation_errors, |t| t.to_string(), |p| {
            let stop = multipl_e::stop_tokens(p, lang);
            let text = endpoint.complete(multipl_e::model_input(p), a.max_tokens, &stop.iter().map(String::as_str).collect::<Vec<_>>())?;
            Ok(multipl_e::truncate(&text, &stop).to_string())
        });
        problems.iter().zip(texts).collect()
    } else {
        let Some(margs) = &a.model else { bail!("give --model DIR, --endpoint URL, or --solutions FILE") };
        let loaded = load(margs)?;
        let generator = Generator::new(&loaded.model, &loaded.tokenizer)?;
        let texts = complete_each(&problems, |p| &p.name, &mut generation_errors, |t| t.to_string(), |p| {
            let stop = multipl_e::stop_tokens(p, lang);
            let params = GenerateParams { max_new_tokens: a.max_tokens, sampling: SamplingParams::default(), eos_ids: loaded.eos_ids.clone(), stop: stop.clone(), ..Default::default() };
            let ids = prompt::completion_ids(&loaded.tokenizer, multipl_e::model_input(p))?;
            Ok(multipl_e::truncate(&generator.generate(&ids, &params, |_| {})?.text, &stop).to_string())
        });
        problems.iter().zip(texts).collect()
    };
    let generated_s = started.elapsed().as_secs_f64();
    let isolation = detect_isolation();
    let limits = Limits { timeout: Duration::from_secs(a.timeout), ..Limits::default() };
    let t = Instant::now();
    let scored = multipl_e::score(&toolchain, &samples, a.workers, &limits, isolation)?;
    let scoring_s = t.elapsed().as_secs_f64();
    let scored: Vec<kiln_eval::run::Scored> = scored.into_iter().map(|s| kiln_eval::run::Scored { task_id: s.task_id, completion: s.completion, result: s.result }).collect();
    let passed = scored.iter().filter(|s| s.result == RunResult::Passed).count();
    let timed_out = scored.iter().filter(|s| s.result == RunResult::TimedOut).count();
    let pass1 = passed as f64 / scored.len().max(1) as f64;
    let source = if m.solutions.is_some() { "solutions" } else { source(a) };
    let summary = json!({
        "benchmark": format!("multipl-e-{lang}"), "language": lang, "problems": scored.len(), "passed": passed, "timed_out": timed_out,
        "pass@1": pass1, "generation_errors": generation_errors, "source": source,
        "isolation": isolation, "workers": a.workers, "generation_s": generated_s, "scoring_s": scoring_s,
    });
    let table = format!(
        "| benchmark | problems | pass@1 | timed out | isolation | scoring |\n|---|---|---|---|---|---|\n| multipl-e {lang} | {} | {:.1}% | {timed_out} | {isolation:?} | {scoring_s:.1} s with {} workers |",
        scored.len(),
        pass1 * 100.0,
        a.workers
    );
    report(a, &scored, &summary, table)
}
