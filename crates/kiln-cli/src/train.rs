//! `kiln train`: pre-training (and continued training) on `kiln data pack` output.

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};
use kiln_model::Preset;
use kiln_train::recipe::recipe;
use kiln_train::trainer::TrainObserver;
use kiln_train::{ModelInit, ScheduleKind, StepMetrics, TrainConfig, Trainer};

/// LR decay after warmup.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    /// DeepSeek-Coder's: x sqrt(0.1) at 80% and at 90% of the steps (also `deepseek`).
    #[value(alias = "deepseek")]
    Step,
    /// Cosine down to 10% of the peak.
    Cosine,
    /// Warmup-stable-decay: the peak until 80% of the steps, then linearly to zero.
    Wsd,
    /// Linearly from the peak down to zero.
    Linear,
}

/// `kiln train ...`
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Continue the run in this directory from its latest checkpoint (its config.json is used;
    /// no other setting may be given).
    #[arg(long, conflicts_with_all = ["data", "out", "preset", "init", "steps", "minutes", "lr", "warmup", "schedule", "micro_batch", "accumulation", "seed", "eval_every", "checkpoint_every", "keep_last", "context_length", "rope_factor", "precision"])]
    resume: Option<PathBuf>,
    /// Only draw RUN/loss.png and RUN/lr.png from RUN/metrics.jsonl (also done after every run).
    #[arg(long, conflicts_with_all = ["resume", "data", "out", "preset", "init"])]
    plot: Option<PathBuf>,
    /// Draw loss.png with a log-scale loss axis (with --plot, or at the end of a run).
    #[arg(long)]
    log_loss: bool,
    /// Packed training data (`kiln data pack --out`, or `kiln data sft --out`).
    #[arg(long, required_unless_present_any = ["resume", "plot"])]
    data: Option<PathBuf>,
    /// Run directory (metrics.jsonl, checkpoint-*/).
    #[arg(long, required_unless_present_any = ["resume", "plot"])]
    out: Option<PathBuf>,
    /// Train from scratch with a preset shape (tiny, small, deepseek-coder-1.3b/6.7b/33b).
    #[arg(long, conflicts_with = "init")]
    preset: Option<String>,
    /// Continue from a model directory (Hugging Face layout) instead.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Optimizer steps.
    #[arg(long, default_value_t = 1000, conflicts_with = "minutes")]
    steps: usize,
    /// Train for this many minutes instead of --steps: a few steps are timed first, the step
    /// count is planned from their pace and re-planned once after a tenth of the run (before any
    /// LR decay of the step and WSD schedules), so the schedule ends on time.
    #[arg(long)]
    minutes: Option<f64>,
    /// Peak learning rate (default: the preset's, from the paper's Table 2 for its sizes).
    #[arg(long)]
    lr: Option<f64>,
    /// Warmup steps (default: the preset's, at most a tenth of --steps).
    #[arg(long)]
    warmup: Option<usize>,
    /// Decay after warmup.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Step)]
    schedule: ScheduleArg,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 8)]
    micro_batch: usize,
    /// Forward passes per optimizer step (default: the preset's batch / micro-batch).
    #[arg(long)]
    accumulation: Option<usize>,
    /// Seed of the initial weights and the window order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Evaluate on the val split every N steps (0: never).
    #[arg(long, default_value_t = 100)]
    eval_every: usize,
    /// Checkpoint every N steps (and at the end).
    #[arg(long, default_value_t = 500)]
    checkpoint_every: usize,
    /// Checkpoints kept.
    #[arg(long, default_value_t = 2)]
    keep_last: usize,
    /// Long-context stage: the model's new max_position_embeddings (with --rope-factor; the
    /// paper went from 4K to 16K positions with factor 4). Needs --init.
    #[arg(long, requires_all = ["rope_factor", "init"])]
    context_length: Option<usize>,
    /// Long-context stage: RoPE linear scaling factor (with --context-length).
    #[arg(long, requires = "context_length")]
    rope_factor: Option<f64>,
    /// Compute precision: auto (bf16 on a GPU, f32 on the CPU), f32, or bf16 (bf16 forward and
    /// backward, f32 master weights, gradients and optimizer state).
    #[arg(long, value_enum, default_value = "auto")]
    precision: PrecisionArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PrecisionArg {
    Auto,
    F32,
    Bf16,
}

/// The progress bar: step, loss, LR, tokens/s, ETA.
struct Progress {
    bar: indicatif::ProgressBar,
}

impl TrainObserver for Progress {
    fn on_metrics(&self, m: &StepMetrics, total: usize) {
        if m.kind == "eval" {
            self.bar.println(format!("step {:>7}  eval loss {:.4}", m.step, m.loss));
            return;
        }
        self.bar.set_length(total as u64);
        self.bar.set_position(m.step as u64);
        let skipped = if m.skipped { "  SKIPPED (non-finite)" } else { "" };
        self.bar.set_message(format!("loss {:.4}  lr {:.2e}  {:.0} tok/s{skipped}", m.loss, m.lr, m.tokens_per_s));
    }
}

