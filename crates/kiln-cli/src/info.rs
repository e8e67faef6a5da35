//! `kiln model info`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use kiln_model::{weights, Config, RopeScaling};
use serde_json::json;

/// `kiln model ...`
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Shape, parameter count, dtype and files of a model directory (reads headers only).
    Info {
        /// The model directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `kiln model` subcommand.
pub fn run(cmd: ModelCommand) -> Result<()> {
    let ModelCommand::Info { dir, json } = cmd;
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
    if json {
        let obj = json!({
            "dir": dir,
            "parameters": params,
            "dtype": cfg.torch_dtype.torch_name(),
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
    let attn = if cfg.num_key_value_heads == cfg.num_attention_heads { "MHA".to_string() } else { format!("GQA, {} KV heads", cfg.num_key_value_heads) };
    println!("model       {}", dir.display());
    println!("parameters  {} ({:.2}M)", params, params as f64 / 1e6);
    println!("dtype       {}", cfg.torch_dtype.torch_name());
    println!("layers      {} x (d={}, ffn={}, heads={} of {}, {attn})", cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.head_dim);
    println!("vocab       {} rows{}", cfg.vocab_size, tokenizer.as_ref().map(|t| format!(", tokenizer {} ids", t.id_count())).unwrap_or_else(|| ", no tokenizer.json".into()));
    println!("positions   {} (rope theta {}, scaling {rope})", cfg.max_position_embeddings, cfg.rope_theta);
    println!("weights     {} ({:.1} MB)", files.join(", "), bytes as f64 / 1e6);
    Ok(())
}
