//! kiln-base: small mechanisms several stages of kiln share, each defined once.
//!
//! * [`fs`]: the one atomic file write (temporary file beside the destination, fsync, rename),
//!   whole-buffer ([`fs::write_atomic`]), streamed ([`fs::AtomicFile`]) or for files another
//!   library writes by path ([`fs::tmp_path`] + [`fs::persist`]).
//! * [`rng`]: SplitMix64, the value-stable random streams behind FIM splits, shuffles and MinHash
//!   permutations, and [`rng::seeded_hash`], kiln's seeded hash.
//! * [`union_find`]: the disjoint-set forest behind connected components and dedup clusters.
//!
//! Why a crate of its own: these were copied from stage to stage (an atomic write in six files of
//! four crates, SplitMix64 twice, union-find three times) and had begun to drift (temporary
//! names, fsync or not). The crate depends on nothing heavy (xxhash for keyed streams, tracing for
//! a log line), so every stage can use it.
#![deny(missing_docs)]

pub mod fs;
pub mod machine;
pub mod rng;
pub mod union_find;

pub use union_find::UnionFind;
