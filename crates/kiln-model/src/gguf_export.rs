//! Writing a model directory (kiln's checkpoints, the released Hugging Face checkpoints) as a
//! GGUF file that llama.cpp and Ollama load: `kiln quantize`.
//!
//! GGUF v3, llama architecture, llama.cpp's tensor names (`token_embd`, `blk.N.attn_q`, ...),
//! dimensions innermost first, the rows of `attn_q`/`attn_k` permuted as llama.cpp's converter
//! does ([`llama_cpp_qk_order`]), norms in F32. Types per [`ExportType`]; a matrix whose rows
//! are not a whole number of its type's blocks falls back as llama.cpp's quantizer does (Q4_K ->
//! Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, a 32-block type -> F16), and the report says so. Tensors
//! are quantized one at a time while the file is written (no second copy of the model).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use kiln_gguf::{GgufWriter, Value};
use kiln_quant::{GgmlType, QMatrix};

use crate::config::{config_path, Config, RopeScaling};
use crate::cpu_llama::llama_cpp_qk_order;
use crate::error::{ModelError, Result};
use crate::params::{LayerParams, Params};

/// The file types `kiln quantize` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportType {
    /// Every matrix F32.
    F32,
    /// Every matrix F16.
    F16,
    /// Every matrix Q8_0.
    Q8_0,
    /// Every matrix Q4_0, the output projection Q6_K (as llama.cpp).
    Q4_0,
    /// llama.cpp's Q4_K_M mix: Q4_K, with Q6_K for the output projection and for `attn_v` and
    /// `ffn_down` of the first and last eighth of the layers and every third layer between.
    Q4KM,
}

impl ExportType {
    /// Parses `f32`, `f16`, `q8_0`, `q4_0`, `q4_k_m` (case-insensitive).
    pub fn parse(s: &str) -> Option<ExportType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Some(ExportType::F32),
            "f16" => Some(ExportType::F16),
            "q8_0" => Some(ExportType::Q8_0),
            "q4_0" => Some(ExportType::Q4_0),
            "q4_k_m" => Some(ExportType::Q4KM),
            _ => None,
        }
    }

    /// The name (`q4_k_m`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ExportType::F32 => "f32",
            ExportType::F16 => "f16",
            ExportType::Q8_0 => "q8_0",
            ExportType::Q4_0 => "q4_0",
            ExportType::Q4KM => "q4_k_m",
        }
    }

    /// llama.cpp's `general.file_type` (`llama_ftype`).
    fn file_type(self) -> u32 {
        match self {
            ExportType::F32 => 0,
            ExportType::F16 => 1,
            ExportType::Q4_0 => 2,
            ExportType::Q8_0 => 7,
            ExportType::Q4KM => 15,
        }
    }

    /// The type a matrix gets before any fallback.
    fn wanted(self, name: &str, layer: Option<usize>, layers: usize) -> GgmlType {
        let output = name == "output.weight";
        // llama.cpp's `use_more_bits`: the first and last eighth, and every third layer between.
        let more_bits = |i: usize| i < layers / 8 || i >= 7 * layers / 8 || (i - layers / 8) % 3 == 2;
        match self {
            ExportType::F32 => GgmlType::F32,
            ExportType::F16 => GgmlType::F16,
            ExportType::Q8_0 => GgmlType::Q8_0,
            ExportType::Q4_0 if output => GgmlType::Q6K,
            ExportType::Q4_0 => GgmlType::Q4_0,
            ExportType::Q4KM if output => GgmlType::Q6K,
            ExportType::Q4KM => match layer {
                Some(i) if (name.ends_with("attn_v.weight") || name.ends_with("ffn_down.weight")) && more_bits(i) => GgmlType::Q6K,
                _ => GgmlType::Q4K,
            },
        }
    }
}

/// The type used for a row length that `wanted` cannot hold (llama.cpp's fallbacks).
fn fallback(wanted: GgmlType, cols: usize) -> GgmlType {
    if wanted.row_bytes(cols).is_some() {
        return wanted;
    }
    let next = match wanted {
        GgmlType::Q4K => GgmlType::Q5_0,
        GgmlType::Q5K => GgmlType::Q5_1,
        GgmlType::Q6K => GgmlType::Q8_0,
        _ => GgmlType::F16,
    };
    fallback(next, cols)
}

/// One tensor of the written file.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedTensor {
    /// GGUF name.
    pub name: String,
    /// Dims, innermost first.
    pub dims: Vec<usize>,
    /// The type written.
    pub ty: GgmlType,
    /// The type the recipe wanted when a fallback replaced it (rows not a multiple of its block).
    pub fallback_from: Option<GgmlType>,
}

/// What [`export_gguf`] wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// Every tensor, in file order.
    pub tensors: Vec<ExportedTensor>,
    /// The file's size.
    pub bytes: u64,
}

/// Writes the model in `dir` (config.json + safetensors) to `out` as a GGUF file of type `ty`,
/// with `tokenizer` metadata (kiln-tokenizer's `layout::gguf_metadata`) and `name` as
/// `general.name`.
pub fn export_gguf(dir: &Path, ty: ExportType, tokenizer: Vec<(String, Value)>, name: &str, out: &Path) -> Result<ExportReport> {
    let cfg = Config::from_file(&config_path(dir))?;
    let stored = cfg.torch_dtype.to_candle();
    let tensors = crate::weights::load_checkpoint(dir, &cfg, stored, &Device::Cpu)?;
    export_tensors(&cfg, tensors, ty, tokenizer, name, out)
}

