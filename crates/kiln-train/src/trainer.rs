//! The training loop: windows from `kiln data pack`, gradient accumulation, clipping, AdamW on
//! the schedule, metrics as JSONL, evaluation on the val split, checkpoints that resume exactly.
//!
//! A run directory holds `config.json` (the resolved [`TrainConfig`]), `metrics.jsonl` (one line
//! per step, plus `eval` lines), the same scalars as TensorBoard event files
//! (`events.out.tfevents.*`, [`crate::tensorboard`]) and `checkpoint-<step>/` directories: a Hugging Face model
//! directory (config.json, model.safetensors, generation_config.json, the tokenizer files when the
//! data names them) plus `optimizer.safetensors` and `trainer_state.json` (step, tokens seen, the
//! data cursor). A checkpoint is written to a temporary directory and renamed into place, then
//! `latest` is updated; the last `keep_last` are kept. Resuming loads the latest checkpoint and
//! continues with the same batches: on the CPU in f32 the loss trajectory equals an
//! uninterrupted run's.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use kiln_data::loader::{Cursor, WindowLoader};
use kiln_data::meta::PackSummary;
use kiln_data::split::Split;
use kiln_model::{Config, Llama, Preset, WeightDType};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::model::TrainModel;
use crate::optim::{AdamW, AdamWConfig};
use crate::schedule::Schedule;
use crate::sft::{masked_loss, masked_loss_and_grads, SftLoader};
use crate::step::optimizer_step;

/// Where the weights of a new run come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelInit {
    /// Random weights of a preset shape (from scratch), seeded by [`TrainConfig::seed`]; the
    /// vocabulary is sized to the data's tokenizer.
    Preset(String),
    /// Random weights of a shape given in full (a preset's config with other sizes; for
    /// recipes and sweeps that try shapes no preset has), seeded and vocabulary-sized like
    /// [`ModelInit::Preset`].
    Shape(ModelShape),
    /// An existing model directory (continued pre-training, long context, SFT).
    Dir(PathBuf),
}

/// The sizes of a from-scratch model; the rest (RoPE base 10,000, no scaling, f32, eps 1e-6,
/// init range 0.02) is the CPU presets'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    /// Width.
    pub hidden_size: usize,
    /// SwiGLU inner width.
    pub intermediate_size: usize,
    /// Transformer blocks.
    pub num_hidden_layers: usize,
    /// Query heads (`hidden_size` must be a multiple).
    pub num_attention_heads: usize,
    /// Key/value heads (a divisor of the query heads).
    pub num_key_value_heads: usize,
    /// Positions the model is built for (at least the data's window).
    pub max_position_embeddings: usize,
    /// The output projection shares the token embedding's weights.
    pub tie_word_embeddings: bool,
}

impl ModelShape {
    /// The model config of this shape (vocabulary and special ids still the preset's: the
    /// trainer sizes them to the data).
    pub fn config(&self) -> Config {
        Config {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: self.num_key_value_heads,
            head_dim: self.hidden_size / self.num_attention_heads.max(1),
            max_position_embeddings: self.max_position_embeddings,
            tie_word_embeddings: self.tie_word_embeddings,
            ..Config::preset(Preset::Tiny)
        }
    }

    /// Parameters of the shape with a vocabulary of `vocab` rows.
    pub fn parameters(&self, vocab: usize) -> usize {
        let cfg = Config { vocab_size: vocab, ..self.config() };
        cfg.expected_tensors().iter().map(|(_, shape)| shape.iter().product::<usize>()).sum()
    }

