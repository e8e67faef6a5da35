//! `kiln model info`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use kiln_model::{weights, Config, Llama, Preset, RopeScaling, WeightDType};
use serde_json::json;

/// `kiln model ...`
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Shape, parameter count, dtype and files of a model directory or a GGUF file (reads
    /// headers only).
    Info {
        /// The model directory or GGUF file.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a randomly initialised model of a preset shape (or of a config.json) in Hugging Face
    /// layout (config.json + safetensors, loadable by transformers), e.g. as a training starting
    /// point or for benchmarks.
    Init {
        /// tiny, small, deepseek-coder-1.3b, deepseek-coder-6.7b or deepseek-coder-33b.
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        preset: Option<Preset>,
        /// A Hugging Face config.json giving the shape instead of a preset.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A tokenizer.json (or a folder with tokenizer.json and tokenizer_config.json) to copy
        /// into the model folder, so that it is complete (`kiln generate`, `kiln quantize`).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Output directory (created; existing weights in it are replaced atomically).
        #[arg(long)]
        out: PathBuf,
        /// Weight dtype: f32, bf16 or f16.
        #[arg(long, default_value = "f32")]
        dtype: WeightDType,
        /// Seed of the normal(0, initializer_range) init.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Split weights into shards of at most this many MB (default: one file).
        #[arg(long)]
        max_shard_mb: Option<usize>,
    },
}

/// Runs a `kiln model` subcommand.
pub fn run(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Info { dir, json } => info(dir, json),
        ModelCommand::Init { preset, config, tokenizer, out, dtype, seed, max_shard_mb } => {
            let (cfg, name) = match (preset, config) {
                (Some(p), _) => (Config::preset(p), p.name().to_string()),
                (None, Some(c)) => (Config::from_file(&c)?, c.display().to_string()),
                (None, None) => bail!("give --preset NAME or --config config.json"),
            };
            let model = Llama::random(cfg, dtype, &candle_core::Device::Cpu, seed)?;
            model.save(&out, max_shard_mb.map(|mb| mb * 1_000_000))?;
            if let Some(t) = tokenizer {
                copy_tokenizer(&t, &out)?;
            }
            eprintln!(
                "wrote a random {name} model ({} parameters, {}) to {}",
                model.config().num_parameters(),
                dtype.torch_name(),
                out.display()
            );
            Ok(())
        }
    }
}

/// Copies a tokenizer (a tokenizer.json, or a folder holding one and its tokenizer_config.json)
/// into the model folder `out`.
fn copy_tokenizer(from: &Path, out: &Path) -> Result<()> {
    let (json, config) = if from.is_dir() {
        (from.join("tokenizer.json"), Some(from.join("tokenizer_config.json")).filter(|p| p.is_file()))
    } else {
        (from.to_path_buf(), None)
    };
    kiln_tokenizer::Tokenizer::from_file(&json).with_context(|| format!("--tokenizer {}", from.display()))?;
    for (src, name) in [(Some(json), "tokenizer.json"), (config, "tokenizer_config.json")] {
        if let Some(src) = src {
            let bytes = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
            kiln_base::fs::write_atomic(&out.join(name), &bytes)?;
        }
    }
    Ok(())
}

