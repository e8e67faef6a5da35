//! The training step for f32 on the CPU, written out by hand: a forward pass that keeps what
//! the backward needs, then the backward layer by layer, every product one `gemm` call.
//!
//! Why not candle's autograd: profiled on the issue #6 benchmark model, half of its step went
//! outside the matrix products — every gradient is summed into a fresh zero tensor
//! (`zeros_like` + `add` per op), transposes and reshapes are graph nodes with their own
//! backward copies, and each step allocates (and page-faults) its activations anew. Here the
//! activations live in a [`Workspace`] reused across steps, transposes are strides handed to
//! `gemm`, weight gradients are written by the product that computes them, and the elementwise
//! ops are kiln-model's fused slice kernels (the same ones the autograd path runs). The result is
//! the same function: `tests` checks loss and every gradient against the autograd path, and the
//! PyTorch parity fixture runs through this path.
//!
//! Layouts (N = B·T rows): activations are row-major (N, width); attention works on heads
//! (B, H, T, D). Grouped-query key/value heads are expanded to H heads for the attention kernel
//! and their gradients summed back over each group, as `repeat_kv`'s backward does.

use candle_core::{Storage, Tensor};
use gemm::Parallelism;
use kiln_model::{ops, Config, ModelError, Params};
use rayon::prelude::*;

use crate::error::{Result, TrainError};

/// Activations of one layer kept for the backward.
#[derive(Default)]
struct Saved {
    x: Vec<f32>,  // (N, C) layer input
    h1: Vec<f32>, // (N, C) input_layernorm(x)
    q: Vec<f32>,  // (B, H, T, D) rotated queries
    k: Vec<f32>,  // (B, H, T, D) rotated keys, expanded to H heads
    v: Vec<f32>,  // (B, H, T, D) values, expanded
    ot: Vec<f32>, // (N, H·D) attention output, rows
    xm: Vec<f32>, // (N, C) x + attention
    h2: Vec<f32>, // (N, C) post_attention_layernorm(xm)
    g: Vec<f32>,  // (N, F) gate projection
    u: Vec<f32>,  // (N, F) up projection
    a: Vec<f32>,  // (N, F) silu(g) * u
}

/// Buffers of one step, kept between steps (same batch shape: no allocation, no page faults).
#[derive(Default)]
pub struct Workspace {
    shape: (usize, usize),
    layers: Vec<Saved>,
    xf: Vec<f32>,     // (N, C) last layer's output
    hf: Vec<f32>,     // (N, C) final norm
    logits: Vec<f32>, // (N, V), then their gradient
    qp: Vec<f32>,     // (N, H·D) projections, then their gradients
    kp: Vec<f32>,     // (N, KV·D)
    vp: Vec<f32>,     // (N, KV·D)
    att: Vec<f32>,    // (B, H, T, D) attention output, then its gradient
    tmp: Vec<f32>,    // (N, C)
    dx: Vec<f32>,     // (N, C) gradient of the residual stream
    dh: Vec<f32>,     // (N, C) gradient of a norm's output
    da: Vec<f32>,     // (N, F)
    dg: Vec<f32>,     // (N, F)
    du: Vec<f32>,     // (N, F)
    dq: Vec<f32>,     // (B, H, T, D)
    dk: Vec<f32>,     // (B, H, T, D)
    dv: Vec<f32>,     // (B, H, T, D)
}

/// Sizes of the network and the batch.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    n: usize,
    c: usize,
    h: usize,
    kv: usize,
    d: usize,
    f: usize,
    v: usize,
}

impl Dims {
    fn hd(&self) -> usize {
        self.h * self.d
    }
    fn kvd(&self) -> usize {
        self.kv * self.d
    }
}

fn sized(v: &mut Vec<f32>, len: usize) {
    if v.len() != len {
        *v = vec![0.0; len];
    }
}

