//! Quickstart's evaluation, on the repositories `kiln data pack` held out (never trained on):
//! bits per byte of the model against zstd -19 (each file alone, and all files as one stream),
//! single-line infilling exact match on held-out lines, and samples to show.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_base::rng::seeded_hash;
use kiln_corpus::Manifest;
use kiln_data::Split;
use kiln_infer::{prompt, Engine, GenerateParams, LoadedModel, SamplingParams, TextLoss};
use serde::{Deserialize, Serialize};

use crate::error::{QuickstartError, Result};
use crate::pipeline::Run;

/// Held-out text scored for bits per byte (enough for a stable figure, seconds on a tiny model).
const MAX_HELDOUT_BYTES: usize = 384 << 10;
/// In-file context around an infilled line: bytes before and after.
const INFILL_PREFIX_BYTES: usize = 3000;
const INFILL_SUFFIX_BYTES: usize = 1000;

/// One held-out file.
#[derive(Debug, Clone)]
pub struct HeldOut {
    /// Its repository.
    pub repo: String,
    /// Its path in the repository.
    pub path: String,
    /// Its language.
    pub language: String,
    /// Its text.
    pub text: String,
}

/// What quickstart measured (recorded in `quickstart.json` under the `eval` stage).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// The held-out repositories (never trained on).
    pub heldout_repos: Vec<String>,
    /// Their files scored.
    pub heldout_files: usize,
    /// The bytes of those files.
    pub heldout_bytes: usize,
    /// Mean cross-entropy per token on the held-out files (nats).
    pub loss_per_token: f64,
    /// The model's cross-entropy over the files' UTF-8 bytes, in bits per byte.
    pub model_bits_per_byte: f64,
    /// zstd -19 on each file alone.
    pub zstd_each_bits_per_byte: f64,
    /// zstd -19 on all the files as one stream.
    pub zstd_concat_bits_per_byte: f64,
    /// The same per language.
    pub per_language: Vec<LanguageRow>,
    /// Single-line infilling exact match.
    pub infill: InfillScore,
    /// The repository-level comparison (kiln-eval `repo`): held-out lines that use a symbol
    /// defined in another file of their repository, completed with and without that repository's
    /// imported files in the prompt.
    pub repo: Option<RepoLevel>,
    /// FIM middles with and without the suffix (absent in runs from before it was measured).
    #[serde(default)]
    pub middles: Option<MiddleScore>,
    /// Cross-file lines with and without the imported files, and the synthetic control.
    #[serde(default)]
    pub cross_file: Option<CrossFileScore>,
    /// A completion after a function header of a held-out file.
    pub sample_completion: Option<SampleText>,
    /// An infill of the line after that header.
    pub sample_infill: Option<SampleText>,
}

/// Bits per byte of one language's held-out files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LanguageRow {
    /// The language.
    pub language: String,
    /// Its held-out files.
    pub files: usize,
    /// Their bytes.
    pub bytes: usize,
    /// The model's bits per byte.
    pub model_bits_per_byte: f64,
    /// zstd -19 on each file alone.
    pub zstd_each_bits_per_byte: f64,
}

/// Single-line infilling on held-out lines.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InfillScore {
    /// Lines tried.
    pub lines: usize,
    /// Lines filled exactly (stripped).
    pub exact: usize,
    /// `exact / lines` (0 to 1).
    pub exact_match: f64,
}

/// Repository-level completion with and without the repository's imported files in the prompt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoLevel {
    /// Held-out lines completed.
    pub tasks: usize,
    /// Tasks whose prompt had at least one other file within the context budget.
    pub tasks_with_context_files: usize,
    /// Prompt tokens given to the other files at most.
    pub context_tokens: usize,
    /// Prompt tokens at most.
    pub max_prompt_tokens: usize,
    /// Exact match (%) with the context.
    pub em_with: f64,
    /// Edit similarity (0-100) with the context.
    pub es_with: f64,
    /// Exact match (%) without the context.
    pub em_without: f64,
    /// Edit similarity (0-100) without the context.
    pub es_without: f64,
    /// The Markdown table per language.
    pub table: String,
}