fn info(dir: PathBuf, json: bool) -> Result<()> {
    if kiln_infer::loaded::is_gguf(&dir) {
        return gguf_info(dir, json);
    }
    let cfg = Config::from_file(&dir.join("config.json"))?;
    let files = weights::weight_files(&dir)?;
    let bytes: u64 = files.iter().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum();
    let tokenizer = kiln_tokenizer::Tokenizer::from_dir(&dir).ok();
    let rope = match cfg.rope_scaling {
        RopeScaling::None => "none".to_string(),
        RopeScaling::Linear { factor } => format!("linear x{factor}"),
    };
    let files: Vec<String> = files.iter().map(|f| f.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    let params = cfg.num_parameters();
    // What `--model DIR` computes in on the CPU when no --dtype is given.
    let cpu_compute = kiln_infer::loaded::default_compute_dtype(&cfg, &candle_core::Device::Cpu).unwrap_or(cfg.torch_dtype);
    if json {
        let obj = json!({
            "dir": dir,
            "parameters": params,
            "dtype": cfg.torch_dtype.torch_name(),
            "cpu_compute_dtype": cpu_compute.torch_name(),
            "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size,
            "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.num_key_value_heads,
            "head_dim": cfg.head_dim,
            "max_position_embeddings": cfg.max_position_embeddings,
            "rope_theta": cfg.rope_theta,
            "rope_scaling": rope,
            "tie_word_embeddings": cfg.tie_word_embeddings,
            "weight_files": files,
            "weight_bytes": bytes,
            "tokenizer_ids": tokenizer.as_ref().map(|t| t.id_count()),
        });
        println!("{}", serde_json::to_string_pretty(&obj)?);
        return Ok(());
    }
    let attn = if cfg.num_key_value_heads == cfg.num_attention_heads {
        "MHA".to_string()
    } else {
        format!("GQA, {} KV heads", cfg.num_key_value_heads)
    };
    println!("model       {}", dir.display());
    println!("parameters  {} ({:.2}M)", params, params as f64 / 1e6);
    if cpu_compute == cfg.torch_dtype {
        println!("dtype       {}", cfg.torch_dtype.torch_name());
    } else {
        println!(
            "dtype       {} (computed in {} on the CPU: faster there; --dtype {} computes in the stored type)",
            cfg.torch_dtype.torch_name(),
            cpu_compute.torch_name(),
            cfg.torch_dtype.torch_name()
        );
    }
    println!(
        "layers      {} x (d={}, ffn={}, heads={} of {}, {attn})",
        cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.head_dim
    );
    println!(
        "vocab       {} rows{}",
        cfg.vocab_size,
        tokenizer.as_ref().map(|t| format!(", tokenizer {} ids", t.id_count())).unwrap_or_else(|| ", no tokenizer.json".into())
    );
    println!("positions   {} (rope theta {}, scaling {rope})", cfg.max_position_embeddings, cfg.rope_theta);
    println!("weights     {} ({:.1} MB)", files.join(", "), bytes as f64 / 1e6);
    Ok(())
}

/// `kiln model info FILE.gguf`: the shape from the file's `llama.*` keys, the tensor types.
fn gguf_info(path: PathBuf, json: bool) -> Result<()> {
    let file = kiln_gguf::GgufFile::open(&path)?;
    let cfg = kiln_model::gguf_llama::config_from_gguf(&file)?;
    let mut types: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
    for t in file.tensor_infos() {
        let e = types.entry(t.type_name().unwrap_or("unknown").to_string()).or_default();
        e.0 += 1;
        e.1 += t.byte_range().map_or(0, |r| r.len()) as u64;
    }
    let rope = match cfg.rope_scaling {
        RopeScaling::None => "none".to_string(),
        RopeScaling::Linear { factor } => format!("linear x{factor}"),
    };
    let bytes = std::fs::metadata(&path)?.len();
    let tokenizer_ids = file.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()).map(|a| a.len());
    let file_type = file.get("general.file_type").and_then(|v| v.as_int());
    if json {
        let obj = json!({
            "file": path, "format": "gguf", "gguf_version": file.version(), "file_type": file_type,
            "parameters": cfg.num_parameters(), "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": cfg.num_key_value_heads,
            "head_dim": cfg.head_dim, "max_position_embeddings": cfg.max_position_embeddings, "rope_theta": cfg.rope_theta,
            "rope_scaling": rope, "tie_word_embeddings": cfg.tie_word_embeddings, "bytes": bytes,
            "tensor_types": types.iter().map(|(t, (n, b))| (t.clone(), json!({"tensors": n, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
            "tokenizer_ids": tokenizer_ids,
        });
        println!("{}", serde_json::to_string_pretty(&obj)?);
        return Ok(());
    }
    println!("{} (GGUF v{}, {:.2} GB)", path.display(), file.version(), bytes as f64 / 1e9);
    println!(
        "  llama: {:.1}M parameters, {} layers, width {}, ffn {}, {} heads ({} KV), head {}, vocab {}, {} positions, RoPE base {} scaling {rope}{}",
        cfg.num_parameters() as f64 / 1e6,
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim,
        cfg.vocab_size,
        cfg.max_position_embeddings,
        cfg.rope_theta,
        if cfg.tie_word_embeddings { ", tied head" } else { "" }
    );
    for (t, (n, b)) in &types {
        println!("  {t:>5}: {n:>4} tensors, {:.1} MB", *b as f64 / 1e6);
    }
    match tokenizer_ids {
        Some(n) => println!("  tokenizer: {n} tokens (tokenizer.ggml.*)"),
        None => println!("  tokenizer: none in the file (give --tokenizer to generate)"),
    }
    println!("  runs on: the CPU network over GGML weights (kiln-model cpu_llama), weights memory-mapped");
    Ok(())
}
