//! The DeepSeek-Coder network: LLaMA with RMSNorm, SwiGLU, RoPE (linear position scaling) and
//! grouped-query attention, untied lm_head. DeepSeek-Coder, arXiv 2401.14196, §3.3 and Table 2;
//! LLaMA, arXiv 2302.13971. Read top to bottom: RmsNorm, Rope, Attention, Mlp, Block, Llama.
//!
//! Parameter paths equal Hugging Face `LlamaForCausalLM` tensor names. Numerics follow
//! transformers so that f32 logits agree to 1e-4: RMSNorm and softmax run in f32 whatever the
//! weight dtype, and RoPE angles are computed in f32 from `inv_freq / factor`.
//!
//! RMSNorm, the attention core (scores, causal softmax, weighted sum of values), SwiGLU and
//! (training) RoPE are kiln's fused ops ([`crate::ops`], with backward) in f32 on the CPU, and
//! composed candle ops otherwise.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::config::{config_path, Config, RopeScaling, WeightDType};
use crate::error::{ModelError, Result};
use crate::ops;
use crate::params::{LayerParams, Params};
use crate::weights;

/// Root-mean-square layer norm: y = x / sqrt(mean(x²) + eps) * w, computed in f32.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Fused in f32 on the CPU; other dtypes normalise in f32, cast back, then scale by `w`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::rms_norm(x, &self.weight, self.eps)?) // (B, T, C)
    }
}

/// A bias-free projection y = x Wᵀ, W stored (out, in) as in the checkpoint.
///
/// Decoding multiplies one row by each weight matrix, and candle's CPU GEMM runs such an M=1
/// product on a single thread (measured: 2 threads decode no faster than 1). So on the CPU a
/// single-row input is split over output rows into one chunk per thread, each chunk a zero-copy
/// view of W, and the pieces are concatenated. Several rows (prefill, batches) take the plain
/// matmul, which GEMM parallelises itself. Both paths compute the same dot products.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    /// Row blocks of `weight` for the single-row CPU path; empty when not worth splitting.
    row_chunks: Vec<Tensor>,
}

/// Below this many rows a CPU [`Linear`] splits its outputs over threads (see `forward`).
const SPLIT_BELOW_ROWS: usize = 128;

impl Linear {
    fn new(weight: Tensor) -> Self {
        Self::split(weight, candle_core::utils::get_num_threads())
    }

    fn split(weight: Tensor, threads: usize) -> Self {
        let out = weight.dim(0).unwrap_or(0);
        // Below ~256 rows per thread the fork/join costs more than it saves.
        let row_chunks = if weight.device().is_cpu() && threads > 1 && out >= 256 * threads {
            let per = out.div_ceil(threads);
            (0..out).step_by(per).filter_map(|start| weight.narrow(0, start, per.min(out - start)).ok()).collect()
        } else {
            Vec::new()
        };
        Self { weight, row_chunks }
    }

    /// The (out, in) weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let (k, rows) = (dims[dims.len() - 1], x.elem_count() / dims[dims.len() - 1]);
        let x2 = x.reshape((rows, k))?; // (rows, in)
                                        // Few rows (decode, short prompts): split the outputs over threads ourselves. candle's
                                        // GEMM runs an M=1 product on one thread, and gemm's AVX-512 kernels (enabled for
                                        // training's large products) do not parallelise small-M ones either: measured on the
                                        // `small` preset, a 16-token prefill ran at 370 tokens/s through them, 2x slower than
                                        // this split. From ~128 rows on, the plain product is faster.
        let y = if rows < SPLIT_BELOW_ROWS && !self.row_chunks.is_empty() {
            use rayon::prelude::*;
            let parts = self.row_chunks.par_iter().map(|w| x2.matmul(&w.t()?)).collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&parts, 1)?
        } else {
            x2.matmul(&self.weight.t()?)?
        }; // (rows, out)
        let mut out_dims = dims;
        *out_dims.last_mut().expect("at least one dim") = self.weight.dim(0)?;
        Ok(y.reshape(out_dims)?)
    }
}

impl Linear {
    /// Projection of a decode step's rows (S, in), one row per sequence: f32 on the CPU takes
    /// the batch-invariant kernel ([`ops::linear_rows`]), so a row's result does not depend on
    /// the other rows; elsewhere the plain product.
    fn forward_rows(&self, x: &Tensor) -> Result<Tensor> {
        if ops::fusable(&[x, &self.weight]) {
            return Ok(ops::linear_rows(x, &self.weight)?);
        }
        self.forward(x)
    }
}

