//! Running a grid: the shared stages once (quickstart's sources, corpus, tokenizer and default
//! pack, in `base/`), each data variant packed once (`packs/`), then every arm x seed trained and
//! scored (`arms/<arm>/seed-<n>/`, finished when its `result.json` is written), then the report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln_data::{pack_corpus, FimConfig, PackConfig, PackSummary, TokenizerFile};
use kiln_infer::LoadedModel;
use kiln_quickstart::evaluate::{self, CrossFileScore, HeldOut, InfillScore, MiddleScore};
use kiln_quickstart::{Recipe, Stage};
use kiln_train::{StepMetrics, TrainError, Trainer};
use serde::{Deserialize, Serialize};

use crate::grid::{arms_of, Arm, DataVariant, Question};
use crate::{report, ExperimentError, ExperimentObserver, Result};

/// An experiment: the `kiln experiment` flags.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentOptions {
    /// Output folder; a rerun with the same folder resumes.
    pub out: PathBuf,
    /// Repositories (default: the cargo registry and the python3 standard library, as quickstart).
    pub sources: Vec<PathBuf>,
    /// Seed of the sources, corpus, split and FIM draws; arm seeds are `seed`, `seed + 1`, ...
    pub seed: u64,
    /// Training seeds per arm.
    pub seeds: usize,
    /// The questions asked.
    pub questions: Vec<Question>,
    /// Only these arms of the questions (by name; empty: all).
    pub arms: Vec<String>,
    /// Training minutes per arm and seed (every arm the same wall-clock); or
    pub minutes_per_arm: f64,
    /// a fixed number of optimizer steps per arm instead (reproducible; for tests).
    pub steps: Option<usize>,
    /// Refuse to start when the estimate is over this many minutes (naming the grid that fits);
    /// with `minutes_per_arm` only (a step count's time is not known in advance).
    pub budget_minutes: Option<f64>,
    /// Most megabytes of source code read.
    pub max_source_mb: u64,
    /// BPE vocabulary (`None`: sized for the corpus, as quickstart).
    pub vocab_size: Option<usize>,
    /// Tokens per training window (and per scoring window).
    pub seq_len: usize,
    /// Held-out lines for FIM-middle scoring and infilling exact match.
    pub eval_lines: usize,
    /// Held-out cross-file lines (0 skips the cross-file measures).
    pub cross_file_tasks: usize,
    /// Benchmarks to decontaminate against (`None`: those built into kiln).
    pub benchmarks: Option<PathBuf>,
    /// Train nothing: write the report from the runs already finished in the folder (to see
    /// where a long grid stands, or to report a grid stopped early; the missing runs are named).
    pub report_only: bool,
}

impl Default for ExperimentOptions {
    fn default() -> Self {
        ExperimentOptions {
            out: PathBuf::from("kiln-experiment"),
            sources: Vec::new(),
            seed: 0,
            seeds: 3,
            questions: Question::ALL.to_vec(),
            arms: Vec::new(),
            minutes_per_arm: 3.0,
            steps: None,
            budget_minutes: None,
            max_source_mb: 40,
            vocab_size: None,
            seq_len: 512,
            eval_lines: 100,
            cross_file_tasks: 100,
            benchmarks: None,
            report_only: false,
        }
    }
}

/// Minutes the shared stages take when not yet done (40 MB of sources on 2 cores: about 3).
const BASE_ESTIMATE_MIN: f64 = 3.0;
/// Minutes to pack one more data variant.
const PACK_ESTIMATE_MIN: f64 = 0.5;
/// Minutes to time a few steps and score one trained arm (held-out bits per byte, FIM middles,
/// infilling, cross-file lines with their synthetic control).
const JOB_OVERHEAD_MIN: f64 = 0.7;

/// `experiment.json`: what the folder's shared stages were built with, and the grid last run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    base: BaseSettings,
    arms: Vec<Arm>,
}

