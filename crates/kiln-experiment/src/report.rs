//! `results.md`, `results.json` and `plots/`: per question a table of its arms (mean ± spread
//! over seeds), the claims it tests with a verdict each, a bits-per-byte chart with the spread
//! and the loss curves.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kiln_quickstart::evaluate::HeldOut;
use serde::Serialize;

use crate::grid::{Arm, Question};
use crate::runner::{loss_curve, ExperimentOptions, JobResult};
use crate::Result;

/// What [`write`] wrote.
pub(crate) struct Written {
    pub(crate) markdown: PathBuf,
    pub(crate) json: PathBuf,
    pub(crate) plots: Vec<PathBuf>,
}

/// Mean and spread (sample standard deviation) of a measure over an arm's seeds.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Stat {
    /// Seeds with a value.
    pub(crate) n: usize,
    pub(crate) mean: f64,
    pub(crate) sd: f64,
}

impl Stat {
    fn of(values: impl IntoIterator<Item = f64>) -> Option<Stat> {
        let v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
        Some(Stat { n, mean, sd })
    }

    fn show(s: Option<Stat>) -> String {
        match s {
            Some(s) if s.n > 1 => format!("{:.4} ± {:.4}", s.mean, s.sd),
            Some(s) => format!("{:.4}", s.mean),
            None => "—".into(),
        }
    }
}

/// An arm's measures over its seeds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ArmSummary {
    arm: String,
    describe: String,
    seeds: usize,
    diverged: usize,
    steps: Option<Stat>,
    tokens: Option<Stat>,
    /// Training tokens per second of wall time (shows a run slowed by other load or drift).
    tokens_per_s: Option<Stat>,
    bits_per_byte: Option<Stat>,
    middle_with_suffix: Option<Stat>,
    middle_prefix_only: Option<Stat>,
    infill_exact_match: Option<Stat>,
    cross_file_with: Option<Stat>,
    cross_file_without: Option<Stat>,
    synthetic_with: Option<Stat>,
    synthetic_without: Option<Stat>,
    /// Its finished (not diverged) runs, for comparisons paired by seed.
    #[serde(skip)]
    runs: Vec<JobResult>,
}

fn summarise(arm: &Arm, results: &[JobResult]) -> ArmSummary {
    let mine: Vec<&JobResult> = results.iter().filter(|r| r.arm == arm.name).collect();
    let ok: Vec<&&JobResult> = mine.iter().filter(|r| !r.diverged).collect();
    let stat = |f: &dyn Fn(&JobResult) -> Option<f64>| Stat::of(ok.iter().filter_map(|r| f(r)));
    ArmSummary {
        arm: arm.name.clone(),
        describe: format!(
            "FIM {} (SPM share {}), {} order; {}",
            arm.data.fim_rate,
            arm.data.spm_rate,
            arm.data.order.name(),
            arm.recipe.describe()
        ),
        seeds: mine.len(),
        diverged: mine.len() - ok.len(),
        steps: stat(&|r| Some(r.steps as f64)),
        tokens: stat(&|r| Some(r.tokens as f64)),
        tokens_per_s: stat(&|r| (r.train_seconds > 0.0).then(|| r.tokens as f64 / r.train_seconds)),
        bits_per_byte: stat(&|r| r.bits_per_byte),
        middle_with_suffix: stat(&|r| r.middles.map(|m| m.with_suffix_bits_per_byte)),
        middle_prefix_only: stat(&|r| r.middles.map(|m| m.prefix_only_bits_per_byte)),
        infill_exact_match: stat(&|r| r.infill.as_ref().map(|i| 100.0 * i.exact_match)),
        cross_file_with: stat(&|r| r.cross_file.filter(|c| c.lines > 0).map(|c| c.with_context_bits_per_byte)),
        cross_file_without: stat(&|r| r.cross_file.filter(|c| c.lines > 0).map(|c| c.without_context_bits_per_byte)),
        synthetic_with: stat(&|r| r.cross_file.filter(|c| c.synthetic_lines > 0).map(|c| c.synthetic_with_context_bits_per_byte)),
        synthetic_without: stat(&|r| r.cross_file.filter(|c| c.synthetic_lines > 0).map(|c| c.synthetic_without_context_bits_per_byte)),
        runs: ok.iter().map(|r| (**r).clone()).collect(),
    }
}

