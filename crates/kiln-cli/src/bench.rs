//! `kiln bench decode`: prefill and decode speed of a model with the KV cache, greedy, EOS
//! ignored, so every run does the same work. Random weights of a preset need no download.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Subcommand;
use kiln_infer::{CausalLm, KvCache};
use kiln_model::{Config, Llama, Preset, WeightDType};
use serde_json::json;

/// `kiln bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Tokens per second for prefill and decode (one sequence, or `--batch` together).
    Decode {
        /// A preset shape with random weights: tiny, small, deepseek-coder-1.3b, -6.7b, -33b.
        #[arg(long, conflicts_with = "model", required_unless_present = "model")]
        preset: Option<Preset>,
        /// Or a model directory, or a GGUF file (run by kiln's CPU network over its weights, as
        /// `--model FILE.gguf` everywhere).
        #[arg(long)]
        model: Option<PathBuf>,
        /// f32, bf16 or f16.
        #[arg(long, default_value = "f32")]
        dtype: WeightDType,
        /// cpu, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Prompt length.
        #[arg(long, default_value_t = 16)]
        prompt_tokens: usize,
        /// Tokens to decode.
        #[arg(long, default_value_t = 128)]
        new_tokens: usize,
        /// Timed repetitions (after one warm-up); the best is reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Sequences decoded together per step (as a batching server does); tokens/s counts all.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Which network runs it: `candle` (kiln-model's Llama) or `cpu` (the CPU network over
        /// GGML-style weight matrices, `CpuLlama`; f32 weights).
        #[arg(long, default_value = "candle", value_parser = ["candle", "cpu"])]
        runtime: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Training tokens/s (forward, backward, clipping, AdamW) of a random model on random windows.
    Train {
        /// Layers.
        #[arg(long, default_value_t = 6)]
        layers: usize,
        /// Model width.
        #[arg(long, default_value_t = 384)]
        hidden: usize,
        /// Attention heads (and KV heads).
        #[arg(long, default_value_t = 6)]
        heads: usize,
        /// SwiGLU width.
        #[arg(long, default_value_t = 1024)]
        intermediate: usize,
        /// Vocabulary.
        #[arg(long, default_value_t = 8192)]
        vocab: usize,
        /// Positions per window.
        #[arg(long, default_value_t = 256)]
        seq_len: usize,
        /// Windows per step.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Timed steps (after one warm-up step).
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Files/s and MB/s of repository ingest + import parsing + Algorithm 1 ordering.
    Repo {
        /// A repository, or with --repos-root a folder whose entries are repositories.
        path: PathBuf,
        /// Treat every sub-folder/archive of PATH as one repository (processed in parallel).
        #[arg(long)]
        repos_root: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `kiln bench` subcommand.
pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Decode { preset, model, dtype, device, prompt_tokens, new_tokens, repeat, batch, runtime, json } => {
            decode(preset, model, dtype, device, prompt_tokens, new_tokens, repeat, batch.max(1), &runtime, json)
        }
        BenchCommand::Repo { path, repos_root, json } => repo(path, repos_root, json),
        BenchCommand::Train { layers, hidden, heads, intermediate, vocab, seq_len, batch, steps, json } => {
            train(layers, hidden, heads, intermediate, vocab, seq_len, batch, steps, json)
        }
    }
}

/// Times optimizer steps of a random model (f32, CPU): forward, backward, clipping, AdamW.
#[allow(clippy::too_many_arguments)]
fn train(
    layers: usize,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    vocab: usize,
    seq_len: usize,
    batch: usize,
    steps: usize,
    json: bool,
) -> Result<()> {
    use kiln_train::optim::{AdamW, AdamWConfig};
    use kiln_train::step::optimizer_step;
    let mut cfg = kiln_model::Config::preset(Preset::Small);
    cfg.num_hidden_layers = layers;
    cfg.hidden_size = hidden;
    cfg.num_attention_heads = heads;
    cfg.num_key_value_heads = heads;
    cfg.head_dim = hidden / heads;
    cfg.intermediate_size = intermediate;
    cfg.vocab_size = vocab;
    cfg.max_position_embeddings = cfg.max_position_embeddings.max(seq_len);
    cfg.bos_token_id = Some(0);
    cfg.eos_token_ids = vec![1];
    cfg.pad_token_id = Some(1);
    cfg.tie_word_embeddings = false;
    let params = cfg.num_parameters();
    let model = kiln_train::TrainModel::new(&kiln_model::Llama::random(cfg, WeightDType::F32, &candle_core::Device::Cpu, 0)?)?;
    let mut opt = AdamW::new(&model.params, AdamWConfig::default())?;
    let mut state = 7u64;
    let mut windows = || -> Vec<Vec<u32>> {
        (0..batch)
            .map(|_| {
                (0..=seq_len)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        (state >> 33) as u32 % vocab as u32
                    })
                    .collect()
            })
            .collect()
    };
    // Seconds spent in each phase (forward + backward, clipping, optimizer), summed. Each step is
    // the trainer's own optimizer step (kiln_train::step), on random windows.
    let mut phases = [0f64; 3];
    let tokens_per_step = (batch * seq_len) as u64;
    let mut step = |w: Vec<Vec<u32>>, phases: &mut [f64; 3]| -> Result<f64> {
        let out = optimizer_step(&mut opt, || model.loss_and_grads(&w).map(|(l, g)| (l, g, tokens_per_step)), 1, 1.0, 1e-4)?;
        for (p, s) in phases.iter_mut().zip([out.forward_backward_s, out.clip_s, out.optimizer_s]) {
            *p += s;
        }
        Ok(out.loss)
    };
    step(windows(), &mut [0f64; 3])?; // warm-up
    let start = std::time::Instant::now();
    let mut loss = 0.0;
    for _ in 0..steps {
        loss = step(windows(), &mut phases)?;
    }
    let [fwd_bwd, clip, optim] = phases.map(|p| p / steps as f64);
    let secs = start.elapsed().as_secs_f64();
    let tokens = (steps * batch * seq_len) as f64;
    let threads = candle_core::utils::get_num_threads();
    if json {
        println!(
            "{}",
            serde_json::json!({"params": params, "tokens_per_s": tokens / secs, "step_s": secs / steps as f64, "forward_backward_s": fwd_bwd, "clip_s": clip, "optimizer_s": optim, "loss": loss, "threads": threads})
        );
    } else {
        println!(
            "{params} parameters, batch {batch} x {seq_len}: {:.0} tokens/s ({:.3} s/step: forward+backward {fwd_bwd:.3}, clipping {clip:.3}, AdamW {optim:.3}; {threads} threads), loss {loss:.3}",
            tokens / secs,
            secs / steps as f64
        );
    }
    Ok(())
}

