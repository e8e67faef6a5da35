//! kiln-train: the trainer. Planned (issue #6): AdamW, LR schedules, clipping, accumulation,
//! precision, checkpoints and resume, metrics, long-context and SFT stages.
//! Nothing is implemented yet.
#![deny(missing_docs)]
