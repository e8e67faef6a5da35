//! The stages of a run and its state: the output folder, `quickstart.log`, `quickstart.json`
//! (the settings, the repositories chosen, each finished stage), and each stage in turn, skipped
//! when recorded as done.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use kiln_base::rng::{seeded_hash, unit_interval};
use kiln_corpus::pipeline::{self, BuildPlan};
use kiln_corpus::BenchmarkSource;
use kiln_corpus::{CorpusConfig, Manifest};
use kiln_data::{pack_corpus, FimConfig, PackConfig, Split, TokenizerFile};
use kiln_train::{TrainConfig, Trainer};
use serde::{Deserialize, Serialize};

use crate::error::{setup, QuickstartError, Result};
use crate::sources::{self, Candidate};
use crate::{evaluate, report, Observer, Options, Outcome, Recipe, Stage};

/// What decides the artefacts; a rerun in the same folder must have the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Settings {
    pub(crate) sources: Vec<PathBuf>,
    pub(crate) seed: u64,
    pub(crate) max_source_mb: u64,
    pub(crate) vocab_size: Option<usize>,
    pub(crate) seq_len: usize,
    pub(crate) steps: Option<usize>,
    /// The benchmarks the corpus is decontaminated against.
    pub(crate) decontamination: BenchmarkSource,
    /// How the model is trained (absent in folders from before it was recorded: the recipe of
    /// then, the paper's).
    #[serde(default = "Recipe::deepseek")]
    pub(crate) recipe: Recipe,
}

/// `quickstart.json`: settings, the repositories chosen, and each finished stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) settings: Settings,
    pub(crate) selected: Vec<Candidate>,
    pub(crate) missing_sources: Vec<String>,
    /// Stage name → seconds it took and what it produced.
    pub(crate) stages: BTreeMap<String, StageRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StageRecord {
    pub(crate) seconds: f64,
    pub(crate) info: serde_json::Value,
}

/// Seconds kept for evaluation and the report when sizing training to the budget (the default
/// run's evaluation took 35 s on 2 cores).
const EVAL_RESERVE_S: f64 = 50.0;
/// Fewest optimizer steps worth calling training.
const MIN_STEPS: usize = 30;
/// Tokenizer training reads at most this much text (BPE statistics settle long before).
const TOKENIZER_SAMPLE_BYTES: u64 = 24 << 20;

/// The run's folder, log, state and observer.
pub(crate) struct Run<'a> {
    pub(crate) out: PathBuf,
    log: std::fs::File,
    pub(crate) state: State,
    started: Instant,
    observer: &'a dyn Observer,
}

impl Run<'_> {
    /// Tells the observer a line and appends it to `quickstart.log`.
    pub(crate) fn say(&mut self, line: impl AsRef<str>) {
        let line = line.as_ref();
        self.observer.say(line);
        let _ = writeln!(self.log, "[{:>7.1}s] {line}", self.started.elapsed().as_secs_f64());
    }

    fn done(&self, stage: Stage) -> Option<&StageRecord> {
        self.state.stages.get(stage.name())
    }

    fn finish_stage(&mut self, stage: Stage, t: Instant, info: serde_json::Value) -> Result<()> {
        self.state.stages.insert(stage.name().into(), StageRecord { seconds: t.elapsed().as_secs_f64(), info });
        self.save()
    }

    fn save(&self) -> Result<()> {
        let path = self.out.join("quickstart.json");
        kiln_base::fs::write_atomic(&path, &serde_json::to_vec_pretty(&self.state)?)?;
        Ok(())
    }

    /// Seconds the finished stages took, over every run of this folder.
    pub(crate) fn spent_s(&self) -> f64 {
        self.state.stages.values().map(|s| s.seconds).sum()
    }

    /// Seconds `stage` took (0 when not done).
    pub(crate) fn stage_s(&self, stage: Stage) -> f64 {
        self.done(stage).map(|s| s.seconds).unwrap_or(0.0)
    }

    pub(crate) fn dir(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }
}

