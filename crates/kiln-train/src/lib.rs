//! kiln-train: pre-training from scratch with DeepSeek-Coder's recipe (paper §3.3, spec §6).
//!
//! In: packed windows from `kiln data pack` (kiln-data) and a model (a kiln-model preset or a
//! model directory). Out: a run directory with metrics and Hugging Face checkpoints that resume
//! exactly. Pieces: [`schedule`] (warmup + three-stage step or cosine), [`optim`] (AdamW,
//! clipping), [`model`] (parameters as f32 `Var`s, loss and gradients), [`cpu_step`] (the
//! hand-written f32 CPU forward + backward [`model`] uses where it applies; candle's autograd
//! elsewhere), [`step`] (one optimizer step: accumulation, clipping, AdamW), [`trainer`] (the
//! loop, evaluation, checkpoints).
//!
//! [`sft`] serves instruction-tuning conversations and their masked loss; the trainer picks it
//! when the data directory holds SFT files (`kiln data sft`).
//!
//! The long-context stage is a config of the same loop ([`trainer::ContextExtension`]).
//!
//! [`plot`] draws `metrics.jsonl` as PNG loss and LR charts; [`tensorboard`] writes the same
//! scalars as TensorBoard event files in the run directory. [`budget`] sizes a run to a time
//! budget instead of a step count (time a few steps, train, re-plan from the real pace).
//!
//! Precision ([`Precision`]): f32 on the CPU; bf16 compute with f32 master weights, gradients
//! and optimizer state where asked for or on a GPU.
#![deny(missing_docs)]

pub mod budget;
pub mod cpu_step;
pub mod error;
pub mod model;
pub mod optim;
pub mod plot;
pub mod recipe;
pub mod schedule;
pub mod sft;
pub mod step;
pub mod tensorboard;
pub mod trainer;

pub use budget::{calibrate_steps, train_to_deadline, Replan};
pub use error::{Result, TrainError};
pub use model::TrainModel;
pub use optim::{AdamW, AdamWConfig};
pub use schedule::{Schedule, ScheduleKind};
pub use trainer::{ContextExtension, ModelInit, ModelShape, Precision, StepMetrics, TrainConfig, Trainer, TrainerState};
