//! The DeepSeek-Coder network written out for CPU inference over GGML-typed weights: the model
//! that runs GGUF files (Q4_K_M, Q8_0, F16, ...) and, with F32/BF16 matrices, float checkpoints.
//!
//! Same architecture as [`crate::llama`] (RMSNorm, RoPE with linear scaling in the Hugging Face
//! "rotate half" layout, grouped-query attention, SwiGLU, untied or tied head), but without
//! candle: every projection is one [`Matrix::matmul`] over all rows of a step (the weights are
//! read once per step whatever the batch), attention reads a KV cache laid out for decoding, and
//! nothing is allocated per token beyond the step's activations.
//!
//! One entry point, [`CpuLlama::forward`], serves prefill (T rows of one sequence, causal), batched
//! decode (one row per sequence, each with its own cache) and scoring (logits of every row). Each
//! row's computation depends only on its own sequence: a sequence gets the same bits alone or
//! batched, provided the matrix kernel computes each output row the same way for any batch (the
//! f32 and quantized kernels of kiln-quant do).

use kiln_quant::attention::{Attend, KvType};
use rayon::prelude::*;

use crate::config::{Config, RopeScaling};
use crate::error::{ModelError, Result};

/// A weight matrix (out rows x in cols) the network multiplies activations by.
pub trait Matrix: Send + Sync + std::fmt::Debug {
    /// Output features.
    fn rows(&self) -> usize;
    /// Input features.
    fn cols(&self) -> usize;
    /// `out[r][o] = sum_k x[r][k] * w[o][k]` for the `n` rows of `x` (n x cols) into `out`
    /// (n x rows).
    fn matmul(&self, x: &[f32], n: usize, out: &mut [f32]);
    /// Row `i` as f32 (the embedding lookup).
    fn row(&self, i: usize, out: &mut [f32]);
    /// Bytes the weights take.
    fn bytes(&self) -> usize;
    /// The element type, for logs (`F32`, `Q4_K`, ...).
    fn type_name(&self) -> String;
}

/// A plain row-major f32 matrix: the reference [`Matrix`].
#[derive(Debug, Clone)]
pub struct F32Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl F32Matrix {
    /// A matrix of `rows` x `cols` from row-major data.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(ModelError::Shape(format!("{} values for a {rows} x {cols} matrix", data.len())));
        }
        Ok(Self { rows, cols, data })
    }
}

impl Matrix for F32Matrix {
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn matmul(&self, x: &[f32], n: usize, out: &mut [f32]) {
        let (k, m) = (self.cols, self.rows);
        // Split the output features into chunks (one weight pass per chunk serves every row).
        let chunk = 64;
        let w = &self.data;
        let parts: Vec<(usize, Vec<f32>)> = (0..m.div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                let (lo, hi) = (c * chunk, ((c + 1) * chunk).min(m));
                let mut part = vec![0f32; n * (hi - lo)];
                for (o, wrow) in w[lo * k..hi * k].chunks_exact(k).enumerate() {
                    for r in 0..n {
                        part[r * (hi - lo) + o] = dot(&x[r * k..(r + 1) * k], wrow);
                    }
                }
                (lo, part)
            })
            .collect();
        for (lo, part) in parts {
            let width = part.len() / n.max(1);
            for r in 0..n {
                out[r * m + lo..r * m + lo + width].copy_from_slice(&part[r * width..(r + 1) * width]);
            }
        }
    }
    fn row(&self, i: usize, out: &mut [f32]) {
        out.copy_from_slice(&self.data[i * self.cols..(i + 1) * self.cols]);
    }
    fn bytes(&self) -> usize {
        self.data.len() * 4
    }
    fn type_name(&self) -> String {
        "F32".into()
    }
}