/// Ingests, parses and orders every repository, spreading repositories over all cores.
fn repo(path: PathBuf, repos_root: bool, json: bool) -> Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let repos: Vec<PathBuf> = if repos_root { kiln_repo::ingest::list_repos_root(&path)? } else { vec![path.clone()] };
    let opts = kiln_repo::ingest::IngestOptions::default();
    let next = AtomicUsize::new(0);
    let totals = Mutex::new((0usize, 0u64, 0usize, 0usize, 0usize)); // files, bytes, edges, components, failed repos
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = repos.get(i) else { break };
                match kiln_repo::ingest::ingest_path(p, &opts) {
                    Ok((r, summary)) => {
                        let g = kiln_repo::graph::build_graph(&r);
                        let order = kiln_repo::graph::order(&g, 0);
                        let mut t = totals.lock().expect("no panics while held");
                        t.0 += summary.files;
                        t.1 += summary.bytes;
                        t.2 += g.edges.len();
                        t.3 += order.len();
                    }
                    Err(e) => {
                        tracing::warn!("{e}");
                        totals.lock().expect("no panics while held").4 += 1;
                    }
                }
            });
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    let (files, bytes, edges, components, failed) = *totals.lock().expect("threads joined");
    let (fps, mbps) = (files as f64 / secs, bytes as f64 / 1e6 / secs);
    if json {
        println!(
            "{}",
            json!({"repos": repos.len(), "failed_repos": failed, "files": files, "bytes": bytes, "edges": edges, "components": components, "seconds": secs, "threads": threads, "files_per_s": fps, "mb_per_s": mbps})
        );
    } else {
        println!("{} repos ({failed} unreadable), {files} files, {:.1} MB, {edges} import edges, {components} samples in {secs:.2}s on {threads} threads: {fps:.0} files/s, {mbps:.1} MB/s", repos.len(), bytes as f64 / 1e6);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn decode(
    preset: Option<Preset>,
    model: Option<PathBuf>,
    dtype: WeightDType,
    device: String,
    prompt_tokens: usize,
    new_tokens: usize,
    repeat: usize,
    batch: usize,
    runtime: &str,
    json: bool,
) -> Result<()> {
    let dev = kiln_model::device(&device)?;
    // Through the model seam the engine drives (kiln-infer's `CausalLm`), so any model type is
    // measured the same way.
    let (name, lm, runtime): (String, Box<dyn CausalLm>, &str) = match (preset, model) {
        (None, Some(path)) if kiln_infer::loaded::is_gguf(&path) => {
            (path.display().to_string(), Box::new(kiln_model::gguf_llama::load_gguf(&path)?), "gguf")
        }
        (preset, model) => {
            let (name, model) = match (preset, model) {
                (Some(p), _) => (p.name().to_string(), Llama::random(Config::preset(p), dtype, &dev, 0)?),
                (None, Some(dir)) => (dir.display().to_string(), Llama::load(&dir, Some(dtype), &dev)?),
                (None, None) => bail!("give --preset or --model"),
            };
            if runtime == "cpu" {
                (name, Box::new(kiln_model::cpu_llama::CpuLlama::from_llama(&model)?), runtime)
            } else {
                (name, Box::new(model), runtime)
            }
        }
    };
    let lm = lm.as_ref();
    let cfg = lm.config().clone();
    if prompt_tokens == 0 || prompt_tokens + new_tokens > cfg.max_position_embeddings {
        bail!("--prompt-tokens {prompt_tokens} + --new-tokens {new_tokens} must be in 1..={}", cfg.max_position_embeddings);
    }
    // A fixed pseudo-random prompt: ids spread over the vocabulary.
    let prompt: Vec<u32> = (0..prompt_tokens).map(|i| ((i * 7919 + 13) % cfg.vocab_size) as u32).collect();
    let vocab = cfg.vocab_size;
    let mut best = (f64::MAX, f64::MAX);
    for round in 0..=repeat {
        // Each sequence is prefilled on its own (the first one timed), then all decode together
        // through one batched step per token, the path `kiln generate` and `kiln serve` take.
        let mut caches: Vec<Box<dyn KvCache>> = (0..batch).map(|_| lm.new_cache()).collect();
        let mut next = Vec::with_capacity(batch);
        let mut prefill = 0.0;
        for (i, cache) in caches.iter_mut().enumerate() {
            let t0 = Instant::now();
            let logits = lm.prefill(&prompt, cache.as_mut())?;
            next.push(kiln_infer::sampling::argmax(&logits));
            if i == 0 {
                prefill = t0.elapsed().as_secs_f64();
            }
        }
        let t1 = Instant::now();
        for _ in 0..new_tokens {
            let mut refs: Vec<&mut dyn KvCache> = caches.iter_mut().map(|c| c.as_mut()).collect();
            let logits = lm.decode(&next, &mut refs)?;
            next = logits.chunks(vocab).map(kiln_infer::sampling::argmax).collect();
        }
        let decode = t1.elapsed().as_secs_f64();
        if round > 0 {
            best = (best.0.min(prefill), best.1.min(decode));
        }
    }
    let prefill_tps = prompt_tokens as f64 / best.0;
    let decode_tps = (new_tokens * batch) as f64 / best.1;
    // The thread count candle's CPU kernels actually use (RAYON_NUM_THREADS, else every core).
    let threads = candle_core::utils::get_num_threads();
    let weights = if runtime == "gguf" { "gguf" } else { dtype.torch_name() };
    if json {
        let obj = json!({
            "model": name, "parameters": cfg.num_parameters(), "dtype": weights, "device": device, "runtime": runtime,
            "threads": threads, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens, "batch": batch,
            "prefill_tokens_per_s": prefill_tps, "decode_tokens_per_s": decode_tps,
        });
        println!("{obj}");
    } else {
        println!(
            "{name} ({:.1}M params, {}, {device}, {threads} threads): prefill {prompt_tokens} tok {prefill_tps:.1} tok/s, decode {new_tokens} tok {decode_tps:.2} tok/s",
            cfg.num_parameters() as f64 / 1e6,
            weights
        );
    }
    Ok(())
}
