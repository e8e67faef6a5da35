//! A model directory loaded for generation: weights, tokenizer and the ids that end a
//! generation (config.json's and generation_config.json's, as transformers reads them).

use std::path::Path;

use kiln_model::{Llama, WeightDType};
use kiln_tokenizer::Tokenizer;

use crate::model::CausalLm;
use crate::{InferError, Result};

/// A model ready to generate with.
pub struct LoadedModel {
    /// The network, behind the seam every decoding path uses.
    pub model: Box<dyn CausalLm>,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Ids that end a generation.
    pub eos_ids: Vec<u32>,
}

impl LoadedModel {
    /// Loads a model: a GGUF file (see [`LoadedModel::load_gguf`]) or a Hugging Face model
    /// directory: tokenizer and config first (cheap, so a mismatch fails before the weights are
    /// read), then the weights in `dtype` (default: the checkpoint's) on `device`.
    pub fn load(dir: &Path, dtype: Option<WeightDType>, device: &candle_core::Device) -> Result<Self> {
        Self::load_with(dir, dtype, device, None)
    }

    /// [`LoadedModel::load`] with a tokenizer (`tokenizer.json` or its folder) that replaces the
    /// model's own.
    pub fn load_with(path: &Path, dtype: Option<WeightDType>, device: &candle_core::Device, tokenizer: Option<&Path>) -> Result<Self> {
        Self::load_with_cache(path, dtype, device, tokenizer, None)
    }

    /// [`LoadedModel::load_with`] with a GGUF model's KV cache type (`None`: f16, llama.cpp's
    /// default); asking for one with a model directory is an error (its cache has the compute
    /// dtype).
    pub fn load_with_cache(
        path: &Path,
        dtype: Option<WeightDType>,
        device: &candle_core::Device,
        tokenizer: Option<&Path>,
        kv_type: Option<kiln_model::KvType>,
    ) -> Result<Self> {
        if !path.exists() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
            return Err(InferError::ModelDir(format!("{}: no such GGUF file", path.display())));
        }
        if is_gguf(path) {
            if dtype.is_some() {
                tracing::warn!(path = %path.display(), "--dtype applies to safetensors checkpoints; a GGUF file runs in its own types");
            }
            if !device.is_cpu() {
                return Err(InferError::ModelDir(format!(
                    "{}: GGUF models run on the CPU in this build; use --device cpu (or a safetensors checkpoint on the GPU)",
                    path.display()
                )));
            }
            return Self::load_gguf_with(path, tokenizer, kv_type);
        }
        if let Some(ty) = kv_type {
            return Err(InferError::ModelDir(format!(
                "--cache-type {ty} applies to GGUF models; {} is a model directory (its cache has the compute dtype)",
                path.display()
            )));
        }
        let mut loaded = Self::load_dir(path, dtype, device)?;
        if let Some(t) = tokenizer {
            loaded.tokenizer = load_tokenizer(t)?;
            crate::check_vocab(loaded.model.config(), &loaded.tokenizer)?;
        }
        Ok(loaded)
    }

    /// A GGUF file (llama.cpp's format, quantized or float): the weights are memory-mapped and
    /// run by kiln-model's CPU network; the tokenizer is the file's own (`tokenizer.ggml.*`)
    /// unless `tokenizer` is given, which a file without tokenizer metadata needs.
    pub fn load_gguf(path: &Path, tokenizer: Option<&Path>) -> Result<Self> {
        Self::load_gguf_with(path, tokenizer, None)
    }

    /// [`LoadedModel::load_gguf`] with the KV cache in `kv_type` (default f16, llama.cpp's
    /// default; f32 is exact and takes twice the memory).
    pub fn load_gguf_with(path: &Path, tokenizer: Option<&Path>, kv_type: Option<kiln_model::KvType>) -> Result<Self> {
        let tokenizer = match tokenizer {
            Some(t) => load_tokenizer(t)?,
            None => {
                let file = kiln_gguf::GgufFile::open(path).map_err(|e| InferError::ModelDir(e.to_string()))?;
                if file.get("tokenizer.ggml.tokens").is_none() {
                    return Err(InferError::ModelDir(format!(
                        "{}: the file carries no tokenizer (no `tokenizer.ggml.tokens`); give one with --tokenizer PATH (a tokenizer.json or its folder)",
                        path.display()
                    )));
                }
                Tokenizer::from_gguf(path)?
            }
        };
        let mut model = kiln_model::gguf_llama::load_gguf(path)?;
        if let Some(ty) = kv_type {
            model = model.with_kv_type(ty);
        }
        crate::check_vocab(model.config(), &tokenizer)?;
        let mut eos_ids = model.config().eos_token_ids.clone();
        eos_ids.extend(tokenizer.special().eos);
        eos_ids.sort_unstable();
        eos_ids.dedup();
        Ok(Self { model: Box::new(model), tokenizer, eos_ids })
    }

    fn load_dir(dir: &Path, dtype: Option<WeightDType>, device: &candle_core::Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(InferError::ModelDir(format!(
                "{}: not a directory (expected a Hugging Face model folder with config.json, model.safetensors, tokenizer.json)",
                dir.display()
            )));
        }
        let tokenizer = Tokenizer::from_dir(dir)?;
        let cfg = kiln_model::Config::from_file(&dir.join("config.json"))?;
        crate::check_vocab(&cfg, &tokenizer)?;
        let dtype = dtype.or_else(|| default_compute_dtype(&cfg, device));
        let model = Llama::load(dir, dtype, device)?;
        let mut eos_ids = model.config().eos_token_ids.clone();
        let model: Box<dyn CausalLm> = Box::new(model);
        // generation_config.json may name more stop ids (transformers reads it the same way).
        let gen_cfg = dir.join("generation_config.json");
        if let Ok(text) = std::fs::read_to_string(&gen_cfg) {
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| InferError::ModelDir(format!("{}: invalid JSON: {e}", gen_cfg.display())))?;
            match v.get("eos_token_id") {
                Some(serde_json::Value::Number(n)) => eos_ids.extend(n.as_u64().map(|x| x as u32)),
                Some(serde_json::Value::Array(a)) => eos_ids.extend(a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32)),
                _ => {}
            }
        }
        if eos_ids.is_empty() {
            eos_ids.extend(tokenizer.special().eos);
        }
        eos_ids.sort_unstable();
        eos_ids.dedup();
        Ok(Self { model, tokenizer, eos_ids })
    }
}

