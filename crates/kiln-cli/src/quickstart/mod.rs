//! `kiln quickstart`: the whole DeepSeek-Coder recipe at small scale, on real code found on this
//! machine: sources → corpus (filters, dedup, dependency order, decontamination) → tokenizer
//! (byte-level BPE sized for the corpus) → pack (PSM FIM 0.5, train/val split by repository) →
//! train the `tiny` preset from scratch for the time budget → evaluate on held-out repositories
//! → `report.md` with charts, a sample completion and infill, and the `kiln serve` command.
//!
//! Every stage writes its artefact under `--out` and is recorded in `quickstart.json` when done,
//! so an interrupted run resumes at the stage it was in (training from its latest checkpoint).
//! The settings that decide the artefacts (sources, seed, sizes) are recorded too, and a rerun
//! with different ones is refused instead of mixing two runs in one folder.

mod evaluate;
mod report;
mod sources;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use kiln_corpus::pipeline::{self, BuildPlan};
use kiln_corpus::{CorpusConfig, Manifest};
use kiln_data::{pack_corpus, FimConfig, PackConfig, Split, TokenizerFile};
use kiln_train::{ModelInit, TrainConfig, Trainer};
use serde::{Deserialize, Serialize};

use sources::Candidate;

/// `kiln quickstart ...`
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Output folder (corpus/, tokenizer/, data/, train/, model/, report.md, quickstart.log).
    /// Rerunning with the same folder resumes.
    #[arg(long, default_value = "kiln-quickstart")]
    out: PathBuf,
    /// Time budget of the whole command, in minutes; training gets what the other stages leave.
    #[arg(long, default_value_t = 15.0)]
    minutes: f64,
    /// Repositories to use instead of the cargo registry and the python3 standard library:
    /// folders, git repositories or archives (a folder of projects is read as one repository each).
    #[arg(long, num_args = 1..)]
    sources: Vec<PathBuf>,
    /// Seed of the source selection, FIM draws, train/val split, weights and window order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train exactly this many optimizer steps instead of filling the time budget.
    #[arg(long)]
    steps: Option<usize>,
    /// Most megabytes of source code read (repositories are drawn by the seed up to this).
    #[arg(long, default_value_t = 40)]
    max_source_mb: u64,
    /// BPE vocabulary (default: sized for the corpus, 2,048 to 8,192).
    #[arg(long)]
    vocab_size: Option<usize>,
    /// Tokens per training window.
    #[arg(long, default_value_t = 512)]
    seq_len: usize,
    /// Benchmarks to decontaminate against (humaneval/, mbpp/; default data/benchmarks, the copy
    /// shipped with kiln, or ../shared/benchmarks; without either no decontamination, said in the
    /// report).
    #[arg(long)]
    benchmarks: Option<PathBuf>,
    /// Held-out lines for the single-line infilling exact match.
    #[arg(long, default_value_t = 100)]
    eval_lines: usize,
    /// Held-out lines for the repository-level comparison (with vs without the files their
    /// file imports; 0 skips it).
    #[arg(long, default_value_t = 100)]
    repo_tasks: usize,
    /// Stop after this stage (corpus, tokenizer, pack, train, eval).
    #[arg(long, value_parser = ["corpus", "tokenizer", "pack", "train", "eval"])]
    until: Option<String>,
}

/// What decides the artefacts; a rerun in the same folder must have the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    sources: Vec<PathBuf>,
    seed: u64,
    max_source_mb: u64,
    vocab_size: Option<usize>,
    seq_len: usize,
    steps: Option<usize>,
    decontamination: Option<PathBuf>,
}

/// `quickstart.json`: settings, the repositories chosen, and each finished stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    settings: Settings,
    selected: Vec<Candidate>,
    missing_sources: Vec<String>,
    /// Stage name → seconds it took and what it produced.
    stages: BTreeMap<String, StageRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StageRecord {
    seconds: f64,
    info: serde_json::Value,
}

/// Stage names, in order.
const STAGES: [&str; 6] = ["sources", "corpus", "tokenizer", "pack", "train", "eval"];

/// Seconds kept for evaluation and the report when sizing training to the budget (the default
/// run's evaluation took 35 s on 2 cores).
const EVAL_RESERVE_S: f64 = 50.0;
/// Fewest optimizer steps worth calling training.
const MIN_STEPS: usize = 30;
/// Tokenizer training reads at most this much text (BPE statistics settle long before).
const TOKENIZER_SAMPLE_BYTES: u64 = 24 << 20;

