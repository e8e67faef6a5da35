//! The repository-level benchmark on the hand-written fixture repositories
//! (`tests/fixtures/repos/`, see its README): every selected line really needs a symbol from
//! another file it imports, the held-out split is respected, builds are byte-identical, the
//! metrics match hand-computed values, and an oracle that can only answer from the defining
//! file scores 100% with context and 0% without.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use kiln_eval::repo_bench::{self, Budgets, BuildOptions, EvalOptions, RepoTask};
use kiln_repo::graph::build_graph;
use kiln_repo::ingest::{ingest_path, IngestOptions};
use kiln_repo::Repo;
use kiln_tokenizer::Tokenizer;

const NAMES: [&str; 4] = ["javabank", "pyshop", "rustcalc", "tsnotes"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repos").join(name)
}

fn repos() -> Vec<Repo> {
    NAMES.iter().map(|n| ingest_path(&fixture(n), &IngestOptions::default()).unwrap().0).collect()
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama")).unwrap()
}

fn all_repos() -> BuildOptions {
    BuildOptions { all_repos: true, ..BuildOptions::default() }
}

/// Whether `text` has a line defining `name` (checked independently of the library's finder:
/// a definition keyword, or a module-level assignment, right before the name).
fn defines(text: &str, name: &str) -> bool {
    let word_at =
        |l: &str, pat: &str| l.match_indices(pat).any(|(i, _)| !l[i + pat.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_'));
    text.lines().any(|l| {
        let keywords = ["def ", "class ", "fn ", "struct ", "enum ", "const ", "function ", "interface ", "type "];
        keywords.iter().any(|k| word_at(l, &format!("{k}{name}"))) || l.starts_with(&format!("{name} = "))
    })
}

#[test]
fn every_task_uses_a_symbol_defined_in_another_imported_file() {
    let repos = repos();
    let tasks = repo_bench::build_from_repos(&repos, &all_repos()).unwrap();
    let per_repo: HashSet<&str> = tasks.iter().map(|t| t.repo.as_str()).collect();
    assert_eq!(per_repo.len(), NAMES.len(), "every fixture repository gives tasks: {per_repo:?}");
    for t in &tasks {
        let repo = repos.iter().find(|r| r.name == t.repo).unwrap();
        let idx = |p: &str| repo.files.iter().position(|f| f.path == p).unwrap();
        let (file, def) = (idx(&t.path), idx(&t.defined_in));
        let text = &repo.files[file].text;
        // The task cuts the file exactly: prefix + line + suffix.
        let middle = text
            .strip_prefix(t.prefix.as_str())
            .and_then(|r| r.strip_suffix(t.suffix.as_str()))
            .unwrap_or_else(|| panic!("{}: prefix/suffix do not frame the file", t.task_id));
        assert_eq!(middle.trim_end(), t.ground_truth, "{}", t.task_id);
        assert!(
            t.prefix.ends_with('\n')
                || t.prefix.chars().all(|c| c == ' ' || c == '\t')
                || t.prefix.rsplit('\n').next().unwrap().trim().is_empty(),
            "{}: prefix ends with the indentation",
            t.task_id
        );
        // The line uses the symbol, another file defines it, this file imports that file and does
        // not define the symbol itself.
        assert!(
            t.ground_truth.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == t.symbol),
            "{}: `{}` not in `{}`",
            t.task_id,
            t.symbol,
            t.ground_truth
        );
        assert_ne!(file, def, "{}", t.task_id);
        assert!(defines(&repo.files[def].text, &t.symbol), "{}: {} does not define {}", t.task_id, t.defined_in, t.symbol);
        assert!(!defines(text, &t.symbol), "{}: {} defines {} itself", t.task_id, t.path, t.symbol);
        let graph = build_graph(repo);
        assert!(graph.imports_of(file).iter().any(|e| e.to == def), "{}: {} does not import {}", t.task_id, t.path, t.defined_in);
        // Not an import, not a comment.
        let gt = t.ground_truth.trim_start();
        for bad in ["import ", "from ", "use ", "#", "//", "mod "] {
            assert!(!gt.starts_with(bad), "{}: `{gt}`", t.task_id);
        }
    }
}

#[test]
fn only_held_out_repositories_give_tasks() {
    // A seed for which the three names fall on both sides of a 50% split.
    let seed = (0..1000u64)
        .find(|&s| {
            let val = NAMES.iter().filter(|n| kiln_data::Split::of_repo(n, 0.5, s) == kiln_data::Split::Val).count();
            val > 0 && val < NAMES.len()
        })
        .unwrap();
    let held: HashSet<&str> = NAMES.iter().copied().filter(|n| kiln_data::Split::of_repo(n, 0.5, seed) == kiln_data::Split::Val).collect();
    let opts = BuildOptions { val_fraction: 0.5, seed, ..BuildOptions::default() };
    let tasks = repo_bench::build_from_repos(&repos(), &opts).unwrap();
    assert!(!tasks.is_empty());
    let got: HashSet<&str> = tasks.iter().map(|t| t.repo.as_str()).collect();
    assert!(got.is_subset(&held), "tasks from {got:?}, held out {held:?}");
    assert_eq!(got, held, "every held-out fixture repository has tasks");
    // Fraction 0: nothing is held out.
    assert!(repo_bench::build_from_repos(&repos(), &BuildOptions { val_fraction: 0.0, ..opts }).unwrap().is_empty());
}

#[test]
fn builds_are_byte_identical_and_caps_hold() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, opts: &BuildOptions| {
        let repos = repos();
        let tasks = repo_bench::build_from_repos(&repos, opts).unwrap();
        let out = dir.path().join(name);
        repo_bench::write_bench(&out, &tasks, &repos).unwrap();
        (std::fs::read(&out).unwrap(), std::fs::read(repo_bench::snapshot_path(&out)).unwrap(), tasks)
    };
    let (a, a_snap, tasks) = write("a.jsonl", &all_repos());
    let (b, b_snap, _) = write("b.jsonl", &all_repos());
    assert_eq!(a, b, "same seed, same bytes");
    assert_eq!(a_snap, b_snap);
    // The bench round-trips.
    let (loaded, snap) = repo_bench::load_bench(&dir.path().join("a.jsonl")).unwrap();
    assert_eq!(loaded, tasks);
    assert_eq!(snap.len(), NAMES.len());
    // Caps: per file and in all.
    let capped = repo_bench::build_from_repos(&repos(), &BuildOptions { max_per_file: 1, max_tasks: 4, ..all_repos() }).unwrap();
    assert_eq!(capped.len(), 4);
    let files: HashSet<(&str, &str)> = capped.iter().map(|t| (t.repo.as_str(), t.path.as_str())).collect();
    assert_eq!(files.len(), 4, "one task per file at most");
    // A bench whose snapshot is missing is refused with the file named.
    std::fs::remove_file(repo_bench::snapshot_path(&dir.path().join("b.jsonl"))).unwrap();
    let err = repo_bench::load_bench(&dir.path().join("b.jsonl")).unwrap_err().to_string();
    assert!(err.contains("b.repos.jsonl") && err.contains("rebuild"), "{err}");
}

