//! `kiln eval bpb`: bits per byte of a model on source files (llama.cpp's `llama-perplexity -f`,
//! on code and per byte, so models with different vocabularies and plain compressors compare):
//! the way to check what quantizing a model costs (`kiln quantize`, then the same files).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use crate::generate::{load, ModelArgs};

/// Options of `kiln eval bpb`.
#[derive(Debug, Args)]
pub struct BpbArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Source files (scored whatever their extension), or directories, read as kiln reads a
    /// repository (files of the languages kiln knows; .gitignore,
    /// vendored, generated and minified files and files over 1 MiB left out) with hidden files and
    /// directories skipped too.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Tokens per scoring window (long files are scored in windows overlapping by half).
    #[arg(long, default_value_t = 1024)]
    window: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The texts to score, as (name, text), in order: each path's files sorted by path.
fn source_texts(paths: &[PathBuf]) -> Result<Vec<(String, String)>> {
    let mut texts = Vec::new();
    for p in paths {
        if !p.exists() {
            bail!("{}: no such file or directory", p.display());
        }
        if p.is_file() {
            match std::fs::read_to_string(p) {
                Ok(text) => texts.push((p.display().to_string(), text)),
                Err(_) => tracing::warn!(file = %p.display(), "not UTF-8 text: skipped"),
            }
            continue;
        }
        let (repo, _) = kiln_repo::ingest::ingest_path(p, &kiln_repo::ingest::IngestOptions::default())
            .with_context(|| format!("reading the source files of {}", p.display()))?;
        let hidden = |path: &str| path.split('/').any(|c| c.starts_with('.'));
        texts.extend(repo.files.into_iter().filter(|f| !hidden(&f.path)).map(|f| (format!("{}/{}", p.display(), f.path), f.text)));
    }
    Ok(texts)
}

/// Runs `kiln eval bpb`.
pub fn run(a: BpbArgs) -> Result<()> {
    let texts = source_texts(&a.paths)?;
    if texts.iter().all(|(_, t)| t.is_empty()) {
        bail!(
            "no source text under {:?} (kiln scores files of the languages it knows; name a file to score it whatever its extension)",
            a.paths
        );
    }
    let loaded = load(&a.model)?;
    let mut total = kiln_infer::TextLoss::default();
    let mut scored = 0usize;
    for (name, text) in texts.iter().filter(|(_, t)| !t.is_empty()) {
        let loss =
            kiln_infer::text_loss(loaded.model.as_ref(), &loaded.tokenizer, text, a.window).with_context(|| format!("scoring {name}"))?;
        tracing::debug!(file = %name, bits_per_byte = loss.bits_per_byte(), "scored");
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
