//! `kiln repo order` and `kiln repo context`: a repository's dependency order, as the corpus
//! builder and the completion server see it.

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use kiln_repo::context::build_context;
use kiln_repo::graph::{build_graph, order};
use kiln_repo::ingest::{ingest_path, IngestOptions, IngestSummary};
use kiln_repo::Repo;
use serde_json::json;

/// `kiln repo ...`
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Components of the import graph and each one's file order (DeepSeek-Coder Algorithm 1).
    Order {
        #[command(flatten)]
        source: SourceArgs,
        /// Seed of the random tie-break between files of equal in-degree.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print JSON (components, edges, external imports, skip summary).
        #[arg(long)]
        json: bool,
    },
    /// The dependency-ordered context that would precede FILE: the files it imports, directly or
    /// not, each after its own imports, with path headers.
    Context {
        #[command(flatten)]
        source: SourceArgs,
        /// The file, as a path relative to the repository root.
        #[arg(long)]
        file: String,
        /// Token budget; the farthest dependencies are dropped first.
        #[arg(long)]
        max_tokens: Option<usize>,
        /// Count tokens with this tokenizer (a tokenizer.json or a model directory); without it a
        /// token is estimated as 4 bytes.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Print JSON (files kept, files dropped, text).
        #[arg(long)]
        json: bool,
    },
}

/// Where the repository comes from and what to skip.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// A directory, a git repository (bare or not; HEAD is read), or a .tar/.tar.gz/.zip archive.
    path: PathBuf,
    /// Skip files larger than this many KiB.
    #[arg(long, default_value_t = 1024)]
    max_file_kb: u64,
}

fn load(source: &SourceArgs) -> Result<(Repo, IngestSummary)> {
    let opts = IngestOptions { max_file_bytes: source.max_file_kb * 1024, ..IngestOptions::default() };
    let (repo, summary) = ingest_path(&source.path, &opts)?;
    tracing::info!(files = summary.files, bytes = summary.bytes, skipped = ?summary.skipped, "ingested {}", source.path.display());
    Ok((repo, summary))
}

/// Runs a `kiln repo` subcommand.
pub fn run(cmd: RepoCommand) -> Result<()> {
    match cmd {
        RepoCommand::Order { source, seed, json } => {
            let (repo, summary) = load(&source)?;
            let graph = build_graph(&repo);
            let components = order(&graph, seed);
            if json {
                let comps: Vec<_> = components.iter().map(|c| c.iter().map(|&i| repo.files[i].path.as_str()).collect::<Vec<_>>()).collect();
                let edges: Vec<_> = graph
                    .edges
                    .iter()
                    .map(|e| json!({"from": repo.files[e.from].path, "to": repo.files[e.to].path, "import": e.import}))
                    .collect();
                let external: serde_json::Map<String, serde_json::Value> = graph
                    .external
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(i, v)| (repo.files[i].path.clone(), json!(v)))
                    .collect();
                println!(
                    "{}",
                    json!({"repo": repo.name, "files": repo.files.len(), "components": comps, "edges": edges, "external": external, "ingest": summary})
                );
                return Ok(());
            }
            let multi = components.iter().filter(|c| c.len() > 1).count();
            println!(
                "{}: {} files, {} import edges, {} components ({} with more than one file)",
                repo.name,
                repo.files.len(),
                graph.edges.len(),
                components.len(),
                multi
            );
            for (n, comp) in components.iter().enumerate() {
                println!("component {} ({} files)", n + 1, comp.len());
                for &i in comp {
                    let deps: Vec<&str> = graph.edges.iter().filter(|e| e.from == i).map(|e| repo.files[e.to].path.as_str()).collect();
                    if deps.is_empty() {
                        println!("  {}", repo.files[i].path);
                    } else {
                        println!("  {}  <- {}", repo.files[i].path, deps.join(", "));
                    }
                }
            }
            Ok(())
        }
        RepoCommand::Context { source, file, max_tokens, tokenizer, json } => {
            let (repo, _) = load(&source)?;
            let rel = file.trim_start_matches("./").replace('\\', "/");
            let Some(idx) = repo.files.iter().position(|f| f.path == rel) else {
                bail!(
                    "--file {file}: not a kept source file of {} (paths are relative to the repository root; `kiln repo order` lists them)",
                    source.path.display()
                );
            };
            let tok = match &tokenizer {
                Some(p) if p.is_dir() => Some(kiln_tokenizer::Tokenizer::from_dir(p)?),
                Some(p) => Some(kiln_tokenizer::Tokenizer::from_file(p).with_context(|| format!("--tokenizer {}", p.display()))?),
                None => None,
            };
            let count = |s: &str| -> usize {
                match &tok {
                    Some(t) => t.encode_raw(s).map(|ids| ids.len()).unwrap_or(s.len() / 4),
                    None => s.len().div_ceil(4),
                }
            };
            let graph = build_graph(&repo);
            let ctx = build_context(&repo, &graph, idx, max_tokens, &count);
            if json {
                let names = |v: &[usize]| v.iter().map(|&i| repo.files[i].path.clone()).collect::<Vec<_>>();
                println!(
                    "{}",
                    json!({"file": rel, "files": names(&ctx.files), "dropped": names(&ctx.dropped), "tokens": count(&ctx.text), "text": ctx.text})
                );
            } else {
                print!("{}", ctx.text);
                if !ctx.dropped.is_empty() {
                    tracing::warn!(dropped = ctx.dropped.len(), "context cut to the token budget");
                }
            }
            Ok(())
        }
    }
}
