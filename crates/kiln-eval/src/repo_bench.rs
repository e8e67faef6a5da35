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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_infer::prompt::{self, ContextFile};
use kiln_infer::repo::RepoIndex;
use kiln_repo::code::{code_lines, identifiers, CodeLine};
use kiln_repo::definitions::definitions;
use kiln_repo::graph::build_graph;
use kiln_repo::imports::{analyze, file_syntax};
use kiln_repo::lang::ImportSyntax;
use kiln_repo::{Language, Repo, SourceFile};
use kiln_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::EvalError;

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

// ---------------------------------------------------------------------------------------------
// Reading repositories

/// The held-out repositories of a corpus written by `kiln corpus build` (all of them with
/// [`BuildOptions::all_repos`]), rebuilt from the shards: a repository split into several
/// samples (one per connected component of its import graph) gets all its files back.
pub fn repos_from_corpus(corpus: &Path, opts: &BuildOptions) -> Result<Vec<Repo>, EvalError> {
    let manifest =
        kiln_corpus::Manifest::load(corpus).map_err(|e| EvalError::Data { path: corpus.to_path_buf(), message: e.to_string() })?;
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for shard in manifest.shard_paths(corpus) {
        kiln_corpus::shard::read_file(&shard, 256, |batch| {
            for s in batch {
                if !opts.selects(&s.repo) {
                    continue;
                }
                let files = repos.entry(s.repo.clone()).or_default();
                for f in &s.files {
                    let text = usize::try_from(f.start).ok().zip(usize::try_from(f.end).ok()).and_then(|(a, b)| s.text.get(a..b));
                    let Some(text) = text else {
                        return Err(kiln_corpus::CorpusError::Plan(format!(
                            "sample {}: file {} has the span {}..{}, outside its text of {} bytes",
                            s.id,
                            f.path,
                            f.start,
                            f.end,
                            s.text.len()
                        )));
                    };
                    files.insert(f.path.clone(), text.to_string());
                }
            }
            Ok(())
        })
        .map_err(|e| EvalError::Data { path: shard.clone(), message: e.to_string() })?;
    }
    Ok(repos
        .into_iter()
        .map(|(name, files)| Repo { name, files: files.into_iter().map(|(p, t)| SourceFile::new(p, t)).collect() })
        .collect())
}

/// [`build_from_repos`] on [`repos_from_corpus`].
pub fn build_from_corpus(corpus: &Path, opts: &BuildOptions) -> Result<Vec<RepoTask>, EvalError> {
    build_from_repos(&repos_from_corpus(corpus, opts)?, opts)
}

// ---------------------------------------------------------------------------------------------
// Selecting lines