/// Rotary position tables, precomputed for every position up to `max_position_embeddings`.
/// HF "rotate_half" layout: dimension i pairs with i + head_dim/2.
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor, // (max_pos, head_dim/2), f32
    sin: Tensor,
}

impl Rope {
    fn new(cfg: &Config, device: &Device) -> Result<Self> {
        let half = cfg.head_dim / 2;
        let factor = match cfg.rope_scaling {
            RopeScaling::None => 1.0f32,
            RopeScaling::Linear { factor } => factor as f32,
        };
        // Same order of f32 operations as transformers: inv_freq = 1 / base^(2i/d), then / factor.
        let inv_freq: Vec<f32> =
            (0..half).map(|i| 1.0 / (cfg.rope_theta as f32).powf((2 * i) as f32 / cfg.head_dim as f32) / factor).collect();
        let n = cfg.max_position_embeddings;
        let mut angles = Vec::with_capacity(n * half);
        for pos in 0..n {
            angles.extend(inv_freq.iter().map(|f| pos as f32 * f));
        }
        let angles = Tensor::from_vec(angles, (n, half), device)?;
        Ok(Self { cos: angles.cos()?, sin: angles.sin()? })
    }

    /// Rotates `x` (B, H, T, head_dim) for positions offset..offset+T. `differentiable` picks
    /// kiln's op, which carries gradients; candle's fused kernel (inference) has no backward.
    fn apply(&self, x: &Tensor, offset: usize, differentiable: bool) -> Result<Tensor> {
        let t = x.dim(2)?;
        let cos = self.cos.narrow(0, offset, t)?.to_dtype(x.dtype())?;
        let sin = self.sin.narrow(0, offset, t)?.to_dtype(x.dtype())?;
        if differentiable {
            return Ok(ops::rope(x, &cos, &sin)?);
        }
        Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin)?)
    }
}

/// Reference RoPE from composed ops (cat/neg/mul), kept to check the fused kernels against.
pub fn rope_reference(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    Ok(ops::rope_reference(x, cos, sin)?)
}

/// One layer's keys and values (B, kv_heads, S, head_dim) in buffers that grow in chunks of
/// `grow` positions; positions past `len` are stale and overwritten by the next append, which is
/// what makes [`Cache::truncate`] free. (candle_nn's KvCache has no truncation.)
#[derive(Debug, Clone)]
struct KvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
    grow: usize,
}

impl KvCache {
    fn new(grow: usize) -> Self {
        Self { k: None, v: None, len: 0, grow }
    }