/// Dot product in eight independent lanes (the compiler vectorises it; the summation order is
/// fixed, so the result does not depend on the caller).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// One block's weights.
#[derive(Debug)]
pub struct CpuLayer {
    /// RMSNorm before attention (C).
    pub attn_norm: Vec<f32>,
    /// Query projection (H·D x C), Hugging Face row order.
    pub q: Box<dyn Matrix>,
    /// Key projection (KV·D x C), Hugging Face row order.
    pub k: Box<dyn Matrix>,
    /// Value projection (KV·D x C).
    pub v: Box<dyn Matrix>,
    /// Output projection (C x H·D).
    pub o: Box<dyn Matrix>,
    /// RMSNorm before the MLP (C).
    pub ffn_norm: Vec<f32>,
    /// SwiGLU gate (F x C).
    pub gate: Box<dyn Matrix>,
    /// SwiGLU up (F x C).
    pub up: Box<dyn Matrix>,
    /// SwiGLU down (C x F).
    pub down: Box<dyn Matrix>,
}

/// The network's weights, by role.
#[derive(Debug)]
pub struct CpuWeights {
    /// Token embedding (V x C).
    pub embed: Box<dyn Matrix>,
    /// The blocks.
    pub layers: Vec<CpuLayer>,
    /// Final RMSNorm (C).
    pub norm: Vec<f32>,
    /// Output projection (V x C); `None`: tied to the embedding.
    pub output: Option<Box<dyn Matrix>>,
}

/// Keys and values of one sequence: per layer and KV head, `positions x head_dim` values of the
/// model's [`KvType`] (F16 by default, as llama.cpp), each head's positions contiguous so that
/// attention streams them; positions past `len` are stale (truncation is free).
#[derive(Debug, Clone)]
pub struct CpuCache {
    len: usize,
    ty: KvType,
    kv_heads: usize,
    head_dim: usize,
    /// Index `layer * kv_heads + head`.
    k: Vec<Vec<u8>>,
    v: Vec<Vec<u8>>,
}

/// The most rows one step of [`CpuLlama::forward`] computes by default (llama.cpp's default
/// micro-batch); longer prompts run in several steps.
pub const MAX_STEP_ROWS: usize = 512;

/// Cache storage grows by whole multiples of this many positions (exact reservations, so a
/// long context costs its positions and at most this many more, not a doubling Vec's 2x).
const CACHE_GROWTH: usize = 256;

impl CpuCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Keeps the first `len` positions.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
    /// The storage type of keys and values.
    pub fn kv_type(&self) -> KvType {
        self.ty
    }
    /// Bytes the cache holds for its positions (capacity beyond them not counted).
    pub fn bytes(&self) -> usize {
        2 * self.k.len() * self.len * self.head_dim * self.ty.value_bytes()
    }

    /// Stores `t` rows of keys and values (`t x kv_heads x head_dim` f32 each) of layer `l` at
    /// positions `len..len + t`.
    fn append(&mut self, l: usize, k: &[f32], v: &[f32], t: usize) {
        let (kvh, d, ty) = (self.kv_heads, self.head_dim, self.ty);
        let row = d * ty.value_bytes();
        let (at, end) = (self.len * row, (self.len + t) * row);
        for g in 0..kvh {
            for (bufs, src) in [(&mut self.k, k), (&mut self.v, v)] {
                let buf = &mut bufs[l * kvh + g];
                if buf.capacity() < end {
                    let want = (self.len + t).next_multiple_of(CACHE_GROWTH) * row;
                    buf.reserve_exact(want - buf.len());
                }
                buf.resize(end, 0);
                for (j, dst) in buf[at..end].chunks_exact_mut(row).enumerate() {
                    ty.store(&src[(j * kvh + g) * d..(j * kvh + g + 1) * d], dst);
                }
            }
        }
    }
}

/// Which logits [`CpuLlama::forward`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// The last row of each sequence.
    LastOfEach,
    /// Every row.
    All,
}

/// How query and key dimensions pair up for RoPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Hugging Face's "rotate half": dimension i pairs with i + head_dim/2 (safetensors
    /// checkpoints).
    HalfSplit,
    /// Adjacent pairs (2i, 2i + 1): llama.cpp's layout, for the rows of `attn_q`/`attn_k` as its
    /// converter permutes them (GGUF files).
    Interleaved,
}

