//! `report.md`: what quickstart did and measured, with its charts (loss curve, corpus by
//! language) beside it.

use std::fmt::Write as _;
use std::path::PathBuf;

use kiln_corpus::Manifest;

use crate::error::Result;
use crate::evaluate::Results;
use crate::pipeline::Run;
use crate::Stage;

/// Writes `report.md`, `loss.png` and `corpus_languages.png` into the output folder.
pub(crate) fn write(run: &Run, r: &Results) -> Result<PathBuf> {
    let out = &run.out;
    let manifest = Manifest::load(&run.dir("corpus"))?;
    let st = &run.state;
    let info = |stage: &str, key: &str| st.stages.get(stage).map(|s| s.info[key].clone()).unwrap_or_default();
    let mut md = String::new();
    let _ = writeln!(md, "# kiln quickstart report\n");
    let _ = writeln!(
        md,
        "kiln {} on {}. Seed {}. Total time {:.1} min.\n",
        env!("CARGO_PKG_VERSION"),
        kiln_base::machine::describe(),
        st.settings.seed,
        run.spent_s() / 60.0
    );

    let _ = writeln!(md, "## 1. Sources\n");
    let _ = writeln!(md, "| source | repositories | code (MB) |\n|---|---|---|");
    let kinds = crate::sources::totals_by_kind(&st.selected);
    for (k, (n, b)) in &kinds {
        let _ = writeln!(md, "| {k} | {n} | {:.1} |", *b as f64 / 1e6);
    }
    for m in &st.missing_sources {
        let _ = writeln!(md, "\nNot found: {m}.");
    }

    let _ = writeln!(md, "\n## 2. Corpus (`{}`)\n", run.dir("corpus").display());
    let s = &manifest.samples;
    let _ = writeln!(
        md,
        "{} repository samples kept of {} candidates: {} exact duplicates, {} near duplicates (MinHash LSH), {} contaminated (decontaminated against HumanEval and MBPP, {}). Files are in dependency order within each sample (a file after the files it imports), each under a comment with its path.\n",
        s.kept,
        s.candidates,
        s.exact_duplicates,
        s.near_duplicates,
        s.contaminated,
        st.settings.decontamination.label()
    );
    let total: u64 = manifest.languages.values().map(|l| l.bytes).sum();
    let mut langs: Vec<(&String, &kiln_corpus::manifest::LangCount)> = manifest.languages.iter().collect();
    langs.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(b.0)));
    let _ = writeln!(md, "| language | files | MB | share |\n|---|---|---|---|");
    for (name, l) in &langs {
        let _ =
            writeln!(md, "| {name} | {} | {:.2} | {:.1}% |", l.files, l.bytes as f64 / 1e6, 100.0 * l.bytes as f64 / total.max(1) as f64);
    }
    let rows: Vec<(String, f64)> = langs.iter().map(|(n, l)| (n.to_string(), l.bytes as f64 / 1e6)).collect();
    kiln_train::plot::bar_chart(&out.join("corpus_languages.png"), "Corpus by language (MB)", &rows, "MB")?;
    let _ = writeln!(md, "\n![corpus by language](corpus_languages.png)\n");

    let _ = writeln!(md, "## 3. Tokenizer (`{}`)\n", run.dir("tokenizer").display());
    let _ = writeln!(
        md,
        "Byte-level BPE with DeepSeek-Coder's pre-tokenizer: {} BPE ids learned (vocabulary {} asked) from {:.1} MB of the corpus, plus the 9 role tokens (BOS, EOS, FIM hole/begin/end, ...).\n",
        info("tokenizer", "bpe_ids"),
        info("tokenizer", "vocab_size"),
        info("tokenizer", "trained_on_bytes").as_f64().unwrap_or(0.0) / 1e6
    );

    let _ = writeln!(md, "## 4. Training data (`{}`)\n", run.dir("data").display());
    let _ = writeln!(
        md,
        "Windows of {} tokens, PSM fill-in-the-middle on half of the documents, split by repository: {} training windows from {} repositories; {} validation windows from {} held-out repositories ({:.0}% of repositories).\n",
        st.settings.seq_len,
        info("pack", "train_windows"),
        info("pack", "train_repos"),
        info("pack", "val_windows"),
        info("pack", "val_repos"),
        100.0 * info("pack", "val_fraction").as_f64().unwrap_or(0.0)
    );

    let _ = writeln!(md, "## 5. Training (`{}`)\n", run.dir("train").display());
    let (first, last, val) = loss_points(&run.dir("train"));
    let train_s = run.stage_s(Stage::Train);
    let tokens = info("train", "tokens").as_f64().unwrap_or(0.0);
    let _ = writeln!(
        md,
        "A LLaMA-architecture model ({}; {:.1} M parameters) from random weights: {} steps, {:.1} M tokens in {:.1} min ({:.0} tokens/s). Training loss {} → {}; validation loss {}.\n",
        run.state.settings.recipe.describe(),
        run.state.settings.recipe.shape.parameters(model_vocab(&run.dir("model"))) as f64 / 1e6,
        info("train", "steps"),
        tokens / 1e6,
        train_s / 60.0,
        tokens / train_s.max(1e-9),
        fmt_opt(first),
        fmt_opt(last),
        fmt_opt(val)
    );
    let loss_png = run.dir("train").join("loss.png");
    if loss_png.is_file() {
        std::fs::copy(&loss_png, out.join("loss.png"))?;
        let _ = writeln!(md, "![loss curve: training loss (line) and validation loss (dots) over steps](loss.png)\n");
    }

    let _ = writeln!(md, "## 6. Evaluation on held-out repositories\n");
    let _ = writeln!(
        md,
        "{} files ({:.0} KB) of {} repositories the model never saw: {}.\n",
        r.heldout_files,
        r.heldout_bytes as f64 / 1024.0,
        r.heldout_repos.len(),
        r.heldout_repos.join(", ")
    );
    let _ = writeln!(md, "| measure | bits per byte |\n|---|---|");
    let _ =
        writeln!(md, "| **kiln model** (cross-entropy over each file's UTF-8 bytes, file by file) | **{:.3}** |", r.model_bits_per_byte);
    let _ = writeln!(md, "| zstd -19, each file alone | {:.3} |", r.zstd_each_bits_per_byte);
    let _ = writeln!(md, "| zstd -19, all files as one stream | {:.3} |", r.zstd_concat_bits_per_byte);
    let verdict = if r.model_bits_per_byte < r.zstd_each_bits_per_byte {
        format!("The model beats per-file zstd -19 by {:.1}%", 100.0 * (1.0 - r.model_bits_per_byte / r.zstd_each_bits_per_byte))
    } else {
        format!(
            "The model does NOT beat per-file zstd -19: it is {:.3} bits per byte short (train longer: more --minutes)",
            r.model_bits_per_byte - r.zstd_each_bits_per_byte
        )
    };
    let stretch = if r.model_bits_per_byte < r.zstd_concat_bits_per_byte {
        "and also the one-stream anchor"
    } else {
        "; the one-stream anchor (the stretch goal) is not reached"
    };
    let _ = writeln!(md, "\n{verdict} {stretch}. Mean loss {:.3} nats per token.\n", r.loss_per_token);
    let _ = writeln!(md, "| language | files | KB | model bits/byte | zstd -19 per file |\n|---|---|---|---|---|");
    for l in &r.per_language {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.3} | {:.3} |",
            l.language,
            l.files,
            l.bytes as f64 / 1024.0,
            l.model_bits_per_byte,
            l.zstd_each_bits_per_byte
        );
    }
    let _ = writeln!(
        md,
        "\nSingle-line infilling on {} held-out lines (a line removed, the model fills it from the code before and after, greedy; exact match of the stripped line): **{:.1}%** ({} exact).\n",
        r.infill.lines,
        100.0 * r.infill.exact_match,
        r.infill.exact
    );

    match &r.repo {
        Some(rl) => {
            let _ = writeln!(
                md,
                "Repository-level completion (the paper's key claim, CrossCodeEval-style, kiln-eval `repo`): {} held-out lines that use a symbol defined in another file their file imports; the prompt holds up to {} tokens of the repository's imported files (dependency order, as in training) before the file, or none; {} prompt tokens at most; greedy, first line scored. {} of the {} lines had another file within the budget.\n",
                rl.tasks, rl.context_tokens, rl.max_prompt_tokens, rl.tasks_with_context_files, rl.tasks
            );
            let _ = writeln!(md, "{}\n", rl.table);
            let _ = writeln!(
                md,
                "With the repository's files: exact match **{:.1}%**, edit similarity **{:.1}**; without: {:.1}%, {:.1}.\n",
                rl.em_with, rl.es_with, rl.em_without, rl.es_without
            );
        }
        None => {
            let _ = writeln!(md, "Repository-level completion: no held-out line uses a symbol defined in another file of its repository, so the comparison was not measured.\n");
        }
    }
    if let Some(m) = &r.middles {
        let _ = writeln!(
            md,
            "What the code after a hole is worth ({} held-out lines scored as FIM middles, the same tokens both ways): **{:.3}** bits per byte given the code before and after (PSM), {:.3} given the code before only{}.\n",
            m.lines,
            m.with_suffix_bits_per_byte,
            m.prefix_only_bits_per_byte,
            if m.with_suffix_bits_per_byte < m.prefix_only_bits_per_byte { ": the model uses the suffix" } else { ": the model does not use the suffix yet" }
        );
    }
    if let Some(c) = &r.cross_file {
        let _ = writeln!(
            md,
            "What the imported files are worth, in bits per byte of the {} repository-level lines: **{:.3}** with the imported files in the prompt, {:.3} without; with the cross-file symbol renamed to a random name everywhere (only the imported file can predict it; {} lines): {:.3} with, {:.3} without{}.\n",
            c.lines,
            c.with_context_bits_per_byte,
            c.without_context_bits_per_byte,
            c.synthetic_lines,
            c.synthetic_with_context_bits_per_byte,
            c.synthetic_without_context_bits_per_byte,
            if c.synthetic_with_context_bits_per_byte < c.synthetic_without_context_bits_per_byte { ": the model copies from the imported files" } else { ": the model does not copy from the imported files yet" }
        );
    }
    let _ = writeln!(md, "## 7. Samples\n");
    if let Some(s) = &r.sample_completion {
        let _ = writeln!(
            md,
            "Completion of held-out `{}` (model output after `⟨⟩`, first 12 lines):\n\n```\n{}⟨⟩{}\n```\n",
            s.file,
            s.prompt,
            crate::evaluate::first_lines(&s.output, 12)
        );
    }
    if let Some(s) = &r.sample_infill {
        let _ = writeln!(
            md,
            "Infill in the same file (the model's line between `⟨` and `⟩`):\n\n```\n{}⟨{}⟩{}\n```\n",
            s.prompt, s.output, s.suffix
        );
    }
    let _ = writeln!(md, "Serve the model:\n\n```sh\nkiln serve --model {}\n```\n", run.dir("model").display());

    let _ = writeln!(md, "## Stage times\n\n| stage | seconds |\n|---|---|");
    for stage in Stage::ALL {
        let _ = writeln!(md, "| {stage} | {:.1} |", run.stage_s(stage));
    }
    let path = out.join("report.md");
    kiln_base::fs::write_atomic(&path, md.as_bytes())?;
    Ok(path)
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "n/a".into())
}

/// First and last training loss and the last validation loss of a run's `metrics.jsonl`.
fn loss_points(run: &std::path::Path) -> (Option<f64>, Option<f64>, Option<f64>) {
    let Ok(text) = std::fs::read_to_string(run.join("metrics.jsonl")) else { return (None, None, None) };
    let metrics: Vec<kiln_train::StepMetrics> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let train: Vec<f64> = metrics.iter().filter(|m| m.kind == "train" && m.loss.is_finite()).map(|m| m.loss).collect();
    let val = metrics.iter().rev().find(|m| m.kind == "eval").map(|m| m.loss);
    (train.first().copied(), train.last().copied(), val)
}

/// The vocabulary rows of the trained model (its `config.json`; 0 when unreadable).
fn model_vocab(model: &std::path::Path) -> usize {
    std::fs::read(model.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["vocab_size"].as_u64())
        .unwrap_or(0) as usize
}
