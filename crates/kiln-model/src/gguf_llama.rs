//! Loading a llama-architecture GGUF file (llama.cpp's format: Q4_K_M, Q8_0, F16, ... as users
//! download them) into a [`CpuLlama`], and the GGML-typed weight matrix it multiplies with.
//!
//! The file is memory-mapped and the weights are used in place ([`GgmlMatrix`] points into the
//! map): a model costs its file's size in (page-cache) memory, never a second copy. The one
//! exception: Q4_K, Q6_K and Q5_0 matrices are repacked eight rows at a time for the SIMD
//! kernels ([`kiln_quant::packed`]: 1.2x to 2.3x faster products), and the pages they came from
//! are then released from the process's resident set, so a model still costs its file's size
//! (plus 2.8% of its Q4_K matrices, whose scales are stored unpacked).
//!
//! Conventions handled here:
//! - Hyper-parameters come from `llama.*` keys (context length, widths, heads, RMSNorm epsilon,
//!   RoPE base and linear scaling, also the older `llama.rope.scale_linear`); the vocabulary size
//!   is the embedding's row count, and the tokenizer's token list must agree with it.
//! - llama.cpp's converter permutes the rows of `attn_q` and `attn_k` so that its RoPE rotates
//!   adjacent pairs (dimensions 2i, 2i+1) where Hugging Face rotates i with i + head_dim/2. kiln
//!   undoes the permutation in the rotation instead of moving rows: a GGUF model rotates adjacent
//!   pairs ([`RopeLayout::Interleaved`]). Queries and keys are permuted alike within each head, so
//!   every attention score, and so every output, is the Hugging Face model's; the weights stay
//!   untouched in the map (no copy, no extra memory).
//! - `output.weight` absent means the head is tied to `token_embd.weight`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use kiln_gguf::{GgufFile, TensorView};
use kiln_quant::{GgmlType, PackedMatrix, Pool, QMatrix};

use crate::config::{Config, RopeScaling, WeightDType};
use crate::cpu_llama::{CpuLayer, CpuLlama, CpuWeights, Matrix, RopeLayout};
use crate::error::{ModelError, Result};

/// The process-wide thread pool of the CPU kernels (as many threads as candle uses:
/// `RAYON_NUM_THREADS`, else every core).
pub fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::new(candle_core::utils::get_num_threads()))
}

/// A weight matrix in a GGML type, in place in a memory-mapped GGUF file (or owned bytes).
#[derive(Debug, Clone)]
pub struct GgmlMatrix {
    bytes: Bytes,
    ty: GgmlType,
    rows: usize,
    cols: usize,
}

/// Where a matrix's bytes live.
#[derive(Debug, Clone)]
enum Bytes {
    /// A byte range of a GGUF file's map.
    Mapped { file: Arc<GgufFile>, start: usize, len: usize },
    /// Owned (a model quantized in memory).
    Owned(Arc<Vec<u8>>),
    /// Repacked for the SIMD kernels (see [`GgmlMatrix::packed`]).
    Packed(Arc<PackedMatrix>),
}

impl GgmlMatrix {
    /// The tensor `view` of `file` (dims innermost first: `[cols, rows]`).
    fn mapped(file: &Arc<GgufFile>, view: &TensorView<'_>) -> Result<Self> {
        let (cols, rows) = match view.dims {
            [cols, rows] => (*cols, *rows),
            [cols] => (*cols, 1),
            other => return Err(bad(file, format!("tensor `{}` has {} dims; a weight matrix has 2", view.name, other.len()))),
        };
        let base = file.bytes().as_ptr() as usize;
        let start = view.bytes.as_ptr() as usize - base;
        let m = Self { bytes: Bytes::Mapped { file: file.clone(), start, len: view.bytes.len() }, ty: view.ggml_type, rows, cols };
        m.qmatrix().map_err(|e| bad(file, format!("tensor `{}`: {e}", view.name)))?;
        Ok(m)
    }

    /// A matrix of owned bytes.
    pub fn owned(ty: GgmlType, rows: usize, cols: usize, bytes: Vec<u8>) -> Result<Self> {
        let m = Self { bytes: Bytes::Owned(Arc::new(bytes)), ty, rows, cols };
        m.qmatrix().map_err(|e| ModelError::Shape(e.to_string()))?;
        Ok(m)
    }

    /// f32 values quantized to `ty`.
    pub fn quantize(ty: GgmlType, rows: usize, cols: usize, values: &[f32]) -> Result<Self> {
        let q = QMatrix::quantize(ty, rows, cols, values).map_err(|e| ModelError::Shape(e.to_string()))?;
        Self::owned(ty, rows, cols, q.data().to_vec())
    }

    /// The row-major bytes (`None` once packed).
    fn data(&self) -> Option<&[u8]> {
        match &self.bytes {
            Bytes::Mapped { file, start, len } => Some(&file.bytes()[*start..*start + *len]),
            Bytes::Owned(v) => Some(v),
            Bytes::Packed(_) => None,
        }
    }