/// The network over [`Matrix`] weights.
#[derive(Debug)]
pub struct CpuLlama {
    cfg: Config,
    w: CpuWeights,
    rope_layout: RopeLayout,
    kv_type: KvType,
    max_step_rows: usize,
    /// RoPE tables (max_positions x head_dim/2), f32, linear scaling applied.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl CpuLlama {
    /// A network from its weights (Hugging Face row order); their shapes are checked against
    /// `cfg`.
    pub fn new(cfg: Config, w: CpuWeights) -> Result<Self> {
        Self::with_rope_layout(cfg, w, RopeLayout::HalfSplit)
    }

    /// [`CpuLlama::new`] for query/key rows in `rope_layout`'s order.
    pub fn with_rope_layout(cfg: Config, w: CpuWeights, rope_layout: RopeLayout) -> Result<Self> {
        let (c, f, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
        let (q, kv) = (cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim);
        let check = |name: String, m: &dyn Matrix, rows: usize, cols: usize| -> Result<()> {
            if (m.rows(), m.cols()) != (rows, cols) {
                return Err(ModelError::Shape(format!("{name} is {} x {}, the config implies {rows} x {cols}", m.rows(), m.cols())));
            }
            Ok(())
        };
        check("the embedding".into(), w.embed.as_ref(), v, c)?;
        if let Some(o) = &w.output {
            check("the output projection".into(), o.as_ref(), v, c)?;
        }
        if w.layers.len() != cfg.num_hidden_layers {
            return Err(ModelError::Shape(format!("{} layers, the config says {}", w.layers.len(), cfg.num_hidden_layers)));
        }
        for (i, l) in w.layers.iter().enumerate() {
            check(format!("layer {i} q"), l.q.as_ref(), q, c)?;
            check(format!("layer {i} k"), l.k.as_ref(), kv, c)?;
            check(format!("layer {i} v"), l.v.as_ref(), kv, c)?;
            check(format!("layer {i} o"), l.o.as_ref(), c, q)?;
            check(format!("layer {i} gate"), l.gate.as_ref(), f, c)?;
            check(format!("layer {i} up"), l.up.as_ref(), f, c)?;
            check(format!("layer {i} down"), l.down.as_ref(), c, f)?;
            if l.attn_norm.len() != c || l.ffn_norm.len() != c {
                return Err(ModelError::Shape(format!(
                    "layer {i}: norm weights of {} / {}, need {c}",
                    l.attn_norm.len(),
                    l.ffn_norm.len()
                )));
            }
        }
        if w.norm.len() != c
            || !cfg.head_dim.is_multiple_of(2)
            || cfg.num_key_value_heads == 0
            || !cfg.num_attention_heads.is_multiple_of(cfg.num_key_value_heads)
        {
            return Err(ModelError::Shape("final norm width, odd head_dim or heads not a multiple of KV heads".into()));
        }
        let (cos, sin) = rope_tables(&cfg);
        Ok(Self { cfg, w, rope_layout, kv_type: KvType::F32, max_step_rows: MAX_STEP_ROWS, cos, sin })
    }

    /// The same network keeping its KV cache in `ty` (caches made afterwards; F32 is exact, F16
    /// halves the cache's memory and the bytes attention reads, as llama.cpp's default does).
    pub fn with_kv_type(self, ty: KvType) -> Self {
        Self { kv_type: ty, ..self }
    }

    /// The same network computing at most `rows` rows per step (llama.cpp's `--ubatch-size`):
    /// fewer rows, smaller activations; more rows, fewer passes over the weights in prefill.
    pub fn with_max_step_rows(self, rows: usize) -> Self {
        Self { max_step_rows: rows.max(1), ..self }
    }

    /// The storage type of the caches [`CpuLlama::new_cache`] makes.
    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The weights.
    pub fn weights(&self) -> &CpuWeights {
        &self.w
    }

    /// Bytes of all weight matrices and norms.
    pub fn weight_bytes(&self) -> usize {
        let l: usize = self
            .w
            .layers
            .iter()
            .map(|l| {
                [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].iter().map(|m| m.bytes()).sum::<usize>()
                    + 4 * (l.attn_norm.len() + l.ffn_norm.len())
            })
            .sum();
        l + self.w.embed.bytes() + self.w.output.as_ref().map_or(0, |o| o.bytes()) + 4 * self.w.norm.len()
    }

    /// An empty cache.
    pub fn new_cache(&self) -> CpuCache {
        let (kvh, n) = (self.cfg.num_key_value_heads, self.cfg.num_hidden_layers);
        CpuCache {
            len: 0,
            ty: self.kv_type,
            kv_heads: kvh,
            head_dim: self.cfg.head_dim,
            k: vec![Vec::new(); n * kvh],
            v: vec![Vec::new(); n * kvh],
        }
    }

    /// Runs `ids`: `seqs[i]` tokens of sequence `i` (appended after what `caches[i]` holds) are
    /// the next `seqs[i]` entries of `ids`. Returns logits (f32, rows of V) per `wanted`: the
    /// last row of each sequence, or every row in order.
    pub fn forward(&self, ids: &[u32], seqs: &[usize], caches: &mut [&mut CpuCache], wanted: Wanted) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
        if seqs.len() != caches.len() || seqs.iter().sum::<usize>() != ids.len() || seqs.contains(&0) {
            return Err(ModelError::Shape(format!("forward: {} ids in {seqs:?} for {} caches", ids.len(), caches.len())));
        }
        for (c, &t) in caches.iter().zip(seqs) {
            if c.len + t > cfg.max_position_embeddings {
                return Err(ModelError::TooLong { len: c.len + t, max: cfg.max_position_embeddings });
            }
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= cfg.vocab_size) {
            return Err(ModelError::TokenOutOfRange { id, vocab_size: cfg.vocab_size });
        }
        // Only the rows whose logits are wanted go through the final norm and the head.
        let rows: Vec<usize> = match wanted {
            Wanted::All => (0..ids.len()).collect(),
            Wanted::LastOfEach => seqs
                .iter()
                .scan(0, |end, &t| {
                    *end += t;
                    Some(*end - 1)
                })
                .collect(),
        };
        // The rows run in steps of at most `step_rows` (one step unless a prompt is long; a
        // sequence may be cut between steps: its later rows see the earlier ones in the cache),
        // so activations stay a few tens of MB whatever the prompt's length.
        let step_rows = self.max_step_rows;
        let mut logits = Vec::with_capacity(rows.len() * cfg.vocab_size);
        let (mut pos, mut s, mut done) = (0, 0, 0);
        while pos < ids.len() {
            let (mut step_seqs, mut members) = (Vec::new(), Vec::new());
            let mut room = step_rows;
            while room > 0 && s < seqs.len() {
                let take = (seqs[s] - done).min(room);
                step_seqs.push(take);
                members.push(s);
                (done, room) = (done + take, room - take);
                if done == seqs[s] {
                    (s, done) = (s + 1, 0);
                }
            }
            let m = step_rows - room;
            let want: Vec<usize> = rows.iter().filter(|&&r| (pos..pos + m).contains(&r)).map(|r| r - pos).collect();
            let mut step_caches: Vec<&mut CpuCache> =
                caches.iter_mut().enumerate().filter(|(i, _)| members.contains(i)).map(|(_, c)| &mut **c).collect();
            logits.extend(self.forward_step(&ids[pos..pos + m], &step_seqs, &mut step_caches, &want));
            pos += m;
        }
        Ok(logits)
    }