    /// Says what is wrong with the shape, naming the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let s = self;
        if s.hidden_size == 0 || s.intermediate_size == 0 || s.num_hidden_layers == 0 || s.max_position_embeddings == 0 {
            return Err("hidden_size, intermediate_size, num_hidden_layers and max_position_embeddings must be at least 1".into());
        }
        if s.num_attention_heads == 0 || !s.hidden_size.is_multiple_of(s.num_attention_heads) {
            return Err(format!("num_attention_heads {} must divide hidden_size {}", s.num_attention_heads, s.hidden_size));
        }
        if !(s.hidden_size / s.num_attention_heads).is_multiple_of(2) {
            return Err(format!(
                "the head width hidden_size / num_attention_heads = {} must be even (RoPE rotates pairs)",
                s.hidden_size / s.num_attention_heads
            ));
        }
        if s.num_key_value_heads == 0 || !s.num_attention_heads.is_multiple_of(s.num_key_value_heads) {
            return Err(format!("num_key_value_heads {} must divide num_attention_heads {}", s.num_key_value_heads, s.num_attention_heads));
        }
        Ok(())
    }
}

/// Everything a run is defined by; saved in the run directory and checked on resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// A `kiln data pack` output (train.bin/.idx, optional val.bin/.idx, meta.json).
    pub data: PathBuf,
    /// The initial weights.
    pub init: ModelInit,
    /// Windows per forward pass.
    pub micro_batch: usize,
    /// Forward passes per optimizer step (the step's batch is `micro_batch * accumulation`
    /// windows).
    pub accumulation: usize,
    /// Optimizer steps.
    pub steps: usize,
    /// Learning rate schedule (its `total_steps` is `steps`).
    pub schedule: Schedule,
    /// AdamW settings.
    pub adamw: AdamWConfig,
    /// Global gradient norm limit.
    pub clip: f64,
    /// Seed of the initial weights and of the window order.
    pub seed: u64,
    /// Evaluate on the val split every this many steps (0: never).
    pub eval_every: usize,
    /// Val windows per evaluation.
    pub eval_windows: usize,
    /// Write a checkpoint every this many steps (and always at the end).
    pub checkpoint_every: usize,
    /// Checkpoints kept.
    pub keep_last: usize,
    /// Stop after this many consecutive steps with a non-finite loss or gradient.
    pub max_bad_steps: usize,
    /// The long-context stage (paper §3.6): continue a model at more positions, with RoPE
    /// positions interpolated by a linear factor (DeepSeek-Coder: 16K positions, factor 4).
    #[serde(default)]
    pub extend_context: Option<ContextExtension>,
    /// The dtype of the forward and backward (weights, gradients and optimizer state stay f32).
    #[serde(default)]
    pub precision: Precision,
}

/// Compute precision of a run. The parameters (master weights), gradients and AdamW moments are
/// f32 whatever it is; bf16 casts the weights for each step's forward and backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// bf16 on a GPU, f32 on the CPU (where bf16 products are slower than f32 ones).
    #[default]
    Auto,
    /// f32 everywhere.
    F32,
    /// bf16 compute with f32 master weights.
    Bf16,
}

impl Precision {
    /// The compute dtype on `device`.
    pub fn resolve(self, device: &Device) -> candle_core::DType {
        match self {
            Precision::Auto if device.is_cpu() => candle_core::DType::F32,
            Precision::Auto | Precision::Bf16 => candle_core::DType::BF16,
            Precision::F32 => candle_core::DType::F32,
        }
    }
}

/// New position limits for the long-context stage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContextExtension {
    /// The model's new `max_position_embeddings`.
    pub max_position_embeddings: usize,
    /// RoPE linear scaling factor (positions are divided by it).
    pub rope_linear_factor: f64,
}

