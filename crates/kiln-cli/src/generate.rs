//! `kiln generate` and `kiln infill`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_infer::{prompt, Engine, GenerateParams, Generation, SamplingParams};
use kiln_model::WeightDType;
use serde_json::json;

/// Options shared by every command that loads a model and samples from it.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Model directory (config.json, model.safetensors or sharded, tokenizer.json) or a GGUF
    /// file (llama.cpp's format: Q4_K_M, Q8_0, F16, ...).
    #[arg(long)]
    pub model: PathBuf,
    /// A tokenizer (tokenizer.json or its folder) instead of the model's own; a GGUF file
    /// without tokenizer metadata needs one.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Compute dtype: f32, bf16 or f16 (default: the checkpoint's torch_dtype on a GPU, f32 on the CPU).
    #[arg(long)]
    pub dtype: Option<WeightDType>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// KV cache type of a GGUF model: f16 (default, as llama.cpp) or f32 (exact, twice the memory).
    #[arg(long)]
    pub cache_type: Option<kiln_model::KvType>,
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

/// `kiln complete`.
#[derive(Debug, Args)]
pub struct CompleteArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The repository (directory, git repository or archive).
    #[arg(long)]
    repo: PathBuf,
    /// The file to complete in, relative to the repository root.
    #[arg(long)]
    file: String,
    /// The cursor's line (1-based).
    #[arg(long)]
    line: usize,
    /// The cursor's column in characters (0-based; default: the end of the line).
    #[arg(long)]
    column: Option<usize>,
    #[command(flatten)]
    sample: SampleArgs,
}

/// Splits `text` at (line, column): line 1-based, column 0-based in characters (default: end of
/// the line). Errors name the position that is out of range.
fn split_at_cursor(text: &str, line: usize, column: Option<usize>) -> Result<(String, String)> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if line == 0 || line > lines.len().max(1) {
        bail!("--line {line}: the file has {} lines (lines count from 1)", lines.len());
    }
    let start: usize = lines[..line - 1].iter().map(|l| l.len()).sum();
    let this = lines.get(line - 1).copied().unwrap_or("");
    let body = this.strip_suffix('\n').unwrap_or(this);
    let body = body.strip_suffix('\r').unwrap_or(body);
    let chars = body.chars().count();
    let col = column.unwrap_or(chars);
    if col > chars {
        bail!("--column {col}: line {line} has {chars} characters");
    }
    let at = start + body.char_indices().nth(col).map(|(i, _)| i).unwrap_or(body.len());
    Ok((text[..at].to_string(), text[at..].to_string()))
}

/// Runs `kiln complete`: the middle at the cursor, with the files the current file imports
/// (dependency ordered, from the repository) in front, as `kiln serve --repo` builds it.
pub fn run_complete(args: CompleteArgs) -> Result<()> {
    let index = kiln_infer::repo::RepoIndex::load(&args.repo)?;
    let file = kiln_infer::repo::normalize_path(&args.file).map_err(|e| anyhow::anyhow!("--file {}: {e}", args.file))?;
    let Some(text) = index.text_of(&file) else {
        bail!(
            "--file {file}: not a kept source file of {} (paths are relative to the repository root; `kiln repo order` lists them)",
            args.repo.display()
        );
    };
    let (prefix, suffix) = split_at_cursor(text, args.line, args.column)?;
    let loaded = load(&args.model)?;
    let tok = &loaded.tokenizer;
    let max_pos = loaded.model.config().max_position_embeddings;
    let near = prompt::fim_ids(tok, &prefix, &suffix)?.len();
    let budget = max_pos.saturating_sub(near + args.sample.max_tokens.min(max_pos / 4) + 16);
    let context = if budget >= 16 { index.context_for(&file, budget, tok)? } else { Vec::new() };
    tracing::info!(context_files = context.len(), "repository context");
    let (ids, _) = prompt::repo_fim_ids(tok, &context, Some(&file), &prefix, &suffix)?;
    run(&loaded, ids, &args.sample)
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
    Ok(kiln_infer::LoadedModel::load_with_cache(&args.model, args.dtype, &device, args.tokenizer.as_deref(), args.cache_type)?)
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
        ..Default::default()
    })
}

fn run(loaded: &Loaded, prompt_ids: Vec<u32>, sample: &SampleArgs) -> Result<()> {
    let params = params(sample, &loaded.eos_ids)?;
    let generator = Engine::new(loaded.model.as_ref(), &loaded.tokenizer)?;
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

#[cfg(test)]
mod tests {
    use super::split_at_cursor;

    #[test]
    fn cursor_splits_by_line_and_character() {
        let text = "ab\ncdé\nf";
        assert_eq!(split_at_cursor(text, 1, Some(1)).unwrap(), ("a".into(), "b\ncdé\nf".into()));
        assert_eq!(split_at_cursor(text, 2, None).unwrap(), ("ab\ncdé".into(), "\nf".into()));
        assert_eq!(split_at_cursor(text, 2, Some(3)).unwrap(), ("ab\ncdé".into(), "\nf".into()));
        assert_eq!(split_at_cursor(text, 3, Some(0)).unwrap(), ("ab\ncdé\n".into(), "f".into()));
        assert!(split_at_cursor(text, 4, None).is_err());
        assert!(split_at_cursor(text, 2, Some(4)).is_err());
        assert!(split_at_cursor(text, 0, None).is_err());
    }
}
