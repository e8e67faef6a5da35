//! kiln-train: pre-training from scratch with DeepSeek-Coder's recipe (paper §3.3, spec §6).
//!
//! In: packed windows from `kiln data pack` (kiln-data) and a model (a kiln-model preset or a
//! model directory). Out: a run directory with metrics and Hugging Face checkpoints that resume
//! exactly. Pieces: [`schedule`] (warmup + three-stage step or cosine), [`optim`] (AdamW,
//! clipping), [`model`] (parameters as `Var`s, loss and gradients through the differentiable
//! training forward), [`trainer`] (the loop, evaluation, checkpoints).
//!
//! [`sft`] serves instruction-tuning conversations and their masked loss; the trainer picks it
//! when the data directory holds SFT files (`kiln data sft`).
//!
//! The long-context stage is a config of the same loop ([`trainer::ContextExtension`]).
//!
//! [`plot`] draws `metrics.jsonl` as PNG loss and LR charts.
//!
//! Not here yet (issue #6): bf16 compute.
#![deny(missing_docs)]

pub mod cpu_step;
pub mod error;
pub mod model;
pub mod optim;
pub mod plot;
pub mod recipe;
pub mod schedule;
pub mod sft;
pub mod trainer;

pub use error::{Result, TrainError};
pub use model::TrainModel;
pub use optim::{AdamW, AdamWConfig};
pub use schedule::{Schedule, ScheduleKind};
pub use trainer::{ContextExtension, ModelInit, StepMetrics, TrainConfig, Trainer, TrainerState};