impl TrainConfig {
    /// A config with the recipe's defaults for `init` on `data`.
    pub fn new(data: PathBuf, init: ModelInit, steps: usize, max_lr: f64) -> Self {
        TrainConfig {
            data,
            init,
            micro_batch: 8,
            accumulation: 1,
            steps,
            schedule: Schedule {
                max_lr,
                warmup_steps: (steps / 10).min(2000),
                total_steps: steps,
                kind: crate::schedule::ScheduleKind::Step,
            },
            adamw: AdamWConfig::default(),
            clip: 1.0,
            seed: 0,
            eval_every: 0,
            eval_windows: 16,
            checkpoint_every: 0,
            keep_last: 2,
            max_bad_steps: 3,
            extend_context: None,
            precision: Precision::Auto,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.micro_batch == 0 || self.accumulation == 0 {
            return bad("micro_batch and accumulation must be at least 1".into());
        }
        if self.steps == 0 {
            return bad("steps must be at least 1".into());
        }
        if self.schedule.total_steps != self.steps {
            return bad(format!("schedule.total_steps ({}) must equal steps ({})", self.schedule.total_steps, self.steps));
        }
        if self.schedule.max_lr.is_nan() || self.schedule.max_lr <= 0.0 || self.clip.is_nan() || self.clip <= 0.0 {
            return bad("max_lr and clip must be positive".into());
        }
        Ok(())
    }
}

/// The state saved with each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: usize,
    /// Tokens trained on (targets).
    pub tokens_seen: u64,
    /// Where the train loader stands.
    pub cursor: Cursor,
    /// The last step's loss.
    pub loss: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// `"train"` or `"eval"`.
    pub kind: String,
    /// Optimizer step (1-based: the number of updates done after this line's step).
    pub step: usize,
    /// Loss (train: mean over the step's windows; eval: mean over the val windows).
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens trained on so far.
    pub tokens: u64,
    /// Training throughput of this step.
    pub tokens_per_s: f64,
    /// Whether the step was skipped (non-finite loss or gradient).
    pub skipped: bool,
}

/// Hears about each step, for a progress display.
pub trait TrainObserver {
    /// After each optimizer step (or skipped step) and each evaluation.
    fn on_metrics(&self, _m: &StepMetrics, _total_steps: usize) {}
}

/// Ignores everything.
pub struct Quiet;
impl TrainObserver for Quiet {}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.to_path_buf(), source }
}

/// [`kiln_base::fs::write_atomic`]; errors name the file they concern (temporary or final).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    kiln_base::fs::write_atomic(path, bytes).map_err(|e| TrainError::Io { path: e.path, source: e.source })
}

/// Where batches come from: packed windows (pre-training) or SFT conversations with loss masks
/// (`kiln data sft`, recognised by its `train.mask`).
enum Source {
    Windows(WindowLoader),
    Sft(SftLoader),
}

impl Source {
    fn open(prefix: &Path, seed: Option<u64>, max_len: usize, pad: u32) -> Result<Source> {
        if kiln_data::sft::mask_path(prefix).is_file() {
            Ok(Source::Sft(SftLoader::open(prefix, seed, max_len, pad)?))
        } else {
            Ok(Source::Windows(WindowLoader::open(prefix, seed)?))
        }
    }

    fn len(&self) -> usize {
        match self {
            Source::Windows(l) => l.windows(),
            Source::Sft(l) => l.len(),
        }
    }

    fn cursor(&self) -> Cursor {
        match self {
            Source::Windows(l) => l.cursor(),
            Source::Sft(l) => l.cursor(),
        }
    }

    fn set_cursor(&mut self, c: Cursor) -> Result<()> {
        match self {
            Source::Windows(l) => Ok(l.set_cursor(c)?),
            Source::Sft(l) => Ok(l.set_cursor(c)?),
        }
    }

    /// Loss, gradients and the tokens learned from (targets; for SFT the masked ones).
    fn step(&mut self, model: &TrainModel, n: usize) -> Result<(f64, Vec<Tensor>, u64)> {
        match self {
            Source::Windows(l) => {
                let windows = l.next_batch(n)?;
                let tokens = windows.iter().map(|w| w.len() as u64 - 1).sum();
                let (loss, grads) = model.loss_and_grads(&windows)?;
                Ok((loss, grads, tokens))
            }
            Source::Sft(l) => {
                let batch = l.next_batch(n)?;
                let (loss, grads, count) = masked_loss_and_grads(model, &batch)?;
                Ok((loss, grads, count as u64))
            }
        }
    }