/// A prompt (shown tail), the model's text, and for an infill the suffix (shown head).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleText {
    /// The held-out file (`repository/path`).
    pub file: String,
    /// The end of the prompt (its last lines).
    pub prompt: String,
    /// The model's text.
    pub output: String,
    /// For an infill, the start of the code after the hole (empty for a completion).
    pub suffix: String,
}

/// Scores the trained model on the held-out repositories, telling the run's observer.
pub(crate) fn evaluate(run: &mut Run, val_fraction: f64, eval_lines: usize, repo_tasks: usize) -> Result<Results> {
    let seed = run.state.settings.seed;
    let files = heldout_files(&run.dir("corpus"), val_fraction, seed)?;
    let mut repos: Vec<String> = files.iter().map(|f| f.repo.clone()).collect();
    repos.dedup();
    let bytes: usize = files.iter().map(|f| f.text.len()).sum();
    run.say(format!(
        "  {} held-out files ({:.0} KB) from {} repositories: {}",
        files.len(),
        bytes as f64 / 1024.0,
        repos.len(),
        repos.join(", ")
    ));
    let model_dir = run.dir("model");
    let loaded = LoadedModel::load(&model_dir, None, &candle_core::Device::Cpu)
        .map_err(|e| QuickstartError::context(format!("loading the trained model {}", model_dir.display()), e))?;
    let window = run.state.settings.seq_len;

    let mut total = TextLoss::default();
    let mut langs: BTreeMap<String, (usize, TextLoss, u64)> = BTreeMap::new();
    for f in &files {
        let loss = kiln_infer::text_loss(loaded.model.as_ref(), &loaded.tokenizer, &f.text, window)?;
        total.add(loss);
        let e = langs.entry(f.language.clone()).or_default();
        e.0 += 1;
        e.1.add(loss);
        e.2 += kiln_eval::compression::zstd_bits(f.text.as_bytes());
    }
    let texts: Vec<&[u8]> = files.iter().map(|f| f.text.as_bytes()).collect();
    let each_bits: u64 = langs.values().map(|l| l.2).sum();
    let concat_bits = kiln_eval::compression::zstd_bits(&texts.concat());
    let per_byte = |bits: u64, n: usize| bits as f64 / n.max(1) as f64;
    let per_language = langs
        .into_iter()
        .map(|(language, (files, loss, zbits))| LanguageRow {
            language,
            files,
            bytes: loss.bytes,
            model_bits_per_byte: loss.bits_per_byte(),
            zstd_each_bits_per_byte: per_byte(zbits, loss.bytes),
        })
        .collect();
    run.say(format!(
        "  bits per byte: model {:.3}, zstd -19 per file {:.3}, zstd -19 all files as one stream {:.3}",
        total.bits_per_byte(),
        per_byte(each_bits, bytes),
        per_byte(concat_bits, bytes)
    ));

    let generator = Engine::new(loaded.model.as_ref(), &loaded.tokenizer)?;
    let infill = infill_lines(&files, eval_lines, seed, &loaded, &generator, window)?;
    run.say(format!("  single-line infilling on {} held-out lines: exact match {:.1}%", infill.lines, infill.exact_match * 100.0));
    let held = heldout_repo_tasks(&run.dir("corpus"), val_fraction, seed, repo_tasks)?;
    let repo = repo_level(held.as_ref(), window, &loaded, &generator)?;
    match &repo {
        Some(r) => run.say(format!(
            "  repository-level completion on {} held-out lines ({} with another file in reach): exact match {:.1}% with the repository's files in the prompt vs {:.1}% without; edit similarity {:.1} vs {:.1}",
            r.tasks, r.tasks_with_context_files, r.em_with, r.em_without, r.es_with, r.es_without
        )),
        None => run.say("  repository-level completion: no held-out line uses a symbol from another file its file imports; not measured"),
    }
    let middles = middle_bits(&files, eval_lines, seed, &loaded, window)?;
    let cross_file = cross_file_bits(held.as_ref(), seed, window, &loaded)?;
    if middles.lines > 0 {
        run.say(format!(
            "  FIM middles ({} lines): {:.3} bits per byte with the suffix, {:.3} with the prefix only",
            middles.lines, middles.with_suffix_bits_per_byte, middles.prefix_only_bits_per_byte
        ));
    }
    if let Some(c) = &cross_file {
        run.say(format!(
            "  cross-file lines ({}): {:.3} bits per byte with the imported files, {:.3} without; renamed symbols: {:.3} vs {:.3}",
            c.lines,
            c.with_context_bits_per_byte,
            c.without_context_bits_per_byte,
            c.synthetic_with_context_bits_per_byte,
            c.synthetic_without_context_bits_per_byte
        ));
    }
    let (sample_completion, sample_infill) = samples(&files, &loaded, &generator, window)?;
    Ok(Results {
        heldout_repos: repos,
        heldout_files: files.len(),
        heldout_bytes: bytes,
        loss_per_token: total.per_token(),
        model_bits_per_byte: total.bits_per_byte(),
        zstd_each_bits_per_byte: per_byte(each_bits, bytes),
        zstd_concat_bits_per_byte: per_byte(concat_bits, bytes),
        per_language,
        infill,
        repo,
        middles: (middles.lines > 0).then_some(middles),
        cross_file,
        sample_completion,
        sample_infill,
    })
}