/// The compute dtype when none is asked for: the checkpoint's own, except that a bf16 or f16
/// checkpoint on the CPU is computed in f32 (candle's CPU kernels for 16-bit floats are 6-10x
/// slower than its f32 ones, and f32 is exact for them); `--dtype bf16` still forces bf16.
pub fn default_compute_dtype(cfg: &kiln_model::Config, device: &candle_core::Device) -> Option<WeightDType> {
    (device.is_cpu() && cfg.torch_dtype != WeightDType::F32).then(|| {
        tracing::info!(stored = cfg.torch_dtype.torch_name(), "computing in f32 on the CPU (--dtype bf16 to compute in the stored type)");
        WeightDType::F32
    })
}

/// Writes the model folder `dir` (config.json, safetensors, tokenizer.json) as the GGUF file `out`
/// of type `ty`, its tokenizer embedded (what `kiln quantize` does); `general.name` is the
/// folder's name. Written atomically.
pub fn quantize_dir(dir: &Path, ty: kiln_model::gguf_export::ExportType, out: &Path) -> Result<kiln_model::gguf_export::ExportReport> {
    if !dir.join("config.json").is_file() {
        return Err(InferError::ModelDir(format!("{}: not a model directory (no config.json)", dir.display())));
    }
    let cfg = kiln_model::Config::from_file(&dir.join("config.json"))?;
    let tokenizer = kiln_tokenizer::layout::gguf_metadata(dir, cfg.vocab_size)
        .map_err(|e| InferError::ModelDir(format!("{}: the tokenizer to embed in the GGUF file: {e}", dir.display())))?;
    let name = std::fs::canonicalize(dir).ok().and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_default();
    Ok(kiln_model::gguf_export::export_gguf(dir, ty, tokenizer, &name, out)?)
}

/// Whether `path` is a GGUF file (by its magic, else by its extension).
pub fn is_gguf(path: &Path) -> bool {
    if !path.is_file() {
        return false;
    }
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic));
    read.is_ok() && &magic == b"GGUF" || path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    Ok(if path.is_dir() { Tokenizer::from_dir(path)? } else { Tokenizer::from_file(path)? })
}