    /// Appends `k`, `v` (B, kv, T, hd) and returns all held positions (B, kv, len, hd).
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        for (buf, src) in [(&mut self.k, k), (&mut self.v, v)] {
            let cap = buf.as_ref().map(|b| b.dim(2)).transpose()?.unwrap_or(0);
            if self.len + t > cap {
                let (b, h, _, d) = src.dims4()?;
                let new_cap = (self.len + t).div_ceil(self.grow) * self.grow;
                let bigger = Tensor::zeros((b, h, new_cap, d), src.dtype(), src.device())?;
                if let Some(old) = buf.as_ref().filter(|_| self.len > 0) {
                    bigger.slice_set(&old.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
                *buf = Some(bigger);
            }
            buf.as_ref().expect("allocated above").slice_set(&src.contiguous()?, 2, self.len)?;
        }
        self.len += t;
        let (kb, vb) = (self.k.as_ref().expect("appended"), self.v.as_ref().expect("appended"));
        Ok((kb.narrow(2, 0, self.len)?, vb.narrow(2, 0, self.len)?))
    }
}

/// Per-layer key/value tensors of the positions seen so far. A clone shares the buffers: use
/// one copy at a time.
#[derive(Debug, Clone)]
pub struct Cache {
    layers: Vec<KvCache>,
}

impl Cache {
    /// Positions already held (the offset of the next token).
    pub fn seq_len(&self) -> usize {
        self.layers.first().map(|c| c.len).unwrap_or(0)
    }
    /// Forgets every position.
    pub fn reset(&mut self) {
        self.truncate(0);
    }
    /// Keeps the first `len` positions (a prefix cache reuses them for the next prompt that
    /// starts with the same tokens); no copy.
    pub fn truncate(&mut self, len: usize) {
        self.layers.iter_mut().for_each(|c| c.len = c.len.min(len));
    }
}

fn take(tensors: &mut HashMap<String, Tensor>, name: &str) -> Result<Tensor> {
    tensors.remove(name).ok_or_else(|| ModelError::MissingTensors { dir: Default::default(), count: 1, examples: name.to_string() })
}

/// Multi-head causal self-attention with grouped-query key/value heads.
#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    /// With a cache: inference (fused kernels, keys/values appended). Without: training, every op
    /// differentiable (candle's fused rope and softmax have no backward: gradients would stop;
    /// kiln's, in `ops`, have).
    fn forward(&self, x: &Tensor, rope: &Rope, cache: Option<&mut KvCache>, offset: usize) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let heads = |y: Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, n, self.head_dim))?.transpose(1, 2)?.contiguous()?)
            // (B, n, T, hd)
        };
        let q = heads(self.q_proj.forward(x)?, self.n_heads)?;
        let k = heads(self.k_proj.forward(x)?, self.n_kv_heads)?;
        let v = heads(self.v_proj.forward(x)?, self.n_kv_heads)?;
        let train = cache.is_none();
        let q = rope.apply(&q, offset, train)?;
        let k = rope.apply(&k, offset, train)?;
        let (k, v) = match cache {
            Some(cache) => cache.append(&k, &v)?, // (B, kv, S, hd), S = offset + T
            None => (k, v),
        };
        let k = repeat_kv(k, self.n_heads / self.n_kv_heads)?; // (B, H, S, hd)
        let v = repeat_kv(v, self.n_heads / self.n_kv_heads)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let y = if train || ops::fusable(&[&q, &k, &v]) {
            ops::causal_attention(&q, &k, &v, scale)? // (B, H, T, hd)
        } else {
            let scores = (q.matmul(&k.t()?)? * scale)?.to_dtype(DType::F32)?; // (B, H, T, S)
            let scores = if t > 1 { scores.broadcast_add(&causal_mask(t, offset, x.device())?)? } else { scores };
            let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?;
            probs.matmul(&v)? // (B, H, T, hd)
        };
        let y = y.transpose(1, 2)?.reshape((b, t, self.n_heads * self.head_dim))?; // (B, T, H*hd)
        self.o_proj.forward(&y)
    }
}

impl Attention {
    /// One decode step for S sequences: row i of `x` (S, C) is the next position of the
    /// sequence whose keys/values `caches[i]` holds (its layer `layer`).
    fn decode_rows(&self, x: &Tensor, rope: &Rope, caches: &mut [&mut Cache], layer: usize) -> Result<Tensor> {
        let s = x.dim(0)?;
        let (q, k, v) = (self.q_proj.forward_rows(x)?, self.k_proj.forward_rows(x)?, self.v_proj.forward_rows(x)?);
        let head = |t: &Tensor, i: usize, n: usize| -> Result<Tensor> {
            Ok(t.narrow(0, i, 1)?.reshape((1, 1, n, self.head_dim))?.transpose(1, 2)?.contiguous()?)
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let mut outs = Vec::with_capacity(s);
        for (i, cache) in caches.iter_mut().enumerate() {
            let kv = &mut cache.layers[layer];
            let offset = kv.len;
            let qi = rope.apply(&head(&q, i, self.n_heads)?, offset, false)?;
            let ki = rope.apply(&head(&k, i, self.n_kv_heads)?, offset, false)?;
            let vi = head(&v, i, self.n_kv_heads)?;
            let (ka, va) = kv.append(&ki, &vi)?;
            let ka = repeat_kv(ka, self.n_heads / self.n_kv_heads)?;
            let va = repeat_kv(va, self.n_heads / self.n_kv_heads)?;
            let y = if ops::fusable(&[&qi, &ka, &va]) {
                ops::causal_attention(&qi, &ka, &va, scale)?
            } else {
                let scores = (qi.matmul(&ka.t()?)? * scale)?.to_dtype(DType::F32)?;
                candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(va.dtype())?.matmul(&va)?
            }; // (1, H, 1, hd)
            outs.push(y.transpose(1, 2)?.reshape((1, self.n_heads * self.head_dim))?);
        }
        self.o_proj.forward_rows(&Tensor::cat(&outs, 0)?)
    }
}

/// Repeats each key/value head `n_rep` times so GQA heads line up with query heads.
fn repeat_kv(x: Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x.contiguous()?);
    }
    let (b, kv, s, hd) = x.dims4()?;
    Ok(x.unsqueeze(2)?.expand((b, kv, n_rep, s, hd))?.reshape((b, kv * n_rep, s, hd))?)
}