/// The files of the held-out repositories, in a seeded order, up to [`MAX_HELDOUT_BYTES`].
pub fn heldout_files(corpus: &Path, val_fraction: f64, seed: u64) -> Result<Vec<HeldOut>> {
    let manifest = Manifest::load(corpus)?;
    let mut all = Vec::new();
    for shard in manifest.shard_paths(corpus) {
        for s in kiln_corpus::shard::read_all(&shard)? {
            if Split::of_repo(&s.repo, val_fraction, seed) != Split::Val {
                continue;
            }
            for span in &s.files {
                let Some(text) = s.text.get(span.start as usize..span.end as usize) else { continue };
                if text.trim().is_empty() {
                    continue;
                }
                all.push(HeldOut {
                    repo: s.repo.clone(),
                    path: span.path.clone(),
                    language: span.language.clone().unwrap_or_else(|| "unknown".into()),
                    text: text.to_string(),
                });
            }
        }
    }
    all.sort_by_key(|f| seeded_hash(seed, format!("{}/{}", f.repo, f.path).as_bytes()));
    let mut taken = 0;
    all.retain(|f| {
        let keep = taken < MAX_HELDOUT_BYTES;
        taken += f.text.len();
        keep
    });
    all.sort_by(|a, b| (&a.repo, &a.path).cmp(&(&b.repo, &b.path)));
    Ok(all)
}

fn greedy(loaded: &LoadedModel, max_new_tokens: usize, stop: &[&str]) -> GenerateParams {
    GenerateParams {
        max_new_tokens,
        sampling: SamplingParams::default(),
        eos_ids: loaded.eos_ids.clone(),
        stop: stop.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A byte index at or before `i` that is a char boundary of `s`.
fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The PSM prompt for the hole `text[start..end]`, with as much code around it as fits in
/// `max_tokens` (the model was trained on windows of that size; positions beyond are untrained):
/// up to [`INFILL_PREFIX_BYTES`] before and [`INFILL_SUFFIX_BYTES`] after, shrunk by a quarter
/// until the prompt fits.
fn fitted_fim_ids(loaded: &LoadedModel, text: &str, start: usize, end: usize, max_tokens: usize) -> Result<Vec<u32>> {
    let (mut before, mut after) = (INFILL_PREFIX_BYTES, INFILL_SUFFIX_BYTES);
    loop {
        let prefix = &text[floor_boundary(text, start.saturating_sub(before))..start];
        let suffix = &text[end..floor_boundary(text, end + after)];
        let ids = prompt::fim_ids(&loaded.tokenizer, prefix, suffix)?;
        if ids.len() <= max_tokens || before + after < 64 {
            return Ok(ids);
        }
        (before, after) = (before * 3 / 4, after * 3 / 4);
    }
}

/// The last part of `before` (whole bytes from the end) whose completion prompt fits `max_tokens`.
fn fitted_prefix<'a>(loaded: &LoadedModel, before: &'a str, max_tokens: usize) -> Result<&'a str> {
    let mut keep = before.len();
    loop {
        let cut = &before[floor_boundary(before, before.len() - keep)..];
        if keep < 64 || prompt::completion_ids(&loaded.tokenizer, cut)?.len() <= max_tokens {
            return Ok(cut);
        }
        keep = keep * 3 / 4;
    }
}