/// The run's folder, log and state.
pub(crate) struct Run {
    out: PathBuf,
    log: std::fs::File,
    state: State,
    started: Instant,
}

impl Run {
    /// Prints a line on stderr and appends it to `quickstart.log`.
    fn say(&mut self, line: impl AsRef<str>) {
        let line = line.as_ref();
        eprintln!("{line}");
        let _ = writeln!(self.log, "[{:>7.1}s] {line}", self.started.elapsed().as_secs_f64());
    }

    fn done(&self, stage: &str) -> Option<&StageRecord> {
        self.state.stages.get(stage)
    }

    fn finish_stage(&mut self, stage: &str, t: Instant, info: serde_json::Value) -> Result<()> {
        self.state.stages.insert(stage.into(), StageRecord { seconds: t.elapsed().as_secs_f64(), info });
        self.save()
    }

    fn save(&self) -> Result<()> {
        let path = self.out.join("quickstart.json");
        kiln_corpus::shard::AtomicFile::write_all_to(&path, &serde_json::to_vec_pretty(&self.state)?)?;
        Ok(())
    }

    /// Seconds the finished stages took, over every run of this folder.
    fn spent_s(&self) -> f64 {
        self.state.stages.values().map(|s| s.seconds).sum()
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }
}

/// Runs `kiln quickstart`.
pub fn run(args: QuickstartArgs) -> Result<()> {
    if args.minutes.is_nan() || args.minutes <= 0.0 {
        bail!("--minutes must be positive (got {})", args.minutes);
    }
    if !(128..=2048).contains(&args.seq_len) {
        bail!("--seq-len must be between 128 and 2048, the `tiny` preset's positions (got {})", args.seq_len);
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating --out {}", args.out.display()))?;
    let started = Instant::now();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(args.out.join("quickstart.log"))
        .with_context(|| format!("opening {}", args.out.join("quickstart.log").display()))?;
    let decontamination = match &args.benchmarks {
        Some(b) if !b.join("humaneval").is_dir() && !b.join("mbpp").is_dir() => {
            bail!("--benchmarks {}: expected humaneval/ and mbpp/ inside", b.display())
        }
        Some(b) => Some(std::fs::canonicalize(b)?),
        // The copy shipped in the repository (data/benchmarks), else the project's shared one.
        None => ["data/benchmarks", "../shared/benchmarks"]
            .iter()
            .filter_map(|b| std::fs::canonicalize(b).ok())
            .find(|b| b.join("humaneval").is_dir()),
    };
    let sources = args.sources.iter().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())).collect();
    let settings = Settings {
        sources,
        seed: args.seed,
        max_source_mb: args.max_source_mb,
        vocab_size: args.vocab_size,
        seq_len: args.seq_len,
        steps: args.steps,
        decontamination,
    };
    let state_path = args.out.join("quickstart.json");
    let state = if state_path.is_file() {
        let text = std::fs::read_to_string(&state_path)?;
        let old: State = serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged; remove it (or the whole folder) to start over", state_path.display()))?;
        if let Some(field) = differing_setting(&old.settings, &settings) {
            bail!(
                "{} holds a quickstart with another {field} ({}); use another --out, or the same settings to resume it",
                args.out.display(),
                state_path.display()
            );
        }
        old
    } else {
        State { settings, selected: Vec::new(), missing_sources: Vec::new(), stages: BTreeMap::new() }
    };
    let mut run = Run { out: args.out.clone(), log, state, started };
    let resumed: Vec<&str> = STAGES.iter().copied().filter(|s| run.done(s).is_some()).collect();
    if !resumed.is_empty() {
        run.say(format!("resuming {}: finished stages {}", args.out.display(), resumed.join(", ")));
    }

    stage_sources(&mut run, &args)?;
    stage_corpus(&mut run)?;
    if args.until.as_deref() == Some("corpus") {
        return Ok(());
    }
    stage_tokenizer(&mut run)?;
    if args.until.as_deref() == Some("tokenizer") {
        return Ok(());
    }
    let val_fraction = stage_pack(&mut run)?;
    if args.until.as_deref() == Some("pack") {
        return Ok(());
    }
    stage_train(&mut run, &args)?;
    if args.until.as_deref() == Some("train") {
        return Ok(());
    }
    let t = Instant::now();
    run.say("[6/6] evaluate on held-out repositories");
    let results = evaluate::evaluate(&mut run, val_fraction, args.eval_lines, args.repo_tasks)?;
    run.finish_stage("eval", t, serde_json::to_value(&results)?)?;
    let report = report::write(&run, &results)?;
    run.say(format!("\nwrote {}", report.display()));
    print_samples(&run, &results);
    Ok(())
}

