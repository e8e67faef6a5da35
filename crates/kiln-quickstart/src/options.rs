//! What a quickstart run is asked for ([`Options`], the `kiln quickstart` flags as a plain
//! struct, with the command's defaults) and its stages ([`Stage`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{setup, Result};
use crate::Recipe;

/// A quickstart stage, in order. Each writes its artefact under [`Options::out`] and is recorded
/// in `quickstart.json` when done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Choose the repositories (the cargo registry and the python3 standard library, or
    /// [`Options::sources`]) within [`Options::max_source_mb`].
    Sources,
    /// `corpus/`: filters, near-dedup, dependency order, decontamination.
    Corpus,
    /// `tokenizer/`: byte-level BPE sized for the corpus.
    Tokenizer,
    /// `data/`: PSM FIM at rate 0.5, train/val split by repository.
    Pack,
    /// `train/` and `model/`: the `tiny` preset from scratch for the time budget (or
    /// [`Options::steps`]).
    Train,
    /// Evaluation on the held-out repositories and `report.md`.
    Eval,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 6] = [Stage::Sources, Stage::Corpus, Stage::Tokenizer, Stage::Pack, Stage::Train, Stage::Eval];

    /// The stage's name (in `quickstart.json`, `report.md` and `--until`).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Sources => "sources",
            Stage::Corpus => "corpus",
            Stage::Tokenizer => "tokenizer",
            Stage::Pack => "pack",
            Stage::Train => "train",
            Stage::Eval => "eval",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Stage {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Stage, String> {
        Stage::ALL.into_iter().find(|st| st.name() == s).ok_or_else(|| format!("unknown quickstart stage {s:?}"))
    }
}

/// A quickstart run: the `kiln quickstart` flags. [`Default`] gives the command's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Output folder (corpus/, tokenizer/, data/, train/, model/, report.md, quickstart.log).
    /// Rerunning with the same folder resumes.
    pub out: PathBuf,
    /// Time budget of the whole run, in minutes; training gets what the other stages leave.
    pub minutes: f64,
    /// Repositories to use instead of the cargo registry and the python3 standard library:
    /// folders, git repositories or archives (a folder of projects is read as one repository
    /// each).
    pub sources: Vec<PathBuf>,
    /// Seed of the source selection, FIM draws, train/val split, weights and window order.
    pub seed: u64,
    /// Train exactly this many optimizer steps instead of filling the time budget.
    pub steps: Option<usize>,
    /// Most megabytes of source code read (repositories are drawn by the seed up to this).
    pub max_source_mb: u64,
    /// BPE vocabulary (`None`: sized for the corpus, 2,048 to 8,192).
    pub vocab_size: Option<usize>,
    /// Tokens per training window.
    pub seq_len: usize,
    /// Benchmarks to decontaminate against: a directory with humaneval/ and mbpp/ (`None`: the
    /// HumanEval and MBPP built into kiln).
    pub benchmarks: Option<PathBuf>,
    /// Held-out lines for the single-line infilling exact match.
    pub eval_lines: usize,
    /// Held-out lines for the repository-level comparison (with vs without the files their
    /// file imports; 0 skips it).
    pub repo_tasks: usize,
    /// Stop after this stage (`None`: run them all).
    pub until: Option<Stage>,
    /// The model shape, optimizer and schedule ([`Recipe::default`]: the small-budget recipe;
    /// [`Recipe::deepseek`]: the paper's).
    pub recipe: Recipe,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            out: PathBuf::from("kiln-quickstart"),
            minutes: 15.0,
            sources: Vec::new(),
            seed: 0,
            steps: None,
            max_source_mb: 40,
            vocab_size: None,
            seq_len: 512,
            benchmarks: None,
            eval_lines: 100,
            repo_tasks: 100,
            until: None,
            recipe: Recipe::default(),
        }
    }
}

impl Options {
    /// Checks the options that can be checked before anything is written; [`crate::run`] calls
    /// it first. The messages name the `kiln quickstart` flags.
    pub fn validate(&self) -> Result<()> {
        if self.minutes.is_nan() || self.minutes <= 0.0 {
            setup!("--minutes must be positive (got {})", self.minutes);
        }
        let positions = self.recipe.shape.max_position_embeddings;
        if !(128..=positions).contains(&self.seq_len) {
            setup!("--seq-len must be between 128 and {positions}, the model's positions (got {})", self.seq_len);
        }
        if let Err(e) = self.recipe.validate() {
            setup!("the training recipe is invalid: {e}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_round_trip_their_names() {
        for s in Stage::ALL {
            assert_eq!(s.name().parse::<Stage>(), Ok(s));
        }
        assert!("bake".parse::<Stage>().is_err());
        assert!(Stage::Corpus < Stage::Eval);
    }

    #[test]
    fn bad_options_are_refused_with_the_flag_named() {
        assert!(Options::default().validate().is_ok());
        let e = Options { minutes: 0.0, ..Options::default() }.validate().unwrap_err().to_string();
        assert_eq!(e, "--minutes must be positive (got 0)");
        let e = Options { seq_len: 64, ..Options::default() }.validate().unwrap_err().to_string();
        assert!(e.starts_with("--seq-len must be between 128 and 2048"), "{e}");
    }
}