    /// The kiln-quant view of the row-major bytes (cheap: no copy); an error once packed.
    pub fn qmatrix(&self) -> std::result::Result<QMatrix<'_>, kiln_quant::QuantError> {
        let data = self.data().ok_or(kiln_quant::QuantError::Unsupported { op: "a row-major view of a packed matrix", ty: self.ty })?;
        QMatrix::new(self.ty, self.rows, self.cols, data)
    }

    /// This matrix repacked for the SIMD kernels when its type has a packed layout (Q4_K, Q6_K,
    /// Q5_0 with a multiple of eight rows; others are returned as they are). A mapped matrix's pages are
    /// released afterwards: the packed copy replaces them in memory.
    pub fn packed(self) -> Self {
        let Ok(q) = self.qmatrix() else { return self };
        let Some(p) = PackedMatrix::pack(&q) else { return self };
        if let Bytes::Mapped { file, start, len } = &self.bytes {
            file.release(*start, *len);
        }
        Self { bytes: Bytes::Packed(Arc::new(p)), ..self }
    }

    /// Whether the matrix is held packed.
    pub fn is_packed(&self) -> bool {
        matches!(self.bytes, Bytes::Packed(_))
    }

    /// The element type.
    pub fn ggml_type(&self) -> GgmlType {
        self.ty
    }
}

impl Matrix for GgmlMatrix {
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn matmul(&self, x: &[f32], n: usize, out: &mut [f32]) {
        let done = match &self.bytes {
            Bytes::Packed(p) => kiln_quant::matmul_packed(p, x, n, out, pool()),
            _ => kiln_quant::matmul(&self.qmatrix().expect("shape checked at construction"), x, n, out, pool()),
        };
        done.expect("activation and output lengths are the caller's n rows");
    }
    fn row(&self, i: usize, out: &mut [f32]) {
        let done = match &self.bytes {
            Bytes::Packed(p) => p.dequantize_row(i, out),
            _ => kiln_quant::dequantize_row(self.ty, self.qmatrix().expect("shape checked at construction").row(i), out),
        };
        done.expect("a row of the matrix's own type and width");
    }
    fn bytes(&self) -> usize {
        match &self.bytes {
            Bytes::Packed(p) => p.bytes(),
            _ => self.data().map_or(0, <[u8]>::len),
        }
    }
    fn type_name(&self) -> String {
        self.ty.name().to_string()
    }
}

fn bad(file: &GgufFile, message: String) -> ModelError {
    ModelError::Gguf(format!("{}: {message}", file.path().display()))
}