#[test]
fn bad_bench_lines_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench.jsonl");
    std::fs::write(&bench, "{\"task_id\": \"x\"}\n").unwrap();
    std::fs::write(repo_bench::snapshot_path(&bench), "").unwrap();
    let err = repo_bench::load_bench(&bench).unwrap_err().to_string();
    assert!(err.contains("bench.jsonl") && err.contains("line 1") && err.contains("ground_truth"), "{err}");
}

#[test]
fn metrics_on_hand_computed_pairs() {
    use repo_bench::{edit_similarity, exact_match, postprocess};
    let gt = "return apply_tax(amount)";
    // The first line only, its comment removed.
    let p = postprocess("return apply_tax(amount)  # with tax\n    print(1)", "Python");
    assert_eq!(p, "return apply_tax(amount)");
    assert!(exact_match(&p, gt));
    assert_eq!(edit_similarity(&p, gt), 100);
    // 21 matched characters ("return apply_tax(am" + "t)") of 21 + 24: round(100 * 42 / 45) = 93
    // (Python: round(100 * difflib.SequenceMatcher(None, a, b).ratio())).
    let p = postprocess("return apply_tax(amt)", "Python");
    assert!(!exact_match(&p, gt));
    assert_eq!(edit_similarity(&p, gt), 93);
    assert_eq!(edit_similarity("", gt), 0);
    // A comment marker inside a string is not a comment.
    assert_eq!(postprocess("s = \"# not a comment\"  # a comment", "Python"), "s = \"# not a comment\"");
    // cceval's Java/C#/TypeScript rule: cut after the first `;`, `{` or `}`.
    assert_eq!(postprocess("const q = word.toLowerCase(); const r = 1;", "TypeScript"), "const q = word.toLowerCase();");
    assert_eq!(postprocess("if (x) { y(); }", "Java"), "if (x) {");
    // Rust keeps the whole first line, minus its comment.
    assert_eq!(postprocess("let t = tokenize(input)?; // split\nmore", "Rust"), "let t = tokenize(input)?;");
    // Whitespace around the line does not matter for EM and ES.
    assert!(exact_match("  x = 1  ", "x = 1"));
    assert_eq!(edit_similarity("  x = 1 ", "x = 1"), 100);
    assert!(!repo_bench::identifier_match("apply_tax( amount )", gt, "Python"));
    assert!(repo_bench::identifier_match("return apply_tax( amount )", gt, "Python"));
    // Score rows: per language and all, in percent.
    let t = |lang: &str, gt: &str| RepoTask {
        task_id: format!("{lang}:{gt}"),
        repo: "r".into(),
        path: "p".into(),
        language: lang.into(),
        prefix: String::new(),
        suffix: String::new(),
        ground_truth: gt.into(),
        symbol: String::new(),
        defined_in: String::new(),
    };
    let tasks = [t("Python", "a = f(1)"), t("Python", "b = g(2)"), t("Rust", "let c = h(3);")];
    let with = ["a = f(1)", "b = g(2)", "let c = h(3);"].map(String::from);
    let without = ["a = f(1)", "", "let c = x(3);"].map(String::from);
    let s = repo_bench::score(&tasks, &with, &without);
    assert_eq!(s.rows.iter().map(|r| r.language.as_str()).collect::<Vec<_>>(), ["Python", "Rust", "all"]);
    assert_eq!(s.all().with_context.exact_match, 100.0);
    assert!((s.all().without_context.exact_match - 100.0 / 3.0).abs() < 1e-9);
    // Python without: (100 + 0) / 2; Rust without: "let c = x(3);" vs "let c = h(3);" = 12 of 13 → 92.
    assert_eq!(s.rows[0].without_context.edit_similarity, 50.0);
    assert_eq!(s.rows[1].without_context.edit_similarity, 92.0);
    assert!(s.markdown().contains("| Rust | 1 | without | 0.0% | 92.0 |"), "{}", s.markdown());
}