/// Selects tasks from the repositories [`BuildOptions::selects`] (see the module docs). Sorted
/// by repository, path and line.
pub fn build_from_repos(repos: &[Repo], opts: &BuildOptions) -> Result<Vec<RepoTask>, EvalError> {
    let mut chosen: Vec<(u64, RepoTask)> = Vec::new();
    for repo in repos.iter().filter(|r| opts.selects(&r.name)) {
        let graph = build_graph(repo);
        // Languages without an import syntax have no lexer and no definition finder.
        let lexed = |f: &SourceFile| f.language.and_then(|l| Some((l, l.imports()?)));
        let defs: Vec<HashSet<String>> =
            repo.files.iter().map(|f| lexed(f).map(|(_, syntax)| definitions(syntax, &f.text)).unwrap_or_default()).collect();
        for (i, file) in repo.files.iter().enumerate() {
            let Some((lang, syntax)) = lexed(file) else { continue };
            // The imported files that define each name, nearest path first (edges sorted by target).
            let mut imported: HashMap<&str, usize> = HashMap::new();
            for e in graph.imports_of(i) {
                for name in &defs[e.to] {
                    imported.entry(name.as_str()).or_insert(e.to);
                }
            }
            if imported.is_empty() {
                continue;
            }
            let mut in_file = Vec::new();
            for c in candidate_lines(file, syntax, opts.min_prefix_lines) {
                let symbol = identifiers(&c.line.code).into_iter().find(|id| imported.contains_key(id.as_str()) && !defs[i].contains(id));
                let Some(symbol) = symbol else { continue };
                let (start, end) = (c.line.start, c.line.end);
                let task_id = format!("{}/{}:{}", repo.name, file.path, c.line.number);
                let key = xxh3_64_with_seed(task_id.as_bytes(), opts.seed);
                let defined_in = repo.files[imported[symbol.as_str()]].path.clone();
                in_file.push((
                    key,
                    RepoTask {
                        task_id,
                        repo: repo.name.clone(),
                        path: file.path.clone(),
                        language: lang.name().to_string(),
                        prefix: file.text[..start + c.indent].to_string(),
                        suffix: file.text[end..].to_string(),
                        ground_truth: file.text[start + c.indent..end].trim_end().to_string(),
                        symbol,
                        defined_in,
                    },
                ));
            }
            in_file.sort_by_key(|(k, _)| *k);
            in_file.truncate(opts.max_per_file);
            chosen.extend(in_file);
        }
    }
    chosen.sort_by_key(|(k, t)| (*k, t.task_id.clone()));
    chosen.truncate(opts.max_tasks);
    let mut tasks: Vec<RepoTask> = chosen.into_iter().map(|(_, t)| t).collect();
    tasks.sort_by(|a, b| (&a.repo, &a.path, line_of(a)).cmp(&(&b.repo, &b.path, line_of(b))));
    tracing::info!(tasks = tasks.len(), "repository-level tasks selected");
    Ok(tasks)
}

fn line_of(t: &RepoTask) -> usize {
    t.prefix.matches('\n').count()
}

/// A line that may become a task.
struct Candidate {
    /// The line, with its code (strings blanked, comments removed).
    line: CodeLine,
    /// Bytes of indentation.
    indent: usize,
}

/// Lines that are not blank, not comments (nor inside a block comment or a multi-line string
/// such as a docstring), not imports, with at least `min_prefix` lines before them.
fn candidate_lines(file: &SourceFile, syntax: ImportSyntax, min_prefix: usize) -> Vec<Candidate> {
    let import_lines: HashSet<usize> =
        file_syntax(file).map(|s| analyze(s, &file.text).imports.iter().map(|i| i.line).collect()).unwrap_or_default();
    let mut out = Vec::new();
    let mut open_import_brackets = 0i32;
    for line in code_lines(syntax, &file.text) {
        let text = &file.text[line.start..line.end];
        let trimmed = line.code.trim();
        let is_import = import_lines.contains(&line.number) || open_import_brackets > 0 || starts_import(syntax, trimmed);
        if is_import {
            open_import_brackets = (open_import_brackets + bracket_balance(&line.code)).max(0);
        }
        let indent = text.len() - text.trim_start().len();
        let keep = !is_import && line.continues.is_none() && !trimmed.is_empty() && line.number > min_prefix && text.trim().len() >= 2;
        if keep {
            out.push(Candidate { line, indent });
        }
    }
    out
}

fn bracket_balance(code: &str) -> i32 {
    code.chars()
        .map(|c| match c {
            '(' | '{' | '[' => 1,
            ')' | '}' | ']' => -1,
            _ => 0,
        })
        .sum()
}

/// Whether a line (code only, trimmed) is an import, an include or a module declaration.
fn starts_import(syntax: ImportSyntax, line: &str) -> bool {
    use ImportSyntax::*;
    let words: &[&str] = match syntax {
        Python => &["import ", "from "],
        Rust => &["use ", "pub use ", "mod ", "pub mod ", "extern crate "],
        JavaScript | TypeScript | Tsx => &["import ", "import{"],
        Java => &["import ", "package "],
        CSharp => &["using ", "namespace "],
        Go => &["import ", "package "],
        C | Cpp => &["#include", "#import"],
    };
    words.iter().any(|w| line.starts_with(w)) || line.contains("require(")
}