/// [`export_gguf`] of tensors already in memory (Hugging Face names).
pub fn export_tensors(
    cfg: &Config,
    mut tensors: HashMap<String, Tensor>,
    ty: ExportType,
    tokenizer: Vec<(String, Value)>,
    name: &str,
    out: &Path,
) -> Result<ExportReport> {
    let params = Params::try_build(cfg, |n| {
        tensors.remove(n).ok_or_else(|| ModelError::MissingTensors { dir: Default::default(), count: 1, examples: n.to_string() })
    })?;
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama");
    w.add_metadata("general.name", name);
    w.add_metadata("general.file_type", ty.file_type());
    w.add_metadata("general.quantization_version", 2u32);
    w.add_metadata("llama.vocab_size", cfg.vocab_size as u32);
    w.add_metadata("llama.context_length", cfg.max_position_embeddings as u32);
    w.add_metadata("llama.embedding_length", cfg.hidden_size as u32);
    w.add_metadata("llama.block_count", cfg.num_hidden_layers as u32);
    w.add_metadata("llama.feed_forward_length", cfg.intermediate_size as u32);
    w.add_metadata("llama.attention.head_count", cfg.num_attention_heads as u32);
    w.add_metadata("llama.attention.head_count_kv", cfg.num_key_value_heads as u32);
    w.add_metadata("llama.attention.layer_norm_rms_epsilon", cfg.rms_norm_eps as f32);
    w.add_metadata("llama.rope.dimension_count", cfg.head_dim as u32);
    w.add_metadata("llama.rope.freq_base", cfg.rope_theta as f32);
    if let RopeScaling::Linear { factor } = cfg.rope_scaling {
        w.add_metadata("llama.rope.scaling.type", "linear");
        w.add_metadata("llama.rope.scaling.factor", factor as f32);
    }
    for (k, v) in tokenizer {
        w.add_metadata(k, v);
    }
    // Every tensor: GGUF name, the source tensor, the row order (q/k permuted), its layer.
    struct Planned<'t> {
        name: String,
        source: &'t Tensor,
        qk_heads: Option<usize>,
        layer: Option<usize>,
    }
    let mut planned: Vec<Planned<'_>> =
        vec![Planned { name: "token_embd.weight".into(), source: &params.embed_tokens, qk_heads: None, layer: None }];
    for (i, l) in params.layers.iter().enumerate() {
        let LayerParams { q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, input_layernorm, post_attention_layernorm } = l;
        for (n, t, heads) in [
            ("attn_norm", input_layernorm, None),
            ("attn_q", q_proj, Some(cfg.num_attention_heads)),
            ("attn_k", k_proj, Some(cfg.num_key_value_heads)),
            ("attn_v", v_proj, None),
            ("attn_output", o_proj, None),
            ("ffn_norm", post_attention_layernorm, None),
            ("ffn_gate", gate_proj, None),
            ("ffn_up", up_proj, None),
            ("ffn_down", down_proj, None),
        ] {
            planned.push(Planned { name: format!("blk.{i}.{n}.weight"), source: t, qk_heads: heads, layer: Some(i) });
        }
    }
    planned.push(Planned { name: "output_norm.weight".into(), source: &params.norm, qk_heads: None, layer: None });
    if let Some(head) = &params.lm_head {
        planned.push(Planned { name: "output.weight".into(), source: head, qk_heads: None, layer: None });
    }
    let mut report = Vec::with_capacity(planned.len());
    for p in &planned {
        let dims: Vec<usize> = p.source.dims().iter().rev().copied().collect();
        let (t, fallback_from) = if dims.len() == 1 {
            (GgmlType::F32, None)
        } else {
            let wanted = ty.wanted(&p.name, p.layer, cfg.num_hidden_layers);
            let got = fallback(wanted, dims[0]);
            (got, (got != wanted).then_some(wanted))
        };
        w.declare_tensor(&p.name, &dims, t);
        report.push(ExportedTensor { name: p.name.clone(), dims, ty: t, fallback_from });
    }
    let mut failure: Option<ModelError> = None;
    let by_name: HashMap<&str, (&Planned<'_>, GgmlType)> = planned.iter().zip(&report).map(|(p, r)| (p.name.as_str(), (p, r.ty))).collect();
    let written = w.write_with(out, |name, sink| {
        let (p, t) = by_name[name];
        match tensor_bytes(p.source, p.qk_heads, t) {
            Ok(bytes) => sink.write_all(&bytes),
            Err(e) => {
                let message = format!("tensor `{name}`: {e}");
                failure = Some(e);
                Err(std::io::Error::other(message))
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    written.map_err(|e| ModelError::Gguf(e.to_string()))?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    tracing::info!(out = %out.display(), ty = ty.name(), bytes, "GGUF written");
    Ok(ExportReport { tensors: report, bytes })
}

/// The bytes of `source` (rows x cols, or a vector) in type `t`, rows in llama.cpp's q/k order
/// when `qk_heads` is given.
fn tensor_bytes(source: &Tensor, qk_heads: Option<usize>, t: GgmlType) -> Result<Vec<u8>> {
    let values = source.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let (rows, cols) = match source.dims() {
        [r, c] => (*r, *c),
        [c] => (1, *c),
        other => return Err(ModelError::Shape(format!("a tensor of {} dims", other.len()))),
    };
    let values = match qk_heads {
        Some(heads) => {
            let mut permuted = vec![0f32; values.len()];
            for (g, &h) in llama_cpp_qk_order(rows, heads).iter().enumerate() {
                permuted[g * cols..(g + 1) * cols].copy_from_slice(&values[h * cols..(h + 1) * cols]);
            }
            permuted
        }
        None => values,
    };
    let q = QMatrix::quantize(t, rows, cols, &values).map_err(|e| ModelError::Shape(e.to_string()))?;
    Ok(q.data().to_vec())
}
