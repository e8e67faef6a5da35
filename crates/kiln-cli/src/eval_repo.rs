//! `kiln eval repo build` and `kiln eval repo`: the repository-level completion benchmark
//! (kiln_eval::repo_bench), with and without the imported files as context.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use kiln_eval::repo_bench::{self, Budgets, BuildOptions, EvalOptions};
use kiln_infer::{Engine, GenerateParams, SamplingParams};
use serde_json::json;

use crate::generate::{load, ModelArgs};

/// `kiln eval repo [build]`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RepoArgs {
    #[command(subcommand)]
    command: Option<RepoCommand>,
    #[command(flatten)]
    score: ScoreArgs,
}

#[derive(Debug, Subcommand)]
enum RepoCommand {
    /// Select lines that need a symbol defined in another imported file of the same (held-out)
    /// repository; writes the tasks and a snapshot of the repositories' files (X.repos.jsonl).
    Build(BuildArgs),
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// A corpus written by `kiln corpus build` (its held-out repositories are used).
    #[arg(long, required_unless_present = "repos", conflicts_with = "repos")]
    corpus: Option<PathBuf>,
    /// Repository directories, git repositories or archives, read with kiln-repo (the split
    /// still applies: add --all-repos to use them all).
    #[arg(long, num_args = 1..)]
    repos: Vec<PathBuf>,
    /// The tasks file to write; the snapshot goes next to it (bench.jsonl → bench.repos.jsonl).
    #[arg(long)]
    out: PathBuf,
    /// Held-out fraction of repositories, as `kiln data pack --val-fraction`.
    #[arg(long, default_value_t = 0.01)]
    val_fraction: f64,
    /// Split seed, as `kiln data pack --seed` (also seeds the choice of lines).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use every repository, not only the held-out ones.
    #[arg(long)]
    all_repos: bool,
    /// Most tasks in all.
    #[arg(long, default_value_t = 500)]
    max_tasks: usize,
    /// Most tasks per file.
    #[arg(long, default_value_t = 5)]
    max_per_file: usize,
}

#[derive(Debug, Args)]
struct ScoreArgs {
    /// The tasks file written by `kiln eval repo build` (its .repos.jsonl must be beside it).
    #[arg(long, required = true)]
    bench: Option<PathBuf>,
    /// Model directory or GGUF file.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Compute dtype: f32, bf16 or f16 (default: the checkpoint's torch_dtype on a GPU, f32 on the CPU).
    #[arg(long, requires = "model")]
    dtype: Option<kiln_model::WeightDType>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Take completions from an OpenAI-compatible server (`http://host:port`): it is sent the
    /// rendered prompt text (context files, path comment, prefix).
    #[arg(long, conflicts_with = "model")]
    endpoint: Option<String>,
    /// A tokenizer (tokenizer.json or its folder): with --endpoint, the served model's (for the
    /// token budgets); with --model, one that replaces the model's own (a GGUF file without
    /// tokenizer metadata needs it).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// File holding the endpoint's API key.
    #[arg(long, requires = "endpoint")]
    api_key_file: Option<PathBuf>,
    /// Most new tokens per completion (cceval: 50).
    #[arg(long, default_value_t = 50)]
    max_tokens: usize,
    /// Token budget of the cross-file context (cceval: 512).
    #[arg(long, default_value_t = 512)]
    context_tokens: usize,
    /// Token budget of the whole prompt (default 2048 − 64; lowered to the model's context
    /// length minus --max-tokens when that is smaller).
    #[arg(long, default_value_t = 2048 - 64)]
    max_prompt_tokens: usize,
    /// Fill in the middle (the suffix after the line is given too) instead of left-to-right.
    #[arg(long)]
    fim: bool,
    /// Only the first N tasks.
    #[arg(long)]
    limit: Option<usize>,
    /// Write results.jsonl (per task, both conditions) and summary.json here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `kiln eval repo [build]`.
pub fn run(a: RepoArgs) -> Result<()> {
    match a.command {
        Some(RepoCommand::Build(b)) => run_build(b),
        None => run_score(a.score),
    }
}

fn run_build(a: BuildArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&a.val_fraction) {
        bail!("--val-fraction {}: give a fraction between 0 and 1", a.val_fraction);
    }
    let opts = BuildOptions {
        val_fraction: a.val_fraction,
        seed: a.seed,
        all_repos: a.all_repos,
        max_tasks: a.max_tasks,
        max_per_file: a.max_per_file,
        ..BuildOptions::default()
    };
    let repos = match &a.corpus {
        Some(dir) => repo_bench::repos_from_corpus(dir, &opts)?,
        None => {
            let mut repos = Vec::new();
            for p in &a.repos {
                let (repo, _) = kiln_repo::ingest::ingest_path(p, &kiln_repo::ingest::IngestOptions::default())
                    .with_context(|| format!("--repos {}", p.display()))?;
                repos.push(repo);
            }
            repos
        }
    };
    let tasks = repo_bench::build_from_repos(&repos, &opts)?;
    if tasks.is_empty() {
        let held = repos.iter().filter(|r| opts.selects(&r.name)).count();
        bail!(
            "no tasks: {held} of {} repositories are held out (--val-fraction {}, --seed {}) and none has a line using a symbol from another file it imports; try --all-repos or more repositories",
            repos.len(),
            a.val_fraction,
            a.seed
        );
    }
    repo_bench::write_bench(&a.out, &tasks, &repos)?;
    let repos_used: std::collections::BTreeSet<&str> = tasks.iter().map(|t| t.repo.as_str()).collect();
    println!(
        "{} tasks from {} repositories → {} (+ {})",
        tasks.len(),
        repos_used.len(),
        a.out.display(),
        repo_bench::snapshot_path(&a.out).display()
    );
    Ok(())
}