    fn eval(&mut self, model: &TrainModel, n: usize) -> Result<f64> {
        match self {
            Source::Windows(l) => model.eval_loss(&l.next_batch(n)?),
            Source::Sft(l) => Ok(masked_loss(model, &l.next_batch(n)?)?.0.detach().to_scalar::<f32>()? as f64),
        }
    }
}

/// A training run in a directory.
pub struct Trainer {
    /// The run directory.
    pub run: PathBuf,
    /// Its config.
    pub cfg: TrainConfig,
    model: TrainModel,
    opt: AdamW,
    train: Source,
    val: Option<Source>,
    meta: Option<PackSummary>,
    state: TrainerState,
    /// Whether this trainer continues a run from a checkpoint (its TensorBoard file then starts
    /// with a session start at that step, so the replayed steps are shown once).
    resumed: bool,
    /// TensorBoard scalars, opened at the first [`Trainer::run`].
    events: Option<crate::tensorboard::EventWriter>,
}

/// Checkpoint directories of a run (`checkpoint-<step>` holding `trainer_state.json`), oldest first.
pub fn checkpoints(run: &Path) -> Vec<(usize, PathBuf)> {
    let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(run)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("checkpoint-")?.parse().ok()?;
            e.path().join("trainer_state.json").is_file().then(|| (step, e.path()))
        })
        .collect();
    out.sort();
    out
}

impl Trainer {
    /// Starts a new run in `run` (which must not hold one already).
    pub fn create(run: &Path, cfg: TrainConfig, device: &Device) -> Result<Self> {
        cfg.validate()?;
        if run.join("config.json").exists() {
            return Err(TrainError::Checkpoint {
                path: run.to_path_buf(),
                message: "already holds a run; resume it (`kiln train --resume`) or choose a new directory".into(),
            });
        }
        if let Some(f) = crate::tensorboard::event_files(run)?.first() {
            return Err(TrainError::Checkpoint {
                path: run.to_path_buf(),
                message: format!(
                    "holds TensorBoard event files of another run ({}); a new run needs a directory of its own",
                    f.file_name().unwrap_or_default().to_string_lossy()
                ),
            });
        }
        let meta = PackSummary::load(&cfg.data).ok();
        let model = match &cfg.init {
            ModelInit::Preset(_) | ModelInit::Shape(_) => {
                let mut mc = match &cfg.init {
                    ModelInit::Preset(name) => {
                        Config::preset(name.parse::<Preset>().map_err(|e| TrainError::Config(format!("preset `{name}`: {e}")))?)
                    }
                    ModelInit::Shape(shape) => {
                        shape.validate().map_err(|e| TrainError::Config(format!("model shape: {e}")))?;
                        shape.config()
                    }
                    ModelInit::Dir(_) => unreachable!("matched above"),
                };
                if let Some(m) = &meta {
                    // Size the vocabulary to the tokenizer, padded to a multiple of 64 as
                    // DeepSeek padded 32,022 ids to 32,256 rows, and take its special ids.
                    mc.vocab_size = m.tokenizer.vocab_size.div_ceil(64) * 64;
                    let tok = kiln_tokenizer::Tokenizer::from_file(&m.tokenizer.path)
                        .map_err(|e| TrainError::Config(format!("the data's tokenizer: {e}")))?;
                    let sp = tok.special();
                    mc.bos_token_id = sp.bos;
                    mc.eos_token_ids = sp.eos.into_iter().collect();
                    mc.pad_token_id = sp.eos;
                }
                TrainModel::new(&Llama::random(mc, WeightDType::F32, device, cfg.seed)?)?
            }
            ModelInit::Dir(dir) => TrainModel::load(dir, device)?,
        };
        let model = match cfg.extend_context {
            None => model,
            Some(ext) => {
                if ext.rope_linear_factor.is_nan()
                    || ext.rope_linear_factor < 1.0
                    || ext.max_position_embeddings < model.cfg.max_position_embeddings
                {
                    return Err(TrainError::Config(format!(
                        "extend_context: positions {} (model: {}) and factor {} must not shrink the context",
                        ext.max_position_embeddings, model.cfg.max_position_embeddings, ext.rope_linear_factor
                    )));
                }
                let mut mc = model.cfg.clone();
                mc.max_position_embeddings = ext.max_position_embeddings;
                mc.rope_scaling = kiln_model::RopeScaling::Linear { factor: ext.rope_linear_factor };
                tracing::info!(positions = mc.max_position_embeddings, factor = ext.rope_linear_factor, "long-context stage");
                let weights = model.network().named_tensors().into_iter().collect();
                TrainModel::new(&Llama::from_tensors(mc, weights, device)?)?
            }
        };
        std::fs::create_dir_all(run).map_err(io(run))?;
        write_atomic(&run.join("config.json"), &serde_json::to_vec_pretty(&cfg).expect("config serialises"))?;
        Self::assemble(run, cfg, model, meta, None)
    }