/// Runs (or resumes) a quickstart; see [`crate::run`].
pub(crate) fn run(opts: &Options, observer: &dyn Observer) -> Result<Outcome> {
    opts.validate()?;
    std::fs::create_dir_all(&opts.out).map_err(|e| QuickstartError::context(format!("creating --out {}", opts.out.display()), e))?;
    let started = Instant::now();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(opts.out.join("quickstart.log"))
        .map_err(|e| QuickstartError::context(format!("opening {}", opts.out.join("quickstart.log").display()), e))?;
    let decontamination = match &opts.benchmarks {
        Some(b) if !b.join("humaneval").is_dir() || !b.join("mbpp").is_dir() => {
            setup!(
                "--benchmarks {}: expected humaneval/ and mbpp/ inside (leave it out for the HumanEval and MBPP built into kiln)",
                b.display()
            )
        }
        Some(b) => BenchmarkSource::Dir(std::fs::canonicalize(b)?),
        None => BenchmarkSource::Bundled,
    };
    let sources = opts.sources.iter().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())).collect();
    let settings = Settings {
        sources,
        seed: opts.seed,
        max_source_mb: opts.max_source_mb,
        vocab_size: opts.vocab_size,
        seq_len: opts.seq_len,
        steps: opts.steps,
        decontamination,
        recipe: opts.recipe,
    };
    let state_path = opts.out.join("quickstart.json");
    let state = if state_path.is_file() {
        let text = std::fs::read_to_string(&state_path)?;
        let old: State = serde_json::from_str(&text).map_err(|e| {
            QuickstartError::context(format!("{} is damaged; remove it (or the whole folder) to start over", state_path.display()), e)
        })?;
        if let Some(field) = differing_setting(&old.settings, &settings) {
            setup!(
                "{} holds a quickstart with another {field} ({}); use another --out, or the same settings to resume it",
                opts.out.display(),
                state_path.display()
            );
        }
        old
    } else {
        State { settings, selected: Vec::new(), missing_sources: Vec::new(), stages: BTreeMap::new() }
    };
    let mut run = Run { out: opts.out.clone(), log, state, started, observer };
    let resumed: Vec<&str> = Stage::ALL.iter().filter(|s| run.done(**s).is_some()).map(|s| s.name()).collect();
    if !resumed.is_empty() {
        run.say(format!("resuming {}: finished stages {}", opts.out.display(), resumed.join(", ")));
    }
    let stopped = |run: &Run, last_stage: Stage| Outcome {
        out: run.out.clone(),
        last_stage,
        model: (last_stage >= Stage::Train).then(|| run.dir("model")),
        report: None,
        results: None,
    };

    stage_sources(&mut run, opts)?;
    if opts.until == Some(Stage::Sources) {
        return Ok(stopped(&run, Stage::Sources));
    }
    stage_corpus(&mut run)?;
    if opts.until == Some(Stage::Corpus) {
        return Ok(stopped(&run, Stage::Corpus));
    }
    stage_tokenizer(&mut run)?;
    if opts.until == Some(Stage::Tokenizer) {
        return Ok(stopped(&run, Stage::Tokenizer));
    }
    let val_fraction = stage_pack(&mut run)?;
    if opts.until == Some(Stage::Pack) {
        return Ok(stopped(&run, Stage::Pack));
    }
    stage_train(&mut run, opts)?;
    if opts.until == Some(Stage::Train) {
        return Ok(stopped(&run, Stage::Train));
    }
    let t = Instant::now();
    run.say("[6/6] evaluate on held-out repositories");
    let results = evaluate::evaluate(&mut run, val_fraction, opts.eval_lines, opts.repo_tasks)?;
    run.finish_stage(Stage::Eval, t, serde_json::to_value(&results)?)?;
    let report = report::write(&run, &results)?;
    run.say(format!("\nwrote {}", report.display()));
    Ok(Outcome { report: Some(report), results: Some(results), ..stopped(&run, Stage::Eval) })
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
        ("training recipe (--schedule, --lr)", old.recipe != new.recipe),
    ]
    .into_iter()
    .find(|(_, differs)| *differs)
    .map(|(name, _)| name)
}

