//! The `kiln` binary: parses arguments, resolves them into a checked plan, and wires the library
//! crates together. No model or data logic lives here.

mod bench;
mod corpus;
mod data;
mod eval;
mod eval_bpb;
mod eval_repo;
mod experiment;
mod generate;
mod info;
mod quantize;
mod quickstart;
mod repo;
mod serve;
mod tokenizer;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// kiln: DeepSeek-Coder in Rust — data, tokenizer, training, serving and evaluation of code models.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, propagate_version = true)]
struct Cli {
    /// Log filter for diagnostics on stderr (e.g. `info`, `kiln_model=debug`); RUST_LOG also works.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Complete a prompt with a model directory (Hugging Face layout).
    Generate(generate::GenerateArgs),
    /// Fill in the middle between a prefix and a suffix (base models only).
    Infill(generate::InfillArgs),
    /// Complete at a cursor in a repository's file, with the files it imports as context.
    Complete(generate::CompleteArgs),
    /// Inspect a model directory.
    Model {
        #[command(subcommand)]
        command: info::ModelCommand,
    },
    /// Look at a repository as DeepSeek-Coder does: files ordered after the files they import.
    Repo {
        #[command(subcommand)]
        command: repo::RepoCommand,
    },
    /// Build, summarise and inspect a repository-level training corpus (Parquet shards).
    Corpus {
        #[command(subcommand)]
        command: corpus::CorpusCommand,
    },
    /// Train, import (GGUF), and use byte-level BPE tokenizers in DeepSeek-Coder's layout.
    Tokenizer {
        #[command(subcommand)]
        command: tokenizer::TokenizerCommand,
    },
    /// Pack a corpus into training windows (FIM, Megatron .bin/.idx) and inspect them.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Serve completion and infilling over HTTP (OpenAI /v1/completions with suffix, llama.cpp /infill).
    Serve(serve::ServeArgs),
    /// Train a model (from scratch with a preset, or continue one) on packed data; resumable.
    Train(train::TrainArgs),
    /// Evaluate on benchmarks with DeepSeek-Coder's protocols (generated code runs sandboxed).
    Eval {
        #[command(subcommand)]
        command: eval::EvalCommand,
    },
    /// The whole recipe in one command on code found on this machine: corpus, tokenizer, FIM
    /// packing, training from scratch, evaluation, report; resumable.
    Quickstart(quickstart::QuickstartArgs),
    /// The paper's ablations in miniature: a grid of quickstart variants (FIM rate and layout,
    /// file order, model size, LR schedule, peak LR) x seeds, trained and scored on the same
    /// held-out repositories; results.md, results.json and charts; resumable.
    Experiment(experiment::ExperimentArgs),
    /// Write a model directory as a GGUF file (f32, f16, q8_0, q4_0, q4_k_m) for llama.cpp,
    /// Ollama and `kiln --model FILE.gguf`.
    Quantize(quantize::QuantizeArgs),
    /// Measure speed (prints tokens/s; see benches/ for comparisons with other tools).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

/// Keeps large tensor buffers in the heap instead of fresh mmaps (glibc only).
///
/// glibc serves allocations above its mmap threshold (dynamic, 128 KiB at start) with a new
/// mapping and returns it on free, so every activation and gradient buffer of a training step
/// came back as fresh pages the kernel had to fault in and zero: a quarter of a step's time
/// (`kiln bench train`: 591 → 773 tokens/s with this). Buffers up to 32 MiB (glibc's maximum for
/// the threshold) are now reused from the heap, and freed memory is kept for the next step
/// instead of being trimmed. The cost is a resident size that stays at its peak.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread is spawned.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let filter = std::env::var("RUST_LOG").ok().and_then(|v| EnvFilter::try_new(v).ok()).unwrap_or_else(|| EnvFilter::new(&cli.log));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let result = match cli.command {
        Command::Generate(args) => generate::run_generate(args),
        Command::Infill(args) => generate::run_infill(args),
        Command::Complete(args) => generate::run_complete(args),
        Command::Model { command } => info::run(command),
        Command::Repo { command } => repo::run(command),
        Command::Corpus { command } => corpus::run(command),
        Command::Tokenizer { command } => tokenizer::run(command),
        Command::Data { command } => data::run(command),
        Command::Serve(args) => serve::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval { command } => eval::run(command),
        Command::Quickstart(args) => quickstart::run(args),
        Command::Experiment(args) => experiment::run(args),
        Command::Bench { command } => bench::run(command),
        Command::Quantize(a) => quantize::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