/// Additive mask (T, offset+T): query i may see keys 0..=offset+i.
fn causal_mask(t: usize, offset: usize, device: &Device) -> Result<Tensor> {
    let s = offset + t;
    let mask: Vec<f32> = (0..t).flat_map(|i| (0..s).map(move |j| if j > offset + i { f32::NEG_INFINITY } else { 0.0 })).collect();
    Ok(Tensor::from_vec(mask, (t, s), device)?)
}

/// SwiGLU feed-forward: down(silu(gate(x)) * up(x)).
#[derive(Debug, Clone)]
pub struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gated = ops::swiglu(&self.gate_proj.forward(x)?, &self.up_proj.forward(x)?)?; // (B, T, F)
        self.down_proj.forward(&gated) // (B, T, C)
    }
}

impl Mlp {
    fn decode_rows(&self, x: &Tensor) -> Result<Tensor> {
        let gated = ops::swiglu(&self.gate_proj.forward_rows(x)?, &self.up_proj.forward_rows(x)?)?;
        self.down_proj.forward_rows(&gated)
    }
}

/// One pre-norm transformer block.
#[derive(Debug, Clone)]
pub struct Block {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn forward(&self, x: &Tensor, rope: &Rope, cache: Option<&mut KvCache>, offset: usize) -> Result<Tensor> {
        let h = (x + self.self_attn.forward(&self.input_layernorm.forward(x)?, rope, cache, offset)?)?;
        Ok((&h + self.mlp.forward(&self.post_attention_layernorm.forward(&h)?)?)?)
    }
}

impl Block {
    fn decode_rows(&self, x: &Tensor, rope: &Rope, caches: &mut [&mut Cache], layer: usize) -> Result<Tensor> {
        let h = (x + self.self_attn.decode_rows(&self.input_layernorm.forward(x)?, rope, caches, layer)?)?;
        Ok((&h + self.mlp.decode_rows(&self.post_attention_layernorm.forward(&h)?)?)?)
    }
}

/// The whole causal language model.
#[derive(Debug, Clone)]
pub struct Llama {
    embed_tokens: Tensor, // (V, C)
    layers: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear, // (V, C), the embedding itself when tied
    rope: Rope,
    cfg: Config,
    dtype: DType,
    device: Device,
}

impl Llama {
    /// Loads a Hugging Face model directory (`config.json` + safetensors, single or sharded).
    /// `dtype` overrides the checkpoint's `torch_dtype`.
    pub fn load(dir: &Path, dtype: Option<WeightDType>, device: &Device) -> Result<Self> {
        let cfg = Config::from_file(&config_path(dir))?;
        let dtype = dtype.unwrap_or(cfg.torch_dtype).to_candle();
        let tensors = weights::load_checkpoint(dir, &cfg, dtype, device)?;
        Self::from_tensors(cfg, tensors, device)
    }

    /// Builds the network from named tensors (HF names), all already in one dtype on `device`.
    pub fn from_tensors(cfg: Config, mut tensors: HashMap<String, Tensor>, device: &Device) -> Result<Self> {
        let params = Params::try_build(&cfg, |name| take(&mut tensors, name))?;
        Self::from_params(cfg, params, device)
    }

    /// Builds the network from its parameters, all already in one dtype on `device`.
    pub fn from_params(cfg: Config, params: Params<Tensor>, device: &Device) -> Result<Self> {
        let Params { embed_tokens, layers: layer_params, norm, lm_head } = params;
        let dtype = embed_tokens.dtype();
        let norm_of = |weight: Tensor| RmsNorm { weight, eps: cfg.rms_norm_eps };
        let layers = layer_params
            .into_iter()
            .map(|p| Block {
                input_layernorm: norm_of(p.input_layernorm),
                self_attn: Attention {
                    q_proj: Linear::new(p.q_proj),
                    k_proj: Linear::new(p.k_proj),
                    v_proj: Linear::new(p.v_proj),
                    o_proj: Linear::new(p.o_proj),
                    n_heads: cfg.num_attention_heads,
                    n_kv_heads: cfg.num_key_value_heads,
                    head_dim: cfg.head_dim,
                },
                post_attention_layernorm: norm_of(p.post_attention_layernorm),
                mlp: Mlp { gate_proj: Linear::new(p.gate_proj), up_proj: Linear::new(p.up_proj), down_proj: Linear::new(p.down_proj) },
            })
            .collect();
        let norm = norm_of(norm);
        let lm_head = Linear::new(lm_head.unwrap_or_else(|| embed_tokens.clone()));
        let rope = Rope::new(&cfg, device)?;
        Ok(Self { embed_tokens, layers, norm, lm_head, rope, cfg, dtype, device: device.clone() })
    }

