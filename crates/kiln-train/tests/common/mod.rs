//! Helpers shared by kiln-train's integration tests.
use std::path::Path;

use candle_core::Device;
use kiln_model::{Config, Llama, Preset, WeightDType};
use kiln_train::{ModelInit, TrainConfig};

/// A small random model (vocab 32, width 32, 2 layers, GQA 4/2) saved as a model directory.
pub fn small_model(dir: &Path) {
    let mut cfg = Config::preset(Preset::Tiny);
    cfg.vocab_size = 32;
    cfg.hidden_size = 32;
    cfg.intermediate_size = 64;
    cfg.num_hidden_layers = 2;
    cfg.num_attention_heads = 4;
    cfg.num_key_value_heads = 2;
    cfg.head_dim = 8;
    cfg.max_position_embeddings = 64;
    cfg.bos_token_id = Some(0);
    cfg.eos_token_ids = vec![1];
    cfg.pad_token_id = Some(1);
    Llama::random(cfg, WeightDType::F32, &Device::Cpu, 5).unwrap().save(dir, None).unwrap();
}

/// A training config for the model `small_model` wrote under `tmp/init` and the packed data
/// under `tmp/data`: `steps` steps, LR 1e-2, micro-batch 8, 5 warmup steps.
pub fn config(tmp: &Path, steps: usize) -> TrainConfig {
    let mut cfg = TrainConfig::new(tmp.join("data"), ModelInit::Dir(tmp.join("init")), steps, 1e-2);
    cfg.micro_batch = 8;
    cfg.schedule.warmup_steps = 5;
    cfg
}