/// The first setting (by name) that differs between a recorded run and this one.
fn differing_setting(old: &Settings, new: &Settings) -> Option<&'static str> {
    [
        ("--sources", old.sources != new.sources),
        ("--seed", old.seed != new.seed),
        ("--max-source-mb", old.max_source_mb != new.max_source_mb),
        ("--vocab-size", old.vocab_size != new.vocab_size),
        ("--seq-len", old.seq_len != new.seq_len),
        ("--steps", old.steps != new.steps),
        ("decontamination benchmarks (--benchmarks)", old.decontamination != new.decontamination),
    ]
    .into_iter()
    .find(|(_, differs)| *differs)
    .map(|(name, _)| name)
}

fn stage_sources(run: &mut Run, args: &QuickstartArgs) -> Result<()> {
    if run.done("sources").is_some() {
        return Ok(());
    }
    let t = Instant::now();
    run.say("[1/6] find source code");
    let found = if args.sources.is_empty() { sources::default_sources()? } else { sources::user_sources(&args.sources)? };
    for m in &found.missing {
        run.say(format!("  note: {m}; going on with the rest"));
    }
    let budget = args.max_source_mb << 20;
    let selected = sources::select(&found.candidates, budget, args.seed);
    if selected.len() < 2 {
        bail!(
            "quickstart needs at least 2 repositories (one to hold out for evaluation), found {} within --max-source-mb {}",
            selected.len(),
            args.max_source_mb
        );
    }
    let bytes: u64 = selected.iter().map(|c| c.code_bytes).sum();
    let kinds = sources::totals_by_kind(&selected);
    for (kind, (n, b)) in &kinds {
        run.say(format!("  {n} repositories from {kind}, {:.1} MB of code", *b as f64 / 1e6));
    }
    check_disk_space(&run.out, bytes)?;
    run.state.selected = selected;
    run.state.missing_sources = found.missing;
    run.finish_stage(
        "sources",
        t,
        serde_json::json!({"repositories": run.state.selected.len(), "code_bytes": bytes, "found": found.candidates.len()}),
    )
}

/// Refuses to start when the output folder's disk cannot hold the corpus, the packed data and
/// the checkpoints (about 3x the source code, plus room for the model and temporary files).
fn check_disk_space(out: &Path, code_bytes: u64) -> Result<()> {
    let need = 3 * code_bytes + (256 << 20);
    let Some(free) = free_bytes(out) else { return Ok(()) };
    if free < need {
        bail!(
            "not enough disk space at {}: {:.0} MB free, quickstart needs about {:.0} MB for {:.0} MB of source code; free some space, use another --out, or lower --max-source-mb",
            out.display(),
            free as f64 / 1e6,
            need as f64 / 1e6,
            code_bytes as f64 / 1e6
        );
    }
    Ok(())
}