/// The settings of the shared stages; a rerun must have the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BaseSettings {
    sources: Vec<PathBuf>,
    seed: u64,
    max_source_mb: u64,
    vocab_size: Option<usize>,
    seq_len: usize,
}

/// What one arm and seed gave (`arms/<arm>/seed-<n>/result.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobResult {
    /// The arm.
    pub arm: String,
    /// [`Arm::key`] of the arm it was run with.
    pub key: String,
    /// The training seed.
    pub seed: u64,
    /// The budget it was run with (`"3 min"` or `"200 steps"`).
    pub budget: String,
    /// The run stopped on non-finite losses (its measures are then absent).
    pub diverged: bool,
    /// Optimizer steps and tokens trained.
    pub steps: usize,
    /// Tokens trained on.
    pub tokens: u64,
    /// Seconds of training.
    pub train_seconds: f64,
    /// The last training loss.
    pub last_loss: f64,
    /// Held-out bits per byte (left to right, each file alone, sliding windows).
    pub bits_per_byte: Option<f64>,
    /// FIM middles with and without the suffix.
    pub middles: Option<MiddleScore>,
    /// Single-line infilling exact match.
    pub infill: Option<InfillScore>,
    /// Cross-file lines with and without the imported files, and the synthetic control.
    pub cross_file: Option<CrossFileScore>,
}

/// What [`run`] produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `results.md`.
    pub report: PathBuf,
    /// `results.json`.
    pub json: PathBuf,
    /// The charts.
    pub plots: Vec<PathBuf>,
    /// Every job's result.
    pub results: Vec<JobResult>,
}

