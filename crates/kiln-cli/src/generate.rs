//! `kiln generate` and `kiln infill`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_infer::{prompt, GenerateParams, Generation, Generator, SamplingParams};
use kiln_model::WeightDType;
use serde_json::json;

/// Options shared by every command that loads a model and samples from it.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Model directory: config.json, model.safetensors (or sharded), tokenizer.json.
    #[arg(long)]
    pub model: PathBuf,
    /// Compute dtype: f32, bf16 or f16 (default: the checkpoint's torch_dtype).
    #[arg(long)]
    pub dtype: Option<WeightDType>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Sampling and stopping options.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Most new tokens to generate.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// 0 is greedy (the default: reproducible code completion); try 0.2-0.8 for variety.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample only among the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling: keep the most likely tokens up to this total probability.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Penalty > 1 discourages repeating tokens already present.
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when this text appears (repeatable); the text is cut before it.
    #[arg(long)]
    pub stop: Vec<String>,
    /// Keep generating past EOS (for benchmarks).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Print one JSON object (prompt ids, generated ids, text, finish reason, timings) instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

/// `kiln generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt text.
    #[arg(long, conflicts_with = "prompt_file", required_unless_present = "prompt_file")]
    prompt: Option<String>,
    /// Read the prompt from this file.
    #[arg(long)]
    prompt_file: Option<PathBuf>,
    #[command(flatten)]
    sample: SampleArgs,
}

/// `kiln infill`.
#[derive(Debug, Args)]
pub struct InfillArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// File holding the code before the hole.
    #[arg(long, conflicts_with = "prefix", required_unless_present = "prefix")]
    prefix_file: Option<PathBuf>,
    /// The code before the hole, inline.
    #[arg(long)]
    prefix: Option<String>,
    /// File holding the code after the hole.
    #[arg(long, conflicts_with = "suffix", required_unless_present = "suffix")]
    suffix_file: Option<PathBuf>,
    /// The code after the hole, inline.
    #[arg(long)]
    suffix: Option<String>,
    #[command(flatten)]
    sample: SampleArgs,
}

fn read_text(inline: Option<String>, file: Option<&Path>, what: &str) -> Result<String> {
    match (inline, file) {
        (Some(t), _) => Ok(t),
        (None, Some(p)) => std::fs::read_to_string(p).with_context(|| format!("reading the {what} file {}", p.display())),
        (None, None) => bail!("no {what} given"),
    }
}

/// A model and its tokenizer, loaded after every path has been checked.
pub type Loaded = kiln_infer::LoadedModel;

/// Loads a model directory (see [`kiln_infer::LoadedModel::load`]).
pub fn load(args: &ModelArgs) -> Result<Loaded> {
    let device = kiln_model::device(&args.device)?;
    Ok(kiln_infer::LoadedModel::load(&args.model, args.dtype, &device)?)
}

fn params(sample: &SampleArgs, eos_ids: &[u32]) -> Result<GenerateParams> {
    let sampling = SamplingParams {
        temperature: sample.temperature,
        top_k: sample.top_k,
        top_p: sample.top_p,
        repetition_penalty: sample.repetition_penalty,
        seed: sample.seed,
    };
    sampling.validate().map_err(|m| anyhow::anyhow!("--{}", m.replace('_', "-")))?;
    Ok(GenerateParams {
        max_new_tokens: sample.max_tokens,
        sampling,
        eos_ids: if sample.ignore_eos { vec![] } else { eos_ids.to_vec() },
        stop: sample.stop.clone(),
    })
}

fn run(loaded: &Loaded, prompt_ids: Vec<u32>, sample: &SampleArgs) -> Result<()> {
    let params = params(sample, &loaded.eos_ids)?;
    let generator = Generator::new(&loaded.model, &loaded.tokenizer)?;
    let generation: Generation = if sample.json {
        generator.generate(&prompt_ids, &params, |_| {})?
    } else {
        let mut out = std::io::stdout().lock();
        let g = generator.generate(&prompt_ids, &params, |piece| {
            // A closed pipe (e.g. `| head`) must not abort generation with a panic.
            let _ = out.write_all(piece.as_bytes()).and_then(|_| out.flush());
        })?;
        let _ = writeln!(out);
        g
    };
    if sample.json {
        let obj = json!({
            "prompt_ids": generation.prompt_ids,
            "ids": generation.ids,
            "text": generation.text,
            "finish_reason": generation.finish_reason,
            "timings": generation.timings,
        });
        println!("{obj}");
    } else {
        let t = &generation.timings;
        tracing::info!(
            prompt_tokens = t.prompt_tokens,
            new_tokens = generation.ids.len(),
            prefill_ms = format!("{:.1}", t.prefill_ms),
            decode_tok_s = format!("{:.1}", t.decode_tokens_per_s()),
            finish = ?generation.finish_reason,
            "done"
        );
    }
    Ok(())
}

/// Runs `kiln generate`.
pub fn run_generate(args: GenerateArgs) -> Result<()> {
    let text = read_text(args.prompt, args.prompt_file.as_deref(), "prompt")?;
    let loaded = load(&args.model)?;
    let ids = prompt::completion_ids(&loaded.tokenizer, &text)?;
    run(&loaded, ids, &args.sample)
}

/// Runs `kiln infill`.
pub fn run_infill(args: InfillArgs) -> Result<()> {
    let prefix = read_text(args.prefix, args.prefix_file.as_deref(), "prefix")?;
    let suffix = read_text(args.suffix, args.suffix_file.as_deref(), "suffix")?;
    let loaded = load(&args.model)?;
    let ids = prompt::fim_ids(&loaded.tokenizer, &prefix, &suffix)?;
    run(&loaded, ids, &args.sample)
}
