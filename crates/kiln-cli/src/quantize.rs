//! `kiln quantize`: a model directory (kiln's or a released Hugging Face checkpoint) to a GGUF
//! file that llama.cpp, Ollama and `kiln --model FILE.gguf` run.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use kiln_model::gguf_export::ExportType;

/// `kiln quantize MODEL_DIR --type q4_k_m --out FILE.gguf`
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The model directory (config.json, safetensors, tokenizer.json).
    dir: PathBuf,
    /// f32, f16, q8_0, q4_0 or q4_k_m (llama.cpp's mix: Q4_K with Q6_K for the head and parts
    /// of attn_v/ffn_down).
    #[arg(long = "type", value_name = "TYPE")]
    ty: String,
    /// The GGUF file to write (atomically: a failure leaves no partial file).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `kiln quantize`.
pub fn run(a: QuantizeArgs) -> Result<()> {
    let Some(ty) = ExportType::parse(&a.ty) else {
        bail!("--type {}: unknown; use f32, f16, q8_0, q4_0 or q4_k_m", a.ty);
    };
    let report = kiln_infer::loaded::quantize_dir(&a.dir, ty, &a.out)?;
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for t in &report.tensors {
        *counts.entry(t.ty.name().to_string()).or_default() += 1;
        if let Some(wanted) = t.fallback_from {
            eprintln!(
                "  {}: {wanted} needs rows of a multiple of {} values, this one has {}: written as {}",
                t.name,
                wanted.block_size(),
                t.dims[0],
                t.ty
            );
        }
    }
    let mix: Vec<String> = counts.iter().map(|(t, n)| format!("{n} {t}")).collect();
    eprintln!(
        "wrote {} ({}, {:.1} MB): {} tensors ({})",
        a.out.display(),
        ty.name(),
        report.bytes as f64 / 1e6,
        report.tensors.len(),
        mix.join(", ")
    );
    Ok(())
}
