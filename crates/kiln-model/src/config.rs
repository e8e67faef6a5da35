//! Model configuration in two layers, as transformers and candle do it:
//! [`HfConfig`] mirrors `config.json` on disk (every field optional, unknown fields ignored) and
//! resolves into [`Config`], the validated runtime shape with no options left. Named [`Preset`]s
//! give the paper's shapes (DeepSeek-Coder Table 2) plus two small ones for CPU training.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{ModelError, Result};

/// How RoPE positions are rescaled. DeepSeek-Coder's long-context stage switched to linear scaling
/// with factor 4 (positions divided by 4) and base 100000; the released checkpoints need it on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Position interpolation: angle = (pos / factor) * inv_freq.
    Linear {
        /// Divisor applied to positions (4.0 for DeepSeek-Coder).
        factor: f64,
    },
}

/// Storage/compute precision of the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightDType {
    /// IEEE float32.
    F32,
    /// bfloat16 (the released checkpoints' dtype).
    BF16,
    /// IEEE float16.
    F16,
}

impl WeightDType {
    /// The candle dtype.
    pub fn to_candle(self) -> candle_core::DType {
        match self {
            Self::F32 => candle_core::DType::F32,
            Self::BF16 => candle_core::DType::BF16,
            Self::F16 => candle_core::DType::F16,
        }
    }
    /// The name transformers writes in `torch_dtype`.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::BF16 => "bfloat16",
            Self::F16 => "float16",
        }
    }
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::BF16 | Self::F16 => 2,
        }
    }
}

impl FromStr for WeightDType {
    type Err = String;
    /// Accepts kiln's short names (`f32`, `bf16`, `f16`) and torch's (`float32`, `bfloat16`, `float16`).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "float" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::BF16),
            "f16" | "float16" | "half" => Ok(Self::F16),
            other => Err(format!("unknown dtype `{other}`; use f32, bf16 or f16")),
        }
    }
}

/// A numeric id field that transformers writes either as one integer or as a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

/// `config.json` exactly as it lies on disk. Only the fields kiln reads are listed; the rest are
/// ignored, which is what transformers does too.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HfConfig {
    model_type: Option<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    max_position_embeddings: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<Value>,
    /// transformers 5 folds rope_theta and rope_scaling into this one object.
    rope_parameters: Option<Value>,
    hidden_act: Option<String>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    tie_word_embeddings: Option<bool>,
    bos_token_id: Option<OneOrMany>,
    eos_token_id: Option<OneOrMany>,
    pad_token_id: Option<OneOrMany>,
    torch_dtype: Option<String>,
    /// transformers 5 renamed `torch_dtype` to `dtype`.
    dtype: Option<String>,
    initializer_range: Option<f64>,
}

/// The validated shape and constants of a LLaMA-style (DeepSeek-Coder) network.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Rows of the embedding table and lm_head (32256 for DeepSeek-Coder: 32022 ids, padded).
    pub vocab_size: usize,
    /// Model width d.
    pub hidden_size: usize,
    /// SwiGLU inner width.
    pub intermediate_size: usize,
    /// Transformer blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (< heads means grouped-query attention).
    pub num_key_value_heads: usize,
    /// Per-head width.
    pub head_dim: usize,
    /// Longest sequence the positions are meant for.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE position scaling.
    pub rope_scaling: RopeScaling,
    /// Beginning-of-sequence id, if the model has one.
    pub bos_token_id: Option<u32>,
    /// Every id that ends generation.
    pub eos_token_ids: Vec<u32>,
    /// Padding id.
    pub pad_token_id: Option<u32>,
    /// Whether lm_head shares the embedding matrix (false for DeepSeek-Coder).
    pub tie_word_embeddings: bool,
    /// Dtype the weights are stored in.
    pub torch_dtype: WeightDType,
    /// Std of the normal init used when training from scratch.
    pub initializer_range: f64,
}