/// One measure of a run (bits per byte of something), for paired comparisons.
type Measure = fn(&JobResult) -> Option<f64>;

fn m_bpb(r: &JobResult) -> Option<f64> {
    r.bits_per_byte
}
fn m_middle(r: &JobResult) -> Option<f64> {
    r.middles.map(|m| m.with_suffix_bits_per_byte)
}
fn m_middle_prefix(r: &JobResult) -> Option<f64> {
    r.middles.map(|m| m.prefix_only_bits_per_byte)
}
fn m_synthetic_with(r: &JobResult) -> Option<f64> {
    r.cross_file.filter(|c| c.synthetic_lines > 0).map(|c| c.synthetic_with_context_bits_per_byte)
}
fn m_synthetic_without(r: &JobResult) -> Option<f64> {
    r.cross_file.filter(|c| c.synthetic_lines > 0).map(|c| c.synthetic_without_context_bits_per_byte)
}

/// Whether `lower`'s measure is below `higher`'s, paired by seed: the runs of the two arms with
/// the same seed (or two measures of the same runs) are compared run by run, which removes
/// what a seed does to both (at a few hundred steps, which part of the corpus a seed's batches
/// happen to cover moves held-out bits per byte by more than most levers). Only for arms that
/// train on the same packed data (so a seed gives both the same batches) or two measures of one
/// arm; `None` with fewer than two matched seeds.
fn paired(lower: &ArmSummary, lm: Measure, higher: &ArmSummary, hm: Measure) -> Option<String> {
    let diffs: Vec<f64> = lower
        .runs
        .iter()
        .filter_map(|a| {
            let b = higher.runs.iter().find(|b| b.seed == a.seed)?;
            Some(hm(b)? - lm(a)?)
        })
        .filter(|d| d.is_finite())
        .collect();
    let d = Stat::of(diffs)?;
    if d.n < 2 {
        return None;
    }
    let se = d.sd / (d.n as f64).sqrt();
    let word = if d.mean > 2.0 * se {
        "holds"
    } else if -d.mean > 2.0 * se {
        "does not hold"
    } else {
        "within noise"
    };
    Some(format!(
        "{word} (margin {:+.4} ± {:.4} bits per byte, positive in the claim's direction; mean ± standard error, paired by seed over {} seeds)",
        d.mean, se, d.n
    ))
}

/// A claim and what the runs say about it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Verdict {
    claim: String,
    source: String,
    measured: String,
    verdict: String,
}

/// "holds" when `lower` is below `higher` by more than two standard errors, "does not hold"
/// when it is above by as much, "within noise" between; with one seed there is no spread, and
/// the sign decides (said so).
fn lower_than(lower: Option<Stat>, higher: Option<Stat>) -> String {
    let (Some(a), Some(b)) = (lower, higher) else { return "not measured".into() };
    let diff = b.mean - a.mean;
    if a.n < 2 || b.n < 2 {
        return format!("{} (one seed: no spread to judge noise)", if diff > 0.0 { "holds" } else { "does not hold" });
    }
    let noise = 2.0 * (a.sd.powi(2) / a.n as f64 + b.sd.powi(2) / b.n as f64).sqrt();
    if diff > noise {
        "holds".into()
    } else if -diff > noise {
        "does not hold".into()
    } else {
        "within noise (the difference is under two standard errors)".into()
    }
}

/// " (one seed: ...)" when an arm's bits per byte rest on fewer than two seeds.
fn one_seed_note(s: &[ArmSummary]) -> &'static str {
    if s.iter().any(|a| a.bits_per_byte.is_some_and(|b| b.n < 2)) {
        " (one seed: no spread to judge noise)"
    } else {
        ""
    }
}

fn find<'a>(s: &'a [ArmSummary], name: &str) -> Option<&'a ArmSummary> {
    s.iter().find(|a| a.arm == name)
}