fn stage_sources(run: &mut Run, opts: &Options) -> Result<()> {
    if run.done(Stage::Sources).is_some() {
        return Ok(());
    }
    let t = Instant::now();
    run.say("[1/6] find source code");
    let found = if opts.sources.is_empty() { sources::default_sources()? } else { sources::user_sources(&opts.sources)? };
    for m in &found.missing {
        run.say(format!("  note: {m}; going on with the rest"));
    }
    let budget = opts.max_source_mb << 20;
    let selected = sources::select(&found.candidates, budget, opts.seed);
    if selected.len() < 2 {
        setup!(
            "quickstart needs at least 2 repositories (one to hold out for evaluation), found {} within --max-source-mb {}",
            selected.len(),
            opts.max_source_mb
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
        Stage::Sources,
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
        setup!(
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
    if run.done(Stage::Corpus).is_some() {
        return Ok(());
    }
    let t = Instant::now();
    let decontam = run.state.settings.decontamination.clone();
    run.say(format!(
        "[2/6] corpus: {} repositories -> filters, near-dedup, dependency order, decontamination against HumanEval/MBPP ({})",
        run.state.selected.len(),
        decontam.label()
    ));
    let inputs: Vec<PathBuf> = run.state.selected.iter().map(|c| c.path.clone()).collect();
    let plan = BuildPlan::new(inputs, run.dir("corpus"), CorpusConfig::default(), Some(decontam), None)?;
    let total = plan.tasks as u64;
    run.observer.corpus_started(total);
    let tasks = TaskProgress { observer: run.observer, done: AtomicU64::new(0), total };
    let outcome = pipeline::build_observed(&plan, None, &tasks);
    run.observer.corpus_finished();
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
        setup!(
            "the corpus is empty after filtering: every file of the sources was dropped (see {} for why)",
            run.dir("corpus").join("manifest.json").display()
        );
    }
    run.finish_stage(Stage::Corpus, t, serde_json::json!({"samples": m.samples.kept, "bytes": bytes}))
}

/// The corpus build's finished tasks (one per repository), counted for the observer.
struct TaskProgress<'a> {
    observer: &'a dyn Observer,
    done: AtomicU64,
    total: u64,
}

impl pipeline::BuildObserver for TaskProgress<'_> {
    fn task_finished(&self, _task: usize, _status: pipeline::TaskStatus) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        self.observer.corpus_repository_done(done, self.total);
    }
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
    if run.done(Stage::Tokenizer).is_some() {
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
            if unit_interval(seeded_hash(seed, s.id.as_bytes())) >= keep {
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
    kiln_base::fs::write_atomic(&dir.join("tokenizer.json"), &serde_json::to_vec_pretty(&trained.tokenizer)?)?;
    kiln_base::fs::write_atomic(&dir.join("tokenizer_config.json"), &serde_json::to_vec_pretty(&trained.config)?)?;
    run.say(format!("  {} BPE ids learned from {} samples ({:.1} MB)", trained.bpe_ids, trained.texts, taken as f64 / 1e6));
    run.finish_stage(Stage::Tokenizer, t, serde_json::json!({"bpe_ids": trained.bpe_ids, "vocab_size": vocab, "trained_on_bytes": taken}))
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
    setup!("cannot hold out a repository for evaluation among {} (need at least 2 repositories that survive filtering)", repos.len())
}

fn stage_pack(run: &mut Run) -> Result<f64> {
    if let Some(r) = run.done(Stage::Pack) {
        return r.info["val_fraction"].as_f64().ok_or_else(|| {
            QuickstartError::Setup("quickstart.json: the pack stage lacks val_fraction; remove the folder to start over".into())
        });
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
        setup!("no training windows: the corpus is smaller than one window of {seq_len} tokens; add sources or lower --seq-len");
    }
    run.finish_stage(
        Stage::Pack,
        t,
        serde_json::json!({"val_fraction": val_fraction, "train_windows": train.windows, "val_windows": val.windows, "train_repos": train.repos, "val_repos": val.repos, "train_tokens": train.windows * seq_len as u64}),
    )?;
    Ok(val_fraction)
}

/// Training progress, for the observer.
struct TrainProgress<'a>(&'a dyn Observer);

impl kiln_train::trainer::TrainObserver for TrainProgress<'_> {
    fn on_metrics(&self, m: &kiln_train::StepMetrics, total: usize) {
        if m.kind == "eval" {
            self.0.training_eval(m.step, m.loss);
        } else {
            self.0.training_step(m.step, total, m.loss, m.tokens_per_s);
        }
    }
}

