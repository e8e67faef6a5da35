//! `kiln experiment`: the paper's ablations and the small-budget levers in miniature (the grid
//! and its runs are kiln-experiment's); a progress bar across the grid's runs with an ETA.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kiln_experiment::{ExperimentObserver, ExperimentOptions, Question};

/// `kiln experiment ...`
#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Output folder (base/, packs/, arms/, results.md, results.json, plots/); rerunning with the
    /// same folder resumes (finished runs are kept; runs of changed arms are redone and named).
    #[arg(long, default_value = "kiln-experiment")]
    out: PathBuf,
    /// Questions to ask, comma-separated: fim (FIM rate 0/0.5/1.0, SPM, PSM+SPM), order
    /// (dependency vs random vs file-level), size (4 widths at equal time), schedule (step,
    /// WSD, linear to zero), lr (x0.4, x1, x2.5).
    #[arg(long, value_delimiter = ',', default_value = "fim,order,size,schedule,lr", value_parser = parse_question)]
    questions: Vec<Question>,
    /// Only these arms of the questions, comma-separated (e.g. baseline,file-level; default:
    /// all). An unknown name is refused with the list of arms.
    #[arg(long, value_delimiter = ',')]
    arms: Vec<String>,
    /// Training seeds per arm (results are reported as mean ± spread).
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// Minutes of training per arm and seed (equal wall-clock for every arm).
    #[arg(long, default_value_t = 3.0)]
    minutes_per_arm: f64,
    /// Train exactly this many optimizer steps per arm instead (equal steps, not equal time).
    #[arg(long)]
    steps: Option<usize>,
    /// Refuse to start when the estimated time is over this many minutes (prints the largest
    /// grid that fits); with --minutes-per-arm, not --steps.
    #[arg(long, conflicts_with = "steps")]
    budget_minutes: Option<f64>,
    /// Repositories to use instead of the cargo registry and the python3 standard library.
    #[arg(long, num_args = 1..)]
    sources: Vec<PathBuf>,
    /// Seed of the sources, corpus, split and FIM draws; arm seeds are SEED, SEED+1, ...
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most megabytes of source code read.
    #[arg(long, default_value_t = 40)]
    max_source_mb: u64,
    /// BPE vocabulary (default: sized for the corpus, as quickstart).
    #[arg(long)]
    vocab_size: Option<usize>,
    /// Tokens per training and scoring window.
    #[arg(long, default_value_t = 512)]
    seq_len: usize,
    /// Held-out lines for the FIM-middle and infilling measures.
    #[arg(long, default_value_t = 100)]
    eval_lines: usize,
    /// Held-out cross-file lines (0 skips the cross-file measures).
    #[arg(long, default_value_t = 100)]
    cross_file_tasks: usize,
    /// Benchmarks to decontaminate against (a directory with humaneval/ and mbpp/).
    #[arg(long)]
    benchmarks: Option<PathBuf>,
    /// Train nothing: write results.md, results.json and the charts from the runs already
    /// finished in --out (the grid's other flags select which), naming the runs still missing.
    #[arg(long)]
    report_only: bool,
}

fn parse_question(s: &str) -> std::result::Result<Question, String> {
    s.parse()
}

/// Runs `kiln experiment`.
pub fn run(a: ExperimentArgs) -> Result<()> {
    let opts = ExperimentOptions {
        out: a.out,
        sources: a.sources,
        seed: a.seed,
        seeds: a.seeds,
        questions: a.questions,
        arms: a.arms,
        minutes_per_arm: a.minutes_per_arm,
        steps: a.steps,
        budget_minutes: a.budget_minutes,
        max_source_mb: a.max_source_mb,
        vocab_size: a.vocab_size,
        seq_len: a.seq_len,
        eval_lines: a.eval_lines,
        cross_file_tasks: a.cross_file_tasks,
        benchmarks: a.benchmarks,
        report_only: a.report_only,
    };
    let terminal = Terminal::default();
    let outcome = kiln_experiment::run(&opts, &terminal)?;
    if let Some(b) = terminal.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
        b.finish_and_clear();
    }
    eprintln!(
        "wrote {}, {} and {} charts in {}",
        outcome.report.display(),
        outcome.json.display(),
        outcome.plots.len(),
        opts.out.join("plots").display()
    );
    Ok(())
}

/// The narrative on stderr and one bar over the grid's runs (its ETA from the runs done).
#[derive(Default)]
struct Terminal {
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
    label: std::sync::Mutex<String>,
}

impl ExperimentObserver for Terminal {
    fn say(&self, line: &str) {
        // A bar drawn on a terminal prints above itself; a hidden one (stderr not a terminal,
        // e.g. a log file) would drop the line.
        match self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(b) if !b.is_hidden() => b.println(line),
            _ => eprintln!("{line}"),
        }
    }

    fn jobs_planned(&self, total: usize) {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} run {pos}/{len} (ETA {eta})  {msg}")
                .expect("progress template is valid"),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(b);
    }

    fn job_started(&self, _index: usize, _total: usize, label: &str) {
        *self.label.lock().unwrap_or_else(|e| e.into_inner()) = label.to_string();
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            b.set_message(label.to_string());
        }
    }

    fn job_finished(&self, done: usize, _total: usize) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            b.set_position(done as u64);
        }
    }

    fn training_step(&self, step: usize, total_steps: usize, loss: f64) {
        let label = self.label.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            b.set_message(format!("{label}: step {step}/{total_steps}, loss {loss:.3}"));
        }
    }
}