/// The lexer of a language named as in kiln-repo's table (a task's `language`); `None` for a
/// language kiln-repo has no lexer for (no task is in one).
fn syntax_named(language: &str) -> Option<ImportSyntax> {
    Language::by_name(language).and_then(Language::imports)
}

// ---------------------------------------------------------------------------------------------
// Bench files

/// The repository snapshot written next to a bench file: `bench.jsonl` → `bench.repos.jsonl`.
pub fn snapshot_path(bench: &Path) -> PathBuf {
    let name = bench.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
    bench.with_file_name(format!("{stem}.repos.jsonl"))
}

/// One line of the snapshot file.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotRepo {
    repo: String,
    files: Vec<SnapshotFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotFile {
    path: String,
    text: String,
}

/// Writes the tasks (one JSON line each) to `bench` and the files of the repositories they come
/// from to [`snapshot_path`]`(bench)`, one line per repository, `{repo, files: [{path, text}]}`.
/// Both are byte-identical for the same input and options.
pub fn write_bench(bench: &Path, tasks: &[RepoTask], repos: &[Repo]) -> Result<(), EvalError> {
    let io = |path: &Path, e: std::io::Error| EvalError::Data { path: path.to_path_buf(), message: format!("cannot write: {e}") };
    let mut out = Vec::new();
    for t in tasks {
        serde_json::to_writer(&mut out, t).expect("tasks serialise");
        out.push(b'\n');
    }
    std::fs::write(bench, &out).map_err(|e| io(bench, e))?;
    let used: HashSet<&str> = tasks.iter().map(|t| t.repo.as_str()).collect();
    let snap = snapshot_path(bench);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&snap).map_err(|e| io(&snap, e))?);
    for r in repos.iter().filter(|r| used.contains(r.name.as_str())) {
        let line = SnapshotRepo {
            repo: r.name.clone(),
            files: r.files.iter().map(|f| SnapshotFile { path: f.path.clone(), text: f.text.clone() }).collect(),
        };
        serde_json::to_writer(&mut f, &line).expect("snapshot serialises");
        f.write_all(b"\n").map_err(|e| io(&snap, e))?;
    }
    f.flush().map_err(|e| io(&snap, e))
}

/// Reads a bench file and its repository snapshot; every task's repository and file must be in
/// the snapshot.
pub fn load_bench(bench: &Path) -> Result<(Vec<RepoTask>, Vec<Repo>), EvalError> {
    let tasks: Vec<RepoTask> = crate::load_jsonl(bench, "task_id, repo, path, language, prefix, suffix, ground_truth, symbol, defined_in")?;
    let snap = snapshot_path(bench);
    if !snap.is_file() {
        return Err(EvalError::Data {
            path: snap,
            message: format!(
                "missing: the repository snapshot `kiln eval repo build` writes next to {}; rebuild the bench",
                bench.display()
            ),
        });
    }
    let lines: Vec<SnapshotRepo> = crate::load_jsonl(&snap, "repo, files: [{path, text}]")?;
    let repos: Vec<Repo> = lines
        .into_iter()
        .map(|r| {
            let mut files: Vec<SourceFile> = r.files.into_iter().map(|f| SourceFile::new(f.path, f.text)).collect();
            files.sort_by(|a, b| a.path.cmp(&b.path));
            Repo { name: r.repo, files }
        })
        .collect();
    for (n, t) in tasks.iter().enumerate() {
        let ok = repos.iter().find(|r| r.name == t.repo).is_some_and(|r| r.files.iter().any(|f| f.path == t.path));
        if !ok {
            return Err(EvalError::Data {
                path: bench.to_path_buf(),
                message: format!(
                    "line {}: task {}: {}/{} is not in {}; rebuild the bench",
                    n + 1,
                    t.task_id,
                    t.repo,
                    t.path,
                    snap.display()
                ),
            });
        }
    }
    Ok((tasks, repos))
}