/// The model's hyper-parameters from a GGUF file's `llama.*` keys.
pub fn config_from_gguf(file: &GgufFile) -> Result<Config> {
    let arch = file.get_str("general.architecture").map_err(|e| ModelError::Gguf(e.to_string()))?;
    if arch != "llama" {
        return Err(bad(
            file,
            format!("general.architecture is `{arch}`; kiln runs `llama` models (DeepSeek-Coder and other LLaMA-architecture checkpoints)"),
        ));
    }
    let u = |key: &str| -> Result<usize> { Ok(file.get_u64(key).map_err(|e| ModelError::Gguf(e.to_string()))? as usize) };
    let opt_u = |key: &str| -> Result<Option<usize>> {
        if file.get(key).is_some() {
            u(key).map(Some)
        } else {
            Ok(None)
        }
    };
    let opt_f = |key: &str| -> Result<Option<f64>> {
        match file.get(key) {
            Some(_) => Ok(Some(file.get_f64(key).map_err(|e| ModelError::Gguf(e.to_string()))?)),
            None => Ok(None),
        }
    };
    let hidden = u("llama.embedding_length")?;
    let heads = u("llama.attention.head_count")?;
    let kv_heads = opt_u("llama.attention.head_count_kv")?.unwrap_or(heads);
    if heads == 0 || kv_heads == 0 || hidden % heads != 0 || heads % kv_heads != 0 {
        return Err(bad(file, format!("{heads} attention heads, {kv_heads} KV heads and width {hidden} do not fit together")));
    }
    let head_dim = opt_u("llama.attention.key_length")?.unwrap_or(hidden / heads);
    if let Some(rope_dims) = opt_u("llama.rope.dimension_count")? {
        if rope_dims != head_dim {
            return Err(bad(file, format!("llama.rope.dimension_count {rope_dims} differs from the head width {head_dim}: partial rotary embeddings are not supported")));
        }
    }
    let scaling = match file.get("llama.rope.scaling.type").and_then(|v| v.as_str()) {
        None | Some("none") => match opt_f("llama.rope.scale_linear")? {
            Some(f) if f != 1.0 => RopeScaling::Linear { factor: f },
            _ => RopeScaling::None,
        },
        Some("linear") => RopeScaling::Linear { factor: opt_f("llama.rope.scaling.factor")?.unwrap_or(1.0) },
        Some(other) => {
            return Err(bad(file, format!("llama.rope.scaling.type `{other}` is not supported (kiln implements linear and none)")))
        }
    };
    let embd = file.tensor_info("token_embd.weight").ok_or_else(|| bad(file, "no tensor `token_embd.weight`".into()))?;
    let vocab_size = match embd.dims() {
        [c, v] if *c == hidden => *v,
        other => return Err(bad(file, format!("token_embd.weight has dims {other:?}, expected [{hidden}, vocab]"))),
    };
    if let Some(tokens) = file.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
        if tokens.len() != vocab_size {
            return Err(bad(file, format!("the tokenizer has {} tokens but token_embd.weight has {vocab_size} rows: the vocabulary does not belong to these weights", tokens.len())));
        }
    }
    let id = |key: &str| file.get(key).and_then(|v| v.as_int()).and_then(|i| u32::try_from(i).ok());
    let eos = id("tokenizer.ggml.eos_token_id");
    Ok(Config {
        vocab_size,
        hidden_size: hidden,
        intermediate_size: u("llama.feed_forward_length")?,
        num_hidden_layers: u("llama.block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim,
        max_position_embeddings: u("llama.context_length")?,
        rms_norm_eps: opt_f("llama.attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5),
        rope_theta: opt_f("llama.rope.freq_base")?.unwrap_or(10000.0),
        rope_scaling: scaling,
        bos_token_id: id("tokenizer.ggml.bos_token_id"),
        eos_token_ids: eos.into_iter().collect(),
        pad_token_id: id("tokenizer.ggml.padding_token_id"),
        tie_word_embeddings: file.tensor_info("output.weight").is_none(),
        torch_dtype: WeightDType::F32,
        initializer_range: 0.02,
    })
}

/// Loads a GGUF file as a [`CpuLlama`] (weights used in place in the memory map; KV cache in f16,
/// llama.cpp's default: [`CpuLlama::with_kv_type`] changes it).
pub fn load_gguf(path: &Path) -> Result<CpuLlama> {
    let file = Arc::new(GgufFile::open(path).map_err(|e| ModelError::Gguf(e.to_string()))?);
    let cfg = config_from_gguf(&file)?;
    let tensor = |name: &str| -> Result<TensorView<'_>> { file.tensor(name).map_err(|e| ModelError::Gguf(e.to_string())) };
    // Every matrix that is multiplied is packed where its type allows; the embedding only when
    // the head is tied to it (otherwise only a few of its rows are read per step).
    let matrix = |name: &str| -> Result<Box<dyn Matrix>> { Ok(Box::new(GgmlMatrix::mapped(&file, &tensor(name)?)?.packed())) };
    let embedding = |name: &str| -> Result<Box<dyn Matrix>> {
        let m = GgmlMatrix::mapped(&file, &tensor(name)?)?;
        Ok(Box::new(if cfg.tie_word_embeddings { m.packed() } else { m }))
    };
    let vector = |name: &str, len: usize| -> Result<Vec<f32>> {
        let t = tensor(name)?;
        if t.dims != [len] {
            return Err(bad(&file, format!("tensor `{name}` has dims {:?}, expected [{len}]", t.dims)));
        }
        let mut out = vec![0f32; len];
        kiln_quant::dequantize_row(t.ggml_type, t.bytes, &mut out).map_err(|e| bad(&file, format!("tensor `{name}`: {e}")))?;
        Ok(out)
    };
    let c = cfg.hidden_size;
    let layers = (0..cfg.num_hidden_layers)
        .map(|i| {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            Ok(CpuLayer {
                attn_norm: vector(&n("attn_norm"), c)?,
                q: matrix(&n("attn_q"))?,
                k: matrix(&n("attn_k"))?,
                v: matrix(&n("attn_v"))?,
                o: matrix(&n("attn_output"))?,
                ffn_norm: vector(&n("ffn_norm"), c)?,
                gate: matrix(&n("ffn_gate"))?,
                up: matrix(&n("ffn_up"))?,
                down: matrix(&n("ffn_down"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let w = CpuWeights {
        embed: embedding("token_embd.weight")?,
        layers,
        norm: vector("output_norm.weight", c)?,
        output: if cfg.tie_word_embeddings { None } else { Some(matrix("output.weight")?) },
    };
    tracing::info!(path = %path.display(), layers = cfg.num_hidden_layers, vocab = cfg.vocab_size, "GGUF model loaded");
    // The KV cache in f16, as llama.cpp keeps it by default: half the memory and half the
    // bytes attention reads at depth, for a difference in the logits of ~1e-3.
    Ok(CpuLlama::with_rope_layout(cfg, w, RopeLayout::Interleaved)?.with_kv_type(kiln_quant::KvType::F16))
}