#[cfg(unix)]
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `s` a valid out-parameter.
    (unsafe { libc::statvfs(c.as_ptr(), &mut s) } == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_bytes(_: &Path) -> Option<u64> {
    None
}

fn stage_corpus(run: &mut Run) -> Result<()> {
    if run.done("corpus").is_some() {
        return Ok(());
    }
    let t = Instant::now();
    let decontam = run.state.settings.decontamination.clone();
    run.say(format!(
        "[2/6] corpus: {} repositories -> filters, near-dedup, dependency order, {}",
        run.state.selected.len(),
        if decontam.is_some() {
            "decontamination against HumanEval/MBPP"
        } else {
            "no decontamination (no benchmarks folder; give --benchmarks DIR)"
        }
    ));
    let inputs: Vec<PathBuf> = run.state.selected.iter().map(|c| c.path.clone()).collect();
    let plan = BuildPlan::new(inputs, run.dir("corpus"), CorpusConfig::default(), decontam, None)?;
    let bar = bar(plan.tasks as u64, "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} repositories");
    let observer = TaskBar(bar.clone());
    let outcome = pipeline::build_observed(&plan, None, &observer);
    bar.finish_and_clear();
    let m = outcome?.manifest;
    let bytes: u64 = m.languages.values().map(|l| l.bytes).sum();
    run.say(format!(
        "  {} samples kept of {} ({} exact dup, {} near dup, {} contaminated); {:.1} MB in {} languages",
        m.samples.kept,
        m.samples.candidates,
        m.samples.exact_duplicates,
        m.samples.near_duplicates,
        m.samples.contaminated,
        bytes as f64 / 1e6,
        m.languages.len()
    ));
    if m.samples.kept == 0 {
        bail!(
            "the corpus is empty after filtering: every file of the sources was dropped (see {} for why)",
            run.dir("corpus").join("manifest.json").display()
        );
    }
    run.finish_stage("corpus", t, serde_json::json!({"samples": m.samples.kept, "bytes": bytes}))
}

struct TaskBar(indicatif::ProgressBar);

impl pipeline::BuildObserver for TaskBar {
    fn task_finished(&self, _task: usize, _status: pipeline::TaskStatus) {
        self.0.inc(1);
    }
}

fn bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(len);
    b.set_style(indicatif::ProgressStyle::with_template(template).expect("progress template is valid"));
    b.enable_steady_tick(std::time::Duration::from_millis(200));
    b
}

/// The vocabulary for a corpus of `bytes`: small corpora cannot fill a large one, and the
/// output projection dominates a tiny model's step, so 2,048 BPE ids up to 4 MB, 4,096 up to
/// 16 MB, then 8,192.
fn vocab_for(bytes: u64) -> usize {
    match bytes {
        b if b < 4 << 20 => 2048,
        b if b < 16 << 20 => 4096,
        _ => 8192,
    }
}

fn stage_tokenizer(run: &mut Run) -> Result<()> {
    if run.done("tokenizer").is_some() {
        return Ok(());
    }
    let t = Instant::now();
    let corpus = run.dir("corpus");
    let manifest = Manifest::load(&corpus)?;
    let bytes: u64 = manifest.languages.values().map(|l| l.bytes).sum();
    let vocab = run.state.settings.vocab_size.unwrap_or_else(|| vocab_for(bytes));
    run.say(format!(
        "[3/6] tokenizer: byte-level BPE, {vocab} ids + DeepSeek-Coder's role tokens, on up to {} MB of the corpus",
        TOKENIZER_SAMPLE_BYTES >> 20
    ));
    // A seeded draw of samples from the whole corpus, not its first megabytes: the shards follow
    // the input order (all cargo crates before the python packages), and a tokenizer that never
    // saw Python splits Python into short pieces.
    let keep = (TOKENIZER_SAMPLE_BYTES as f64 / bytes.max(1) as f64).min(1.0);
    let seed = run.state.settings.seed;
    let mut texts = Vec::new();
    let mut taken = 0u64;
    for shard in manifest.shard_paths(&corpus) {
        for s in kiln_corpus::shard::read_all(&shard)? {
            if (sources::mix(seed, &s.id) >> 11) as f64 / (1u64 << 53) as f64 >= keep {
                continue;
            }
            taken += s.text.len() as u64;
            texts.push(s.text);
        }
    }
    let opts = kiln_tokenizer::train::TrainOptions { vocab_size: vocab, ..Default::default() };
    let trained = kiln_tokenizer::train::train_bpe(texts.into_iter(), &opts)?;
    let dir = run.dir("tokenizer");
    std::fs::create_dir_all(&dir)?;
    kiln_corpus::shard::AtomicFile::write_all_to(&dir.join("tokenizer.json"), &serde_json::to_vec_pretty(&trained.tokenizer)?)?;
    kiln_corpus::shard::AtomicFile::write_all_to(&dir.join("tokenizer_config.json"), &serde_json::to_vec_pretty(&trained.config)?)?;
    run.say(format!("  {} BPE ids learned from {} samples ({:.1} MB)", trained.bpe_ids, trained.texts, taken as f64 / 1e6));
    run.finish_stage("tokenizer", t, serde_json::json!({"bpe_ids": trained.bpe_ids, "vocab_size": vocab, "trained_on_bytes": taken}))
}