// ---------------------------------------------------------------------------------------------
// Prompts

/// Token budgets of a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Budgets {
    /// The whole prompt (default 2048 − 64: a 2,048-token model with room for cceval's 50
    /// generated tokens).
    pub max_prompt_tokens: usize,
    /// The cross-file part (default 512: cceval's and the paper's budget). The in-file part gets
    /// the rest in both conditions.
    pub context_tokens: usize,
}

impl Default for Budgets {
    fn default() -> Self {
        Self { max_prompt_tokens: 2048 - 64, context_tokens: 512 }
    }
}

/// A prompt for one task in one condition.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// The task.
    pub task_id: String,
    /// With the imported files in front.
    pub with_context: bool,
    /// Token ids for an in-process model (BOS, context, path comment, prefix; FIM markers and the
    /// suffix in FIM mode).
    pub ids: Vec<u32>,
    /// The same as text for a completions endpoint: context files + path comment + prefix.
    pub text: String,
    /// In FIM mode, the (truncated) suffix, to send as the endpoint's `suffix`.
    pub suffix: Option<String>,
    /// Paths of the context files, in prompt order.
    pub context_paths: Vec<String>,
}

/// The files `task`'s file imports, directly or not, in dependency order, within
/// `budget_tokens` (farthest dropped first): [`RepoIndex::context_for`] on the snapshot.
pub fn context_files(
    index: &RepoIndex,
    task: &RepoTask,
    tokenizer: &Tokenizer,
    budget_tokens: usize,
) -> Result<Vec<ContextFile>, EvalError> {
    index
        .context_for(&task.path, budget_tokens, tokenizer)
        .map_err(|e| EvalError::Data { path: PathBuf::from(&task.path), message: format!("task {}: {e}", task.task_id) })
}

/// Like [`context_files`], but the nearest files are kept whole while they fit and the next one
/// is cut to its first lines to fill the rest of `budget_tokens` (its path comment and a few
/// tokens of rendering are counted too).
pub fn context_files_cut(
    index: &RepoIndex,
    task: &RepoTask,
    tokenizer: &Tokenizer,
    budget_tokens: usize,
) -> Result<Vec<ContextFile>, EvalError> {
    let all = context_files(index, task, tokenizer, usize::MAX / 4)?;
    let count = |s: &str| tokenizer.encode_raw(s).map(|ids| ids.len()).unwrap_or(s.len());
    // Dependency order puts the nearest imports last, right before the file itself.
    let mut kept: Vec<ContextFile> = Vec::new();
    let mut left = budget_tokens;
    for f in all.into_iter().rev() {
        let overhead = count(&f.path) + 4;
        if left <= overhead {
            break;
        }
        let need = overhead + count(&f.text);
        if need <= left {
            left -= need;
            kept.push(f);
            continue;
        }
        let mut text = String::new();
        let mut used = overhead;
        for line in f.text.split_inclusive('\n') {
            let n = count(line);
            if used + n > left {
                break;
            }
            used += n;
            text.push_str(line);
        }
        if !text.is_empty() {
            kept.push(ContextFile { path: f.path, text });
        }
        break;
    }
    kept.reverse();
    Ok(kept)
}

