//! `kiln quickstart`: the flags, progress bars on the terminal, and the samples printed at the
//! end. The pipeline itself (sources, corpus, tokenizer, pack, training to the time budget,
//! held-out evaluation, report) is kiln-quickstart's.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kiln_quickstart::{Observer, Options, Outcome, Stage};

/// `kiln quickstart ...`
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Output folder (corpus/, tokenizer/, data/, train/, model/, report.md, quickstart.log).
    /// Rerunning with the same folder resumes.
    #[arg(long, default_value = "kiln-quickstart")]
    out: PathBuf,
    /// Time budget of the whole command, in minutes; training gets what the other stages leave.
    #[arg(long, default_value_t = 15.0)]
    minutes: f64,
    /// Repositories to use instead of the cargo registry and the python3 standard library:
    /// folders, git repositories or archives (a folder of projects is read as one repository each).
    #[arg(long, num_args = 1..)]
    sources: Vec<PathBuf>,
    /// Seed of the source selection, FIM draws, train/val split, weights and window order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train exactly this many optimizer steps instead of filling the time budget.
    #[arg(long)]
    steps: Option<usize>,
    /// Most megabytes of source code read (repositories are drawn by the seed up to this).
    #[arg(long, default_value_t = 40)]
    max_source_mb: u64,
    /// BPE vocabulary (default: sized for the corpus, 2,048 to 8,192).
    #[arg(long)]
    vocab_size: Option<usize>,
    /// Tokens per training window.
    #[arg(long, default_value_t = 512)]
    seq_len: usize,
    /// Benchmarks to decontaminate against: a directory with humaneval/ and mbpp/ (default: the
    /// HumanEval and MBPP built into kiln).
    #[arg(long)]
    benchmarks: Option<PathBuf>,
    /// Held-out lines for the single-line infilling exact match.
    #[arg(long, default_value_t = 100)]
    eval_lines: usize,
    /// Held-out lines for the repository-level comparison (with vs without the files their
    /// file imports; 0 skips it).
    #[arg(long, default_value_t = 100)]
    repo_tasks: usize,
    /// LR decay after warmup: wsd, linear, cosine, or step (also `deepseek`: the paper's x
    /// sqrt(0.1) at 80% and 90%) (default: the small-budget recipe's).
    #[arg(long, value_parser = parse_schedule)]
    schedule: Option<kiln_train::ScheduleKind>,
    /// Peak learning rate (default: the small-budget recipe's).
    #[arg(long)]
    lr: Option<f64>,
    /// Stop after this stage (corpus, tokenizer, pack, train, eval).
    #[arg(long, value_parser = ["corpus", "tokenizer", "pack", "train", "eval"])]
    until: Option<String>,
}

impl QuickstartArgs {
    fn options(self) -> Result<Options> {
        let recipe = kiln_quickstart::Recipe::default();
        let until = self.until.map(|s| s.parse::<Stage>()).transpose().map_err(anyhow::Error::msg)?;
        Ok(Options {
            out: self.out,
            minutes: self.minutes,
            sources: self.sources,
            seed: self.seed,
            steps: self.steps,
            max_source_mb: self.max_source_mb,
            vocab_size: self.vocab_size,
            seq_len: self.seq_len,
            benchmarks: self.benchmarks,
            eval_lines: self.eval_lines,
            repo_tasks: self.repo_tasks,
            until,
            recipe: kiln_quickstart::Recipe {
                schedule: self.schedule.unwrap_or(recipe.schedule),
                lr: self.lr.unwrap_or(recipe.lr),
                ..recipe
            },
        })
    }
}

fn parse_schedule(s: &str) -> std::result::Result<kiln_train::ScheduleKind, String> {
    s.parse()
}

/// Runs `kiln quickstart`.
pub fn run(args: QuickstartArgs) -> Result<()> {
    let opts = args.options()?;
    let outcome = kiln_quickstart::run(&opts, &Terminal::default())?;
    print_samples(&outcome);
    Ok(())
}

/// The narrative on stderr, and a progress bar for the corpus build and for training.
#[derive(Default)]
struct Terminal {
    corpus: std::sync::Mutex<Option<indicatif::ProgressBar>>,
    train: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

impl Terminal {
    fn with_bar(slot: &std::sync::Mutex<Option<indicatif::ProgressBar>>, f: impl FnOnce(&indicatif::ProgressBar)) {
        if let Some(b) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            f(b);
        }
    }

    fn finish(slot: &std::sync::Mutex<Option<indicatif::ProgressBar>>) {
        if let Some(b) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

impl Observer for Terminal {
    fn say(&self, line: &str) {
        eprintln!("{line}");
    }

    fn corpus_started(&self, repositories: u64) {
        let b = bar(repositories, "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} repositories");
        *self.corpus.lock().unwrap_or_else(|e| e.into_inner()) = Some(b);
    }

    fn corpus_repository_done(&self, _done: u64, _total: u64) {
        Self::with_bar(&self.corpus, |b| b.inc(1));
    }

    fn corpus_finished(&self) {
        Self::finish(&self.corpus);
    }

    fn training_started(&self, step: usize, total_steps: usize) {
        let b = bar(total_steps as u64, "{spinner} [{elapsed_precise}] {bar:30} step {pos}/{len} (ETA {eta})  {msg}");
        b.set_position(step as u64);
        *self.train.lock().unwrap_or_else(|e| e.into_inner()) = Some(b);
    }

    fn training_step(&self, step: usize, total_steps: usize, loss: f64, tokens_per_s: f64) {
        Self::with_bar(&self.train, |b| {
            b.set_length(total_steps as u64);
            b.set_position(step as u64);
            b.set_message(format!("loss {loss:.4}  {tokens_per_s:.0} tok/s"));
        });
    }

    fn training_eval(&self, step: usize, val_loss: f64) {
        // A hidden bar (stderr not a terminal) would drop the line.
        let line = format!("  step {step:>6}  val loss {val_loss:.4}");
        let shown = self.train.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|b| !b.is_hidden());
        if shown {
            Self::with_bar(&self.train, |b| b.println(&line));
        } else {
            eprintln!("{line}");
        }
    }

    fn training_finished(&self) {
        Self::finish(&self.train);
    }
}

fn bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(len);
    b.set_style(indicatif::ProgressStyle::with_template(template).expect("progress template is valid"));
    b.enable_steady_tick(std::time::Duration::from_millis(200));
    b
}

/// The sample completion and infill, and how to serve the model (after a full run).
fn print_samples(outcome: &Outcome) {
    let (Some(r), Some(model)) = (&outcome.results, &outcome.model) else { return };
    // The model's text in bold on a terminal, between markers otherwise.
    let (on, off) = if std::io::IsTerminal::is_terminal(&std::io::stdout()) { ("\x1b[1m", "\x1b[0m") } else { ("<<", ">>") };
    if let Some(s) = &r.sample_completion {
        let output = kiln_quickstart::evaluate::first_lines(&s.output, 12);
        println!(
            "\n--- a completion by the new model, held-out file {} (its text in {on}bold{off}) ---\n{}{on}{}{off}",
            s.file, s.prompt, output
        );
    }
    if let Some(s) = &r.sample_infill {
        println!("\n--- an infill by the new model, held-out file {} ---\n{}{on}{}{off}{}", s.file, s.prompt, s.output, s.suffix);
    }
    println!("\nServe it (OpenAI /v1/completions with `suffix` for FIM, llama.cpp /infill):\n  kiln serve --model {}", model.display());
}