/// The repositories of the corpus, from its shards.
fn corpus_repos(corpus: &Path) -> Result<Vec<String>> {
    let manifest = Manifest::load(corpus)?;
    let mut repos = Vec::new();
    for shard in manifest.shard_paths(corpus) {
        repos.extend(kiln_corpus::shard::read_all(&shard)?.into_iter().map(|s| s.repo));
    }
    repos.sort();
    repos.dedup();
    Ok(repos)
}

/// The smallest validation fraction of 10%, 20%, 30%, 50% that holds out at least one
/// repository (and keeps at least one for training); the split itself is kiln-data's, by
/// repository name and seed, so the same repositories are held out everywhere. 10%, not the
/// usual 1%: a 15-minute run trains on a fraction of its corpus anyway, and the held-out
/// repositories feed every evaluation (bits per byte, infilling, repository-level lines).
fn val_fraction_for(repos: &[String], seed: u64) -> Result<f64> {
    for f in [0.1, 0.2, 0.3, 0.5] {
        let val = repos.iter().filter(|r| Split::of_repo(r, f, seed) == Split::Val).count();
        if val >= 1 && val < repos.len() {
            return Ok(f);
        }
    }
    bail!("cannot hold out a repository for evaluation among {} (need at least 2 repositories that survive filtering)", repos.len())
}

fn stage_pack(run: &mut Run) -> Result<f64> {
    if let Some(r) = run.done("pack") {
        return r.info["val_fraction"]
            .as_f64()
            .context("quickstart.json: the pack stage lacks val_fraction; remove the folder to start over");
    }
    let t = Instant::now();
    let repos = corpus_repos(&run.dir("corpus"))?;
    let seed = run.state.settings.seed;
    let val_fraction = val_fraction_for(&repos, seed)?;
    let seq_len = run.state.settings.seq_len;
    run.say(format!(
        "[4/6] pack: PSM FIM at rate 0.5, windows of {seq_len} tokens, {:.0}% of {} repositories held out",
        val_fraction * 100.0,
        repos.len()
    ));
    let tokenizer = TokenizerFile::load(&run.dir("tokenizer").join("tokenizer.json"))?;
    let cfg =
        PackConfig { seq_len, fim: FimConfig { rate: 0.5, spm_rate: 0.0, seed }, val_fraction, split_seed: seed, ..PackConfig::default() };
    let s = pack_corpus(&run.dir("corpus"), &tokenizer, &run.dir("data"), &cfg)?;
    let (train, val) = (s.split(Split::Train), s.split(Split::Val));
    run.say(format!(
        "  train: {} windows from {} repositories; val: {} windows from {} repositories",
        train.windows, train.repos, val.windows, val.repos
    ));
    if train.windows == 0 {
        bail!("no training windows: the corpus is smaller than one window of {seq_len} tokens; add sources or lower --seq-len");
    }
    run.finish_stage(
        "pack",
        t,
        serde_json::json!({"val_fraction": val_fraction, "train_windows": train.windows, "val_windows": val.windows, "train_repos": train.repos, "val_repos": val.repos, "train_tokens": train.windows * seq_len as u64}),
    )?;
    Ok(val_fraction)
}

/// Training progress: a bar with loss and speed.
struct TrainBar(indicatif::ProgressBar);

impl kiln_train::trainer::TrainObserver for TrainBar {
    fn on_metrics(&self, m: &kiln_train::StepMetrics, total: usize) {
        if m.kind == "eval" {
            self.0.println(format!("  step {:>6}  val loss {:.4}", m.step, m.loss));
            return;
        }
        self.0.set_length(total as u64);
        self.0.set_position(m.step as u64);
        self.0.set_message(format!("loss {:.4}  {:.0} tok/s", m.loss, m.tokens_per_s));
    }
}

fn train_config(run: &Run, steps: usize) -> TrainConfig {
    let recipe = kiln_train::recipe::recipe(kiln_model::Preset::Tiny);
    let mut cfg = TrainConfig::new(run.dir("data"), ModelInit::Preset("tiny".into()), steps, recipe.max_lr);
    cfg.micro_batch = 8;
    cfg.accumulation = 1;
    cfg.schedule.warmup_steps = recipe.warmup_steps.min(steps / 10);
    cfg.seed = run.state.settings.seed;
    cfg.eval_every = (steps / 10).max(1);
    cfg.checkpoint_every = (steps / 5).max(1);
    cfg.keep_last = 1;
    cfg
}

struct Silent;

impl kiln_train::trainer::TrainObserver for Silent {}

