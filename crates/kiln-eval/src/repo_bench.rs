//! Repository-level line completion, CrossCodeEval-style, built from kiln's own data.
//!
//! CrossCodeEval's data is not available offline, so this module builds the same kind of
//! benchmark from repositories: a task is one line of a file whose completion needs an
//! identifier **defined in another file of the same repository that this file imports** (and not
//! defined in the file itself). The model sees the file up to the line (left-to-right), or the
//! file around it (`fim`), once with the imported files in front (kiln's repository layout, as
//! trained) and once without; the difference between the two scores is the value of
//! repository-level context: the paper's key claim.
//!
//! * **Languages**: the nine whose imports kiln reads (`Language::imports` in kiln-repo's table);
//!   a task's `language` is the table's name. Where comments and string literals are comes from
//!   kiln-repo's lexers ([`kiln_repo::code`]), the names a file defines from
//!   [`kiln_repo::definitions`].
//! * **Build** ([`build_from_corpus`], [`build_from_repos`]): held-out repositories only (the
//!   ones `kiln data pack` puts in its validation split, [`kiln_data::Split::of_repo`]), unless
//!   [`BuildOptions::all_repos`]. Lines are chosen by a seeded hash of their task id, so the
//!   choice is deterministic and does not depend on iteration order. [`write_bench`] writes the
//!   tasks (`bench.jsonl`) and a snapshot of the repositories' files (`bench.repos.jsonl`, see
//!   [`snapshot_path`]) that the scorer builds the context from, so scoring needs no corpus.
//! * **Prompt** ([`prompt_for`]): cceval's budgets, adapted: the cross-file part gets at most
//!   [`Budgets::context_tokens`] (512, cceval's and the paper's setting) and the in-file part
//!   `max_prompt_tokens - context_tokens` in **both** conditions, left-truncated by whole lines,
//!   so the only difference between "with" and "without" is the other files.
//! * **Post-processing** ([`postprocess`]): the first line of the completion; for Java, C#,
//!   TypeScript and JavaScript cut after the first `;`, `{` or `}` (cceval's rule); then
//!   line comments removed (cceval's parse-based rule for Python is not implemented: the first
//!   line is what a single-line task asks for).
//! * **Scores** ([`score`]): EM (stripped non-empty lines equal), ES
//!   ([`crate::metrics::edit_similarity`] of the stripped texts, fuzzywuzzy's integer ratio) and
//!   identifier EM (the identifiers in order), per language and over all tasks.

use std::collections::HashMap;
use std::fmt::Display;
use std::path::PathBuf;

use kiln_infer::prompt::ContextFile;
use kiln_infer::repo::RepoIndex;
use kiln_repo::Repo;
use kiln_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::EvalError;
use score::{postprocess_as, strip_comments, syntax_named};

/// One benchmark task: complete one line of a repository's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoTask {
    /// `repo/path:line` (1-based line).
    pub task_id: String,
    /// The repository's name (as in the corpus, or the directory name).
    pub repo: String,
    /// The file, relative to the repository root.
    pub path: String,
    /// Language name from kiln-repo's table (`Python`, `Rust`, `TypeScript`, ...).
    pub language: String,
    /// The file's text before the line, including the line's indentation.
    pub prefix: String,
    /// The rest of the file after the line (after its newline).
    pub suffix: String,
    /// The line without its indentation, trailing whitespace or newline.
    pub ground_truth: String,
    /// The cross-file identifier the line uses.
    pub symbol: String,
    /// The imported file that defines `symbol`.
    pub defined_in: String,
}

/// How tasks are selected.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOptions {
    /// Fraction of repositories held out (as `kiln data pack --val-fraction`, default 0.01).
    pub val_fraction: f64,
    /// Split seed (as `kiln data pack --seed`, default 0); also seeds the choice of lines.
    pub seed: u64,
    /// Use every repository, not only the held-out ones.
    pub all_repos: bool,
    /// Most tasks in all (default 500).
    pub max_tasks: usize,
    /// Most tasks per file (default 5), so large files do not dominate.
    pub max_per_file: usize,
    /// Lines before the chosen one (default 3): a line with no in-file prefix is not a
    /// completion task.
    pub min_prefix_lines: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self { val_fraction: 0.01, seed: 0, all_repos: false, max_tasks: 500, max_per_file: 5, min_prefix_lines: 3 }
    }
}

impl BuildOptions {
    /// Whether `repo` is one this build takes tasks from.
    pub fn selects(&self, repo: &str) -> bool {
        self.all_repos || kiln_data::Split::of_repo(repo, self.val_fraction, self.seed) == kiln_data::Split::Val
    }
}

mod build;
mod prompt;
mod score;

