//! kiln-model: the DeepSeek-Coder network (LLaMA architecture) on candle.
//!
//! In: a Hugging Face model directory (`config.json` + `model.safetensors` or sharded safetensors
//! with `model.safetensors.index.json`), or a named [`Preset`] shape. Out: a [`Llama`] whose
//! `forward` returns f32 logits, a KV [`Cache`] for incremental decoding, and checkpoints written
//! back in the same HF layout. The released DeepSeek-Coder checkpoints load unchanged.
#![deny(missing_docs)]

pub mod config;
pub mod cpu_llama;
pub mod error;
pub mod gguf_export;
pub mod gguf_llama;
pub mod llama;
pub mod ops;
pub mod params;
pub mod weights;

pub use config::{Config, HfConfig, Preset, RopeScaling, WeightDType};
pub use error::{ModelError, Result};
/// The KV cache storage types of the CPU network (kiln-quant's).
pub use kiln_quant::KvType;
pub use llama::{Cache, Llama};
pub use params::{LayerParams, Params};

/// Parses a device name: `cpu`, `cuda` or `cuda:N`. CUDA needs the `cuda` feature at build time.
pub fn device(spec: &str) -> Result<candle_core::Device> {
    match spec {
        "cpu" => Ok(candle_core::Device::Cpu),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = s
                .strip_prefix("cuda:")
                .map(str::parse::<usize>)
                .transpose()
                .map_err(|_| candle_core::Error::Msg(format!("device `{s}`: expected cuda:N with N a GPU index")))?;
            Ok(candle_core::Device::new_cuda(ordinal.unwrap_or(0)).map_err(|e| {
                candle_core::Error::Msg(format!("device `{s}`: {e} (was kiln built with --features cuda, and is a GPU visible?)"))
            })?)
        }
        other => Err(candle_core::Error::Msg(format!("unknown device `{other}`; use cpu, cuda or cuda:N")).into()),
    }
}