/// kiln-eval `repo`'s tasks on the held-out repositories, with those repositories' files.
pub type HeldoutRepoTasks = (Vec<kiln_eval::repo_bench::RepoTask>, Vec<kiln_repo::Repo>);

/// Up to `max_tasks` of kiln-eval `repo`'s tasks on the held-out repositories, with those
/// repositories' files; `None` when asked for none or there are none. Built once per run (it
/// reads the corpus) and shared by every measure that uses them.
pub fn heldout_repo_tasks(corpus: &Path, val_fraction: f64, seed: u64, max_tasks: usize) -> Result<Option<HeldoutRepoTasks>> {
    use kiln_eval::repo_bench::{self, BuildOptions};
    if max_tasks == 0 {
        return Ok(None);
    }
    let opts = BuildOptions { val_fraction, seed, max_tasks, ..BuildOptions::default() };
    let tasks = repo_bench::build_from_corpus(corpus, &opts)?;
    if tasks.is_empty() {
        return Ok(None);
    }
    Ok(Some((tasks, repo_bench::repos_from_corpus(corpus, &opts)?)))
}

/// Repository-level completion on held-out repositories (kiln-eval `repo`): the prompt is the
/// repository's imported files (dependency order, within half the window; the file that no
/// longer fits is cut to its first lines) then the file up to the line, or the same without the
/// other files; greedy, 24 new tokens, first line kept.
fn repo_level(held: Option<&HeldoutRepoTasks>, window: usize, loaded: &LoadedModel, generator: &Engine) -> Result<Option<RepoLevel>> {
    use kiln_eval::repo_bench::{self, Budgets, EvalOptions};
    let Some((tasks, repos)) = held else { return Ok(None) };
    let max_new = 24;
    let max_prompt_tokens = window - max_new;
    let budgets = Budgets { max_prompt_tokens, context_tokens: max_prompt_tokens / 2 };
    let params = greedy(loaded, max_new, &["\n"]);
    let report = repo_bench::evaluate(tasks, repos, &loaded.tokenizer, &EvalOptions { budgets, fim: false, partial_files: true }, |p| {
        generator.generate(&p.ids, &params, |_| {}).map(|g| g.text)
    })?;
    let all = report.score.all();
    Ok(Some(RepoLevel {
        tasks: tasks.len(),
        tasks_with_context_files: report.results.iter().filter(|r| !r.context_files.is_empty()).count(),
        context_tokens: budgets.context_tokens,
        max_prompt_tokens,
        em_with: all.with_context.exact_match,
        es_with: all.with_context.edit_similarity,
        em_without: all.without_context.exact_match,
        es_without: all.without_context.edit_similarity,
        table: report.score.markdown(),
    }))
}

/// Single-line infilling on held-out code, as the SantaCoder FIM task scores it: a line of at
/// least 4 non-blank characters is removed, the model fills the hole (PSM, greedy, up to its
/// first newline), and the stripped result must equal the stripped line.
pub fn infill_lines(
    files: &[HeldOut],
    n: usize,
    seed: u64,
    loaded: &LoadedModel,
    generator: &Engine,
    window: usize,
) -> Result<InfillScore> {
    let candidates = hole_lines(files, n, seed);
    let params = greedy(loaded, 48, &["\n"]);
    let mut score = InfillScore { lines: candidates.len(), ..Default::default() };
    for (i, start, end) in candidates {
        let text = &files[i].text;
        let ids = fitted_fim_ids(loaded, text, start, end, window - 48)?;
        let out = generator.generate(&ids, &params, |_| {})?.text;
        let middle = out.split('\n').next().unwrap_or("");
        score.exact += usize::from(middle.trim() == text[start..end].trim());
    }
    score.exact_match = score.exact as f64 / score.lines.max(1) as f64;
    Ok(score)
}

