//! kiln-quickstart: the whole DeepSeek-Coder recipe at small scale, on real code found on this
//! machine, as one library call ([`run`]; `kiln quickstart` is its command line).
//!
//! In: [`Options`] (the output folder, the time budget, the sources, the seed and sizes) and an
//! [`Observer`] that hears the progress. The stages ([`Stage`]):
//!
//! 1. sources: the cargo registry's crates and the python3 standard library's packages (or the
//!    given folders, git repositories and archives), drawn by the seed up to a size;
//! 2. corpus (`corpus/`): filters, near-dedup, dependency order, decontamination against
//!    HumanEval/MBPP;
//! 3. tokenizer (`tokenizer/`): byte-level BPE sized for the corpus;
//! 4. pack (`data/`): PSM FIM at rate 0.5, train/val split by repository;
//! 5. train (`train/`, `model/`): the `tiny` preset from scratch for the time budget (timed
//!    with kiln-train's [`kiln_train::budget`]) or a fixed number of steps;
//! 6. eval: bits per byte against zstd -19, single-line infilling and repository-level
//!    completion on the held-out repositories, then `report.md` with charts (`loss.png`,
//!    `corpus_languages.png`), a sample completion and infill, and the `kiln serve` command.
//!
//! Out: the artefacts under [`Options::out`], `quickstart.log` (every narrative line, with the
//! seconds since the start), and an [`Outcome`] (the model folder, the report, the measurements
//! and samples).
//!
//! Every stage writes its artefact under the output folder and is recorded in `quickstart.json`
//! when done, so an interrupted run resumes at the stage it was in (training from its latest
//! checkpoint). The settings that decide the artefacts (sources, seed, sizes) are recorded too,
//! and a rerun with different ones is refused instead of mixing two runs in one folder.
//!
//! The library prints nothing: the narrative and the progress go to the [`Observer`] (and the
//! narrative to `quickstart.log`); errors are [`QuickstartError`]s.
#![deny(missing_docs)]

mod error;
pub mod evaluate;
mod options;
mod pipeline;
pub mod recipe;
mod report;
mod sources;

use std::path::PathBuf;

pub use error::{QuickstartError, Result};
pub use evaluate::Results;
pub use options::{Options, Stage};
pub use recipe::Recipe;

/// Hears what a run does. Every method does nothing by default. Called from the thread that
/// called [`run`], except [`Observer::corpus_repository_done`], which the corpus build calls from
/// its worker threads (hence `Sync`).
pub trait Observer: Sync {
    /// A line of the narrative (`[1/6] find source code`, what each stage did, ...); it is also
    /// appended to `quickstart.log`. A line may start with a newline to stand apart.
    fn say(&self, _line: &str) {}
    /// The corpus build starts, over `repositories` repositories.
    fn corpus_started(&self, _repositories: u64) {}
    /// One more repository of the corpus build is done (`done` of `total`); called once per
    /// repository, in any order across threads.
    fn corpus_repository_done(&self, _done: u64, _total: u64) {}
    /// The corpus build ended (also when it failed).
    fn corpus_finished(&self) {}
    /// Training starts (or resumes) at `step` of `total_steps`.
    fn training_started(&self, _step: usize, _total_steps: usize) {}
    /// An optimizer step ended: `step` of `total_steps` (the plan may change once, early, when a
    /// time-budgeted run is re-planned), its loss and speed.
    fn training_step(&self, _step: usize, _total_steps: usize, _loss: f64, _tokens_per_s: f64) {}
    /// A validation pass at `step` gave `val_loss`.
    fn training_eval(&self, _step: usize, _val_loss: f64) {}
    /// Training ended (also when it failed).
    fn training_finished(&self) {}
}

/// Hears nothing.
pub struct Silent;

impl Observer for Silent {}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The output folder.
    pub out: PathBuf,
    /// The last stage run (or found done): [`Stage::Eval`] unless [`Options::until`] stopped
    /// earlier.
    pub last_stage: Stage,
    /// The trained model (a Hugging Face model folder for `kiln serve --model`), once trained.
    pub model: Option<PathBuf>,
    /// `report.md`, after the evaluation.
    pub report: Option<PathBuf>,
    /// The held-out measurements and the sample completion and infill, after the evaluation.
    pub results: Option<Results>,
}

/// Runs the quickstart: checks `opts` ([`Options::validate`]), then runs (or resumes) each stage
/// up to [`Options::until`], telling `observer`.
pub fn run(opts: &Options, observer: &dyn Observer) -> Result<Outcome> {
    pipeline::run(opts, observer)
}