#[test]
fn the_context_prompt_holds_the_defining_file_and_the_plain_one_does_not() {
    let repos = repos();
    let tok = tokenizer();
    let tasks = repo_bench::build_from_repos(&repos, &all_repos()).unwrap();
    let budgets = Budgets { max_prompt_tokens: 100_000, context_tokens: 50_000 };
    for t in &tasks {
        let repo = repos.iter().find(|r| r.name == t.repo).unwrap();
        let definer = &repo.files.iter().find(|f| f.path == t.defined_in).unwrap().text;
        let index = kiln_infer::repo::RepoIndex::from_repo(repo.clone());
        let ctx = repo_bench::context_files(&index, t, &tok, budgets.context_tokens).unwrap();
        let with = repo_bench::prompt_for(t, &ctx, &tok, &budgets, false).unwrap();
        let without = repo_bench::prompt_for(t, &[], &tok, &budgets, false).unwrap();
        assert!(with.text.contains(definer.as_str()), "{}", t.task_id);
        assert!(!without.text.contains(definer.as_str()), "{}", t.task_id);
        // Both end with the current file's path comment and prefix; the ids are the text's.
        for p in [&with, &without] {
            assert!(p.text.ends_with(&t.prefix), "{}", t.task_id);
            assert!(p.text.contains(&format!(" {}\n", t.path)), "{}: path comment", t.task_id);
            assert_eq!(tok.decode(&p.ids, true).unwrap(), p.text, "{}", t.task_id);
            // What an endpoint tokenizes from the text is what the in-process model gets.
            assert_eq!(tok.encode(&p.text).unwrap(), p.ids, "{}", t.task_id);
        }
        assert!(with.text.ends_with(&without.text), "{}: the only difference is the context files", t.task_id);
    }
    // A small budget truncates the in-file prefix from the left, by whole lines.
    let t = tasks.iter().max_by_key(|t| t.prefix.len()).unwrap();
    let small = Budgets { max_prompt_tokens: 60, context_tokens: 20 };
    let p = repo_bench::prompt_for(t, &[], &tok, &small, false).unwrap();
    assert!(p.ids.len() <= 42, "{} ids", p.ids.len());
    assert!(t.prefix.ends_with(p.text.split_once('\n').unwrap().1), "kept a tail of the prefix");
}

