//! Train/validation split by repository.
//!
//! Splitting by document would put files of one repository (and near-copies inside it) on both
//! sides and make validation loss look better than generalisation is. So the unit is the
//! repository: it goes to `val` iff xxh3-64 of its name, seeded with the split seed, maps into
//! `[0, val_fraction)`. The decision depends only on the name, the seed and the fraction, so it
//! is the same in every shard, every run and on every thread count, and no repository can land in
//! both splits.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::rng::unit_interval;

/// One of the two packed outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training windows (`train.bin/.idx`).
    Train,
    /// Validation windows (`val.bin/.idx`).
    Val,
}

impl Split {
    /// Both splits, train first.
    pub const ALL: [Split; 2] = [Split::Train, Split::Val];

    /// The file stem and the name used in `meta.json`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }

    /// The split a repository belongs to (see the module docs). `val_fraction` 0 gives no
    /// validation data, 1 puts everything in it.
    pub fn of_repo(repo: &str, val_fraction: f64, seed: u64) -> Split {
        if unit_interval(xxh3_64_with_seed(repo.as_bytes(), seed)) < val_fraction {
            Split::Val
        } else {
            Split::Train
        }
    }
}

impl std::str::FromStr for Split {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "train" => Ok(Split::Train),
            "val" => Ok(Split::Val),
            _ => Err(format!("unknown split {s:?}: expected train or val")),
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_is_respected_and_extremes_are_exact() {
        let repos: Vec<String> = (0..20_000).map(|i| format!("org{}/repo-{i}", i % 37)).collect();
        let val = repos.iter().filter(|r| Split::of_repo(r, 0.1, 3) == Split::Val).count();
        // Binomial(20000, 0.1): sigma ~ 42; allow 5 sigma.
        assert!((1790..=2210).contains(&val), "{val}");
        assert!(repos.iter().all(|r| Split::of_repo(r, 0.0, 3) == Split::Train));
        assert!(repos.iter().all(|r| Split::of_repo(r, 1.0, 3) == Split::Val));
        // The seed changes the assignment.
        let moved = repos.iter().filter(|r| Split::of_repo(r, 0.1, 3) != Split::of_repo(r, 0.1, 4)).count();
        assert!(moved > 1000, "{moved}");
    }
}