fn field_err(path: &Path, field: &'static str, message: impl Into<String>) -> ModelError {
    ModelError::ConfigField { path: path.to_path_buf(), field, message: message.into() }
}

fn first_id(v: &Option<OneOrMany>) -> Option<u32> {
    match v {
        Some(OneOrMany::One(x)) => Some(*x),
        Some(OneOrMany::Many(xs)) => xs.first().copied(),
        None => None,
    }
}

/// Reads the rope scaling object in any of the spellings transformers has used:
/// `{"type": "linear", "factor": 4.0}` (DeepSeek's files), `{"rope_type": ...}` (transformers 4.4x)
/// and `rope_parameters` (transformers 5).
fn parse_rope_scaling(path: &Path, v: &Value) -> Result<RopeScaling> {
    if v.is_null() {
        return Ok(RopeScaling::None);
    }
    let obj = v
        .as_object()
        .ok_or_else(|| field_err(path, "rope_scaling", "expected an object like {\"type\": \"linear\", \"factor\": 4.0} or null"))?;
    let kind = obj.get("type").or_else(|| obj.get("rope_type")).and_then(Value::as_str).unwrap_or("default");
    match kind {
        "default" | "none" => Ok(RopeScaling::None),
        "linear" => {
            let factor = obj.get("factor").and_then(Value::as_f64).ok_or_else(|| {
                field_err(path, "rope_scaling", "linear scaling needs a numeric `factor` (DeepSeek-Coder uses 4.0)")
            })?;
            if !(factor > 0.0 && factor.is_finite()) {
                return Err(field_err(path, "rope_scaling", format!("factor must be positive, got {factor}")));
            }
            Ok(RopeScaling::Linear { factor })
        }
        other => Err(field_err(
            path,
            "rope_scaling",
            format!("unsupported type `{other}`: kiln implements `linear` (DeepSeek-Coder) and none; dynamic/yarn/llama3 scaling are not DeepSeek-Coder's"),
        )),
    }
}

