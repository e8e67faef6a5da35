//! Post-processing of completions and the scores (EM, ES, identifier EM) per language.

use std::collections::BTreeMap;

use kiln_repo::code::identifiers;
use kiln_repo::lang::ImportSyntax;
use kiln_repo::Language;
use serde::Serialize;

use super::RepoTask;

/// cceval's post-processing of a completion for a one-line task (see [`crate::repo_bench`]);
/// `language` is a name from kiln-repo's table.
pub fn postprocess(completion: &str, language: &str) -> String {
    postprocess_as(completion, syntax_named(language))
}

pub(super) fn postprocess_as(completion: &str, syntax: Option<ImportSyntax>) -> String {
    use ImportSyntax::*;
    let mut line = completion.split('\n').next().unwrap_or("").trim_end_matches('\r');
    if matches!(syntax, Some(Java | CSharp | TypeScript | Tsx | JavaScript)) {
        if let Some(i) = line.find([';', '{', '}']) {
            line = &line[..=i];
        }
    }
    strip_comments(line, syntax)
}

/// A line without its comments (`#` in Python, `//` and `/* */` elsewhere), strings respected,
/// as kiln-repo's lexer of the language reads it ([`kiln_repo::code`]); a language it has no
/// lexer for keeps its comments. Trailing whitespace is dropped.
pub fn remove_comments(line: &str, language: &str) -> String {
    strip_comments(line, syntax_named(language))
}

pub(super) fn strip_comments(line: &str, syntax: Option<ImportSyntax>) -> String {
    match syntax {
        Some(s) => kiln_repo::code::without_comments(s, line).trim_end().to_string(),
        None => line.trim_end().to_string(),
    }
}

/// EM: the stripped non-empty lines of both are equal (and there is at least one).
pub fn exact_match(prediction: &str, ground_truth: &str) -> bool {
    let lines = |s: &str| s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect::<Vec<_>>();
    let (p, g) = (lines(prediction), lines(ground_truth));
    !g.is_empty() && p == g
}

/// ES: fuzzywuzzy's `fuzz.ratio` of the stripped texts (0..=100).
pub fn edit_similarity(prediction: &str, ground_truth: &str) -> u32 {
    crate::metrics::edit_similarity(prediction.trim(), ground_truth.trim())
}

/// Identifier EM: the identifiers outside strings and comments, in order, are equal (for a
/// language kiln-repo has no lexer for, the identifiers of the whole texts).
pub fn identifier_match(prediction: &str, ground_truth: &str, language: &str) -> bool {
    identifiers_match(prediction, ground_truth, syntax_named(language))
}

fn identifiers_match(prediction: &str, ground_truth: &str, syntax: Option<ImportSyntax>) -> bool {
    let ids = |s: &str| identifiers(&syntax.map_or_else(|| s.to_string(), |syntax| kiln_repo::code::code_of(syntax, s)));
    let g = ids(ground_truth);
    !g.is_empty() && ids(prediction) == g
}

/// Mean scores of one condition (percentages; ES is the mean integer ratio).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Exact match, %.
    pub exact_match: f64,
    /// Edit similarity, mean of 0..=100.
    pub edit_similarity: f64,
    /// Identifier exact match, %.
    pub identifier_match: f64,
}

/// One language's (or `all`) scores in both conditions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreRow {
    /// Language name, or `all`.
    pub language: String,
    /// Tasks.
    pub tasks: usize,
    /// With the imported files as context.
    pub with_context: Metrics,
    /// In-file prefix only.
    pub without_context: Metrics,
}

/// Scores per language (sorted) then `all`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepoScore {
    /// The rows.
    pub rows: Vec<ScoreRow>,
}

impl RepoScore {
    /// The `all` row.
    pub fn all(&self) -> &ScoreRow {
        self.rows.last().expect("score always has the `all` row")
    }

    /// A Markdown table: one row per language and condition.
    pub fn markdown(&self) -> String {
        let mut s = String::from("| language | tasks | context | EM | ES | identifier EM |\n|---|---|---|---|---|---|\n");
        for r in &self.rows {
            for (name, m) in [("with", &r.with_context), ("without", &r.without_context)] {
                s += &format!(
                    "| {} | {} | {name} | {:.1}% | {:.1} | {:.1}% |\n",
                    r.language, r.tasks, m.exact_match, m.edit_similarity, m.identifier_match
                );
            }
        }
        s.trim_end().to_string()
    }
}

/// Scores predictions (raw or post-processed: [`postprocess`] is applied, and is idempotent)
/// of `tasks` in both conditions, in the tasks' order.
pub fn score(tasks: &[RepoTask], predictions_with: &[String], predictions_without: &[String]) -> RepoScore {
    assert!(tasks.len() == predictions_with.len() && tasks.len() == predictions_without.len(), "one prediction per task and condition");
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, t) in tasks.iter().enumerate() {
        groups.entry(t.language.as_str()).or_default().push(i);
    }
    let syntaxes: Vec<Option<ImportSyntax>> = tasks.iter().map(|t| syntax_named(&t.language)).collect();
    let metrics = |idx: &[usize], preds: &[String]| {
        // Counts and sums first, one division at the end: 100% stays exactly 100.
        let (mut em, mut es, mut id) = (0usize, 0u64, 0usize);
        for &i in idx {
            let syntax = syntaxes[i];
            let p = postprocess_as(&preds[i], syntax);
            let gt = strip_comments(&tasks[i].ground_truth, syntax);
            em += usize::from(exact_match(&p, &gt));
            es += u64::from(edit_similarity(&p, &gt));
            id += usize::from(identifiers_match(&p, &gt, syntax));
        }
        let n = idx.len().max(1) as f64;
        Metrics { exact_match: 100.0 * em as f64 / n, edit_similarity: es as f64 / n, identifier_match: 100.0 * id as f64 / n }
    };
    let row = |language: &str, idx: &[usize]| ScoreRow {
        language: language.to_string(),
        tasks: idx.len(),
        with_context: metrics(idx, predictions_with),
        without_context: metrics(idx, predictions_without),
    };
    let mut rows: Vec<ScoreRow> = groups.iter().map(|(l, idx)| row(l, idx)).collect();
    rows.push(row("all", &(0..tasks.len()).collect::<Vec<_>>()));
    RepoScore { rows }
}

/// The lexer of a language named as in kiln-repo's table (a task's `language`); `None` for a
/// language kiln-repo has no lexer for (no task is in one).
pub(super) fn syntax_named(language: &str) -> Option<ImportSyntax> {
    Language::by_name(language).and_then(Language::imports)
}