fn train_config(run: &Run, steps: usize) -> TrainConfig {
    let mut cfg = run.state.settings.recipe.train_config(run.dir("data"), steps, run.state.settings.seed);
    cfg.eval_every = (steps / 10).max(1);
    cfg.checkpoint_every = (steps / 5).max(1);
    cfg.keep_last = 1;
    cfg
}

/// Steps that fit `seconds`, from the speed of a few steps of the same model on the same data
/// (kiln-train's calibration, in a scratch run folder under the output folder).
fn calibrate_steps(run: &Run, seconds: f64) -> Result<usize> {
    let cfg = train_config(run, kiln_train::budget::CALIBRATION_STEPS);
    match kiln_train::calibrate_steps(&cfg, &run.dir("train-calibration"), &candle_core::Device::Cpu, seconds)? {
        Some(steps) => Ok(steps),
        None => setup!("could not measure the training speed"),
    }
}

fn stage_train(run: &mut Run, opts: &Options) -> Result<()> {
    if run.done(Stage::Train).is_some() {
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
                let budget = opts.minutes * 60.0;
                let left = budget - run.spent_s() - EVAL_RESERVE_S;
                let steps = if left > 0.0 { calibrate_steps(run, left)? } else { 0 };
                deadline = Some(t + std::time::Duration::from_secs_f64(left.max(0.0)));
                if steps < MIN_STEPS {
                    setup!(
                        "--minutes {} is too small to train: the stages before training took {:.0} s and evaluation needs about {EVAL_RESERVE_S:.0} s, leaving {:.0} s ({steps} steps; at least {MIN_STEPS} are needed). Give more --minutes (rerun to resume; the finished stages are kept) or --steps N",
                        opts.minutes,
                        run.spent_s(),
                        left.max(0.0)
                    );
                }
                steps
            }
        };
        let recipe = run.state.settings.recipe;
        run.say(format!(
            "[5/6] train: from scratch, {steps} steps of {} x {} tokens ({})",
            recipe.batch_windows,
            run.state.settings.seq_len,
            recipe.describe()
        ));
        Trainer::create(&dir, train_config(run, steps), &device)?
    };
    let observer = run.observer;
    observer.training_started(trainer.state().step, trainer.cfg.steps);
    let progress = TrainProgress(observer);
    let result = match deadline {
        Some(deadline) => kiln_train::train_to_deadline(&mut trainer, deadline, &progress, &mut |r| {
            run.say(format!(
                "  re-planned to {} steps (measured {:.2} s per step; {} were planned)",
                r.steps, r.seconds_per_step, r.planned
            ))
        }),
        None => trainer.run(None, &progress),
    };
    observer.training_finished();
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
        Stage::Train,
        t,
        serde_json::json!({"steps": state.step, "tokens": state.tokens_seen, "last_loss": state.loss, "checkpoint": ckpt}),
    )
}

/// The newest checkpoint of a run.
fn latest_checkpoint(run: &Path) -> Result<PathBuf> {
    kiln_train::trainer::checkpoints(run)
        .pop()
        .map(|(_, dir)| dir)
        .ok_or_else(|| QuickstartError::Setup(format!("no checkpoint in {}", run.display())))
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
        let s = Settings {
            sources: vec![],
            seed: 0,
            max_source_mb: 40,
            vocab_size: None,
            seq_len: 512,
            steps: None,
            decontamination: BenchmarkSource::Bundled,
            recipe: Recipe::default(),
        };
        assert_eq!(differing_setting(&s, &s.clone()), None);
        assert_eq!(differing_setting(&s, &Settings { seed: 3, ..s.clone() }), Some("--seed"));
        assert_eq!(differing_setting(&s, &Settings { seq_len: 256, ..s.clone() }), Some("--seq-len"));
        let wsd = Recipe { schedule: kiln_train::ScheduleKind::Wsd, ..Recipe::default() };
        assert_eq!(differing_setting(&s, &Settings { recipe: wsd, ..s.clone() }), Some("training recipe (--schedule, --lr)"));
        // A folder from before the recipe was recorded reads as the paper's recipe.
        let mut old = serde_json::to_value(&s).unwrap();
        old.as_object_mut().unwrap().remove("recipe");
        assert_eq!(serde_json::from_value::<Settings>(old).unwrap().recipe, Recipe::deepseek());
        assert_eq!(vocab_for(1 << 20), 2048);
        assert_eq!(vocab_for(100 << 20), 8192);
    }
}