/// `n` lines of at least 4 non-blank characters drawn from `files` by `seed`, as (file, start,
/// end) byte ranges without the newline.
fn hole_lines(files: &[HeldOut], n: usize, seed: u64) -> Vec<(usize, usize, usize)> {
    let mut candidates: Vec<(usize, usize, usize)> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let mut start = 0;
        for line in f.text.split_inclusive('\n') {
            let end = start + line.trim_end_matches('\n').len();
            if line.trim().len() >= 4 {
                candidates.push((i, start, end));
            }
            start += line.len();
        }
    }
    candidates.sort_by_key(|&(i, s, _)| seeded_hash(seed ^ 0x1f, format!("{}:{}:{s}", files[i].repo, files[i].path).as_bytes()));
    candidates.truncate(n);
    candidates
}

/// What the code after a hole is worth: bits per byte of held-out lines (the FIM middles)
/// given the code before and after them (a PSM prompt) and given the code before alone (a
/// left-to-right prompt), on the same lines with the same tokens.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct MiddleScore {
    /// Lines scored.
    pub lines: usize,
    /// Their bytes (with the newline that ends each).
    pub bytes: usize,
    /// Bits per byte of the lines after prefix and suffix (PSM).
    pub with_suffix_bits_per_byte: f64,
    /// Bits per byte of the lines after the prefix alone.
    pub prefix_only_bits_per_byte: f64,
}

/// Scores `n` held-out lines (the infilling task's lines, drawn by `seed`) as FIM middles, with
/// and without the suffix; each line is scored with the newline that ends it, so the model also
/// has to know where the line stops.
pub fn middle_bits(files: &[HeldOut], n: usize, seed: u64, loaded: &LoadedModel, window: usize) -> Result<MiddleScore> {
    let mut score = MiddleScore::default();
    let (mut with, mut without) = (0.0f64, 0.0f64);
    for (i, start, end) in hole_lines(files, n, seed) {
        let text = &files[i].text;
        let end = (end + 1).min(text.len()); // the newline
        let middle = loaded.tokenizer.encode_raw(&text[start..end])?;
        if middle.is_empty() || middle.len() + 64 > window {
            continue;
        }
        let room = window - middle.len();
        let psm = fitted_fim_ids(loaded, text, start, end, room)?;
        let before = fitted_prefix(loaded, &text[floor_boundary(text, start.saturating_sub(INFILL_PREFIX_BYTES))..start], room)?;
        let ltr = prompt::completion_ids(&loaded.tokenizer, before)?;
        if psm.len() > room || ltr.len() > room {
            continue;
        }
        with += kiln_infer::continuation_nats(loaded.model.as_ref(), &psm, &middle)?;
        without += kiln_infer::continuation_nats(loaded.model.as_ref(), &ltr, &middle)?;
        score.lines += 1;
        score.bytes += end - start;
    }
    let per_byte = |nats: f64| nats / std::f64::consts::LN_2 / score.bytes.max(1) as f64;
    score.with_suffix_bits_per_byte = per_byte(with);
    score.prefix_only_bits_per_byte = per_byte(without);
    Ok(score)
}

/// Bits per byte of `files` under the model, each file read alone in sliding windows of
/// `window` tokens ([`kiln_infer::text_loss`]).
pub fn files_loss(files: &[HeldOut], loaded: &LoadedModel, window: usize) -> Result<TextLoss> {
    let mut total = TextLoss::default();
    for f in files {
        total.add(kiln_infer::text_loss(loaded.model.as_ref(), &loaded.tokenizer, &f.text, window)?);
    }
    Ok(total)
}

/// What the files a file imports are worth to a model, in bits per byte of held-out lines that
/// use a symbol defined in one of them (kiln-eval `repo`'s tasks): the line after its file's
/// code with the repository's imported files in front (dependency order, as in training) and
/// without them. The synthetic control renames the symbol to a random identifier in every
/// file of the repository first, so only the imported file can predict it: a model that uses
/// cross-file context gains much more there.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct CrossFileScore {
    /// Lines scored (tasks whose prompt had another file within the budget).
    pub lines: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Bits per byte of the lines with the imported files in the prompt.
    pub with_context_bits_per_byte: f64,
    /// Without them.
    pub without_context_bits_per_byte: f64,
    /// Synthetic control lines scored.
    pub synthetic_lines: usize,
    /// Synthetic control, with the imported files.
    pub synthetic_with_context_bits_per_byte: f64,
    /// Synthetic control, without them.
    pub synthetic_without_context_bits_per_byte: f64,
}