fn verdicts(q: Question, arms: &[Arm], s: &[ArmSummary]) -> Vec<Verdict> {
    let get = |name: &str, f: fn(&ArmSummary) -> Option<Stat>| find(s, name).and_then(f);
    let v = |claim: &str, source: &str, measured: String, verdict: String| Verdict {
        claim: claim.into(),
        source: source.into(),
        measured,
        verdict,
    };
    let bpb = |a: &ArmSummary| a.bits_per_byte;
    let mid = |a: &ArmSummary| a.middle_with_suffix;
    let show = |name: &str, f: fn(&ArmSummary) -> Option<Stat>| format!("{} {}", name, Stat::show(get(name, f)));
    // Paired by seed where the two runs share their batches (the same arm, or arms on the same
    // packed data); otherwise the unpaired two-standard-error rule.
    let same_data = |a: &str, b: &str| {
        let data = |n: &str| arms.iter().find(|x| x.name == n).map(|x| x.data);
        a == b || data(a).is_some_and(|d| Some(d) == data(b))
    };
    let compare =
        |lower: &str, lm: Measure, lf: fn(&ArmSummary) -> Option<Stat>, higher: &str, hm: Measure, hf: fn(&ArmSummary) -> Option<Stat>| {
            let pair = match (find(s, lower), find(s, higher)) {
                (Some(a), Some(b)) if same_data(lower, higher) => paired(a, lm, b, hm),
                _ => None,
            };
            pair.unwrap_or_else(|| lower_than(get(lower, lf), get(higher, hf)))
        };
    match q {
        Question::Fim => {
            let mut out = Vec::new();
            // "Costs little": at most 1% worse left to right than no FIM, or better.
            let cost = match (get("baseline", bpb), get("fim-0", bpb)) {
                (Some(a), Some(b)) => {
                    let rel = (a.mean - b.mean) / b.mean;
                    let w = if rel <= 0.01 { "holds" } else { "does not hold" };
                    let seeds = if a.n < 2 || b.n < 2 { "; one seed: no spread to judge noise" } else { "" };
                    format!("{w} ({:+.2}% left-to-right bits per byte vs no FIM{seeds})", 100.0 * rel)
                }
                _ => "not measured".into(),
            };
            out.push(v(
                "FIM at rate 0.5 (PSM) costs little left-to-right ability (at most 1% here)",
                "DeepSeek-Coder §3.1, Figure 3; Bavarian et al. 2022 (\"FIM for free\")",
                format!("held-out bits per byte: {}; {}", show("baseline", bpb), show("fim-0", bpb)),
                cost,
            ));
            let rate1 = match (
                lower_than(get("psm-1.0", mid), get("baseline", mid)).as_str(),
                lower_than(get("baseline", bpb), get("psm-1.0", bpb)).as_str(),
            ) {
                ("not measured", _) | (_, "not measured") => "not measured".to_string(),
                (a, b) => format!("infills better: {a}; costs left to right: {b}"),
            };
            out.push(v(
                "FIM rate 1.0 infills best but costs left-to-right ability",
                "DeepSeek-Coder Figure 3",
                format!(
                    "FIM middle bits per byte (prefix+suffix): {}, {}; left to right: {}, {}",
                    show("psm-1.0", mid),
                    show("baseline", mid),
                    show("psm-1.0", bpb),
                    show("baseline", bpb)
                ),
                rate1,
            ));
            out.push(v(
                "A FIM-trained model uses the suffix: the middle costs fewer bits with it",
                "the point of FIM (Bavarian et al. 2022)",
                format!(
                    "baseline middles: {} with the suffix, {} prefix only",
                    Stat::show(get("baseline", mid)),
                    Stat::show(get("baseline", |a| a.middle_prefix_only))
                ),
                compare("baseline", m_middle, mid, "baseline", m_middle_prefix, |a| a.middle_prefix_only),
            ));
            out.push(v(
                "PSM infills at least as well as SPM (the paper trains PSM; its comparison was with masked span prediction, which kiln does not train)",
                "DeepSeek-Coder §3.1",
                format!("FIM middle bits per byte: {}; {}; {}", show("baseline", mid), show("spm-0.5", mid), show("psm+spm-0.5", mid)),
                lower_than(get("baseline", mid), get("spm-0.5", mid)),
            ));
            out
        }
        Question::Order => {
            let cf = |a: &ArmSummary| a.cross_file_with;
            vec![
                v(
                    "Repository-level pre-training (files in dependency order, one document per repository) helps cross-file completion",
                    "DeepSeek-Coder §2.2, Table 7",
                    format!("cross-file lines with their imported files in the prompt, bits per byte: {}; {}", show("baseline", cf), show("file-level", cf)),
                    lower_than(get("baseline", cf), get("file-level", cf)),
                ),
                v(
                    "Dependency order beats a random order of the same files",
                    "DeepSeek-Coder §2.2 (Algorithm 1)",
                    format!("the same: {}; {}", show("baseline", cf), show("random-order", cf)),
                    lower_than(get("baseline", cf), get("random-order", cf)),
                ),
                v(
                    "Synthetic control: with dependency-ordered training, the imported file predicts a cross-file symbol renamed to a random name",
                    "this experiment's control (issue 20)",
                    format!(
                        "baseline, renamed symbols: {} with the imported files, {} without",
                        Stat::show(get("baseline", |a| a.synthetic_with)),
                        Stat::show(get("baseline", |a| a.synthetic_without))
                    ),
                    compare("baseline", m_synthetic_with, |a| a.synthetic_with, "baseline", m_synthetic_without, |a| a.synthetic_without),
                ),
            ]
        }
        Question::Size => {
            let best = s
                .iter()
                .filter(|a| a.bits_per_byte.is_some())
                .min_by(|a, b| a.bits_per_byte.unwrap().mean.total_cmp(&b.bits_per_byte.unwrap().mean));
            vec![v(
                "At a fixed wall-clock budget there is a best model size (Chinchilla: about 20 tokens per parameter)",
                "Hoffmann et al. 2022",
                s.iter().map(|a| format!("{} {}", a.arm, Stat::show(a.bits_per_byte))).collect::<Vec<_>>().join("; "),
                best.map(|b| format!("best here: {}{}", b.arm, one_seed_note(s))).unwrap_or_else(|| "not measured".into()),
            )]
        }
        Question::Schedule => {
            let named = |k: kiln_train::ScheduleKind| {
                arms.iter().find(|a| a.recipe.schedule == k && s.iter().any(|x| x.arm == a.name)).map(|a| a.name.clone())
            };
            let (step, lin, wsd) =
                (named(kiln_train::ScheduleKind::Step), named(kiln_train::ScheduleKind::Linear), named(kiln_train::ScheduleKind::Wsd));
            let stat = |n: &Option<String>| n.as_deref().and_then(|n| get(n, bpb));
            let label = |n: &Option<String>| n.clone().unwrap_or_else(|| "—".into());
            let beats = |a: &Option<String>, b: &Option<String>| match (a, b) {
                (Some(a), Some(b)) => compare(a, m_bpb, bpb, b, m_bpb, bpb),
                _ => lower_than(stat(a), stat(b)),
            };
            vec![
                v(
                    "Linear decay to zero beats the paper's step decay at a small budget",
                    "Bergsma et al. 2025 (\"Straight to Zero\")",
                    format!("{} {}; {} {}", label(&lin), Stat::show(stat(&lin)), label(&step), Stat::show(stat(&step))),
                    beats(&lin, &step),
                ),
                v(
                    "Warmup-stable-decay beats step decay",
                    "MiniCPM (Hu et al. 2024); Hägele et al. 2024",
                    format!("{} {}; {} {}", label(&wsd), Stat::show(stat(&wsd)), label(&step), Stat::show(stat(&step))),
                    beats(&wsd, &step),
                ),
            ]
        }
        Question::Lr => {
            let best = s
                .iter()
                .filter(|a| a.bits_per_byte.is_some())
                .min_by(|a, b| a.bits_per_byte.unwrap().mean.total_cmp(&b.bits_per_byte.unwrap().mean));
            vec![v(
                "The recipe's peak LR is the best of three (x0.4, x1, x2.5)",
                "kiln's small-budget recipe",
                s.iter().map(|a| format!("{} {}", a.arm, Stat::show(a.bits_per_byte))).collect::<Vec<_>>().join("; "),
                best.map(|b| {
                    let head = if b.arm == "baseline" { "holds".to_string() } else { format!("does not hold: {} is better", b.arm) };
                    // Each other rate against the recipe's, run by run.
                    let pairs: Vec<String> = s
                        .iter()
                        .filter(|a| a.arm != "baseline")
                        .map(|a| format!("baseline below {}: {}", a.arm, compare("baseline", m_bpb, bpb, &a.arm, m_bpb, bpb)))
                        .collect();
                    if pairs.is_empty() {
                        head
                    } else {
                        format!("{head}; {}", pairs.join("; "))
                    }
                })
                .unwrap_or_else(|| "not measured".into()),
            )]
        }
    }
}