#[test]
fn an_oracle_that_needs_the_defining_file_scores_all_with_context_and_nothing_without() {
    let repos = repos();
    let tok = tokenizer();
    let tasks = repo_bench::build_from_repos(&repos, &all_repos()).unwrap();
    let opts = EvalOptions { budgets: Budgets { max_prompt_tokens: 100_000, context_tokens: 50_000 }, fim: false, partial_files: false };
    let mut calls = 0;
    let report = repo_bench::evaluate(&tasks, &repos, &tok, &opts, |p| -> Result<String, String> {
        calls += 1;
        let t = tasks.iter().find(|t| t.task_id == p.task_id).unwrap();
        let repo = repos.iter().find(|r| r.name == t.repo).unwrap();
        let definer = &repo.files.iter().find(|f| f.path == t.defined_in).unwrap().text;
        let seen = tok.decode(&p.ids, true).map_err(|e| e.to_string())?;
        // The answer, then the rest of the file as a model would go on: post-processing cuts it.
        Ok(if seen.contains(definer.as_str()) { format!("{}\n{}", t.ground_truth, t.suffix) } else { "pass".to_string() })
    })
    .unwrap();
    assert_eq!(calls, 2 * tasks.len());
    let all = report.score.all();
    assert_eq!(all.tasks, tasks.len());
    assert_eq!(all.with_context.exact_match, 100.0);
    assert_eq!(all.with_context.edit_similarity, 100.0);
    assert_eq!(all.without_context.exact_match, 0.0);
    assert!(all.without_context.edit_similarity < 50.0);
    assert_eq!(report.generation_errors, 0);
    assert!(report
        .results
        .iter()
        .all(|r| r.context_files.iter().any(|f| tasks.iter().any(|t| t.task_id == r.task_id && &t.defined_in == f))));
    // FIM prompts carry the suffix; failing completions are counted and score 0.
    let fim = EvalOptions { fim: true, ..opts };
    let report = repo_bench::evaluate(&tasks[..2], &repos, &tok, &fim, |p| -> Result<String, String> {
        assert!(p.suffix.is_some());
        Err("server down".into())
    })
    .unwrap();
    assert_eq!(report.generation_errors, 4);
    assert_eq!(report.score.all().with_context.exact_match, 0.0);
}

#[test]
fn the_snapshot_gives_the_same_context_as_the_repository_on_disk() {
    let tok = tokenizer();
    let repos = repos();
    let tasks = repo_bench::build_from_repos(&repos, &all_repos()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench.jsonl");
    repo_bench::write_bench(&bench, &tasks, &repos).unwrap();
    let (_, snapshot) = repo_bench::load_bench(&bench).unwrap();
    for name in NAMES {
        let from_disk = kiln_infer::repo::RepoIndex::load(&fixture(name)).unwrap();
        let from_snapshot = kiln_infer::repo::RepoIndex::from_repo(snapshot.iter().find(|r| r.name == name).unwrap().clone());
        for t in tasks.iter().filter(|t| t.repo == name) {
            for budget in [10, 200, 50_000] {
                let a = repo_bench::context_files(&from_disk, t, &tok, budget).unwrap();
                let b = repo_bench::context_files(&from_snapshot, t, &tok, budget).unwrap();
                assert_eq!(a, b, "{} at {budget} tokens", t.task_id);
            }
        }
    }
}

/// `context_files_cut` keeps the nearest files whole and cuts the next to its first lines: every
/// kept text is a prefix of its file, the total stays within the budget, and a budget too small
/// for any whole file still yields context where `context_files` yields none.
#[test]
fn cut_context_fills_the_budget_with_file_beginnings() {
    let tok = tokenizer();
    let repos = repos();
    let tasks = repo_bench::build_from_repos(&repos, &all_repos()).unwrap();
    let mut checked = 0;
    for t in &tasks {
        let repo = repos.iter().find(|r| r.name == t.repo).unwrap();
        let index = kiln_infer::repo::RepoIndex::from_repo(repo.clone());
        let full = repo_bench::context_files(&index, t, &tok, usize::MAX / 4).unwrap();
        let Some(nearest) = full.last() else { continue };
        let whole = tok.encode_raw(&nearest.text).unwrap().len();
        if whole < 8 {
            continue;
        }
        let budget = whole / 2 + tok.encode_raw(&nearest.path).unwrap().len() + 4;
        assert!(
            repo_bench::context_files(&index, t, &tok, budget).unwrap().iter().all(|f| f.path != nearest.path),
            "the whole nearest file does not fit"
        );
        let cut = repo_bench::context_files_cut(&index, t, &tok, budget).unwrap();
        assert_eq!(cut.len(), 1, "{}: only the nearest file, cut", t.task_id);
        assert_eq!(cut[0].path, nearest.path);
        assert!(nearest.text.starts_with(&cut[0].text) && cut[0].text.len() < nearest.text.len());
        let used: usize = cut.iter().map(|f| tok.encode_raw(&f.text).unwrap().len() + tok.encode_raw(&f.path).unwrap().len() + 4).sum();
        assert!(used <= budget, "{used} > {budget}");
        // A budget that holds everything gives the full context back.
        assert_eq!(repo_bench::context_files_cut(&index, t, &tok, 1 << 30).unwrap(), full);
        checked += 1;
    }
    assert!(checked >= 2, "fixture tasks with a context file of some size: {checked}");
}
