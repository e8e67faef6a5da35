//! Building the benchmark: the repositories (from a corpus or given), the lines chosen as
//! tasks, and the bench files (`bench.jsonl` and its repository snapshot).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_repo::code::{code_lines, identifiers, CodeLine};
use kiln_repo::definitions::definitions;
use kiln_repo::graph::build_graph;
use kiln_repo::imports::{analyze, file_syntax};
use kiln_repo::lang::ImportSyntax;
use kiln_repo::{Repo, SourceFile};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{BuildOptions, RepoTask};
use crate::EvalError;

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

/// Selects tasks from the repositories [`BuildOptions::selects`] (see [`crate::repo_bench`]). Sorted
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_is_named_after_the_bench() {
        assert_eq!(snapshot_path(Path::new("/x/bench.jsonl")), PathBuf::from("/x/bench.repos.jsonl"));
        assert_eq!(snapshot_path(Path::new("b")), PathBuf::from("b.repos.jsonl"));
    }
}