    /// A randomly initialised network (normal(0, initializer_range) matrices, unit norms), seeded.
    pub fn random(cfg: Config, dtype: WeightDType, device: &Device, seed: u64) -> Result<Self> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, cfg.initializer_range as f32).expect("positive std");
        let mut tensors = HashMap::new();
        for (name, shape) in cfg.expected_tensors() {
            let n: usize = shape.iter().product();
            let data: Vec<f32> =
                if name.ends_with("norm.weight") { vec![1.0; n] } else { (0..n).map(|_| normal.sample(&mut rng)).collect() };
            let t = Tensor::from_vec(data, shape, device)?.to_dtype(dtype.to_candle())?;
            tensors.insert(name, t);
        }
        Self::from_tensors(cfg, tensors, device)
    }

    /// The resolved config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    /// Compute dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The RoPE tables: cosines and sines (max_position_embeddings, head_dim / 2), f32, with the
    /// linear scaling factor applied (what a hand-written training step rotates with).
    pub fn rope_tables(&self) -> (&Tensor, &Tensor) {
        (&self.rope.cos, &self.rope.sin)
    }

    /// An empty KV cache for this model.
    pub fn new_cache(&self) -> Cache {
        // Grow in chunks of 512 positions: preallocating 16K positions for a 33B model would
        // take gigabytes up front, re-concatenating every step would cost O(T) per token.
        Cache { layers: (0..self.cfg.num_hidden_layers).map(|_| KvCache::new(512)).collect() }
    }

    /// Runs `ids` (B, T) after the positions already in `cache` and returns the final hidden
    /// states (B, T, C). The cache is extended by T positions.
    pub fn forward_hidden(&self, ids: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let offset = cache.seq_len();
        if offset + t > self.cfg.max_position_embeddings {
            return Err(ModelError::TooLong { len: offset + t, max: self.cfg.max_position_embeddings });
        }
        let max_id = ids.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if max_id as usize >= self.cfg.vocab_size {
            return Err(ModelError::TokenOutOfRange { id: max_id, vocab_size: self.cfg.vocab_size });
        }
        let mut x = self.embed_tokens.embedding(&ids.flatten_all()?)?.reshape((ids.dim(0)?, t, self.cfg.hidden_size))?; // (B, T, C)
        for (block, kv) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = block.forward(&x, &self.rope, Some(kv), offset)?;
        }
        self.norm.forward(&x)
    }

    /// Training forward: logits (B, T, V) in f32 for `ids` (B, T) from position 0, no cache, every
    /// op differentiable, so `loss.backward()` reaches every parameter (see `Attention::forward`).
    pub fn forward_train(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.cfg.max_position_embeddings {
            return Err(ModelError::TooLong { len: t, max: self.cfg.max_position_embeddings });
        }
        let max_id = ids.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if max_id as usize >= self.cfg.vocab_size {
            return Err(ModelError::TokenOutOfRange { id: max_id, vocab_size: self.cfg.vocab_size });
        }
        let mut x = self.embed_tokens.embedding(&ids.flatten_all()?)?.reshape((b, t, self.cfg.hidden_size))?;
        for block in &self.layers {
            x = block.forward(&x, &self.rope, None, 0)?;
        }
        let h = self.norm.forward(&x)?;
        Ok(self.lm_head.forward(&h)?.to_dtype(DType::F32)?)
    }

    /// Logits (B, T, V) in f32 for every position of `ids`.
    pub fn forward(&self, ids: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let h = self.forward_hidden(ids, cache)?;
        Ok(self.lm_head.forward(&h)?.to_dtype(DType::F32)?)
    }

    /// Logits (B, V) in f32 of the last position only: what generation needs, without paying
    /// for the vocabulary projection of every prompt position.
    pub fn forward_last(&self, ids: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let h = self.forward_hidden(ids, cache)?;
        let t = h.dim(1)?;
        let last = h.i((.., t - 1..t, ..))?.contiguous()?; // (B, 1, C)
        Ok(self.lm_head.forward(&last)?.squeeze(1)?.to_dtype(DType::F32)?)
    }

    /// One decode step for several sequences at once: `tokens[i]` is the next token of the
    /// sequence whose positions `caches[i]` holds (each at its own length). Returns the
    /// next-token logits (S, V) in f32; every cache grows by one position. The projections run
    /// over all S rows together (the weights are read once per step, not once per sequence),
    /// and on the f32 CPU path each row's result is independent of the others, bit for bit: a
    /// sequence decodes the same alone or batched (continuous batching in a server).
    pub fn decode_batch(&self, tokens: &[u32], caches: &mut [&mut Cache]) -> Result<Tensor> {
        if tokens.len() != caches.len() || tokens.is_empty() {
            return Err(candle_core::Error::Msg(format!("decode_batch: {} tokens for {} caches", tokens.len(), caches.len())).into());
        }
        for (&id, c) in tokens.iter().zip(caches.iter()) {
            if c.seq_len() + 1 > self.cfg.max_position_embeddings {
                return Err(ModelError::TooLong { len: c.seq_len() + 1, max: self.cfg.max_position_embeddings });
            }
            if id as usize >= self.cfg.vocab_size {
                return Err(ModelError::TokenOutOfRange { id, vocab_size: self.cfg.vocab_size });
            }
        }
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.embed_tokens.embedding(&ids)?; // (S, C)
        for (l, block) in self.layers.iter().enumerate() {
            x = block.decode_rows(&x, &self.rope, caches, l)?;
        }
        Ok(self.lm_head.forward_rows(&self.norm.forward(&x)?)?.to_dtype(DType::F32)?)
    }

    /// Every parameter, by role (the tensors are shared with the network, not copied).
    pub fn params(&self) -> Params<Tensor> {
        let layers = self
            .layers
            .iter()
            .map(|l| LayerParams {
                q_proj: l.self_attn.q_proj.weight().clone(),
                k_proj: l.self_attn.k_proj.weight().clone(),
                v_proj: l.self_attn.v_proj.weight().clone(),
                o_proj: l.self_attn.o_proj.weight().clone(),
                gate_proj: l.mlp.gate_proj.weight().clone(),
                up_proj: l.mlp.up_proj.weight().clone(),
                down_proj: l.mlp.down_proj.weight().clone(),
                input_layernorm: l.input_layernorm.weight.clone(),
                post_attention_layernorm: l.post_attention_layernorm.weight.clone(),
            })
            .collect();
        let lm_head = (!self.cfg.tie_word_embeddings).then(|| self.lm_head.weight().clone());
        Params { embed_tokens: self.embed_tokens.clone(), layers, norm: self.norm.weight.clone(), lm_head }
    }

    /// Every parameter under its HF name, in [`Params::named`]'s order (the lm_head is omitted
    /// when tied, as transformers does).
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.params().into_named()
    }

    /// Writes `config.json` and the weights (HF layout) into `dir`, sharding above `max_shard_bytes`.
    pub fn save(&self, dir: &Path, max_shard_bytes: Option<usize>) -> Result<()> {
        let mut cfg = self.cfg.clone();
        cfg.torch_dtype = match self.dtype {
            DType::BF16 => WeightDType::BF16,
            DType::F16 => WeightDType::F16,
            _ => WeightDType::F32,
        };
        weights::save_checkpoint(dir, &self.named_tensors(), max_shard_bytes)?;
        let json = serde_json::to_string_pretty(&cfg.to_hf_json()).expect("config serialises");
        weights::atomic_write(&config_path(dir), json.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    fn tiny_cfg() -> Config {
        Config {
            vocab_size: 64,
            hidden_size: 32,
            intermediate_size: 48,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 8,
            max_position_embeddings: 64,
            rope_scaling: RopeScaling::Linear { factor: 4.0 },
            rope_theta: 100000.0,
            initializer_range: 0.2,
            ..Config::preset(Preset::Tiny)
        }
    }

    /// The training path computes the inference path's logits, and its gradients reach every
    /// parameter (the fused rope/softmax kernels would silently stop them).
    #[test]
    fn training_forward_matches_inference_and_reaches_every_parameter() {
        let dev = Device::Cpu;
        let cfg = tiny_cfg();
        let model = Llama::random(cfg.clone(), WeightDType::F32, &dev, 3).unwrap();
        let vars: Vec<(String, candle_core::Var)> =
            model.named_tensors().into_iter().map(|(n, t)| (n, candle_core::Var::from_tensor(&t).unwrap())).collect();
        let trainable =
            Llama::from_tensors(cfg.clone(), vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect(), &dev).unwrap();
        let ids = Tensor::new(&[[1u32, 5, 9, 2, 7, 7, 3, 0], [4, 4, 8, 1, 0, 2, 6, 5]], &dev).unwrap();
        let train = trainable.forward_train(&ids).unwrap();
        let infer = model.forward(&ids, &mut model.new_cache()).unwrap();
        let diff = (&train - &infer).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "training and inference logits differ by {diff}");
        let targets = Tensor::new(&[[5u32, 9, 2, 7, 7, 3, 0, 1], [4, 8, 1, 0, 2, 6, 5, 3]], &dev).unwrap();
        let (b, t, v) = train.dims3().unwrap();
        let loss = candle_nn::loss::cross_entropy(&train.reshape((b * t, v)).unwrap(), &targets.flatten_all().unwrap()).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in &vars {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm > 0.0, "zero gradient for {name}");
        }
    }

    #[test]
    fn fused_rope_equals_reference() {
        let dev = Device::Cpu;
        let rope = Rope::new(&tiny_cfg(), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, 4, 7, 8), &dev).unwrap();
        let fast = rope.apply(&x, 3, false).unwrap();
        let slow = rope_reference(&x, &rope.cos.narrow(0, 3, 7).unwrap(), &rope.sin.narrow(0, 3, 7).unwrap()).unwrap();
        let diff = (fast - slow).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "max abs diff {diff}");
    }

    #[test]
    fn row_split_projection_equals_plain_matmul() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (1000, 48), &dev).unwrap();
        let split = Linear::split(w.clone(), 3);
        assert_eq!(split.row_chunks.len(), 3);
        let plain = Linear::split(w, 1);
        assert!(plain.row_chunks.is_empty());
        for shape in [(1, 1, 48), (1, 5, 48)] {
            let x = Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
            let a = split.forward(&x).unwrap();
            let b = plain.forward(&x).unwrap();
            assert_eq!(a.dims(), &[shape.0, shape.1, 1000]);
            let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4, "{shape:?}: {diff}");
        }
    }

    #[test]
    fn kv_cache_decoding_equals_full_recompute() {
        let dev = Device::Cpu;
        let model = Llama::random(tiny_cfg(), WeightDType::F32, &dev, 7).unwrap();
        let ids: Vec<u32> = vec![3, 17, 5, 60, 2, 9, 33, 41, 8];
        let full = model.forward(&Tensor::new(ids.as_slice(), &dev).unwrap().unsqueeze(0).unwrap(), &mut model.new_cache()).unwrap();
        // Prefill 4 tokens, then one at a time.
        let mut cache = model.new_cache();
        let mut pieces = vec![model.forward(&Tensor::new(&ids[..4], &dev).unwrap().unsqueeze(0).unwrap(), &mut cache).unwrap()];
        for &id in &ids[4..] {
            pieces.push(model.forward(&Tensor::new(&[id], &dev).unwrap().unsqueeze(0).unwrap(), &mut cache).unwrap());
        }
        let stepped = Tensor::cat(&pieces, 1).unwrap();
        let diff = (full - stepped).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "max abs diff {diff}");
        assert_eq!(cache.seq_len(), ids.len());
    }

    #[test]
    fn rejects_too_long_and_out_of_vocab_inputs() {
        let dev = Device::Cpu;
        let model = Llama::random(tiny_cfg(), WeightDType::F32, &dev, 1).unwrap();
        let long = Tensor::zeros((1, 65), DType::U32, &dev).unwrap();
        let err = model.forward(&long, &mut model.new_cache()).unwrap_err();
        assert!(matches!(err, ModelError::TooLong { len: 65, max: 64 }), "{err}");
        let oov = Tensor::new(&[[1u32, 64]], &dev).unwrap();
        let err = model.forward(&oov, &mut model.new_cache()).unwrap_err();
        assert!(matches!(err, ModelError::TokenOutOfRange { id: 64, vocab_size: 64 }), "{err}");
    }
}