impl HfConfig {
    /// Parses `config.json` text. `path` is only used in messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| ModelError::ConfigParse { path: path.to_path_buf(), message: e.to_string() })
    }

    /// Checks every field and fills the documented LLaMA defaults for the optional ones.
    pub fn resolve(&self, path: &Path) -> Result<Config> {
        if let Some(mt) = &self.model_type {
            if mt != "llama" {
                return Err(field_err(
                    path,
                    "model_type",
                    format!("`{mt}` is not supported; kiln runs LLaMA-architecture models (DeepSeek-Coder v1 uses \"llama\")"),
                ));
            }
        }
        let req = |v: Option<usize>, field: &'static str| -> Result<usize> {
            match v {
                Some(0) => Err(field_err(path, field, "must be positive")),
                Some(x) => Ok(x),
                None => Err(field_err(path, field, "is required but missing")),
            }
        };
        let hidden_size = req(self.hidden_size, "hidden_size")?;
        let num_attention_heads = req(self.num_attention_heads, "num_attention_heads")?;
        let num_key_value_heads = req(self.num_key_value_heads.or(self.num_attention_heads), "num_key_value_heads")?;
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(field_err(
                path,
                "num_key_value_heads",
                format!("{num_key_value_heads} does not divide num_attention_heads {num_attention_heads}"),
            ));
        }
        let head_dim = match self.head_dim {
            Some(h) => req(Some(h), "head_dim")?,
            None => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(field_err(
                        path,
                        "hidden_size",
                        format!("{hidden_size} is not divisible by num_attention_heads {num_attention_heads}; set head_dim explicitly"),
                    ));
                }
                hidden_size / num_attention_heads
            }
        };
        if head_dim % 2 != 0 {
            return Err(field_err(path, "head_dim", format!("{head_dim} must be even for RoPE")));
        }
        if let Some(act) = &self.hidden_act {
            if act != "silu" {
                return Err(field_err(path, "hidden_act", format!("`{act}` is not supported; DeepSeek-Coder's SwiGLU uses \"silu\"")));
            }
        }
        if self.attention_bias == Some(true) {
            return Err(field_err(path, "attention_bias", "biases in attention are not part of DeepSeek-Coder; kiln supports false only"));
        }
        if self.mlp_bias == Some(true) {
            return Err(field_err(path, "mlp_bias", "biases in the MLP are not part of DeepSeek-Coder; kiln supports false only"));
        }
        // transformers 5 keeps theta and scaling together in `rope_parameters`.
        let (rope_theta, rope_scaling) = match &self.rope_parameters {
            Some(rp) if rp.is_object() => {
                let theta = rp.get("rope_theta").and_then(Value::as_f64).or(self.rope_theta).unwrap_or(10000.0);
                (theta, parse_rope_scaling(path, rp)?)
            }
            _ => (
                self.rope_theta.unwrap_or(10000.0),
                match &self.rope_scaling {
                    Some(v) => parse_rope_scaling(path, v)?,
                    None => RopeScaling::None,
                },
            ),
        };
        if !(rope_theta > 0.0 && rope_theta.is_finite()) {
            return Err(field_err(path, "rope_theta", format!("must be positive, got {rope_theta}")));
        }
        let rms_norm_eps = self.rms_norm_eps.unwrap_or(1e-6);
        if rms_norm_eps.is_nan() || rms_norm_eps <= 0.0 {
            return Err(field_err(path, "rms_norm_eps", "must be positive"));
        }
        let dtype_name = self.torch_dtype.as_deref().or(self.dtype.as_deref()).unwrap_or("float32");
        let torch_dtype = WeightDType::from_str(dtype_name).map_err(|m| field_err(path, "torch_dtype", m))?;
        let eos_token_ids = match &self.eos_token_id {
            Some(OneOrMany::One(x)) => vec![*x],
            Some(OneOrMany::Many(xs)) => xs.clone(),
            None => vec![],
        };
        let cfg = Config {
            vocab_size: req(self.vocab_size, "vocab_size")?,
            hidden_size,
            intermediate_size: req(self.intermediate_size, "intermediate_size")?,
            num_hidden_layers: req(self.num_hidden_layers, "num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings: req(self.max_position_embeddings.or(Some(2048)), "max_position_embeddings")?,
            rms_norm_eps,
            rope_theta,
            rope_scaling,
            bos_token_id: first_id(&self.bos_token_id),
            eos_token_ids,
            pad_token_id: first_id(&self.pad_token_id),
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(false),
            torch_dtype,
            initializer_range: self.initializer_range.unwrap_or(0.02),
        };
        for (field, id) in [("bos_token_id", cfg.bos_token_id), ("pad_token_id", cfg.pad_token_id)] {
            if let Some(id) = id {
                if id as usize >= cfg.vocab_size {
                    return Err(field_err(path, field, format!("{id} is outside vocab_size {}", cfg.vocab_size)));
                }
            }
        }
        if let Some(&id) = cfg.eos_token_ids.iter().find(|&&id| id as usize >= cfg.vocab_size) {
            return Err(field_err(path, "eos_token_id", format!("{id} is outside vocab_size {}", cfg.vocab_size)));
        }
        Ok(cfg)
    }
}