/// Scores the held-out cross-file lines of [`heldout_repo_tasks`] (see [`CrossFileScore`]);
/// `None` when there are none.
pub fn cross_file_bits(held: Option<&HeldoutRepoTasks>, seed: u64, window: usize, loaded: &LoadedModel) -> Result<Option<CrossFileScore>> {
    use kiln_eval::repo_bench::{self, Budgets, EvalOptions};
    let Some((tasks, repos)) = held else { return Ok(None) };
    // Room for the line: the longest scored line is 64 tokens.
    let max_prompt_tokens = window.saturating_sub(64).max(32);
    let eval =
        EvalOptions { budgets: Budgets { max_prompt_tokens, context_tokens: max_prompt_tokens / 2 }, fim: false, partial_files: true };
    // (with, without) nats of one task's line, or `None` when no other file fit the prompt.
    let score_task = |task: &kiln_eval::repo_bench::RepoTask, repo: &kiln_repo::Repo| -> Result<Option<(f64, f64)>> {
        let line = loaded.tokenizer.encode_raw(&task.ground_truth)?;
        if line.is_empty() || line.len() > 64 {
            return Ok(None);
        }
        let mut nats: Vec<f64> = Vec::with_capacity(2);
        let mut failed = None;
        repo_bench::evaluate(std::slice::from_ref(task), std::slice::from_ref(repo), &loaded.tokenizer, &eval, |p| {
            match kiln_infer::continuation_nats(loaded.model.as_ref(), &p.ids, &line) {
                Ok(n) => nats.push(n),
                Err(e) => failed = Some(e),
            }
            Ok::<String, std::convert::Infallible>(String::new())
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        Ok((nats.len() == 2).then(|| (nats[0], nats[1])))
    };
    let mut score = CrossFileScore::default();
    let (mut with, mut without, mut syn_bytes, mut syn_with, mut syn_without) = (0.0, 0.0, 0usize, 0.0, 0.0);
    for task in tasks {
        let Some(repo) = repos.iter().find(|r| r.name == task.repo) else { continue };
        if let Some((w, wo)) = score_task(task, repo)? {
            score.lines += 1;
            score.bytes += task.ground_truth.len();
            (with, without) = (with + w, without + wo);
        }
        // The control: the symbol renamed everywhere to a name no training text holds.
        let fresh = format!("q{:012x}", seeded_hash(seed ^ 0x5e, task.task_id.as_bytes()) >> 16);
        let renamed_task = kiln_eval::repo_bench::RepoTask {
            prefix: rename_identifier(&task.prefix, &task.symbol, &fresh),
            suffix: rename_identifier(&task.suffix, &task.symbol, &fresh),
            ground_truth: rename_identifier(&task.ground_truth, &task.symbol, &fresh),
            ..task.clone()
        };
        let renamed_repo = kiln_repo::Repo {
            name: repo.name.clone(),
            files: repo
                .files
                .iter()
                .map(|f| kiln_repo::SourceFile { text: rename_identifier(&f.text, &task.symbol, &fresh), ..f.clone() })
                .collect(),
        };
        if let Some((w, wo)) = score_task(&renamed_task, &renamed_repo)? {
            score.synthetic_lines += 1;
            syn_bytes += renamed_task.ground_truth.len();
            (syn_with, syn_without) = (syn_with + w, syn_without + wo);
        }
    }
    let per_byte = |nats: f64, bytes: usize| nats / std::f64::consts::LN_2 / bytes.max(1) as f64;
    score.with_context_bits_per_byte = per_byte(with, score.bytes);
    score.without_context_bits_per_byte = per_byte(without, score.bytes);
    score.synthetic_with_context_bits_per_byte = per_byte(syn_with, syn_bytes);
    score.synthetic_without_context_bits_per_byte = per_byte(syn_without, syn_bytes);
    Ok((score.lines + score.synthetic_lines > 0).then_some(score))
}

/// `text` with every whole-identifier occurrence of `name` replaced by `by` (an occurrence
/// inside a longer identifier, like `name` in `rename_all`, is left alone).
pub fn rename_identifier(text: &str, name: &str, by: &str) -> String {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    if name.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (i, _) in text.match_indices(name) {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        if i < last || before.is_some_and(ident) || after.is_some_and(ident) {
            continue;
        }
        out.push_str(&text[last..i]);
        out.push_str(by);
        last = i + name.len();
    }
    out.push_str(&text[last..]);
    out
}

/// The first `n` lines of `s`.
pub fn first_lines(s: &str, n: usize) -> String {
    s.split_inclusive('\n').take(n).collect()
}

/// The last `n` lines of `s` (all of it when it has fewer).
fn last_lines(s: &str, n: usize) -> &str {
    let body = s.strip_suffix('\n').unwrap_or(s);
    let mut seen = 0;
    for (i, c) in body.char_indices().rev() {
        if c == '\n' {
            seen += 1;
            if seen == n {
                return &s[i + 1..];
            }
        }
    }
    s
}

/// A completion after the first function header of a held-out file (Python preferred), and an
/// infill of the line after it.
fn samples(files: &[HeldOut], loaded: &LoadedModel, generator: &Engine, window: usize) -> Result<(Option<SampleText>, Option<SampleText>)> {
    let header = |f: &HeldOut| -> Option<usize> {
        let mut start = 0;
        for line in f.text.split_inclusive('\n') {
            let t = line.trim_start();
            if (t.starts_with("def ") || t.starts_with("fn ") || t.starts_with("pub fn ")) && line.len() < 120 && start > 0 {
                return Some(start + line.len());
            }
            start += line.len();
        }
        None
    };
    let mut ordered: Vec<&HeldOut> = files.iter().filter(|f| f.language == "Python").collect();
    ordered.extend(files.iter().filter(|f| f.language != "Python"));
    let Some((f, cut)) = ordered.into_iter().find_map(|f| header(f).filter(|&c| c < f.text.len()).map(|c| (f, c))) else {
        return Ok((None, None));
    };
    let text = &f.text;
    let before = fitted_prefix(loaded, &text[floor_boundary(text, cut.saturating_sub(INFILL_PREFIX_BYTES))..cut], window - 64)?;
    let ids = prompt::completion_ids(&loaded.tokenizer, before)?;
    let output = generator.generate(&ids, &greedy(loaded, 64, &["\n\n\n"]), |_| {})?.text;
    let file = format!("{}/{}", f.repo, f.path);
    let completion = SampleText { file: file.clone(), prompt: last_lines(before, 6).to_string(), output, suffix: String::new() };
    // The infill: the line after the header is the hole.
    let line_end = text[cut..].find('\n').map(|i| cut + i).unwrap_or(text.len());
    let suffix = &text[line_end..floor_boundary(text, line_end + INFILL_SUFFIX_BYTES)];
    let ids = fitted_fim_ids(loaded, text, cut, line_end, window - 48)?;
    let output = generator.generate(&ids, &greedy(loaded, 48, &["\n"]), |_| {})?.text;
    let shown_suffix: String = suffix.split_inclusive('\n').take(4).collect();
    let infill = SampleText { file, prompt: last_lines(before, 6).to_string(), output, suffix: shown_suffix };
    Ok((Some(completion), Some(infill)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renaming_touches_whole_identifiers_only() {
        let text = "from util import parse\nparse(x); parse_all(y); reparse(z); a.parse\n";
        assert_eq!(rename_identifier(text, "parse", "q1"), "from util import q1\nq1(x); parse_all(y); reparse(z); a.q1\n");
        assert_eq!(rename_identifier("ab", "", "x"), "ab");
        assert_eq!(rename_identifier("é_x x", "x", "y"), "é_x y");
    }

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\nb\nc\nd\n", 2), "c\nd\n");
        assert_eq!(last_lines("a\nb\n", 5), "a\nb\n");
        assert_eq!(last_lines("x", 1), "x");
    }

    #[test]
    fn boundaries_never_split_a_character() {
        let s = "aé€z";
        for i in 0..=s.len() + 2 {
            assert!(s.is_char_boundary(floor_boundary(s, i)));
        }
    }
}
