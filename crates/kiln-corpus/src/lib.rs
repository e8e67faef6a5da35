//! kiln-corpus: the corpus pipeline's algorithms (paper §2.1, §2.3, §2.4; spec §2.3–2.7).
//!
//! In: source files ([`kiln_repo::SourceFile`]) and rendered samples (text with ids).
//! Out: keep/drop decisions with a reason per rule ([`filters`], [`quality`]), duplicate clusters
//! with one deterministic representative each ([`dedup`]), and contamination reports naming the
//! benchmark tasks a sample overlaps ([`decontam`]).
//!
//! Around them, the pipeline ([`pipeline`]): `kiln corpus build` as independent tasks over a
//! sorted input list that exchange only files ([`shard`]: Parquet, written atomically), a merge
//! with global dedup and decontamination, and a manifest with the counts ([`manifest`]).
//! Configuration: [`config::CorpusConfig`]. Errors: [`error::CorpusError`].
#![deny(missing_docs)]

pub mod config;
pub mod dataset;
pub mod decontam;
pub mod dedup;
pub mod error;
pub mod filters;
pub mod manifest;
pub mod pipeline;
pub mod quality;
pub mod shard;

pub use config::CorpusConfig;
pub use decontam::{BenchmarkSource, Benchmarks, Contamination, DecontamConfig, DecontamError, DecontamIndex};
pub use dedup::{DedupResult, DedupUnit, LshParams, MinHasher, Signature};
pub use error::CorpusError;
pub use filters::{check_file, DropReason, FilterConfig};
pub use manifest::Manifest;
pub use pipeline::{build, list_inputs, BuildOutcome, BuildPlan};
pub use quality::{check_error_share, check_quality, QualityConfig};
