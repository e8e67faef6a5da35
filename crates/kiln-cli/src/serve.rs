//! `kiln serve`: the HTTP server (kiln-serve) over one model directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::generate::{load, ModelArgs};

/// `kiln serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on (loopback by default: pass 0.0.0.0 to serve a network).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the chosen one is logged).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// A repository (directory, git repository or archive) indexed at start: requests naming a
    /// `file` in it get the files that file imports, dependency ordered, before the prompt.
    #[arg(long)]
    repo: Option<PathBuf>,
    /// File of API keys, one per line; requests must then send `Authorization: Bearer <key>`.
    #[arg(long)]
    api_key_file: Option<PathBuf>,
    /// Generations running at once (each has its own KV cache).
    #[arg(long, default_value_t = 1)]
    max_concurrency: usize,
    /// Requests allowed to wait for a slot; more get 429.
    #[arg(long, default_value_t = 64)]
    max_queue: usize,
    /// Shortest shared token prefix reused from a slot's KV cache (shorter ones are processed again).
    #[arg(long, default_value_t = 32)]
    cache_min_tokens: usize,
    /// Model name in `/v1/models` and responses (default: the model directory's name).
    #[arg(long)]
    model_name: Option<String>,
}

/// Runs `kiln serve` until Ctrl-C / SIGTERM, then finishes running requests.
pub fn run(args: ServeArgs) -> Result<()> {
    let api_keys = match &args.api_key_file {
        None => Vec::new(),
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("--api-key-file {}", f.display()))?;
            let keys: Vec<String> =
                text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
            if keys.is_empty() {
                bail!("--api-key-file {}: no keys in it (one per line)", f.display());
            }
            keys
        }
    };
    if args.max_concurrency == 0 {
        bail!("--max-concurrency must be at least 1");
    }
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("--host {} --port {}: not an address", args.host, args.port))?;
    let model_name = args.model_name.clone().unwrap_or_else(|| {
        args.model
            .model
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "kiln".into())
    });
    let repo = args.repo.as_deref().map(kiln_infer::repo::RepoIndex::load).transpose()?;
    let loaded = load(&args.model)?;
    let cfg = kiln_serve::ServeConfig {
        model_name,
        api_keys,
        max_concurrency: args.max_concurrency,
        max_queue: args.max_queue,
        cache_min_tokens: args.cache_min_tokens,
        ..Default::default()
    };
    let state = kiln_serve::AppState::new_with_repo(loaded, cfg, repo);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        tracing::info!(address = %local, "serving: POST /v1/completions, POST /infill, GET /v1/models, /health, /metrics");
        eprintln!("kiln serve: listening on http://{local}");
        kiln_serve::serve(listener, state, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