/// Writes the report files under `out`.
pub(crate) fn write(
    out: &Path,
    opts: &ExperimentOptions,
    arms: &[Arm],
    by_question: &[(Question, Vec<String>)],
    results: &[JobResult],
    heldout: &[HeldOut],
) -> Result<Written> {
    let plots_dir = out.join("plots");
    std::fs::create_dir_all(&plots_dir).map_err(|e| crate::ExperimentError::io(&plots_dir, e))?;
    let summaries: Vec<ArmSummary> = arms.iter().map(|a| summarise(a, results)).collect();
    let mut md = String::new();
    let heldout_bytes: usize = heldout.iter().map(|f| f.text.len()).sum();
    let mut repos: Vec<&str> = heldout.iter().map(|f| f.repo.as_str()).collect();
    repos.dedup();
    let _ = writeln!(md, "# kiln experiment\n");
    let _ = writeln!(
        md,
        "kiln {} on {}. Questions: {}. Every arm trained from scratch for {} with {} seed(s) ({}), on the same corpus and tokenizer; scored on {} files ({:.0} KB) of {} held-out repositories. Windows of {} tokens.\n",
        env!("CARGO_PKG_VERSION"),
        kiln_base::machine::describe(),
        by_question.iter().map(|(q, _)| q.name()).collect::<Vec<_>>().join(", "),
        match opts.steps {
            Some(s) => format!("{s} optimizer steps (equal steps, not equal time)"),
            None => format!("{} minutes of training (equal wall-clock)", opts.minutes_per_arm),
        },
        opts.seeds,
        if opts.seeds > 1 { "mean ± sample standard deviation" } else { "one seed: no spread" },
        heldout.len(),
        heldout_bytes as f64 / 1024.0,
        repos.len(),
        opts.seq_len,
    );
    let runs = results.len();
    let train_min: f64 = results.iter().map(|r| r.train_seconds).sum::<f64>() / 60.0;
    let steps: usize = results.iter().map(|r| r.steps).sum();
    let tokens: u64 = results.iter().map(|r| r.tokens).sum();
    let _ = writeln!(
        md,
        "Compute: {runs} training runs, {steps} optimizer steps and {:.1}M tokens in all; {train_min:.0} min of training wall time summed over the runs (scoring each trained model adds about a minute per run).\n",
        tokens as f64 / 1e6
    );
    let _ = writeln!(
        md,
        "Measures: **bpb** = held-out bits per byte, left to right, each file alone in sliding windows overlapping by half; **middle** = bits per byte of {} held-out lines as FIM middles, with prefix and suffix (PSM) / with the prefix only; **EM** = single-line infilling exact match (%); **cross-file** = bits per byte of held-out lines that use a symbol defined in a file their file imports, with / without the imported files in the prompt; **synthetic** = the same with the symbol renamed to a random name everywhere.\n",
        opts.eval_lines
    );
    let mut plots = Vec::new();
    let mut verdict_json = Vec::new();
    for (q, names) in by_question {
        let rows: Vec<&ArmSummary> = names.iter().filter_map(|n| find(&summaries, n)).collect();
        let _ = writeln!(md, "## {}\n", q.title());
        let _ = writeln!(md, "| claim | source | measured | verdict |\n|---|---|---|---|");
        let vs = verdicts(*q, arms, &rows.iter().map(|r| (*r).clone()).collect::<Vec<_>>());
        for v in &vs {
            let _ = writeln!(md, "| {} | {} | {} | **{}** |", v.claim, v.source, v.measured, v.verdict);
        }
        verdict_json.push(serde_json::json!({"question": q.name(), "verdicts": vs}));
        let _ = writeln!(
            md,
            "\n| arm | settings | seeds | bpb | middle, prefix+suffix | middle, prefix only | EM | cross-file with / without | synthetic with / without | steps | training tokens/s |\n|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for r in &rows {
            let diverged = if r.diverged > 0 { format!(" ({} diverged)", r.diverged) } else { String::new() };
            let _ = writeln!(
                md,
                "| {} | {} | {}{} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {} |",
                r.arm,
                r.describe,
                r.seeds,
                diverged,
                Stat::show(r.bits_per_byte),
                Stat::show(r.middle_with_suffix),
                Stat::show(r.middle_prefix_only),
                r.infill_exact_match.map(|s| format!("{:.1}", s.mean)).unwrap_or_else(|| "—".into()),
                Stat::show(r.cross_file_with),
                Stat::show(r.cross_file_without),
                Stat::show(r.synthetic_with),
                Stat::show(r.synthetic_without),
                r.steps.map(|s| format!("{:.0}", s.mean)).unwrap_or_else(|| "—".into()),
                r.tokens_per_s.map(|s| format!("{:.0} ± {:.0}", s.mean, s.sd)).unwrap_or_else(|| "—".into()),
            );
        }
        let bars: Vec<(String, f64, f64)> = rows
            .iter()
            .map(|r| (r.arm.clone(), r.bits_per_byte.map_or(f64::NAN, |s| s.mean), r.bits_per_byte.map_or(0.0, |s| s.sd)))
            .collect();
        let bar_path = plots_dir.join(format!("{}-bpb.png", q.name()));
        kiln_train::plot::bar_chart_with_spread(&bar_path, &format!("{}: held-out bits per byte", q.name()), &bars, "bpb")?;
        let curves: Vec<(String, Vec<(f64, f64)>)> = names
            .iter()
            .map(|n| (n.clone(), smooth(&loss_curve(&out.join("arms").join(crate::runner::slug(n)).join("seed-0")))))
            .filter(|(_, c)| !c.is_empty())
            .collect();
        let loss_path = plots_dir.join(format!("{}-loss.png", q.name()));
        kiln_train::plot::line_chart(
            &loss_path,
            &format!("{}: training loss from a fifth of the run on (seed 0; smoothed)", q.name()),
            &curves,
        )?;
        let _ = writeln!(
            md,
            "\n![{} bits per byte](plots/{}-bpb.png)\n![{} loss curves](plots/{}-loss.png)\n",
            q.name(),
            q.name(),
            q.name(),
            q.name()
        );
        plots.push(bar_path);
        plots.push(loss_path);
    }
    let markdown = out.join("results.md");
    kiln_base::fs::write_atomic(&markdown, md.as_bytes())?;
    let json = out.join("results.json");
    let doc = serde_json::json!({
        "kiln_version": env!("CARGO_PKG_VERSION"),
        "machine": kiln_base::machine::describe(),
        "budget_per_arm": match opts.steps { Some(s) => format!("{s} steps"), None => format!("{} min", opts.minutes_per_arm) },
        "seeds": opts.seeds,
        "questions": by_question.iter().map(|(q, names)| serde_json::json!({"question": q.name(), "arms": names})).collect::<Vec<_>>(),
        "arms": arms,
        "summaries": summaries,
        "verdicts": verdict_json,
        "runs": results,
    });
    kiln_base::fs::write_atomic(&json, &serde_json::to_vec_pretty(&doc)?)?;
    Ok(Written { markdown, json, plots })
}