    /// One step of [`CpuLlama::forward`] (inputs checked): the logits of rows `rows`.
    fn forward_step(&self, ids: &[u32], seqs: &[usize], caches: &mut [&mut CpuCache], rows: &[usize]) -> Vec<f32> {
        let cfg = &self.cfg;
        let (n, c) = (ids.len(), cfg.hidden_size);
        let (hd, kvd, f) = (cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim, cfg.intermediate_size);
        // Row r: its sequence and position.
        let mut row_seq = Vec::with_capacity(n);
        let mut row_pos = Vec::with_capacity(n);
        for (s, (&t, cache)) in seqs.iter().zip(caches.iter()).enumerate() {
            for j in 0..t {
                row_seq.push(s);
                row_pos.push(cache.len + j);
            }
        }
        let mut x = vec![0f32; n * c];
        for (row, &id) in x.chunks_exact_mut(c).zip(ids) {
            self.w.embed.row(id as usize, row);
        }
        let eps = cfg.rms_norm_eps as f32;
        let (mut h, mut q, mut k, mut v) = (vec![0f32; n * c], vec![0f32; n * hd], vec![0f32; n * kvd], vec![0f32; n * kvd]);
        let (mut att, mut tmp) = (vec![0f32; n * hd], vec![0f32; n * c]);
        let (mut g, mut u, mut a) = (vec![0f32; n * f], vec![0f32; n * f], vec![0f32; n * f]);
        for (l, layer) in self.w.layers.iter().enumerate() {
            rms_norm_rows(&x, &layer.attn_norm, eps, &mut h, c);
            layer.q.matmul(&h, n, &mut q);
            layer.k.matmul(&h, n, &mut k);
            layer.v.matmul(&h, n, &mut v);
            self.rope_rows(&mut q, &row_pos, cfg.num_attention_heads);
            self.rope_rows(&mut k, &row_pos, cfg.num_key_value_heads);
            // Append every row's key and value to its sequence's cache, then attend.
            let mut first = 0;
            for (cache, &t) in caches.iter_mut().zip(seqs) {
                cache.append(l, &k[first * kvd..(first + t) * kvd], &v[first * kvd..(first + t) * kvd], t);
                first += t;
            }
            self.attention(&q, &row_seq, &row_pos, caches, l, &mut att);
            layer.o.matmul(&att, n, &mut tmp);
            add_into(&mut x, &tmp);
            rms_norm_rows(&x, &layer.ffn_norm, eps, &mut h, c);
            layer.gate.matmul(&h, n, &mut g);
            layer.up.matmul(&h, n, &mut u);
            crate::ops::swiglu_f32(&g, &u, &mut a);
            layer.down.matmul(&a, n, &mut tmp);
            add_into(&mut x, &tmp);
        }
        for (cache, &t) in caches.iter_mut().zip(seqs) {
            cache.len += t;
        }
        let mut hn = vec![0f32; rows.len() * c];
        for (dst, &r) in hn.chunks_exact_mut(c).zip(rows) {
            rms_norm_rows(&x[r * c..(r + 1) * c], &self.w.norm, eps, dst, c);
        }
        let head = self.w.output.as_deref().unwrap_or(self.w.embed.as_ref());
        let mut logits = vec![0f32; rows.len() * cfg.vocab_size];
        head.matmul(&hn, rows.len(), &mut logits);
        logits
    }

