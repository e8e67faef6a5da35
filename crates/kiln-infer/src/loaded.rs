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
    /// Loads a Hugging Face model directory: tokenizer and config first (cheap, so a mismatch
    /// fails before the weights are read), then the weights in `dtype` (default: the
    /// checkpoint's) on `device`.
    pub fn load(dir: &Path, dtype: Option<WeightDType>, device: &candle_core::Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(InferError::ModelDir(format!(
                "{}: not a directory (expected a Hugging Face model folder with config.json, model.safetensors, tokenizer.json)",
                dir.display()
            )));
        }
        let tokenizer = Tokenizer::from_dir(dir)?;
        let cfg = kiln_model::Config::from_file(&dir.join("config.json"))?;
        crate::check_vocab(&cfg, &tokenizer)?;
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