/// A loss curve from a fifth of its steps on (the first steps fall from ln V for every arm alike
/// and would flatten the rest of the chart), averaged over windows of 20 steps (single steps
/// of a batch of 8 are noisy).
fn smooth(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points[points.len() / 5..]
        .chunks(20)
        .map(|c| (c.iter().map(|p| p.0).sum::<f64>() / c.len() as f64, c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_verdicts() {
        let s = Stat::of([2.0, 2.2, f64::NAN, 2.4]).unwrap();
        assert_eq!(s.n, 3);
        assert!((s.mean - 2.2).abs() < 1e-12 && (s.sd - 0.2).abs() < 1e-12);
        assert!(Stat::of([f64::NAN]).is_none());
        let st = |mean, sd| Some(Stat { n: 3, mean, sd });
        assert_eq!(lower_than(st(2.0, 0.01), st(2.5, 0.01)), "holds");
        assert_eq!(lower_than(st(2.5, 0.01), st(2.0, 0.01)), "does not hold");
        assert!(lower_than(st(2.0, 0.3), st(2.1, 0.3)).starts_with("within noise"));
        assert!(lower_than(Some(Stat { n: 1, mean: 2.0, sd: 0.0 }), st(2.1, 0.1)).starts_with("holds (one seed"));
        assert_eq!(lower_than(None, st(2.0, 0.1)), "not measured");
    }
}