impl ExperimentOptions {
    /// Checks what can be checked before anything runs; the messages name the flag or the arm.
    pub fn validate(&self) -> Result<Vec<Arm>> {
        if self.questions.is_empty() {
            return Err(ExperimentError::Setup("--questions: name at least one question".into()));
        }
        if self.seeds == 0 {
            return Err(ExperimentError::Setup("--seeds must be at least 1".into()));
        }
        if self.steps.is_none() && !(self.minutes_per_arm.is_finite() && self.minutes_per_arm > 0.0) {
            return Err(ExperimentError::Setup(format!("--minutes-per-arm must be positive (got {})", self.minutes_per_arm)));
        }
        if self.steps == Some(0) {
            return Err(ExperimentError::Setup("--steps must be at least 1".into()));
        }
        let (arms, _) = self.grid();
        for name in &self.arms {
            let (all, _) = arms_of(&self.questions, &Arm::baseline());
            if !all.iter().any(|a| &a.name == name) {
                return Err(ExperimentError::Setup(format!(
                    "--arms: no arm {name:?} in the questions asked; they have {}",
                    all.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        if arms.is_empty() {
            return Err(ExperimentError::Setup("--arms leaves no arm to run".into()));
        }
        for a in &arms {
            a.validate().map_err(ExperimentError::Setup)?;
            if a.recipe.shape.max_position_embeddings < self.seq_len {
                return Err(ExperimentError::Setup(format!(
                    "arm {}: --seq-len {} is over the model's {} positions",
                    a.name, self.seq_len, a.recipe.shape.max_position_embeddings
                )));
            }
        }
        Ok(arms)
    }

    /// The arms to run (each once) and each question's arms, after the `arms` filter.
    pub fn grid(&self) -> (Vec<Arm>, Vec<(Question, Vec<String>)>) {
        let (mut arms, mut by_question) = arms_of(&self.questions, &Arm::baseline());
        if !self.arms.is_empty() {
            arms.retain(|a| self.arms.contains(&a.name));
            for (_, names) in &mut by_question {
                names.retain(|n| self.arms.contains(n));
            }
        }
        (arms, by_question)
    }

    fn budget_label(&self) -> String {
        match self.steps {
            Some(s) => format!("{s} steps"),
            None => format!("{} min", self.minutes_per_arm),
        }
    }

    /// Minutes the grid takes: the shared stages (when not done), the extra packs, and every
    /// arm x seed (its training budget and its scoring).
    fn estimate_min(&self, arms: &[Arm], seeds: usize, base_done: bool) -> f64 {
        let packs = distinct_data(arms).iter().filter(|d| **d != DataVariant::default()).count();
        let per_job = self.steps.map(|_| 0.0).unwrap_or(self.minutes_per_arm) + JOB_OVERHEAD_MIN;
        (if base_done { 0.0 } else { BASE_ESTIMATE_MIN }) + packs as f64 * PACK_ESTIMATE_MIN + (arms.len() * seeds) as f64 * per_job
    }
}

fn distinct_data(arms: &[Arm]) -> Vec<DataVariant> {
    let mut v: Vec<DataVariant> = Vec::new();
    for a in arms {
        if !v.contains(&a.data) {
            v.push(a.data);
        }
    }
    v
}

/// The folder name of an arm (its name with anything but letters, digits, `.`, `-` and `+`
/// replaced).
pub(crate) fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+') { c } else { '_' }).collect()
}

/// Runs (or resumes) an experiment.
pub fn run(opts: &ExperimentOptions, observer: &dyn ExperimentObserver) -> Result<Outcome> {
    let arms = opts.validate()?;
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(|e| ExperimentError::io(out, e))?;
    let base_dir = out.join("base");
    let base_done = quickstart_stage_done(&base_dir, Stage::Pack);
    let estimate = opts.estimate_min(&arms, opts.seeds, base_done);
    let jobs = arms.len() * opts.seeds;
    observer.say(&format!(
        "{} arms x {} seeds = {jobs} training runs of {} each, {} questions ({}); estimated {:.0} min{}",
        arms.len(),
        opts.seeds,
        opts.budget_label(),
        opts.questions.len(),
        opts.questions.iter().map(|q| q.name()).collect::<Vec<_>>().join(", "),
        estimate,
        if opts.steps.is_some() { " plus the training steps (their time is not known before they run)" } else { "" }
    ));
    if opts.report_only {
        return report_finished(opts, &arms, &base_dir, observer);
    }
    if let (Some(budget), None) = (opts.budget_minutes, opts.steps) {
        if estimate > budget {
            return Err(ExperimentError::Setup(too_big(opts, &arms, base_done, estimate, budget)));
        }
    }

    // The folder's record: the shared stages must match; changed arms are named.
    let base = BaseSettings {
        sources: opts.sources.iter().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())).collect(),
        seed: opts.seed,
        max_source_mb: opts.max_source_mb,
        vocab_size: opts.vocab_size,
        seq_len: opts.seq_len,
    };
    let state_path = out.join("experiment.json");
    if state_path.is_file() {
        let old: State = serde_json::from_slice(&std::fs::read(&state_path).map_err(|e| ExperimentError::io(&state_path, e))?)
            .map_err(|e| ExperimentError::Setup(format!("{} is damaged ({e}); remove it to start over", state_path.display())))?;
        if old.base != base {
            return Err(ExperimentError::Setup(format!(
                "{} holds an experiment on other sources, seed, vocabulary or window ({}); use another --out, or the same settings to resume it",
                out.display(),
                state_path.display()
            )));
        }
        for a in &arms {
            match old.arms.iter().find(|o| o.name == a.name) {
                Some(o) if o.key() != a.key() => observer.say(&format!("  arm {} changed since the last run: it is run again", a.name)),
                Some(_) => {}
                None => observer.say(&format!("  arm {} is new", a.name)),
            }
        }
        for o in old.arms.iter().filter(|o| !arms.iter().any(|a| a.name == o.name)) {
            observer.say(&format!("  arm {} is no longer in the grid: its results stay in arms/ but leave the tables", o.name));
        }
    }
    let state = State { base: base.clone(), arms: arms.clone() };
    kiln_base::fs::write_atomic(&state_path, &serde_json::to_vec_pretty(&state)?)?;

    // 1. The shared stages, by quickstart (resumable there).
    observer.say("[base] sources, corpus, tokenizer and the default pack (kiln quickstart's stages)");
    let qs = kiln_quickstart::Options {
        out: base_dir.clone(),
        minutes: 1e6,
        sources: opts.sources.clone(),
        seed: opts.seed,
        steps: None,
        max_source_mb: opts.max_source_mb,
        vocab_size: opts.vocab_size,
        seq_len: opts.seq_len,
        benchmarks: opts.benchmarks.clone(),
        eval_lines: 0,
        repo_tasks: 0,
        until: Some(Stage::Pack),
        // The base folder never trains; a fixed recipe keeps its record stable when the default
        // recipe changes.
        recipe: Recipe::deepseek(),
    };
    kiln_quickstart::run(&qs, &Relay(observer))?;
    let val_fraction = base_val_fraction(&base_dir)?;
    let corpus = base_dir.join("corpus");
    let heldout = evaluate::heldout_files(&corpus, val_fraction, opts.seed)?;
    // The cross-file tasks: read from the corpus once, scored by every run.
    let repo_tasks = evaluate::heldout_repo_tasks(&corpus, val_fraction, opts.seed, opts.cross_file_tasks)?;

    // 2. The data variants.
    let tokenizer = TokenizerFile::load(&base_dir.join("tokenizer").join("tokenizer.json"))?;
    let mut packs: Vec<(DataVariant, PathBuf)> = Vec::new();
    for data in distinct_data(&arms) {
        let dir = if data == DataVariant::default() { base_dir.join("data") } else { out.join("packs").join(data.slug()) };
        let cfg = PackConfig {
            seq_len: opts.seq_len,
            fim: FimConfig { rate: data.fim_rate, spm_rate: data.spm_rate, seed: opts.seed },
            val_fraction,
            split_seed: opts.seed,
            order: data.order,
            ..PackConfig::default()
        };
        let packed = PackSummary::load(&dir).ok().filter(|m| m.fim == cfg.fim && m.order == cfg.order && m.seq_len == cfg.seq_len);
        if packed.is_none() {
            observer.say(&format!("[pack] {}", data.slug()));
            pack_corpus(&corpus, &tokenizer, &dir, &cfg)?;
        }
        packs.push((data, dir));
    }

    // 3. Every arm x seed.
    let started = Instant::now();
    let mut results = Vec::with_capacity(jobs);
    let mut index = 0;
    observer.jobs_planned(jobs);
    // Seeds outer, arms inner: on a machine whose speed drifts during the grid (VMs do, by
    // 20-30% over tens of minutes), every arm then gets runs early and late, instead of the
    // first arms getting a faster machine; it matters for arms trained to equal wall-clock.
    for s in 0..opts.seeds {
        for arm in &arms {
            let pack = &packs.iter().find(|(d, _)| *d == arm.data).expect("every arm's data is packed").1;
            let seed = opts.seed + s as u64;
            let dir = out.join("arms").join(slug(&arm.name)).join(format!("seed-{s}"));
            let label = format!("{} seed {seed}", arm.name);
            observer.job_started(index, jobs, &label);
            let result = match finished(&dir, arm, seed, &opts.budget_label()) {
                Some(r) => r,
                None => {
                    let r = run_job(opts, arm, seed, pack, &dir, &heldout, repo_tasks.as_ref(), observer)?;
                    kiln_base::fs::write_atomic(&dir.join("result.json"), &serde_json::to_vec_pretty(&r)?)?;
                    r
                }
            };
            observer.say(&format!(
                "  {label}: {}",
                match (result.diverged, result.bits_per_byte) {
                    (true, _) => "diverged".to_string(),
                    (false, Some(b)) => format!("{b:.4} bits per byte, {} steps", result.steps),
                    (false, None) => "no measure".to_string(),
                }
            ));
            results.push(result);
            index += 1;
            observer.job_finished(index, jobs);
        }
    }
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "grid done");

    // 4. The report.
    let (_, by_question) = opts.grid();
    let written = report::write(out, opts, &arms, &by_question, &results, &heldout)?;
    Ok(Outcome { report: written.markdown, json: written.json, plots: written.plots, results })
}

/// `report_only`: the report from the finished runs, naming the missing ones.
fn report_finished(opts: &ExperimentOptions, arms: &[Arm], base_dir: &Path, observer: &dyn ExperimentObserver) -> Result<Outcome> {
    if !quickstart_stage_done(base_dir, Stage::Pack) {
        return Err(ExperimentError::Setup(format!(
            "nothing to report in {}: its shared stages (base/) are not built yet; run the experiment first",
            opts.out.display()
        )));
    }
    let val_fraction = base_val_fraction(base_dir)?;
    let heldout = evaluate::heldout_files(&base_dir.join("corpus"), val_fraction, opts.seed)?;
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for arm in arms {
        for s in 0..opts.seeds {
            let dir = opts.out.join("arms").join(slug(&arm.name)).join(format!("seed-{s}"));
            match finished(&dir, arm, opts.seed + s as u64, &opts.budget_label()) {
                Some(r) => results.push(r),
                None => missing.push(format!("{} seed {}", arm.name, opts.seed + s as u64)),
            }
        }
    }
    if !missing.is_empty() {
        observer.say(&format!("not finished (left out of the report): {}", missing.join(", ")));
    }
    let (_, by_question) = opts.grid();
    let written = report::write(&opts.out, opts, arms, &by_question, &results, &heldout)?;
    Ok(Outcome { report: written.markdown, json: written.json, plots: written.plots, results })
}

/// The message for a grid over its budget: the estimate and the largest grid that fits.
fn too_big(opts: &ExperimentOptions, arms: &[Arm], base_done: bool, estimate: f64, budget: f64) -> String {
    let mut fits = None;
    for seeds in (1..opts.seeds).rev() {
        if opts.estimate_min(arms, seeds, base_done) <= budget {
            fits = Some(format!("all {} questions with --seeds {seeds}", opts.questions.len()));
            break;
        }
    }
    if fits.is_none() {
        // Fewer questions, one seed: the longest prefix of the asked questions that fits.
        for n in (1..opts.questions.len()).rev() {
            let (a, _) = arms_of(&opts.questions[..n], &Arm::baseline());
            if opts.estimate_min(&a, 1, base_done) <= budget {
                let names: Vec<&str> = opts.questions[..n].iter().map(|q| q.name()).collect();
                fits = Some(format!("--questions {} --seeds 1", names.join(",")));
                break;
            }
        }
    }
    format!(
        "the grid needs about {estimate:.0} min but --budget-minutes is {budget}; {} (or lower --minutes-per-arm)",
        match fits {
            Some(f) => format!("the largest grid that fits: {f}"),
            None => "not even one question with one seed fits".into(),
        }
    )
}

/// Whether quickstart recorded `stage` as done in `dir`.
fn quickstart_stage_done(dir: &Path, stage: Stage) -> bool {
    std::fs::read(dir.join("quickstart.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["stages"].get(stage.name()).is_some())
}

/// The validation fraction quickstart's pack stage chose (the held-out repositories).
fn base_val_fraction(dir: &Path) -> Result<f64> {
    let path = dir.join("quickstart.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).map_err(|e| ExperimentError::io(&path, e))?)?;
    v["stages"]["pack"]["info"]["val_fraction"]
        .as_f64()
        .ok_or_else(|| ExperimentError::Setup(format!("{}: the pack stage lacks val_fraction; remove base/ to rebuild it", path.display())))
}

/// A finished job's result, when it was run with this arm's settings, seed and budget.
fn finished(dir: &Path, arm: &Arm, seed: u64, budget: &str) -> Option<JobResult> {
    let r: JobResult = serde_json::from_slice(&std::fs::read(dir.join("result.json")).ok()?).ok()?;
    (r.key == arm.key() && r.seed == seed && r.budget == budget).then_some(r)
}

/// Trains one arm with one seed (resuming its run when the settings match) and scores it.
#[allow(clippy::too_many_arguments)]
fn run_job(
    opts: &ExperimentOptions,
    arm: &Arm,
    seed: u64,
    pack: &Path,
    dir: &Path,
    heldout: &[HeldOut],
    repo_tasks: Option<&evaluate::HeldoutRepoTasks>,
    observer: &dyn ExperimentObserver,
) -> Result<JobResult> {
    let device = candle_core::Device::Cpu;
    let train_dir = dir.join("train");
    let budget = opts.budget_label();
    let resumable = resumable(dir, &job_stamp(arm, seed, &budget));
    if !resumable {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| ExperimentError::io(dir, e))?;
        kiln_base::fs::write_atomic(&dir.join("job.json"), &job_stamp(arm, seed, &budget))?;
    }
    let t = Instant::now();
    let progress = StepRelay(observer);
    let outcome = if resumable {
        Trainer::resume(&train_dir, &device).and_then(|mut tr| tr.run(None, &progress))
    } else {
        let steps = match opts.steps {
            Some(s) => s,
            None => {
                let cfg = arm.recipe.train_config(pack.to_path_buf(), kiln_train::budget::CALIBRATION_STEPS, seed);
                kiln_train::calibrate_steps(&cfg, &dir.join("calibration"), &device, opts.minutes_per_arm * 60.0)?
                    .ok_or_else(|| ExperimentError::Setup(format!("arm {}: could not time its training steps", arm.name)))?
                    .max(10)
            }
        };
        let mut cfg = arm.recipe.train_config(pack.to_path_buf(), steps, seed);
        cfg.eval_every = 0;
        cfg.checkpoint_every = (steps / 4).max(1);
        cfg.keep_last = 1;
        let deadline = opts.steps.is_none().then(|| Instant::now() + std::time::Duration::from_secs_f64(opts.minutes_per_arm * 60.0));
        Trainer::create(&train_dir, cfg, &device).and_then(|mut tr| match deadline {
            Some(d) => kiln_train::train_to_deadline(&mut tr, d, &progress, &mut |_| {}),
            None => tr.run(None, &progress),
        })
    };
    let base = JobResult {
        arm: arm.name.clone(),
        key: arm.key(),
        seed,
        budget,
        diverged: false,
        steps: 0,
        tokens: 0,
        train_seconds: t.elapsed().as_secs_f64(),
        last_loss: f64::NAN,
        bits_per_byte: None,
        middles: None,
        infill: None,
        cross_file: None,
    };
    let base = match after_training(base, outcome)? {
        Trained::Scorable(base) => base,
        Trained::Diverged(r) => {
            observer
                .say(&format!("  arm {} seed {seed} diverged at step {} (last loss {}); the grid goes on", arm.name, r.steps, r.last_loss));
            return Ok(r);
        }
    };
    let ckpt = kiln_train::trainer::checkpoints(&train_dir)
        .pop()
        .map(|(_, d)| d)
        .ok_or_else(|| ExperimentError::Setup(format!("arm {}: no checkpoint in {}", arm.name, train_dir.display())))?;
    let loaded = LoadedModel::load(&ckpt, None, &device)?;
    let window = opts.seq_len;
    let loss = evaluate::files_loss(heldout, &loaded, window)?;
    let middles = evaluate::middle_bits(heldout, opts.eval_lines, opts.seed, &loaded, window)?;
    let generator = kiln_infer::Engine::new(loaded.model.as_ref(), &loaded.tokenizer)?;
    let infill = evaluate::infill_lines(heldout, opts.eval_lines, opts.seed, &loaded, &generator, window)?;
    let cross_file = evaluate::cross_file_bits(repo_tasks, opts.seed, window, &loaded)?;
    Ok(JobResult {
        bits_per_byte: Some(loss.bits_per_byte()),
        middles: (middles.lines > 0).then_some(middles),
        infill: (infill.lines > 0).then_some(infill),
        cross_file,
        ..base
    })
}

/// Whether the job in `dir` can continue where it stopped: it was started with these settings
/// (`stamp`: a run from an older grid or budget would mix two settings) and its training run
/// reached a checkpoint (one stopped before its first has nothing to resume: it starts over).
fn resumable(dir: &Path, stamp: &[u8]) -> bool {
    let train_dir = dir.join("train");
    std::fs::read(dir.join("job.json")).ok().is_some_and(|b| b == stamp)
        && train_dir.join("config.json").is_file()
        && !kiln_train::trainer::checkpoints(&train_dir).is_empty()
}

/// What a training run left to do.
enum Trained {
    /// A model to score: the result so far (steps, tokens, last loss).
    Scorable(JobResult),
    /// The run diverged: its result, marked.
    Diverged(JobResult),
}

/// Sorts a training outcome: a run that stopped on non-finite losses (the trainer's
/// `Diverged`) or ended on a non-finite loss is a diverged result, not an error, so the grid
/// goes on; any other error stops the grid.
fn after_training(base: JobResult, outcome: std::result::Result<kiln_train::TrainerState, TrainError>) -> Result<Trained> {
    match outcome {
        Ok(state) if state.loss.is_finite() => {
            let r = JobResult { steps: state.step, tokens: state.tokens_seen, last_loss: state.loss, ..base };
            Ok(Trained::Scorable(r))
        }
        Ok(state) => {
            Ok(Trained::Diverged(JobResult { diverged: true, steps: state.step, tokens: state.tokens_seen, last_loss: state.loss, ..base }))
        }
        Err(TrainError::Diverged { step, loss, .. }) => {
            Ok(Trained::Diverged(JobResult { diverged: true, steps: step, last_loss: loss, ..base }))
        }
        Err(e) => Err(e.into()),
    }
}

/// What a job folder was started for (its arm, seed and budget), so a rerun resumes only the
/// same job.
fn job_stamp(arm: &Arm, seed: u64, budget: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"key": arm.key(), "seed": seed, "budget": budget})).expect("serialises")
}