impl Config {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(ModelError::MissingFile { path: path.to_path_buf(), what: "model config" });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
        HfConfig::from_json_str(&text, path)?.resolve(path)
    }

    /// The `config.json` transformers' `LlamaForCausalLM` reads, in the layout of DeepSeek-Coder's
    /// released files (so `rope_scaling` uses the `type` key those files use).
    pub fn to_hf_json(&self) -> Value {
        let rope_scaling = match self.rope_scaling {
            RopeScaling::None => Value::Null,
            RopeScaling::Linear { factor } => json!({"type": "linear", "factor": factor}),
        };
        let eos = match self.eos_token_ids.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": rope_scaling,
            "hidden_act": "silu",
            "attention_bias": false,
            "mlp_bias": false,
            "attention_dropout": 0.0,
            "tie_word_embeddings": self.tie_word_embeddings,
            "initializer_range": self.initializer_range,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": eos,
            "pad_token_id": self.pad_token_id,
            "torch_dtype": self.torch_dtype.torch_name(),
            "pretraining_tp": 1,
            "use_cache": true,
        })
    }

    /// Number of parameters (embedding and lm_head counted separately unless tied).
    pub fn num_parameters(&self) -> usize {
        let (d, f, h, kv, hd, v) =
            (self.hidden_size, self.intermediate_size, self.num_attention_heads, self.num_key_value_heads, self.head_dim, self.vocab_size);
        let attn = d * h * hd + 2 * d * kv * hd + h * hd * d;
        let mlp = 3 * d * f;
        let per_layer = attn + mlp + 2 * d;
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        v * d + self.num_hidden_layers * per_layer + d + head
    }

    /// Every tensor a checkpoint of this shape holds, with HF names and shapes.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        crate::params::Params::shapes(self).into_named()
    }

    /// Builds the config of a named preset.
    pub fn preset(p: Preset) -> Self {
        // DeepSeek-Coder's released shape constants (spec §5.2): vocab padded to 32256, BOS 32013,
        // EOS = PAD 32014, RoPE base 1e5 with linear x4, 16K positions, eps 1e-6, untied head.
        let released = |d, f, layers, heads, kv| Config {
            vocab_size: 32256,
            hidden_size: d,
            intermediate_size: f,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: kv,
            head_dim: d / heads,
            max_position_embeddings: 16384,
            rms_norm_eps: 1e-6,
            rope_theta: 100000.0,
            rope_scaling: RopeScaling::Linear { factor: 4.0 },
            bos_token_id: Some(32013),
            eos_token_ids: vec![32014],
            pad_token_id: Some(32014),
            tie_word_embeddings: false,
            torch_dtype: WeightDType::BF16,
            initializer_range: 0.02,
        };
        // The CPU-sized presets follow the paper's stage-1 recipe (4K window, RoPE base 1e4, no
        // scaling); the long-context stage changes RoPE later, as the paper did.
        let stage1 = |d, f, layers, heads, kv, ctx| Config {
            max_position_embeddings: ctx,
            rope_theta: 10000.0,
            rope_scaling: RopeScaling::None,
            torch_dtype: WeightDType::F32,
            ..released(d, f, layers, heads, kv)
        };
        match p {
            Preset::Tiny => stage1(128, 352, 4, 4, 4, 2048),
            Preset::Small => stage1(512, 1376, 8, 8, 8, 4096),
            Preset::DeepseekCoder1_3b => released(2048, 5504, 24, 16, 16),
            Preset::DeepseekCoder6_7b => released(4096, 11008, 32, 32, 32),
            Preset::DeepseekCoder33b => released(7168, 19200, 62, 56, 8),
        }
    }
}

/// Named model shapes. The three `deepseek-coder-*` ones are paper Table 2; `tiny` and `small` are
/// for training from scratch on a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// ~9M parameters (most of them the 32256-row embedding and head).
    Tiny,
    /// ~58M parameters.
    Small,
    /// DeepSeek-Coder 1.3B.
    DeepseekCoder1_3b,
    /// DeepSeek-Coder 6.7B.
    DeepseekCoder6_7b,
    /// DeepSeek-Coder 33B (GQA, 8 KV heads).
    DeepseekCoder33b,
}

impl Preset {
    /// All presets, in size order.
    pub const ALL: [Preset; 5] = [Self::Tiny, Self::Small, Self::DeepseekCoder1_3b, Self::DeepseekCoder6_7b, Self::DeepseekCoder33b];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Small => "small",
            Self::DeepseekCoder1_3b => "deepseek-coder-1.3b",
            Self::DeepseekCoder6_7b => "deepseek-coder-6.7b",
            Self::DeepseekCoder33b => "deepseek-coder-33b",
        }
    }
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|p| p.name()).collect();
            format!("unknown preset `{s}`; choose one of {}", names.join(", "))
        })
    }
}