impl Workspace {
    fn ensure(&mut self, m: &Dims, layers: usize) {
        if self.shape == (m.b, m.t) && self.layers.len() == layers && self.logits.len() == m.n * m.v && self.da.len() == m.n * m.f {
            return;
        }
        self.shape = (m.b, m.t);
        let (n, c, hd, f) = (m.n, m.c, m.hd(), m.f);
        self.layers.resize_with(layers, Saved::default);
        for s in &mut self.layers {
            for (buf, len) in [
                (&mut s.x, n * c),
                (&mut s.h1, n * c),
                (&mut s.q, n * hd),
                (&mut s.k, n * hd),
                (&mut s.v, n * hd),
                (&mut s.ot, n * hd),
                (&mut s.xm, n * c),
                (&mut s.h2, n * c),
                (&mut s.g, n * f),
                (&mut s.u, n * f),
                (&mut s.a, n * f),
            ] {
                sized(buf, len);
            }
        }
        for (buf, len) in [
            (&mut self.xf, n * c),
            (&mut self.hf, n * c),
            (&mut self.logits, n * m.v),
            (&mut self.qp, n * hd),
            (&mut self.kp, n * m.kvd()),
            (&mut self.vp, n * m.kvd()),
            (&mut self.att, n * hd),
            (&mut self.tmp, n * c),
            (&mut self.dx, n * c),
            (&mut self.dh, n * c),
            (&mut self.da, n * f),
            (&mut self.dg, n * f),
            (&mut self.du, n * f),
            (&mut self.dq, n * hd),
            (&mut self.dk, n * hd),
            (&mut self.dv, n * hd),
        ] {
            sized(buf, len);
        }
    }
}

/// A matrix operand: element (i, j) at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

/// A row-major (·, cols) matrix.
fn rows(data: &[f32], cols: usize) -> Mat<'_> {
    Mat { data, rs: cols, cs: 1 }
}

/// The transpose of a row-major (·, cols) matrix (no copy: swapped strides).
fn transposed(data: &[f32], cols: usize) -> Mat<'_> {
    Mat { data, rs: 1, cs: cols }
}