/// Steps that fit `seconds`, from the speed of a few steps of the same model on the same data.
fn calibrate_steps(run: &mut Run, seconds: f64) -> Result<usize> {
    let dir = run.dir("train-calibration");
    let _ = std::fs::remove_dir_all(&dir);
    let device = candle_core::Device::Cpu;
    let mut cfg = train_config(run, 6);
    cfg.eval_every = 0;
    cfg.checkpoint_every = 1_000_000;
    let mut trainer = Trainer::create(&dir, cfg, &device)?;
    trainer.run(None, &Silent)?;
    let text = std::fs::read_to_string(dir.join("metrics.jsonl"))?;
    let mut speeds: Vec<f64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<kiln_train::StepMetrics>(l).ok())
        // The first steps are slower (buffers being allocated): steps 3 to 6 only.
        .filter(|m| m.kind == "train" && m.step > 2)
        .map(|m| m.tokens_per_s)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    speeds.sort_by(f64::total_cmp);
    let tokens_per_s = speeds.get(speeds.len() / 2).copied().unwrap_or(0.0);
    if tokens_per_s <= 0.0 {
        bail!("could not measure the training speed");
    }
    let step_tokens = 8.0 * run.state.settings.seq_len as f64;
    // 3% for the periodic validation passes and checkpoints.
    Ok((seconds * 0.97 * tokens_per_s / step_tokens) as usize)
}

fn stage_train(run: &mut Run, args: &QuickstartArgs) -> Result<()> {
    if run.done("train").is_some() {
        return Ok(());
    }
    let t = Instant::now();
    let dir = run.dir("train");
    let device = candle_core::Device::Cpu;
    // When training must end to leave time for evaluation (a fresh run sized to the budget).
    let mut deadline: Option<Instant> = None;
    let mut trainer = if dir.join("config.json").is_file() {
        run.say("[5/6] train: resuming from the latest checkpoint");
        Trainer::resume(&dir, &device)?
    } else {
        let steps = match run.state.settings.steps {
            Some(s) => s,
            None => {
                let budget = args.minutes * 60.0;
                let left = budget - run.spent_s() - EVAL_RESERVE_S;
                let steps = if left > 0.0 { calibrate_steps(run, left)? } else { 0 };
                deadline = Some(t + std::time::Duration::from_secs_f64(left.max(0.0)));
                if steps < MIN_STEPS {
                    bail!(
                        "--minutes {} is too small to train: the stages before training took {:.0} s and evaluation needs about {EVAL_RESERVE_S:.0} s, leaving {:.0} s ({steps} steps; at least {MIN_STEPS} are needed). Give more --minutes (rerun to resume; the finished stages are kept) or --steps N",
                        args.minutes,
                        run.spent_s(),
                        left.max(0.0)
                    );
                }
                steps
            }
        };
        run.say(format!(
            "[5/6] train: `tiny` preset from scratch, {steps} steps of 8 x {} tokens (DeepSeek-Coder's recipe: AdamW, warmup, step decay)",
            run.state.settings.seq_len
        ));
        Trainer::create(&dir, train_config(run, steps), &device)?
    };
    let total = trainer.cfg.steps as u64;
    let bar = bar(total, "{spinner} [{elapsed_precise}] {bar:30} step {pos}/{len} (ETA {eta})  {msg}");
    bar.set_position(trainer.state().step as u64);
    let result = match deadline {
        Some(deadline) => train_to_deadline(run, &mut trainer, deadline, &TrainBar(bar.clone())),
        None => trainer.run(None, &TrainBar(bar.clone())).map_err(Into::into),
    };
    bar.finish_and_clear();
    if let Err(e) = kiln_train::plot::plot_run(&trainer.run) {
        tracing::warn!(error = %e, "no loss chart");
    }
    let state = result?;
    let ckpt = latest_checkpoint(&dir)?;
    copy_model(&ckpt, &run.dir("model"))?;
    run.say(format!(
        "  {} steps, {} tokens, last loss {:.4}; model in {}",
        state.step,
        state.tokens_seen,
        state.loss,
        run.dir("model").display()
    ));
    run.finish_stage(
        "train",
        t,
        serde_json::json!({"steps": state.step, "tokens": state.tokens_seen, "last_loss": state.loss, "checkpoint": ckpt}),
    )
}