    /// Rotates each row's heads (rows of `heads * head_dim`) at the row's position, pairing
    /// dimensions as the weights' [`RopeLayout`] says.
    fn rope_rows(&self, x: &mut [f32], pos: &[usize], heads: usize) {
        let d = self.cfg.head_dim;
        let half = d / 2;
        for (row, &p) in x.chunks_exact_mut(heads * d).zip(pos) {
            let (cos, sin) = (&self.cos[p * half..(p + 1) * half], &self.sin[p * half..(p + 1) * half]);
            for head in row.chunks_exact_mut(d) {
                match self.rope_layout {
                    RopeLayout::HalfSplit => {
                        let (a, b) = head.split_at_mut(half);
                        for i in 0..half {
                            let (x0, x1) = (a[i], b[i]);
                            a[i] = x0 * cos[i] - x1 * sin[i];
                            b[i] = x1 * cos[i] + x0 * sin[i];
                        }
                    }
                    RopeLayout::Interleaved => {
                        for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                            let (x0, x1) = (pair[0], pair[1]);
                            pair[0] = x0 * cos[i] - x1 * sin[i];
                            pair[1] = x1 * cos[i] + x0 * sin[i];
                        }
                    }
                }
            }
        }
    }

    /// Causal attention of every row over its own sequence's cache, up to its own position: one
    /// task per (row, KV head), taking the query heads that share the KV head together (the
    /// keys and values are read once for the group), spread over kiln-quant's pool.
    fn attention(&self, q: &[f32], row_seq: &[usize], row_pos: &[usize], caches: &[&mut CpuCache], l: usize, out: &mut [f32]) {
        let cfg = &self.cfg;
        let (h, kvh, d) = (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim);
        let group = h / kvh;
        let scale = 1.0 / (d as f32).sqrt();
        thread_local!(static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) });
        crate::gguf_llama::pool().for_each_chunk_mut(out, group * d, &|i, o| {
            let (r, g) = (i / kvh, i % kvh);
            let cache = &caches[row_seq[r]];
            let start = r * h * d + g * group * d;
            let a = Attend {
                ty: cache.ty,
                q: &q[start..start + group * d],
                d,
                keys: &cache.k[l * kvh + g],
                values: &cache.v[l * kvh + g],
                len: row_pos[r] + 1,
                scale,
            };
            SCRATCH.with_borrow_mut(|scratch| kiln_quant::attend(&a, scratch, o)).expect("cache and head shapes come from the config");
        });
    }
}

