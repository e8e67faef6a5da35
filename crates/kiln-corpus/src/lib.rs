//! kiln-corpus: the corpus pipeline's algorithms (paper §2.1, §2.3, §2.4; spec §2.3–2.7).
//!
//! In: source files ([`kiln_repo::SourceFile`]) and rendered samples (text with ids).
//! Out: keep/drop decisions with a reason per rule ([`filters`], [`quality`]), duplicate clusters
//! with one deterministic representative each ([`dedup`]), and contamination reports naming the
//! benchmark tasks a sample overlaps ([`decontam`]).
//!
//! Not here yet (issue #4, later): Parquet shards, the manifest and stats, the `--task i --tasks N`
//! runner and the `kiln corpus` CLI. Everything here is pure, deterministic library code.
#![deny(missing_docs)]

pub mod decontam;
pub mod dedup;
pub mod filters;
pub mod quality;

pub use decontam::{Benchmarks, Contamination, DecontamConfig, DecontamError, DecontamIndex};
pub use dedup::{DedupResult, DedupUnit, LshParams, MinHasher, Signature};
pub use filters::{check_file, DropReason, FilterConfig};
pub use quality::{check_quality, QualityConfig};