/// Path of `config.json` inside a model directory.
pub fn config_path(dir: &Path) -> PathBuf {
    dir.join("config.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        HfConfig::from_json_str(text, Path::new("config.json"))?.resolve(Path::new("config.json"))
    }

    const DEEPSEEK_1_3B: &str = r#"{
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32256,
        "hidden_size": 2048, "intermediate_size": 5504, "num_hidden_layers": 24,
        "num_attention_heads": 16, "num_key_value_heads": 16, "max_position_embeddings": 16384,
        "rms_norm_eps": 1e-06, "rope_theta": 100000, "rope_scaling": {"type": "linear", "factor": 4.0},
        "hidden_act": "silu", "tie_word_embeddings": false, "bos_token_id": 32013,
        "eos_token_id": 32014, "pad_token_id": 32014, "torch_dtype": "bfloat16", "pretraining_tp": 1}"#;

    #[test]
    fn released_config_resolves_to_the_preset() {
        let cfg = parse(DEEPSEEK_1_3B).unwrap();
        assert_eq!(cfg, Config { initializer_range: 0.02, ..Config::preset(Preset::DeepseekCoder1_3b) });
        // Paper: 1.346B parameters.
        assert_eq!(cfg.num_parameters(), 1_346_471_936);
    }

    #[test]
    fn preset_parameter_counts_match_the_paper() {
        let billions = |p| Config::preset(p).num_parameters() as f64 / 1e9;
        assert!((billions(Preset::DeepseekCoder6_7b) - 6.74).abs() < 0.01);
        assert!((billions(Preset::DeepseekCoder33b) - 33.34).abs() < 0.01);
    }

    #[test]
    fn round_trips_through_hf_json() {
        for p in Preset::ALL {
            let cfg = Config::preset(p);
            let back = parse(&cfg.to_hf_json().to_string()).unwrap();
            assert_eq!(back, cfg, "{}", p.name());
        }
    }

    #[test]
    fn reads_every_rope_spelling() {
        let with = |rope: &str| DEEPSEEK_1_3B.replace(r#""rope_scaling": {"type": "linear", "factor": 4.0}"#, rope);
        let linear4 = RopeScaling::Linear { factor: 4.0 };
        assert_eq!(parse(&with(r#""rope_scaling": {"rope_type": "linear", "factor": 4}"#)).unwrap().rope_scaling, linear4);
        assert_eq!(parse(&with(r#""rope_scaling": null"#)).unwrap().rope_scaling, RopeScaling::None);
        let v5 = parse(&with(r#""rope_parameters": {"rope_type": "linear", "factor": 4.0, "rope_theta": 5000.0}"#)).unwrap();
        assert_eq!((v5.rope_scaling, v5.rope_theta), (linear4, 5000.0));
    }

    #[test]
    fn unknown_rope_type_names_the_field() {
        let text = DEEPSEEK_1_3B.replace(r#"{"type": "linear", "factor": 4.0}"#, r#"{"type": "yarn", "factor": 4.0}"#);
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("rope_scaling") && err.contains("yarn"), "{err}");
    }

    #[test]
    fn bad_fields_are_named() {
        let err = parse(&DEEPSEEK_1_3B.replace(r#""num_key_value_heads": 16"#, r#""num_key_value_heads": 5"#)).unwrap_err();
        assert!(err.to_string().contains("num_key_value_heads"), "{err}");
        let err = parse(&DEEPSEEK_1_3B.replace(r#""hidden_size": 2048,"#, "")).unwrap_err();
        assert!(err.to_string().contains("hidden_size") && err.to_string().contains("missing"), "{err}");
        let err = parse(&DEEPSEEK_1_3B.replace(r#""bos_token_id": 32013"#, r#""bos_token_id": 40000"#)).unwrap_err();
        assert!(err.to_string().contains("bos_token_id"), "{err}");
        let err = parse("{not json").unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
    }
}