/// Trains a tenth of the plan, then re-plans the number of steps from the real pace (a short
/// calibration on this VM is off by up to 20% either way) so training ends at `deadline`, then
/// trains the rest. The re-plan happens before the LR decay, so it is the run that plan would
/// have been from the start.
fn train_to_deadline(
    run: &mut Run,
    trainer: &mut Trainer,
    deadline: Instant,
    observer: &dyn kiln_train::trainer::TrainObserver,
) -> Result<kiln_train::TrainerState> {
    let planned = trainer.cfg.steps;
    let first = (planned / 10).max(10).min(planned * 7 / 10);
    let started = Instant::now();
    let from = trainer.state().step;
    trainer.run(Some(first), observer)?;
    let taken = trainer.state().step - from;
    if taken > 0 && trainer.state().step < planned {
        let per_step = started.elapsed().as_secs_f64() / taken as f64;
        let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
        let steps = trainer.state().step + (left / per_step) as usize;
        if steps.abs_diff(planned) * 50 > planned {
            match trainer.replan_steps(steps) {
                Ok(()) => run.say(format!("  re-planned to {steps} steps (measured {:.2} s per step; {planned} were planned)", per_step)),
                Err(e) => tracing::warn!(error = %e, "keeping the planned steps"),
            }
        }
    }
    Ok(trainer.run(None, observer)?)
}

/// The newest checkpoint of a run.
fn latest_checkpoint(run: &Path) -> Result<PathBuf> {
    kiln_train::trainer::checkpoints(run).pop().map(|(_, dir)| dir).with_context(|| format!("no checkpoint in {}", run.display()))
}

/// Copies a checkpoint's model files to `dest` (replaced whole, through a temporary folder).
fn copy_model(ckpt: &Path, dest: &Path) -> Result<()> {
    let tmp = dest.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    for e in std::fs::read_dir(ckpt)?.flatten() {
        let name = e.file_name();
        // The model folder: config, weights, tokenizer; not the optimizer or trainer state.
        let keep = name.to_str().is_some_and(|n| {
            (n.ends_with(".json") || n.ends_with(".safetensors")) && !n.starts_with("trainer") && !n.starts_with("optimizer")
        });
        if keep && e.path().is_file() {
            std::fs::copy(e.path(), tmp.join(&name))?;
        }
    }
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&tmp, dest)?;
    Ok(())
}

fn print_samples(run: &Run, r: &evaluate::Results) {
    let model = run.dir("model");
    // The model's text in bold on a terminal, between markers otherwise.
    let (on, off) = if std::io::IsTerminal::is_terminal(&std::io::stdout()) { ("\x1b[1m", "\x1b[0m") } else { ("<<", ">>") };
    if let Some(s) = &r.sample_completion {
        let output = evaluate::first_lines(&s.output, 12);
        println!(
            "\n--- a completion by the new model, held-out file {} (its text in {on}bold{off}) ---\n{}{on}{}{off}",
            s.file, s.prompt, output
        );
    }
    if let Some(s) = &r.sample_infill {
        println!("\n--- an infill by the new model, held-out file {} ---\n{}{on}{}{off}{}", s.file, s.prompt, s.output, s.suffix);
    }
    println!("\nServe it (OpenAI /v1/completions with `suffix` for FIM, llama.cpp /infill):\n  kiln serve --model {}", model.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validation_split_always_holds_out_a_repository() {
        for n in [2usize, 3, 5, 40, 200] {
            let repos: Vec<String> = (0..n).map(|i| format!("repo-{i}")).collect();
            let f = val_fraction_for(&repos, 0).unwrap();
            let val = repos.iter().filter(|r| Split::of_repo(r, f, 0) == Split::Val).count();
            assert!(val >= 1 && val < n, "{n} repos: {val} held out at {f}");
        }
        assert!(val_fraction_for(&["only".to_string()], 0).is_err());
    }

    #[test]
    fn a_changed_setting_is_named() {
        let s =
            Settings { sources: vec![], seed: 0, max_source_mb: 40, vocab_size: None, seq_len: 512, steps: None, decontamination: None };
        assert_eq!(differing_setting(&s, &s.clone()), None);
        assert_eq!(differing_setting(&s, &Settings { seed: 3, ..s.clone() }), Some("--seed"));
        assert_eq!(differing_setting(&s, &Settings { seq_len: 256, ..s.clone() }), Some("--seq-len"));
        assert_eq!(vocab_for(1 << 20), 2048);
        assert_eq!(vocab_for(100 << 20), 8192);
    }
}