/// Builds the prompt of `task` with `context` (empty for the "without" condition), the in-file
/// part left-truncated by whole lines to `max_prompt_tokens - context_tokens`.
pub fn prompt_for(
    task: &RepoTask,
    context: &[ContextFile],
    tokenizer: &Tokenizer,
    budgets: &Budgets,
    fim: bool,
) -> Result<Prompt, EvalError> {
    let tok =
        |e: kiln_infer::InferError| EvalError::Data { path: PathBuf::from(&task.path), message: format!("task {}: {e}", task.task_id) };
    let count = |s: &str| tokenizer.encode_raw(s).map(|v| v.len()).unwrap_or(s.len());
    let in_file = budgets.max_prompt_tokens.saturating_sub(budgets.context_tokens).max(1);
    let head = count(&prompt::repo_prompt_text(&[], Some(&task.path), ""));
    let (prefix_budget, suffix) = if fim {
        let suffix = keep_start(&task.suffix, in_file / 4, &count);
        (in_file.saturating_sub(head + count(suffix) + 3), Some(suffix.to_string()))
    } else {
        (in_file.saturating_sub(head), None)
    };
    let prefix = keep_end(&task.prefix, prefix_budget, &count);
    let ids = match &suffix {
        Some(s) => prompt::repo_fim_ids(tokenizer, context, Some(&task.path), prefix, s).map_err(tok)?.0,
        None => prompt::repo_completion_ids(tokenizer, context, Some(&task.path), prefix).map_err(tok)?.0,
    };
    Ok(Prompt {
        task_id: task.task_id.clone(),
        with_context: !context.is_empty(),
        ids,
        text: prompt::repo_prompt_text(context, Some(&task.path), prefix),
        suffix,
        context_paths: context.iter().map(|f| f.path.clone()).collect(),
    })
}

/// The longest tail of `text` starting at a line start (or, when even the last line is over,
/// at a character) that has at most `budget` tokens.
fn keep_end<'a>(text: &'a str, budget: usize, count: &dyn Fn(&str) -> usize) -> &'a str {
    if count(text) <= budget {
        return text;
    }
    let mut starts: Vec<usize> =
        std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).filter(|&i| i < text.len()).collect();
    // Then every character of the last line, for a line longer than the budget.
    let last = *starts.last().unwrap_or(&0);
    starts.extend(text[last..].char_indices().skip(1).map(|(i, _)| last + i));
    starts.push(text.len());
    // The first start whose tail fits (tails shrink as the start grows).
    let k = starts.partition_point(|&s| count(&text[s..]) > budget);
    &text[starts[k.min(starts.len() - 1)]..]
}

/// The longest head of `text` ending at a line end with at most `budget` tokens.
fn keep_start<'a>(text: &'a str, budget: usize, count: &dyn Fn(&str) -> usize) -> &'a str {
    if count(text) <= budget {
        return text;
    }
    let ends: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let k = ends.partition_point(|&e| count(&text[..e]) <= budget);
    &text[..ends[k.saturating_sub(1)]]
}

// ---------------------------------------------------------------------------------------------
// Post-processing and metrics

/// cceval's post-processing of a completion for a one-line task (see the module docs);
/// `language` is a name from kiln-repo's table.
pub fn postprocess(completion: &str, language: &str) -> String {
    postprocess_as(completion, syntax_named(language))
}

fn postprocess_as(completion: &str, syntax: Option<ImportSyntax>) -> String {
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

fn strip_comments(line: &str, syntax: Option<ImportSyntax>) -> String {
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

/// Identifier EM: the identifiers outside strings and comments, in order, are equal.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_lines() {
        let count = |s: &str| s.len();
        assert_eq!(keep_end("aa\nbb\ncc\n", 6, &count), "bb\ncc\n");
        assert_eq!(keep_end("aa\nbb\ncc\n", 100, &count), "aa\nbb\ncc\n");
        assert_eq!(keep_end("abcdef", 3, &count), "def");
        assert_eq!(keep_start("aa\nbb\ncc\n", 6, &count), "aa\nbb\n");
        assert_eq!(keep_start("aa\nbb\ncc\n", 1, &count), "");
    }

    #[test]
    fn snapshot_is_named_after_the_bench() {
        assert_eq!(snapshot_path(Path::new("/x/bench.jsonl")), PathBuf::from("/x/bench.repos.jsonl"));
        assert_eq!(snapshot_path(Path::new("b")), PathBuf::from("b.repos.jsonl"));
    }
}
