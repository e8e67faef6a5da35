//! The reduced grid CI runs (issue 20): two arms of the order question, one seed, a few steps,
//! on the fixture repositories. Every output must exist, the table must have a row per arm, the
//! charts must be valid PNGs, a rerun must reuse the finished runs, and a changed grid must be
//! named.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use kiln_experiment::{ExperimentObserver, ExperimentOptions, Question};

#[derive(Default)]
struct Recorder {
    lines: Mutex<Vec<String>>,
    steps: AtomicUsize,
    finished: AtomicUsize,
}

impl ExperimentObserver for Recorder {
    fn say(&self, line: &str) {
        self.lines.lock().unwrap().push(line.to_string());
    }
    fn job_finished(&self, _done: usize, _total: usize) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
    fn training_step(&self, _step: usize, _total: usize, _loss: f64) {
        self.steps.fetch_add(1, Ordering::SeqCst);
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn is_png(path: &Path) -> bool {
    let b = std::fs::read(path).unwrap();
    b.len() > 33 && &b[..8] == b"\x89PNG\r\n\x1a\n" && &b[12..16] == b"IHDR" && b.windows(4).any(|w| w == b"IEND")
}

#[test]
fn a_reduced_grid_writes_every_output_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("exp");
    let opts = ExperimentOptions {
        out: out.clone(),
        sources: vec![workspace().join("tests/fixtures/repos"), workspace().join("crates/kiln-eval/tests/fixtures/repos")],
        seeds: 1,
        questions: vec![Question::Order],
        arms: vec!["baseline".into(), "file-level".into()],
        steps: Some(6),
        vocab_size: Some(512),
        seq_len: 128,
        eval_lines: 8,
        cross_file_tasks: 8,
        ..ExperimentOptions::default()
    };
    let heard = Recorder::default();
    let outcome = kiln_experiment::run(&opts, &heard).unwrap();
    assert_eq!(outcome.results.len(), 2);
    assert!(heard.steps.load(Ordering::SeqCst) >= 12, "both arms trained");
    for r in &outcome.results {
        assert!(!r.diverged, "{r:?}");
        assert_eq!(r.steps, 6);
        let bpb = r.bits_per_byte.unwrap();
        assert!(bpb.is_finite() && bpb > 0.5 && bpb < 20.0, "{bpb}");
        let m = r.middles.unwrap();
        assert!(m.lines > 0 && m.with_suffix_bits_per_byte > 0.0 && m.prefix_only_bits_per_byte > 0.0, "{m:?}");
    }
    // The two arms trained on different packs: file-level documents are more, and shorter.
    let dep: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("base/data/meta.json")).unwrap()).unwrap();
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("packs/fim0.5-spm0-file/meta.json")).unwrap()).unwrap();
    assert_eq!(file["order"], "file");
    assert!(file["train"]["documents"].as_u64().unwrap() > dep["train"]["documents"].as_u64().unwrap(), "{file} vs {dep}");

    for f in ["results.md", "results.json", "experiment.json", "arms/baseline/seed-0/result.json", "arms/file-level/seed-0/result.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert_eq!(outcome.plots.len(), 2);
    for p in &outcome.plots {
        assert!(is_png(p), "{} is not a PNG", p.display());
    }
    let md = std::fs::read_to_string(&outcome.report).unwrap();
    for arm in ["baseline", "file-level"] {
        assert_eq!(md.lines().filter(|l| l.starts_with(&format!("| {arm} |"))).count(), 1, "one row for {arm}:\n{md}");
    }
    assert!(!md.contains("| random-order |"), "arms left out by --arms have no row");
    assert!(md.contains("Repository-level pre-training") && md.contains("Synthetic control"), "{md}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&outcome.json).unwrap()).unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 2);
    assert_eq!(json["summaries"].as_array().unwrap().len(), 2);

    // A rerun reuses both runs: no training step.
    let again = Recorder::default();
    let second = kiln_experiment::run(&opts, &again).unwrap();
    assert_eq!(again.steps.load(Ordering::SeqCst), 0, "finished runs are kept");
    assert_eq!(second.results[0].bits_per_byte, outcome.results[0].bits_per_byte);
    assert_eq!(again.finished.load(Ordering::SeqCst), 2);

    // A changed grid: the new arm is named and run, the finished ones kept.
    let grown = ExperimentOptions { arms: vec!["baseline".into(), "file-level".into(), "random-order".into()], ..opts.clone() };
    let third = Recorder::default();
    kiln_experiment::run(&grown, &third).unwrap();
    let lines = third.lines.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.contains("arm random-order is new")), "{lines:?}");
    assert_eq!(third.steps.load(Ordering::SeqCst), 6, "only the new arm trained");

    // The report alone, from the finished runs, with a run that is not finished named.
    let two_seeds = ExperimentOptions { seeds: 2, report_only: true, ..opts.clone() };
    let fourth = Recorder::default();
    let partial = kiln_experiment::run(&two_seeds, &fourth).unwrap();
    assert_eq!(partial.results.len(), 2, "seed 1 never ran");
    assert_eq!(fourth.steps.load(Ordering::SeqCst), 0);
    let lines = fourth.lines.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains("not finished") && l.contains("baseline seed 1") && l.contains("file-level seed 1")),
        "{lines:?}"
    );
    assert!(!out.join("arms/baseline/seed-1").exists(), "nothing was started");

    // Over budget: refused before anything runs, with what fits.
    // (3 arms x 3 seeds x (4 + 0.7) min + 2 packs x 0.5 = 43 min; with 2 seeds 29.2.)
    let big = ExperimentOptions { steps: None, minutes_per_arm: 4.0, seeds: 3, budget_minutes: Some(30.0), arms: vec![], ..opts.clone() };
    let e = kiln_experiment::run(&big, &kiln_experiment::Silent).unwrap_err().to_string();
    assert!(
        e.contains("needs about 43 min but --budget-minutes is 30")
            && e.contains("the largest grid that fits: all 1 questions with --seeds 2"),
        "{e}"
    );
    // An unknown arm is named.
    let bad = ExperimentOptions { arms: vec!["baseline".into(), "no-such-arm".into()], ..opts };
    let e = kiln_experiment::run(&bad, &kiln_experiment::Silent).unwrap_err().to_string();
    assert!(e.contains("no arm \"no-such-arm\"") && e.contains("file-level"), "{e}");
}