/// The training loss curve of a job (`metrics.jsonl` of its run), as (step, loss).
pub fn loss_curve(job_dir: &Path) -> Vec<(f64, f64)> {
    let Ok(text) = std::fs::read_to_string(job_dir.join("train").join("metrics.jsonl")) else { return Vec::new() };
    text.lines()
        .filter_map(|l| serde_json::from_str::<StepMetrics>(l).ok())
        .filter(|m| m.kind == "train")
        .map(|m| (m.step as f64, m.loss))
        .collect()
}

/// Quickstart's narrative, forwarded.
struct Relay<'a>(&'a dyn ExperimentObserver);

impl kiln_quickstart::Observer for Relay<'_> {
    fn say(&self, line: &str) {
        self.0.say(line);
    }
}

/// Training steps, forwarded.
struct StepRelay<'a>(&'a dyn ExperimentObserver);

impl kiln_train::trainer::TrainObserver for StepRelay<'_> {
    fn on_metrics(&self, m: &StepMetrics, total: usize) {
        if m.kind == "train" {
            self.0.training_step(m.step, total, m.loss);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_stopped_before_its_first_checkpoint_starts_over() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let stamp = b"{\"key\":1}";
        std::fs::write(dir.join("job.json"), stamp).unwrap();
        std::fs::create_dir_all(dir.join("train")).unwrap();
        std::fs::write(dir.join("train/config.json"), "{}").unwrap();
        assert!(!resumable(dir, stamp), "no checkpoint yet: nothing to resume");
        let ckpt = dir.join("train/checkpoint-00000005");
        std::fs::create_dir_all(&ckpt).unwrap();
        std::fs::write(ckpt.join("trainer_state.json"), "{}").unwrap();
        assert!(resumable(dir, stamp));
        assert!(!resumable(dir, b"{\"key\":2}"), "another grid's job is not resumed");
    }

    #[test]
    fn a_grid_over_budget_names_what_fits() {
        let opts = ExperimentOptions { minutes_per_arm: 2.0, seeds: 3, ..ExperimentOptions::default() };
        let arms = opts.validate().unwrap();
        let full = opts.estimate_min(&arms, 3, true);
        let msg = too_big(&opts, &arms, true, full, full * 0.5);
        assert!(msg.contains("the largest grid that fits: all 5 questions with --seeds 1"), "{msg}");
        // fim alone: 5 runs x 2.7 min + 4 packs x 0.5 = 15.5 min; with order 21.9.
        let msg = too_big(&opts, &arms, true, full, 20.0);
        assert!(msg.contains("the largest grid that fits: --questions fim --seeds 1"), "{msg}");
        assert!(too_big(&opts, &arms, true, full, 1.0).contains("not even one question"));
    }

    fn empty_result(arm: &str) -> JobResult {
        JobResult {
            arm: arm.into(),
            key: String::new(),
            seed: 0,
            budget: "5 steps".into(),
            diverged: false,
            steps: 0,
            tokens: 0,
            train_seconds: 1.0,
            last_loss: f64::NAN,
            bits_per_byte: None,
            middles: None,
            infill: None,
            cross_file: None,
        }
    }

    /// A diverged run is a result marked diverged (the grid goes on); other training errors stop
    /// the grid; the report shows the diverged run in its arm's row.
    #[test]
    fn a_diverged_arm_is_marked_and_reported() {
        let diverged = TrainError::Diverged { step: 7, count: 3, loss: f64::NAN, norm: f64::INFINITY };
        let Trained::Diverged(r) = after_training(empty_result("lr-5e-3"), Err(diverged)).unwrap() else { panic!("not marked diverged") };
        assert!(r.diverged && r.steps == 7 && r.bits_per_byte.is_none());
        let state = kiln_train::TrainerState { step: 5, tokens_seen: 640, cursor: Default::default(), loss: f64::INFINITY };
        assert!(matches!(after_training(empty_result("a"), Ok(state.clone())).unwrap(), Trained::Diverged(_)));
        let fine = kiln_train::TrainerState { loss: 3.5, ..state };
        let Trained::Scorable(r) = after_training(empty_result("a"), Ok(fine)).unwrap() else { panic!("a finite run is scored") };
        assert_eq!((r.steps, r.tokens, r.last_loss), (5, 640, 3.5));
        assert!(after_training(empty_result("a"), Err(TrainError::Config("bad".into()))).is_err());

        let tmp = tempfile::tempdir().unwrap();
        let opts = ExperimentOptions {
            out: tmp.path().to_path_buf(),
            questions: vec![Question::Lr],
            steps: Some(5),
            seeds: 1,
            ..ExperimentOptions::default()
        };
        let (arms, by_question) = opts.grid();
        let ok = JobResult { bits_per_byte: Some(2.5), steps: 5, ..empty_result("baseline") };
        let written = report::write(tmp.path(), &opts, &arms, &by_question, &[ok, r_diverged(&arms[2].name)], &[]).unwrap();
        let md = std::fs::read_to_string(written.markdown).unwrap();
        let row = md.lines().find(|l| l.starts_with(&format!("| {} |", arms[2].name))).unwrap();
        assert!(row.contains("1 (1 diverged)") && row.contains("| — |"), "{row}");
        assert!(md.lines().any(|l| l.starts_with("| baseline |") && l.contains("2.5000")), "{md}");
    }

    fn r_diverged(arm: &str) -> JobResult {
        JobResult { diverged: true, steps: 7, ..empty_result(arm) }
    }

    #[test]
    fn bad_options_name_the_flag() {
        let e = ExperimentOptions { seeds: 0, ..ExperimentOptions::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("--seeds"), "{e}");
        let e = ExperimentOptions { questions: vec![], ..ExperimentOptions::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("--questions"), "{e}");
        let e = ExperimentOptions { seq_len: 4096, ..ExperimentOptions::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("arm baseline: --seq-len 4096"), "{e}");
        assert_eq!(slug("psm+spm-0.5"), "psm+spm-0.5");
        assert_eq!(slug("a/b c"), "a_b_c");
    }
}