/// llama.cpp's order of query/key rows: entry `g` is the Hugging Face row that GGUF row `g`
/// holds, for a projection of `heads` heads of `rows / heads` dimensions (its converter's
/// `permute`: within each head, the first and second halves are interleaved, so RoPE can rotate
/// adjacent pairs).
pub fn llama_cpp_qk_order(rows: usize, heads: usize) -> Vec<usize> {
    let d = rows / heads.max(1);
    let half = d / 2;
    (0..rows)
        .map(|g| {
            let (head, i) = (g / d, g % d);
            head * d + (i % 2) * half + i / 2
        })
        .collect()
}

/// RoPE cosines and sines for every position, computed as kiln-model's Rope (and transformers):
/// inv_freq = 1 / base^(2i/d), divided by the linear factor, angle = pos * inv_freq in f32.
fn rope_tables(cfg: &Config) -> (Vec<f32>, Vec<f32>) {
    let half = cfg.head_dim / 2;
    let factor = match cfg.rope_scaling {
        RopeScaling::None => 1.0f32,
        RopeScaling::Linear { factor } => factor as f32,
    };
    let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / (cfg.rope_theta as f32).powf((2 * i) as f32 / cfg.head_dim as f32) / factor).collect();
    let n = cfg.max_position_embeddings;
    let (mut cos, mut sin) = (Vec::with_capacity(n * half), Vec::with_capacity(n * half));
    for pos in 0..n {
        for f in &inv_freq {
            let a = pos as f32 * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    (cos, sin)
}

/// y = x / sqrt(mean(x²) + eps) * w, row by row (kiln-model's fused kernel, as the float model).
fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, y: &mut [f32], c: usize) {
    debug_assert_eq!(w.len(), c);
    crate::ops::rms_norm_f32(x, w, eps, y);
}

fn add_into(acc: &mut [f32], x: &[f32]) {
    acc.iter_mut().zip(x).for_each(|(a, b)| *a += b);
}