/// `dst` (m, n) row-major = a (m, k) · b (k, n), or `+=` with `accumulate`.
fn matmul(dst: &mut [f32], m: usize, n: usize, k: usize, a: Mat, b: Mat, accumulate: bool) {
    assert!(dst.len() >= m * n, "matmul: destination too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // The reads gemm makes stay inside these bounds.
    assert!((m - 1) * a.rs + (k - 1) * a.cs < a.data.len(), "matmul: left operand too small");
    assert!((k - 1) * b.rs + (n - 1) * b.cs < b.data.len(), "matmul: right operand too small");
    let threads = candle_core::utils::get_num_threads();
    let par = if threads > 1 { Parallelism::Rayon(threads) } else { Parallelism::None };
    // SAFETY: dst holds m x n elements at row stride n; a and b were bounds-checked above;
    // the three regions do not overlap (dst is a unique borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// `y = x @ w.T` for a (out, in) weight: the forward of a bias-free linear layer.
fn linear(y: &mut [f32], x: &[f32], w: &[f32], n: usize, input: usize, out: usize) {
    matmul(y, n, out, input, rows(x, input), transposed(w, input), false);
}

/// Backward of [`linear`]: `dw = dy.T @ x` (written), `dx (=|+=) dy @ w`.
#[allow(clippy::too_many_arguments)]
fn linear_bwd(dx: &mut [f32], dw: &mut [f32], dy: &[f32], x: &[f32], w: &[f32], n: usize, input: usize, out: usize, accumulate_dx: bool) {
    matmul(dw, out, input, n, transposed(dy, out), rows(x, input), false);
    matmul(dx, n, input, out, rows(dy, out), rows(w, input), accumulate_dx);
}

/// Rows (N, heads_src·D) → heads (B, H, T, D), head h reading source head h / rep, rotated by
/// its position when `rope` is given.
fn to_heads(src: &[f32], dst: &mut [f32], m: &Dims, heads_src: usize, rope: Option<(&[f32], &[f32])>) {
    let (t, d, h, half) = (m.t, m.d, m.h, m.d / 2);
    let rep = h / heads_src;
    dst.par_chunks_mut(t * d).enumerate().for_each(|(bh, head)| {
        let (bb, hh) = (bh / h, bh % h);
        for (tt, row) in head.chunks_mut(d).enumerate() {
            let at = (bb * t + tt) * heads_src * d + (hh / rep) * d;
            let x = &src[at..at + d];
            match rope {
                Some((cos, sin)) => ops::rope_row_f32(x, &cos[tt * half..(tt + 1) * half], &sin[tt * half..(tt + 1) * half], row, false),
                None => row.copy_from_slice(x),
            }
        }
    });
}

/// Heads (B, H, T, D) → rows (N, heads_dst·D): the backward of [`to_heads`]: the `rep` heads
/// that read one destination head are summed, then rotated back when `rope` is given.
fn from_heads(src: &[f32], dst: &mut [f32], m: &Dims, heads_dst: usize, rope: Option<(&[f32], &[f32])>) {
    let (t, d, h, half) = (m.t, m.d, m.h, m.d / 2);
    let rep = h / heads_dst;
    dst.par_chunks_mut(heads_dst * d).enumerate().for_each_init(
        || vec![0f32; d],
        |sum, (r, row)| {
            let (bb, tt) = (r / t, r % t);
            for (kh, out) in row.chunks_mut(d).enumerate() {
                let head = |j: usize| {
                    let at = ((bb * h + kh * rep + j) * t + tt) * d;
                    &src[at..at + d]
                };
                let x: &[f32] = if rep == 1 {
                    head(0)
                } else {
                    sum.copy_from_slice(head(0));
                    for j in 1..rep {
                        sum.iter_mut().zip(head(j)).for_each(|(s, v)| *s += v);
                    }
                    sum
                };
                match rope {
                    Some((cos, sin)) => ops::rope_row_f32(x, &cos[tt * half..(tt + 1) * half], &sin[tt * half..(tt + 1) * half], out, true),
                    None => out.copy_from_slice(x),
                }
            }
        },
    );
}

/// `acc += x`, elementwise, in parallel.
fn add_into(acc: &mut [f32], x: &[f32]) {
    acc.par_chunks_mut(1 << 14).zip(x.par_chunks(1 << 14)).for_each(|(a, x)| a.iter_mut().zip(x).for_each(|(a, x)| *a += x));
}

/// `out = a + b`, elementwise, in parallel.
fn add_to(out: &mut [f32], a: &[f32], b: &[f32]) {
    out.par_chunks_mut(1 << 14).zip(a.par_chunks(1 << 14)).zip(b.par_chunks(1 << 14)).for_each(|((o, a), b)| {
        o.iter_mut().zip(a).zip(b).for_each(|((o, a), b)| *o = a + b);
    });
}

/// Runs `f` on the contiguous f32 data of every tensor (all on the CPU), read-locked meanwhile.
pub(crate) fn with_slices<R>(tensors: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> Result<R>) -> Result<R> {
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(tensors.len());
    for (storage, layout) in &guards {
        slices.push(cpu_f32(storage, layout)?);
    }
    f(&slices)
}

/// The contiguous f32 data of a CPU tensor's storage.
fn cpu_f32<'s>(storage: &'s Storage, layout: &candle_core::Layout) -> Result<&'s [f32]> {
    let Storage::Cpu(cpu) = storage else {
        return Err(TrainError::Config("the hand-written training step runs on the CPU only".into()));
    };
    let data = cpu.as_slice::<f32>()?;
    let (a, b) = layout.contiguous_offsets().ok_or_else(|| TrainError::Config("a parameter is not contiguous".into()))?;
    Ok(&data[a..b])
}

