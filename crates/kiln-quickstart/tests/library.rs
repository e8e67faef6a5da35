//! kiln-quickstart called as a library, without the `kiln` binary: the first stages on the
//! fixture repositories write their artefacts and records, the observer hears the narrative and
//! the corpus progress, a rerun resumes, and bad options are refused before anything is written.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use kiln_quickstart::{Observer, Options, Stage};

/// Remembers what it heard.
#[derive(Default)]
struct Recorder {
    lines: Mutex<Vec<String>>,
    corpus_total: AtomicU64,
    corpus_done: AtomicU64,
    corpus_finished: AtomicU64,
    trained: AtomicU64,
}

impl Observer for Recorder {
    fn say(&self, line: &str) {
        self.lines.lock().unwrap().push(line.to_string());
    }
    fn corpus_started(&self, repositories: u64) {
        self.corpus_total.store(repositories, Ordering::SeqCst);
    }
    fn corpus_repository_done(&self, _done: u64, _total: u64) {
        self.corpus_done.fetch_add(1, Ordering::SeqCst);
    }
    fn corpus_finished(&self) {
        self.corpus_finished.fetch_add(1, Ordering::SeqCst);
    }
    fn training_started(&self, _step: usize, _total_steps: usize) {
        self.trained.fetch_add(1, Ordering::SeqCst);
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_first_stages_run_as_a_library_call() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("qs");
    // Two folders of small repositories: one per language kiln parses imports for, and
    // kiln-eval's four cross-file repositories.
    let opts = Options {
        out: out.clone(),
        sources: vec![workspace().join("tests/fixtures/repos"), workspace().join("crates/kiln-eval/tests/fixtures/repos")],
        vocab_size: Some(512),
        seq_len: 128,
        until: Some(Stage::Tokenizer),
        ..Options::default()
    };
    let heard = Recorder::default();
    let outcome = kiln_quickstart::run(&opts, &heard).unwrap();
    assert_eq!(outcome.last_stage, Stage::Tokenizer);
    assert_eq!(outcome.out, out);
    assert!(outcome.model.is_none() && outcome.report.is_none() && outcome.results.is_none());

    for f in ["corpus/manifest.json", "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json", "quickstart.json", "quickstart.log"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(!out.join("data").exists(), "stopped before packing");
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("quickstart.json")).unwrap()).unwrap();
    let stages: Vec<&String> = state["stages"].as_object().unwrap().keys().collect();
    assert_eq!(stages, ["corpus", "sources", "tokenizer"]);
    assert!(state["stages"]["sources"]["info"]["repositories"].as_u64().unwrap() >= 10, "{state}");

    // The observer heard the narrative, which the log holds too, and each corpus repository.
    let lines = heard.lines.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l == "[1/6] find source code"), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("[2/6] corpus:")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("[3/6] tokenizer:")), "{lines:?}");
    let log = std::fs::read_to_string(out.join("quickstart.log")).unwrap();
    for l in &lines {
        assert!(log.contains(l.as_str()), "{l:?} not in quickstart.log");
    }
    let total = heard.corpus_total.load(Ordering::SeqCst);
    assert!(total >= 1);
    assert_eq!(heard.corpus_done.load(Ordering::SeqCst), total);
    assert_eq!(heard.corpus_finished.load(Ordering::SeqCst), 1);
    assert_eq!(heard.trained.load(Ordering::SeqCst), 0);

    // A rerun resumes: nothing is redone.
    let again = Recorder::default();
    kiln_quickstart::run(&opts, &again).unwrap();
    let lines = again.lines.lock().unwrap().clone();
    assert_eq!(lines, [format!("resuming {}: finished stages sources, corpus, tokenizer", out.display())]);

    // Other settings in the same folder are refused, naming the setting.
    let e = kiln_quickstart::run(&Options { seed: 1, ..opts.clone() }, &again).unwrap_err().to_string();
    assert!(e.contains("holds a quickstart with another --seed"), "{e}");
}

#[test]
fn bad_options_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never");
    let e = kiln_quickstart::run(&Options { out: out.clone(), minutes: -1.0, ..Options::default() }, &kiln_quickstart::Silent).unwrap_err();
    assert!(matches!(e, kiln_quickstart::QuickstartError::Setup(_)));
    assert_eq!(e.to_string(), "--minutes must be positive (got -1)");
    assert!(!out.exists());
}
