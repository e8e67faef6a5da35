//! `kiln eval bpb`: bits per byte of a model on source files (llama.cpp's `llama-perplexity -f`,
//! on code and per byte, so models with different vocabularies and plain compressors compare):
//! the way to check what quantizing a model costs (`kiln quantize`, then the same files).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use crate::generate::{load, ModelArgs};

/// Files larger than this are skipped when a directory is walked (generated or vendored data).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Options of `kiln eval bpb`.
#[derive(Debug, Args)]
pub struct BpbArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Source files or directories (walked for files of the languages kiln knows, hidden
    /// directories skipped, files over 1 MB skipped), in sorted order.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Tokens per scoring window (long files are scored in windows overlapping by a quarter).
    #[arg(long, default_value_t = 1024)]
    window: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Every file under `paths` (a file given by name is taken whatever its language).
fn source_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_file() {
            files.push(p.clone());
        } else if p.is_dir() {
            walk(p, &mut files).with_context(|| format!("reading the directory {}", p.display()))?;
        } else {
            bail!("{}: no such file or directory", p.display());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let ty = entry.file_type()?;
        if ty.is_dir() && !hidden {
            walk(&path, out)?;
        } else if ty.is_file()
            && !hidden
            && entry.metadata()?.len() <= MAX_FILE_BYTES
            && kiln_repo::lang::detect(&path.to_string_lossy()).is_some()
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Runs `kiln eval bpb`.
pub fn run(a: BpbArgs) -> Result<()> {
    let files = source_files(&a.paths)?;
    if files.is_empty() {
        bail!(
            "no source files under {:?} (kiln scores files of the languages it knows; name a file to score it whatever its extension)",
            a.paths
        );
    }
    let loaded = load(&a.model)?;
    let mut total = kiln_infer::TextLoss::default();
    let mut scored = 0usize;
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            tracing::warn!(file = %f.display(), "not UTF-8 text: skipped");
            continue;
        };
        if text.is_empty() {
            continue;
        }
        let loss = kiln_infer::text_loss(loaded.model.as_ref(), &loaded.tokenizer, &text, a.window)
            .with_context(|| format!("scoring {}", f.display()))?;
        tracing::debug!(file = %f.display(), bits_per_byte = loss.bits_per_byte(), "scored");
        total.add(loss);
        scored += 1;
    }
    if a.json {
        let obj = json!({
            "model": a.model.model, "files": scored, "bytes": total.bytes, "tokens": total.tokens,
            "nats_per_token": total.per_token(), "bits_per_byte": total.bits_per_byte(), "window": a.window,
        });
        println!("{obj}");
    } else {
        println!(
            "{}: {scored} files, {} bytes, {} tokens: {:.4} nats per token, {:.4} bits per byte",
            a.model.model.display(),
            total.bytes,
            total.tokens,
            total.per_token(),
            total.bits_per_byte()
        );
    }
    Ok(())
}