    /// Reopens the run in `run` at its latest checkpoint.
    pub fn resume(run: &Path, device: &Device) -> Result<Self> {
        let path = run.join("config.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| TrainError::Checkpoint { path: path.clone(), message: format!("{e}: not a kiln training run") })?;
        let cfg: TrainConfig = serde_json::from_str(&text)
            .map_err(|e| TrainError::Checkpoint { path: path.clone(), message: format!("damaged run config: {e}") })?;
        let Some((_, ckpt)) = checkpoints(run).pop() else {
            return Err(TrainError::Checkpoint {
                path: run.to_path_buf(),
                message: "no checkpoint to resume from yet; start the run again".into(),
            });
        };
        let state_path = ckpt.join("trainer_state.json");
        let state: TrainerState = serde_json::from_slice(&std::fs::read(&state_path).map_err(io(&state_path))?)
            .map_err(|e| TrainError::Checkpoint { path: state_path.clone(), message: format!("damaged trainer state: {e}") })?;
        let model = TrainModel::load(&ckpt, device)?;
        let meta = PackSummary::load(&cfg.data).ok();
        let mut t = Self::assemble(run, cfg, model, meta, Some(state))?;
        t.opt.load(&ckpt.join("optimizer.safetensors"))?;
        tracing::info!(run = %run.display(), step = t.state.step, "resumed");
        Ok(t)
    }

    fn assemble(
        run: &Path,
        cfg: TrainConfig,
        mut model: TrainModel,
        meta: Option<PackSummary>,
        state: Option<TrainerState>,
    ) -> Result<Self> {
        let compute = cfg.precision.resolve(model.network().device());
        model.set_compute_dtype(compute);
        tracing::info!(compute = ?compute, "training precision (master weights, gradients and optimizer state in f32)");
        let max_len = model.cfg.max_position_embeddings + 1;
        let pad = model.cfg.pad_token_id.or(model.cfg.eos_token_ids.first().copied()).unwrap_or(0);
        let train = Source::open(&cfg.data.join(Split::Train.name()), Some(cfg.seed), max_len, pad)?;
        if let Source::Windows(w) = &train {
            let seq_len = w.window_tokens() - 1;
            if seq_len > model.cfg.max_position_embeddings {
                return Err(TrainError::Config(format!(
                    "the data's windows hold {seq_len} positions, above the model's max_position_embeddings {} (pack with a smaller --seq-len, or extend the context with rope scaling first)",
                    model.cfg.max_position_embeddings
                )));
            }
        }
        if let Some(m) = &meta {
            if m.tokenizer.vocab_size > model.cfg.vocab_size {
                return Err(TrainError::Config(format!(
                    "the data's tokenizer has {} ids, the model's vocabulary {}: use a model sized for this tokenizer",
                    m.tokenizer.vocab_size, model.cfg.vocab_size
                )));
            }
        }
        let val = match Source::open(&cfg.data.join(Split::Val.name()), None, max_len, pad) {
            Ok(l) if l.len() > 0 => Some(l),
            _ => None,
        };
        let opt = AdamW::new(&model.params, cfg.adamw)?;
        let mut train = train;
        let resumed = state.is_some();
        let state = match state {
            Some(s) => {
                train.set_cursor(s.cursor)?;
                s
            }
            None => TrainerState { step: 0, tokens_seen: 0, cursor: train.cursor(), loss: f64::NAN },
        };
        Ok(Trainer { run: run.to_path_buf(), cfg, model, opt, train, val, meta, state, resumed, events: None })
    }

    /// The current state.
    pub fn state(&self) -> &TrainerState {
        &self.state
    }

    /// The model being trained.
    pub fn model(&self) -> &TrainModel {
        &self.model
    }

    /// Trains until `cfg.steps` (or `stop_at`, for tests), writing metrics and checkpoints.
    pub fn run(&mut self, stop_at: Option<usize>, observer: &dyn TrainObserver) -> Result<TrainerState> {
        let metrics_path = self.run.join("metrics.jsonl");
        let mut metrics = std::fs::OpenOptions::new().create(true).append(true).open(&metrics_path).map_err(io(&metrics_path))?;
        if self.events.is_none() {
            self.events = Some(crate::tensorboard::EventWriter::create(&self.run, self.resumed.then_some(self.state.step))?);
        }
        let end = stop_at.unwrap_or(self.cfg.steps).min(self.cfg.steps);
        let mut bad_in_a_row = 0usize;
        while self.state.step < end {
            let step = self.state.step;
            let started = std::time::Instant::now();
            let lr = self.cfg.schedule.lr(step);
            let (train, model) = (&mut self.train, &self.model);
            let micro_batch = self.cfg.micro_batch;
            let out = optimizer_step(&mut self.opt, || train.step(model, micro_batch), self.cfg.accumulation, self.cfg.clip, lr)?;
            let (loss, norm, tokens, skipped) = (out.loss, out.grad_norm, out.tokens, !out.applied);
            if skipped {
                bad_in_a_row += 1;
                tracing::warn!(step, loss, norm, "non-finite loss or gradient: step skipped");
                if bad_in_a_row >= self.cfg.max_bad_steps {
                    return Err(TrainError::Diverged { step, count: bad_in_a_row, loss, norm });
                }
            } else {
                bad_in_a_row = 0;
            }
            self.state.step += 1;
            self.state.tokens_seen += tokens;
            self.state.cursor = self.train.cursor();
            self.state.loss = loss;
            let m = StepMetrics {
                kind: "train".into(),
                step: self.state.step,
                loss,
                lr,
                grad_norm: norm,
                tokens: self.state.tokens_seen,
                tokens_per_s: tokens as f64 / started.elapsed().as_secs_f64().max(1e-9),
                skipped,
            };
            writeln!(metrics, "{}", serde_json::to_string(&m).expect("metrics serialise")).map_err(io(&metrics_path))?;
            let events = self.events.as_mut().expect("opened above");
            events.scalars(
                m.step,
                &[("train/loss", m.loss), ("train/lr", m.lr), ("train/grad_norm", m.grad_norm), ("train/tokens_per_s", m.tokens_per_s)],
            )?;
            events.flush()?;
            observer.on_metrics(&m, self.cfg.steps);
            let s = self.state.step;
            if self.cfg.eval_every > 0 && s.is_multiple_of(self.cfg.eval_every) {
                if let Some(loss) = self.evaluate()? {
                    let e = StepMetrics { kind: "eval".into(), loss, tokens_per_s: 0.0, skipped: false, ..m };
                    writeln!(metrics, "{}", serde_json::to_string(&e).expect("metrics serialise")).map_err(io(&metrics_path))?;
                    self.events.as_mut().expect("opened above").scalars(e.step, &[("eval/loss", e.loss)])?;
                    observer.on_metrics(&e, self.cfg.steps);
                }
            }
            // A skipped step changed nothing: no new checkpoint of the same weights.
            if !skipped && (s == self.cfg.steps || (self.cfg.checkpoint_every > 0 && s.is_multiple_of(self.cfg.checkpoint_every))) {
                self.checkpoint()?;
            }
        }
        self.events.as_mut().expect("opened above").flush()?;
        Ok(self.state.clone())
    }

    /// Changes the planned number of steps of a run that has not yet reached its first LR decay
    /// under the old or the new plan ([`crate::Schedule::decay_start`]: 80% of the plan for the
    /// step schedule and WSD; the end of warmup for cosine and linear), and records
    /// it in `config.json` so a resume keeps it. For time-budgeted runs (`kiln quickstart`): plan,
    /// time the first steps for real, then re-plan. Warmup is kept, so the steps already taken
    /// had exactly the learning rates the new plan gives them.
    pub fn replan_steps(&mut self, steps: usize) -> Result<()> {
        let done = self.state.step;
        // Only steps before both plans' decay keep their LR under the new plan.
        let sched = self.cfg.schedule;
        let fixed_until = sched.decay_start(self.cfg.steps).min(sched.decay_start(steps));
        if steps <= done || steps <= sched.warmup_steps || done > fixed_until {
            return Err(TrainError::Config(format!(
                "cannot re-plan to {steps} steps at step {done} of {} (the LR schedule of the steps already taken would change)",
                self.cfg.steps
            )));
        }
        self.cfg.steps = steps;
        self.cfg.schedule.total_steps = steps;
        write_atomic(&self.run.join("config.json"), &serde_json::to_vec_pretty(&self.cfg).expect("config serialises"))
    }

    /// Mean loss over the first `eval_windows` val windows (`None` without a val split).
    pub fn evaluate(&mut self) -> Result<Option<f64>> {
        let Some(val) = self.val.as_mut() else { return Ok(None) };
        val.set_cursor(Cursor { epoch: 0, position: 0 })?;
        let n = self.cfg.eval_windows.min(val.len());
        let mut total = 0.0;
        let mut done = 0;
        while done < n {
            let b = self.cfg.micro_batch.min(n - done);
            total += val.eval(&self.model, b)? * b as f64;
            done += b;
        }
        Ok(Some(total / n.max(1) as f64))
    }

    /// Writes `checkpoint-<step>` atomically, points `latest` at it, prunes old ones.
    pub fn checkpoint(&self) -> Result<PathBuf> {
        let name = format!("checkpoint-{:08}", self.state.step);
        let dest = self.run.join(&name);
        let tmp = self.run.join(format!(".{name}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        self.model.network().save(&tmp, None)?;
        let mc = &self.model.cfg;
        let generation =
            serde_json::json!({"bos_token_id": mc.bos_token_id, "eos_token_id": mc.eos_token_ids.first(), "_from_model_config": true});
        write_atomic(&tmp.join("generation_config.json"), generation.to_string().as_bytes())?;
        // The tokenizer the data was made with, so the checkpoint is a complete model dir:
        // named by a packed corpus's meta.json, or copied beside SFT data.
        let tokenizer_dir = match &self.meta {
            Some(m) => m.tokenizer.path.parent().map(Path::to_path_buf),
            None => Some(self.cfg.data.clone()),
        };
        if let Some(dir) = tokenizer_dir {
            for file in ["tokenizer.json", "tokenizer_config.json"] {
                let src = dir.join(file);
                if src.is_file() {
                    std::fs::copy(&src, tmp.join(file)).map_err(io(&src))?;
                }
            }
        }
        self.opt.save(&tmp.join("optimizer.safetensors"))?;
        write_atomic(&tmp.join("trainer_state.json"), &serde_json::to_vec_pretty(&self.state).expect("state serialises"))?;
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(io(&dest))?;
        }
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        write_atomic(&self.run.join("latest"), name.as_bytes())?;
        let all = checkpoints(&self.run);
        for (_, old) in all.iter().take(all.len().saturating_sub(self.cfg.keep_last.max(1))) {
            std::fs::remove_dir_all(old).map_err(io(old))?;
        }
        tracing::info!(checkpoint = %dest.display(), "checkpoint written");
        Ok(dest)
    }
}