impl CpuLlama {
    /// The float network's weights as f32 matrices (whatever their dtype): kiln's CPU decoding
    /// path for Hugging Face checkpoints.
    pub fn from_llama(model: &crate::Llama) -> Result<Self> {
        let cfg = model.config().clone();
        let p = model.params();
        let mat = |t: &candle_core::Tensor| -> Result<Box<dyn Matrix>> {
            let (rows, cols) = t.dims2()?;
            let data = t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            Ok(Box::new(F32Matrix::new(rows, cols, data)?))
        };
        let vec = |t: &candle_core::Tensor| -> Result<Vec<f32>> { Ok(t.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?) };
        let layers = p
            .layers
            .iter()
            .map(|l| {
                Ok(CpuLayer {
                    attn_norm: vec(&l.input_layernorm)?,
                    q: mat(&l.q_proj)?,
                    k: mat(&l.k_proj)?,
                    v: mat(&l.v_proj)?,
                    o: mat(&l.o_proj)?,
                    ffn_norm: vec(&l.post_attention_layernorm)?,
                    gate: mat(&l.gate_proj)?,
                    up: mat(&l.up_proj)?,
                    down: mat(&l.down_proj)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let w = CpuWeights { embed: mat(&p.embed_tokens)?, layers, norm: vec(&p.norm)?, output: p.lm_head.as_ref().map(mat).transpose()? };
        Self::new(cfg, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;
    use crate::{Llama, WeightDType};
    use candle_core::{Device, Tensor};

    fn tiny(tied: bool) -> Llama {
        let cfg = Config {
            vocab_size: 96,
            hidden_size: 32,
            intermediate_size: 40,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: 8,
            max_position_embeddings: 64,
            rope_scaling: RopeScaling::Linear { factor: 4.0 },
            rope_theta: 100000.0,
            initializer_range: 0.2,
            tie_word_embeddings: tied,
            ..Config::preset(Preset::Tiny)
        };
        Llama::random(cfg, WeightDType::F32, &Device::Cpu, 5).unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
    }

    /// Prefill logits of every position equal the candle network's; prefill then decode equals
    /// one prefill; a sequence decodes to the same bits alone or batched with others.
    #[test]
    fn equals_the_float_network_and_is_batch_invariant() {
        for tied in [false, true] {
            let model = tiny(tied);
            let cpu = CpuLlama::from_llama(&model).unwrap();
            let ids: Vec<u32> = vec![3, 17, 5, 60, 2, 9, 33, 41, 8, 95];
            let want =
                model.forward(&Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap(), &mut model.new_cache()).unwrap();
            let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut cache = cpu.new_cache();
            let all = cpu.forward(&ids, &[ids.len()], &mut [&mut cache], Wanted::All).unwrap();
            assert!(max_diff(&all, &want) < 1e-4, "tied={tied}: {}", max_diff(&all, &want));
            assert_eq!(cache.len(), ids.len());
            // Prefill 4, then one at a time.
            let v = 96;
            let mut c2 = cpu.new_cache();
            let mut stepped = cpu.forward(&ids[..4], &[4], &mut [&mut c2], Wanted::All).unwrap();
            for &id in &ids[4..] {
                stepped.extend(cpu.forward(&[id], &[1], &mut [&mut c2], Wanted::LastOfEach).unwrap());
            }
            assert!(max_diff(&stepped, &all) < 1e-5);
            // Batched decode: three sequences at different lengths, one step together.
            let prompts: [&[u32]; 3] = [&[1, 2, 3], &[7], &[9, 9, 9, 9, 9]];
            let mut caches: Vec<CpuCache> = prompts.iter().map(|_| cpu.new_cache()).collect();
            for (c, p) in caches.iter_mut().zip(prompts) {
                cpu.forward(p, &[p.len()], &mut [c], Wanted::LastOfEach).unwrap();
            }
            let mut alone_caches = caches.clone();
            let next = [11u32, 12, 13];
            let mut refs: Vec<&mut CpuCache> = caches.iter_mut().collect();
            let batched = cpu.forward(&next, &[1, 1, 1], &mut refs, Wanted::LastOfEach).unwrap();
            for (i, c) in alone_caches.iter_mut().enumerate() {
                let alone = cpu.forward(&next[i..i + 1], &[1], &mut [c], Wanted::LastOfEach).unwrap();
                assert_eq!(alone, batched[i * v..(i + 1) * v], "sequence {i} differs batched");
            }
            // The same network with llama.cpp's query/key row order rotates adjacent pairs and
            // computes the same function.
            let perm = |m: &dyn Matrix, heads: usize| -> Box<dyn Matrix> {
                let (rows, cols) = (m.rows(), m.cols());
                let mut data = vec![0f32; rows * cols];
                for (g, &h) in llama_cpp_qk_order(rows, heads).iter().enumerate() {
                    m.row(h, &mut data[g * cols..(g + 1) * cols]);
                }
                Box::new(F32Matrix::new(rows, cols, data).unwrap())
            };
            let base = CpuLlama::from_llama(&model).unwrap();
            let CpuLlama { cfg, w, .. } = base;
            let cfg2 = cfg.clone();
            let layers = w
                .layers
                .into_iter()
                .map(|l| CpuLayer { q: perm(l.q.as_ref(), cfg2.num_attention_heads), k: perm(l.k.as_ref(), cfg2.num_key_value_heads), ..l })
                .collect();
            let gguf_order = CpuLlama::with_rope_layout(cfg, CpuWeights { layers, ..w }, RopeLayout::Interleaved).unwrap();
            let mut c4 = gguf_order.new_cache();
            let permuted = gguf_order.forward(&ids, &[ids.len()], &mut [&mut c4], Wanted::All).unwrap();
            assert!(max_diff(&permuted, &all) < 1e-5, "interleaved: {}", max_diff(&permuted, &all));
            // Long prompts run in steps (here of 3 rows, sequences cut between steps): the same
            // logits as one step, for every row and for the last row of each sequence.
            let stepped = CpuLlama::from_llama(&model).unwrap().with_max_step_rows(3);
            let mut c5 = stepped.new_cache();
            let all3 = stepped.forward(&ids, &[ids.len()], &mut [&mut c5], Wanted::All).unwrap();
            assert!(max_diff(&all3, &all) < 1e-5, "stepped: {}", max_diff(&all3, &all));
            assert_eq!(c5.len(), ids.len());
            let mut caches3: Vec<CpuCache> = (0..3).map(|_| stepped.new_cache()).collect();
            let mut refs3: Vec<&mut CpuCache> = caches3.iter_mut().collect();
            let flat: Vec<u32> = prompts.concat();
            let last = stepped.forward(&flat, &[3, 1, 5], &mut refs3, Wanted::LastOfEach).unwrap();
            for (i, p) in prompts.iter().enumerate() {
                let mut c = cpu.new_cache();
                let alone = cpu.forward(p, &[p.len()], &mut [&mut c], Wanted::LastOfEach).unwrap();
                assert!(max_diff(&last[i * v..(i + 1) * v], &alone) < 1e-5, "stepped batch, sequence {i}");
                assert_eq!(caches3[i].len(), p.len());
            }
            // An f16 cache (GGUF models' default) changes the logits by the f16 rounding of
            // keys, values, queries and probabilities only, and holds half the bytes.
            let half = CpuLlama::from_llama(&model).unwrap().with_kv_type(KvType::F16);
            let mut c6 = half.new_cache();
            let all16 = half.forward(&ids, &[ids.len()], &mut [&mut c6], Wanted::All).unwrap();
            let d16 = max_diff(&all16, &all);
            assert!(d16 > 0.0 && d16 < 2e-2, "f16 cache: {d16}");
            assert_eq!((c6.kv_type(), c6.bytes() * 2), (KvType::F16, cache.bytes()));
            // Bad inputs are errors.
            let mut c3 = cpu.new_cache();
            assert!(matches!(cpu.forward(&[96], &[1], &mut [&mut c3], Wanted::All), Err(ModelError::TokenOutOfRange { .. })));
            let long = vec![1u32; 65];
            assert!(matches!(cpu.forward(&long, &[65], &mut [&mut c3], Wanted::All), Err(ModelError::TooLong { .. })));
        }
    }
}