/// Runs `kiln train`.
pub fn run(args: TrainArgs) -> Result<()> {
    if let Some(run) = &args.plot {
        let [loss, lr] = kiln_train::plot::plot_run_with(run, args.log_loss)?;
        eprintln!("wrote {} and {}", loss.display(), lr.display());
        return Ok(());
    }
    let device = candle_core::Device::Cpu;
    // When a --minutes run must end.
    let mut deadline = None;
    let mut trainer = match &args.resume {
        Some(run) => Trainer::resume(run, &device)?,
        None => {
            let (data, out) = (args.data.clone().expect("clap requires --data"), args.out.clone().expect("clap requires --out"));
            let (init, r) = match (&args.preset, &args.init) {
                (Some(p), None) => {
                    let preset: Preset = p.parse().map_err(|e| anyhow::anyhow!("--preset {p}: {e}"))?;
                    (ModelInit::Preset(p.clone()), recipe(preset))
                }
                (None, Some(dir)) => (ModelInit::Dir(dir.clone()), recipe(Preset::Small)),
                _ => bail!("give --preset NAME (train from scratch) or --init MODEL_DIR (continue training)"),
            };
            let lr = args.lr.unwrap_or(r.max_lr);
            let mut cfg = TrainConfig::new(data, init, args.steps, lr);
            cfg.micro_batch = args.micro_batch;
            cfg.accumulation = args.accumulation.unwrap_or((r.batch_windows / args.micro_batch).max(1));
            cfg.schedule.warmup_steps = args.warmup.unwrap_or(r.warmup_steps.min(args.steps / 10));
            cfg.schedule.kind = match args.schedule {
                ScheduleArg::Step => ScheduleKind::Step,
                ScheduleArg::Cosine => ScheduleKind::Cosine,
                ScheduleArg::Wsd => ScheduleKind::Wsd,
                ScheduleArg::Linear => ScheduleKind::Linear,
            };
            cfg.seed = args.seed;
            cfg.eval_every = args.eval_every;
            cfg.checkpoint_every = args.checkpoint_every;
            cfg.keep_last = args.keep_last;
            cfg.precision = match args.precision {
                PrecisionArg::Auto => kiln_train::Precision::Auto,
                PrecisionArg::F32 => kiln_train::Precision::F32,
                PrecisionArg::Bf16 => kiln_train::Precision::Bf16,
            };
            if let (Some(positions), Some(factor)) = (args.context_length, args.rope_factor) {
                cfg.extend_context = Some(kiln_train::ContextExtension { max_position_embeddings: positions, rope_linear_factor: factor });
            }
            if let Some(minutes) = args.minutes {
                if !(minutes > 0.0 && minutes.is_finite()) {
                    bail!("--minutes {minutes}: give a positive number of minutes");
                }
                let scratch = out.join("calibration");
                let steps = kiln_train::calibrate_steps(&cfg, &scratch, &device, minutes * 60.0)?
                    .context("could not measure the training speed (no timed step finished)")?;
                if steps < 10 {
                    bail!("--minutes {minutes} fits only {steps} optimizer steps of this model and batch; give more minutes");
                }
                cfg.steps = steps;
                cfg.schedule.total_steps = steps;
                cfg.schedule.warmup_steps = args.warmup.unwrap_or(r.warmup_steps.min(steps / 10));
                deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs_f64(minutes * 60.0));
                eprintln!(
                    "planned {steps} steps for {minutes} minutes (from the pace of {} timed steps)",
                    kiln_train::budget::CALIBRATION_STEPS
                );
            }
            Trainer::create(&out, cfg, &device).with_context(|| format!("starting a run in {}", out.display()))?
        }
    };
    let bar = indicatif::ProgressBar::new(trainer.cfg.steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} step {pos}/{len} (ETA {eta})  {msg}")
            .expect("progress template is valid"),
    );
    bar.set_position(trainer.state().step as u64);
    let progress = Progress { bar: bar.clone() };
    let result = match deadline {
        Some(deadline) => kiln_train::train_to_deadline(&mut trainer, deadline, &progress, &mut |r| {
            progress.bar.println(format!(
                "re-planned to {} steps (measured {:.2} s per step; {} were planned)",
                r.steps, r.seconds_per_step, r.planned
            ))
        }),
        None => trainer.run(None, &progress),
    };
    bar.finish_and_clear();
    // Charts of whatever was trained, also when the run stopped on an error.
    if let Err(e) = kiln_train::plot::plot_run_with(&trainer.run, args.log_loss) {
        tracing::warn!(error = %e, "no loss/LR charts");
    }
    let state = result?;
    eprintln!(
        "trained {} steps, {} tokens; last loss {:.4}; checkpoints, metrics.jsonl, loss.png and lr.png in {}",
        state.step,
        state.tokens_seen,
        state.loss,
        trainer.run.display()
    );
    Ok(())
}