pub use build::{build_from_corpus, build_from_repos, load_bench, repos_from_corpus, snapshot_path, write_bench};
pub use prompt::{context_files, context_files_cut, prompt_for, Budgets, Prompt};
pub use score::{edit_similarity, exact_match, identifier_match, postprocess, remove_comments, score, Metrics, RepoScore, ScoreRow};

// ---------------------------------------------------------------------------------------------
// The generation driver

/// How [`evaluate`] builds prompts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EvalOptions {
    /// Token budgets.
    pub budgets: Budgets,
    /// Fill-in-the-middle with the suffix instead of left-to-right completion.
    pub fim: bool,
    /// When the imported files do not all fit the context budget, cut the one that no longer
    /// fits to its first lines instead of leaving it out (CrossCodeEval cuts its context text to
    /// the budget the same way). Matters for small windows, where whole files rarely fit.
    pub partial_files: bool,
}

/// One condition's outcome for one task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// What the model returned.
    pub raw: String,
    /// After [`postprocess`].
    pub prediction: String,
    /// [`exact_match`].
    pub exact_match: bool,
    /// [`edit_similarity`].
    pub edit_similarity: u32,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
}

/// Both conditions of one task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskResult {
    /// The task.
    pub task_id: String,
    /// Its language.
    pub language: String,
    /// The expected line.
    pub ground_truth: String,
    /// The context files given in the "with" condition.
    pub context_files: Vec<String>,
    /// With context.
    pub with_context: Outcome,
    /// Without.
    pub without_context: Outcome,
}

/// What [`evaluate`] returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepoReport {
    /// Per task, in the tasks' order.
    pub results: Vec<TaskResult>,
    /// The scores.
    pub score: RepoScore,
    /// Completions that failed (scored as empty predictions).
    pub generation_errors: usize,
    /// The options used.
    pub options: EvalOptions,
}

/// Runs both conditions of every task through `complete` (an in-process model, an endpoint, an
/// oracle in tests) and scores them; a task with no context file within the budget is asked
/// once (both prompts would be the same). A failing completion is logged, counted in
/// `generation_errors` and scores as an empty prediction; the run goes on. `repos` must hold
/// every task's repository (the snapshot of [`load_bench`]).
pub fn evaluate<E: Display>(
    tasks: &[RepoTask],
    repos: &[Repo],
    tokenizer: &Tokenizer,
    opts: &EvalOptions,
    mut complete: impl FnMut(&Prompt) -> Result<String, E>,
) -> Result<RepoReport, EvalError> {
    let mut indexes: HashMap<&str, RepoIndex> = HashMap::new();
    let mut results = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    for (n, task) in tasks.iter().enumerate() {
        if !indexes.contains_key(task.repo.as_str()) {
            let repo = repos.iter().find(|r| r.name == task.repo).ok_or_else(|| EvalError::Data {
                path: PathBuf::from(&task.repo),
                message: format!("task {}: its repository is not in the snapshot", task.task_id),
            })?;
            indexes.insert(task.repo.as_str(), RepoIndex::from_repo(repo.clone()));
        }
        let context = if opts.partial_files {
            context_files_cut(&indexes[task.repo.as_str()], task, tokenizer, opts.budgets.context_tokens)?
        } else {
            context_files(&indexes[task.repo.as_str()], task, tokenizer, opts.budgets.context_tokens)?
        };
        let syntax = syntax_named(&task.language);
        let mut run = |ctx: &[ContextFile]| -> Result<Outcome, EvalError> {
            let p = prompt_for(task, ctx, tokenizer, &opts.budgets, opts.fim)?;
            let raw = match complete(&p) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(task = %task.task_id, with_context = p.with_context, error = %e, "no completion; scored as empty");
                    errors += 1;
                    String::new()
                }
            };
            let prediction = postprocess_as(&raw, syntax);
            let gt = strip_comments(&task.ground_truth, syntax);
            Ok(Outcome {
                exact_match: exact_match(&prediction, &gt),
                edit_similarity: edit_similarity(&prediction, &gt),
                prompt_tokens: p.ids.len(),
                raw,
                prediction,
            })
        };
        let with_context = run(&context)?;
        // No file fit the budget (or the file imports none): the two prompts are the same, so
        // the model is asked once.
        let without_context = if context.is_empty() { with_context.clone() } else { run(&[])? };
        results.push(TaskResult {
            task_id: task.task_id.clone(),
            language: task.language.clone(),
            ground_truth: task.ground_truth.clone(),
            context_files: context.iter().map(|f| f.path.clone()).collect(),
            with_context,
            without_context,
        });
        tracing::info!(task = %task.task_id, done = n + 1, of = tasks.len(), "completed");
    }
    let with: Vec<String> = results.iter().map(|r| r.with_context.prediction.clone()).collect();
    let without: Vec<String> = results.iter().map(|r| r.without_context.prediction.clone()).collect();
    Ok(RepoReport { score: score(tasks, &with, &without), results, generation_errors: errors, options: *opts })
}