fn run_score(a: ScoreArgs) -> Result<()> {
    let bench = a.bench.clone().expect("clap requires --bench");
    let (mut tasks, repos) = repo_bench::load_bench(&bench)?;
    if let Some(n) = a.limit {
        tasks.truncate(n);
    }
    let mut budgets = Budgets { max_prompt_tokens: a.max_prompt_tokens, context_tokens: a.context_tokens };
    let started = Instant::now();
    let (report, source) = if let Some(url) = &a.endpoint {
        let Some(tok_path) = &a.tokenizer else {
            bail!("--endpoint needs --tokenizer PATH (the served model's tokenizer.json) to count the prompt budgets")
        };
        let tokenizer = kiln_tokenizer::Tokenizer::from_file(tok_path).with_context(|| format!("--tokenizer {}", tok_path.display()))?;
        let key = match &a.api_key_file {
            Some(f) => Some(std::fs::read_to_string(f).with_context(|| format!("--api-key-file {}", f.display()))?.trim().to_string()),
            None => None,
        };
        let endpoint = kiln_eval::client::Endpoint::parse(url, key, Duration::from_secs(300))?;
        let opts = EvalOptions { budgets: check_budgets(budgets)?, fim: a.fim, partial_files: false };
        let report = repo_bench::evaluate(&tasks, &repos, &tokenizer, &opts, |p| match &p.suffix {
            Some(s) => endpoint.complete_fim(&p.text, s, a.max_tokens),
            None => endpoint.complete(&p.text, a.max_tokens, &["\n"]),
        })?;
        (report, "endpoint")
    } else {
        let Some(model) = &a.model else { bail!("give --model DIR or --endpoint URL") };
        let margs =
            &ModelArgs { model: model.clone(), tokenizer: a.tokenizer.clone(), dtype: a.dtype, device: a.device.clone(), cache_type: None };
        let loaded = load(margs)?;
        let window = loaded.model.config().max_position_embeddings;
        if window <= a.max_tokens + 16 {
            bail!("--max-tokens {} leaves no room for a prompt in the model's {window}-token context", a.max_tokens);
        }
        if budgets.max_prompt_tokens + a.max_tokens > window {
            budgets.max_prompt_tokens = window - a.max_tokens;
            tracing::warn!(max_prompt_tokens = budgets.max_prompt_tokens, "prompt budget lowered to the model's context length");
        }
        let generator = Engine::new(loaded.model.as_ref(), &loaded.tokenizer)?;
        let params = GenerateParams {
            max_new_tokens: a.max_tokens,
            sampling: SamplingParams::default(),
            eos_ids: loaded.eos_ids.clone(),
            // One line is all a task asks for.
            stop: vec!["\n".to_string()],
            ..Default::default()
        };
        let opts = EvalOptions { budgets: check_budgets(budgets)?, fim: a.fim, partial_files: false };
        let report = repo_bench::evaluate(&tasks, &repos, &loaded.tokenizer, &opts, |p| {
            generator.generate(&p.ids, &params, |_| {}).map(|g| g.text)
        })?;
        (report, "model")
    };
    let all = report.score.all();
    // A budget too small for any imported file makes "with" the same prompt as "without": say so.
    let with_files = report.results.iter().filter(|r| !r.context_files.is_empty()).count();
    let summary = json!({
        "benchmark": "repo-line-completion", "tasks": report.results.len(), "source": source, "fim": a.fim,
        "budgets": report.options.budgets, "max_tokens": a.max_tokens, "generation_errors": report.generation_errors,
        "tasks_with_context_files": with_files,
        "with_context": all.with_context, "without_context": all.without_context, "rows": report.score.rows,
        "generation_s": started.elapsed().as_secs_f64(),
    });
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("--out {}", dir.display()))?;
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("results.jsonl"))?);
        for r in &report.results {
            writeln!(f, "{}", serde_json::to_string(r)?)?;
        }
        f.flush()?;
        std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(&summary)?)?;
    }
    if a.json {
        println!("{summary}");
    } else {
        println!("{}", report.score.markdown());
        if with_files < report.results.len() {
            println!(
                "\n{} of {} tasks got no context file within the {}-token context budget (their two conditions are the same prompt).",
                report.results.len() - with_files,
                report.results.len(),
                report.options.budgets.context_tokens
            );
        }
    }
    Ok(())
}

/// The cross-file budget must leave the in-file part room: at most half the prompt.
fn check_budgets(mut b: Budgets) -> Result<Budgets> {
    if b.max_prompt_tokens < 32 {
        bail!("--max-prompt-tokens {}: too small for a prompt (give at least 32)", b.max_prompt_tokens);
    }
    if b.context_tokens > b.max_prompt_tokens / 2 {
        b.context_tokens = b.max_prompt_tokens / 2;
        tracing::warn!(context_tokens = b.context_tokens, "context budget lowered to half the prompt budget");
    }
    Ok(b)
}