/// What one step returns: the weighted loss and each parameter's gradient.
pub struct StepResult {
    /// `sum_r weights[r] * loss_r`.
    pub loss: f64,
    /// Each parameter's gradient, flat, in the parameter's own field.
    pub grads: Params<Vec<f32>>,
}

/// One forward + backward of the loss `sum_r weights[r] * CE(logits_r, targets[r])` over the
/// N = B·T positions of `inputs` (B, T) row-major. `params` are the model's tensors, by role
/// (f32, CPU, contiguous); `cos`/`sin` its RoPE tables.
#[allow(clippy::too_many_arguments)]
pub fn loss_and_grads(
    cfg: &Config,
    params: &Params<Tensor>,
    cos: &Tensor,
    sin: &Tensor,
    inputs: &[u32],
    targets: &[u32],
    weights: &[f32],
    b: usize,
    ws: &mut Workspace,
) -> Result<StepResult> {
    let t = inputs.len() / b.max(1);
    let m = Dims {
        b,
        t,
        n: b * t,
        c: cfg.hidden_size,
        h: cfg.num_attention_heads,
        kv: cfg.num_key_value_heads,
        d: cfg.head_dim,
        f: cfg.intermediate_size,
        v: cfg.vocab_size,
    };
    let layers = cfg.num_hidden_layers;
    if params.layers.len() != layers
        || params.lm_head.is_some() == cfg.tie_word_embeddings
        || inputs.len() != m.n
        || targets.len() != m.n
        || weights.len() != m.n
        || m.kv == 0
        || !m.h.is_multiple_of(m.kv)
    {
        return Err(TrainError::Config(format!(
            "hand-written step: {} layers of parameters (need {layers}, lm_head {}), {} inputs, {} targets, {} weights for batch {b}",
            params.layers.len(),
            if cfg.tie_word_embeddings { "tied" } else { "untied" },
            inputs.len(),
            targets.len(),
            weights.len()
        )));
    }
    if t > cfg.max_position_embeddings {
        return Err(ModelError::TooLong { len: t, max: cfg.max_position_embeddings }.into());
    }
    if let Some(&id) = inputs.iter().find(|&&id| id as usize >= m.v) {
        return Err(ModelError::TokenOutOfRange { id, vocab_size: m.v }.into());
    }
    ws.ensure(&m, layers);
    let eps = cfg.rms_norm_eps as f32;
    let scale = (1.0 / (m.d as f64).sqrt()) as f32; // as the model computes it
    let guards = params.map(|t| t.storage_and_layout());
    let p: Params<&[f32]> = guards.try_map(|(storage, layout)| cpu_f32(storage, layout))?;
    with_slices(&[cos, sin], |rope_tables| {
        let (cos, sin) = (rope_tables[0], rope_tables[1]);
        let rope = Some((&cos[..t * m.d / 2], &sin[..t * m.d / 2]));
        let embed = p.embed_tokens;
        let norm = p.norm;
        let lm_head = p.lm_head.unwrap_or(embed);
        let (n, c, hd, kvd, f, v) = (m.n, m.c, m.hd(), m.kvd(), m.f, m.v);

        // ---- forward ----
        {
            let x0 = &mut ws.layers.first_mut().map(|s| &mut s.x).unwrap_or(&mut ws.xf)[..];
            x0.par_chunks_mut(c)
                .zip(inputs.par_iter())
                .for_each(|(row, &id)| row.copy_from_slice(&embed[id as usize * c..(id as usize + 1) * c]));
        }
        for l in 0..layers {
            let (done, rest) = ws.layers.split_at_mut(l + 1);
            let sv = &mut done[l];
            ops::rms_norm_f32(&sv.x, p.layers[l].input_layernorm, eps, &mut sv.h1);
            linear(&mut ws.qp, &sv.h1, p.layers[l].q_proj, n, c, hd);
            linear(&mut ws.kp, &sv.h1, p.layers[l].k_proj, n, c, kvd);
            linear(&mut ws.vp, &sv.h1, p.layers[l].v_proj, n, c, kvd);
            to_heads(&ws.qp, &mut sv.q, &m, m.h, rope);
            to_heads(&ws.kp, &mut sv.k, &m, m.kv, rope);
            to_heads(&ws.vp, &mut sv.v, &m, m.kv, None);
            ops::causal_attention_f32(&sv.q, &sv.k, &sv.v, &mut ws.att, t, t, m.d, scale);
            from_heads(&ws.att, &mut sv.ot, &m, m.h, None);
            linear(&mut ws.tmp, &sv.ot, p.layers[l].o_proj, n, hd, c);
            add_to(&mut sv.xm, &sv.x, &ws.tmp);
            ops::rms_norm_f32(&sv.xm, p.layers[l].post_attention_layernorm, eps, &mut sv.h2);
            linear(&mut sv.g, &sv.h2, p.layers[l].gate_proj, n, c, f);
            linear(&mut sv.u, &sv.h2, p.layers[l].up_proj, n, c, f);
            ops::swiglu_f32(&sv.g, &sv.u, &mut sv.a);
            linear(&mut ws.tmp, &sv.a, p.layers[l].down_proj, n, f, c);
            let next = match rest.first_mut() {
                Some(nx) => &mut nx.x,
                None => &mut ws.xf,
            };
            add_to(next, &sv.xm, &ws.tmp);
        }
        ops::rms_norm_f32(&ws.xf, norm, eps, &mut ws.hf);
        linear(&mut ws.logits, &ws.hf, lm_head, n, c, v);
        let losses = ops::cross_entropy_grad_inplace_f32(&mut ws.logits, targets, weights, v)?;
        let loss: f64 = losses.iter().zip(weights).map(|(&l, &w)| l as f64 * w as f64).sum();

        // ---- backward ----
        let mut grads: Params<Vec<f32>> = p.map(|w| vec![0f32; w.len()]);
        let Params { embed_tokens: g_embed, layers: g_layers, norm: g_norm, lm_head: g_head } = &mut grads;
        // lm_head: dW = dlogits.T @ hf (into the embedding's gradient when tied, added below).
        let mut g_tied = Vec::new();
        let g_lm: &mut [f32] = match g_head.as_mut() {
            Some(g) => g,
            None => {
                g_tied = vec![0f32; v * c];
                &mut g_tied
            }
        };
        linear_bwd(&mut ws.dh, g_lm, &ws.logits, &ws.hf, lm_head, n, c, v, false);
        ops::rms_norm_bwd_f32(&ws.xf, norm, &ws.dh, eps, &mut ws.dx, g_norm, false);
        for l in (0..layers).rev() {
            let sv = &ws.layers[l];
            let gl = &mut g_layers[l];
            // MLP: x_next = xm + down(swiglu(gate(h2), up(h2)))
            linear_bwd(&mut ws.da, &mut gl.down_proj, &ws.dx, &sv.a, p.layers[l].down_proj, n, f, c, false);
            ops::swiglu_bwd_f32(&sv.g, &sv.u, &ws.da, &mut ws.dg, &mut ws.du);
            linear_bwd(&mut ws.dh, &mut gl.gate_proj, &ws.dg, &sv.h2, p.layers[l].gate_proj, n, c, f, false);
            linear_bwd(&mut ws.dh, &mut gl.up_proj, &ws.du, &sv.h2, p.layers[l].up_proj, n, c, f, true);
            ops::rms_norm_bwd_f32(
                &sv.xm,
                p.layers[l].post_attention_layernorm,
                &ws.dh,
                eps,
                &mut ws.dx,
                &mut gl.post_attention_layernorm,
                true,
            );
            // Attention: xm = x + o_proj(attention(rope(q_proj(h1)), rope(k_proj(h1)), v_proj(h1)))
            linear_bwd(&mut ws.qp, &mut gl.o_proj, &ws.dx, &sv.ot, p.layers[l].o_proj, n, hd, c, false); // qp holds d(ot)
            to_heads(&ws.qp, &mut ws.att, &m, m.h, None); // att holds d(attention out)
            ws.dk.fill(0.0);
            ws.dv.fill(0.0);
            ops::causal_attention_bwd_f32(&sv.q, &sv.k, &sv.v, &ws.att, &mut ws.dq, &mut ws.dk, &mut ws.dv, t, t, m.d, scale);
            from_heads(&ws.dq, &mut ws.qp, &m, m.h, rope);
            from_heads(&ws.dk, &mut ws.kp, &m, m.kv, rope);
            from_heads(&ws.dv, &mut ws.vp, &m, m.kv, None);
            linear_bwd(&mut ws.dh, &mut gl.q_proj, &ws.qp, &sv.h1, p.layers[l].q_proj, n, c, hd, false);
            linear_bwd(&mut ws.dh, &mut gl.k_proj, &ws.kp, &sv.h1, p.layers[l].k_proj, n, c, kvd, true);
            linear_bwd(&mut ws.dh, &mut gl.v_proj, &ws.vp, &sv.h1, p.layers[l].v_proj, n, c, kvd, true);
            ops::rms_norm_bwd_f32(&sv.x, p.layers[l].input_layernorm, &ws.dh, eps, &mut ws.dx, &mut gl.input_layernorm, true);
        }
        // Embedding: scatter-add the rows (in row order: deterministic).
        for (row, &id) in ws.dx.chunks(c).zip(inputs) {
            let dst = &mut g_embed[id as usize * c..(id as usize + 1) * c];
            dst.iter_mut().zip(row).for_each(|(d, g)| *d += g);
        }
        if cfg.tie_word_embeddings {
            add_into(g_embed, &g_tied);
        }
        Ok(StepResult { loss, grads })
    })
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use kiln_model::{Llama, Preset, WeightDType};

    use crate::TrainModel;

    fn model(heads: usize, kv_heads: usize, tied: bool, seed: u64) -> TrainModel {
        let mut cfg = kiln_model::Config::preset(Preset::Tiny);
        (cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers) = (61, 24, 40, 2);
        (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.max_position_embeddings) = (heads, kv_heads, 24 / heads, 64);
        cfg.tie_word_embeddings = tied;
        (cfg.bos_token_id, cfg.eos_token_ids, cfg.pad_token_id) = (Some(0), vec![1], Some(1));
        // A larger init than the preset's, so the gradients are far from zero and rounding.
        cfg.initializer_range = 0.2;
        TrainModel::new(&Llama::random(cfg, WeightDType::F32, &Device::Cpu, seed).unwrap()).unwrap()
    }

    fn windows(b: usize, t: usize, vocab: u32, seed: u32) -> Vec<Vec<u32>> {
        (0..b).map(|i| (0..=t as u32).map(|j| (j * 7 + i as u32 * 13 + seed * 3 + j * j) % vocab).collect()).collect()
    }

    /// max |a - b| / max |b| over a gradient.
    fn rel(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
        let (a, b) = (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
        a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale.max(1e-30)
    }

    /// The hand-written step computes what candle's autograd computes, loss and every gradient,
    /// for multi-head and grouped-query attention, tied and untied heads; every gradient is
    /// non-zero; a second call (buffers reused) gives the same bits.
    #[test]
    fn hand_step_matches_autograd() {
        for (heads, kv, tied) in [(4, 4, false), (4, 2, false), (6, 1, true), (2, 2, true)] {
            let m = model(heads, kv, tied, 7 + heads as u64);
            let w = windows(3, 17, 61, heads as u32);
            assert!(m.hand_step_applies());
            let (loss, grads) = m.loss_and_grads(&w).unwrap();
            let (want, want_grads) = m.autograd_loss_and_grads(&w).unwrap();
            assert!((loss - want).abs() < 1e-5 * want.abs(), "{heads}/{kv} tied={tied}: loss {loss} vs {want}");
            for (((name, _), g), wg) in m.params.iter().zip(&grads).zip(&want_grads) {
                assert_eq!(g.dims(), wg.dims(), "{name}");
                let r = rel(g, wg);
                assert!(r < 2e-5, "{heads}/{kv} tied={tied}: gradient of {name} differs by {r} (relative)");
                let max = g.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(max > 0.0, "{name} has a zero gradient");
            }
            let (again, grads2) = m.loss_and_grads(&w).unwrap();
            assert_eq!(again.to_bits(), loss.to_bits());
            for (a, b) in grads.iter().zip(&grads2) {
                assert_eq!(rel(a, b), 0.0);
            }
        }
    }

    /// The step finds parameters by name, not by position: with the parameter list in another
    /// order (as if `named_tensors` were reordered), every gradient still belongs to its own
    /// parameter. (The step used to index the list with per-layer constants; on this reversed
    /// list it would have read the norms as projections and failed or mixed up gradients.)
    #[test]
    fn parameter_order_cannot_mix_up_gradients() {
        for tied in [false, true] {
            let mut m = model(4, 2, tied, 21);
            m.params.reverse();
            m.params.swap(1, 5);
            let w = windows(2, 11, 61, 9);
            let (loss, grads) = m.loss_and_grads(&w).unwrap();
            let (want, want_grads) = m.autograd_loss_and_grads(&w).unwrap();
            assert!((loss - want).abs() < 1e-5 * want.abs(), "tied={tied}: loss {loss} vs {want}");
            for (((name, var), g), wg) in m.params.iter().zip(&grads).zip(&want_grads) {
                assert_eq!(g.dims(), var.dims(), "{name}");
                assert!(rel(g, wg) < 2e-5, "tied={tied}: gradient of {name} differs by {}", rel(g, wg));
            }
        }
    }

    /// Per-position weights (SFT masks) give the weighted loss and its gradient: weights of
    /// zero drop a position, as the masked autograd loss does.
    #[test]
    fn weights_select_positions() {
        let m = model(4, 2, false, 3);
        let w = windows(2, 9, 61, 5);
        let mask: Vec<Vec<u8>> = vec![vec![0, 0, 0, 1, 1, 1, 0, 1, 1, 0], vec![0, 1, 1, 1, 0, 0, 0, 0, 1, 1]];
        let batch = crate::sft::MaskedBatch { ids: w.clone(), mask: mask.clone() };
        let (loss, grads, count) = crate::sft::masked_loss_and_grads(&m, &batch).unwrap();
        assert_eq!(count, 10);
        let (want, n) = crate::sft::masked_loss(&m, &batch).unwrap();
        assert_eq!(n, count);
        let want_grads = m.param_grads(&want.backward().unwrap()).unwrap();
        let want = want.to_scalar::<f32>().unwrap() as f64;
        assert!((loss - want).abs() < 1e-5 * want.abs(), "masked loss {loss} vs {want}");
        for (((name, _), g), wg) in m.params.iter().zip(&grads).zip(&want_grads) {
            let r = rel(g, wg);
            assert!(r < 2e-5, "masked gradient of {name} differs by {r}");
        }
    }

    /// Bad batches are refused with the reason, not a panic.
    #[test]
    fn out_of_range_tokens_are_refused() {
        let m = model(2, 2, false, 1);
        let mut w = windows(1, 5, 61, 1);
        w[0][2] = 99;
        let err = m.loss_and_grads(&w).unwrap_err().to_string();
        assert!(err.contains("99"), "{err}");
    }
}
