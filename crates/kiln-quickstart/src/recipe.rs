//! The small-budget training recipe: the model shape, optimizer and schedule quickstart trains
//! with, and what `kiln experiment` varies arm by arm. One struct, so the experiment's baseline
//! arm is exactly quickstart's run and a winning arm can become the default by changing
//! [`Recipe::default`].

use std::path::PathBuf;

use kiln_train::{ModelInit, ModelShape, ScheduleKind, TrainConfig};
use serde::{Deserialize, Serialize};

/// How a model is trained from scratch on packed data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The model's sizes (the vocabulary is the data's).
    pub shape: ModelShape,
    /// Peak learning rate.
    pub lr: f64,
    /// Decay after warmup.
    pub schedule: ScheduleKind,
    /// Warmup steps, at most a tenth of the run.
    pub warmup_steps: usize,
    /// Windows per optimizer step.
    pub batch_windows: usize,
    /// AdamW's second-moment decay.
    pub beta2: f64,
}

/// The `tiny` preset's shape: width 128, 4 layers, SwiGLU 352, 4 heads, untied head.
pub const TINY: ModelShape = ModelShape {
    hidden_size: 128,
    intermediate_size: 352,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 4,
    max_position_embeddings: 2048,
    tie_word_embeddings: false,
};

impl Default for Recipe {
    /// Quickstart's recipe: the paper's until a sweep beats it (README, Experiments: nothing has
    /// yet beyond seed noise).
    fn default() -> Self {
        Recipe::deepseek()
    }
}

impl Recipe {
    /// The paper's recipe at quickstart's size: the `tiny` shape, AdamW (beta2 0.95), warmup,
    /// then DeepSeek-Coder's step decay (x sqrt(0.1) at 80% and 90% of the steps).
    pub fn deepseek() -> Self {
        Recipe { shape: TINY, lr: 2e-3, schedule: ScheduleKind::Step, warmup_steps: 100, batch_windows: 8, beta2: 0.95 }
    }

    /// The trainer's config for `steps` optimizer steps on `data`, seeded by `seed`.
    pub fn train_config(&self, data: PathBuf, steps: usize, seed: u64) -> TrainConfig {
        let mut cfg = TrainConfig::new(data, ModelInit::Shape(self.shape), steps, self.lr);
        cfg.micro_batch = self.batch_windows;
        cfg.accumulation = 1;
        cfg.schedule.kind = self.schedule;
        cfg.schedule.warmup_steps = self.warmup_steps.min(steps / 10);
        cfg.adamw.beta2 = self.beta2;
        cfg.seed = seed;
        cfg
    }

    /// Says what is wrong, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        self.shape.validate()?;
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr < 1.0) {
            return Err(format!("lr {} must be between 0 and 1", self.lr));
        }
        if self.batch_windows == 0 {
            return Err("batch_windows must be at least 1".into());
        }
        if !(self.beta2 > 0.0 && self.beta2 < 1.0) {
            return Err(format!("beta2 {} must be between 0 and 1", self.beta2));
        }
        Ok(())
    }

    /// A short description for logs and tables: `128x4 ffn352 untied, lr 2e-3 step, batch 8`.
    pub fn describe(&self) -> String {
        let s = &self.shape;
        format!(
            "{}x{} ffn{} {}, lr {:e} {}, batch {}",
            s.hidden_size,
            s.num_hidden_layers,
            s.intermediate_size,
            if s.tie_word_embeddings { "tied" } else { "untied" },
            self.lr,
            self.schedule.name(),
            self.batch_windows
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recipe_makes_a_valid_train_config() {
        let r = Recipe::default();
        r.validate().unwrap();
        let cfg = r.train_config(PathBuf::from("data"), 50, 7);
        assert_eq!(cfg.schedule.warmup_steps, 5);
        assert_eq!(cfg.schedule.total_steps, 50);
        assert_eq!(cfg.micro_batch * cfg.accumulation, r.batch_windows);
        assert_eq!(cfg.seed, 7);
        assert_eq!(cfg.init, ModelInit::Shape(r.shape));
        let bad = Recipe { shape: ModelShape { num_attention_heads: 3, ..TINY }, ..r };
        assert!(bad.validate().unwrap_err().contains("num_attention_heads 3"));
        assert!(Recipe { lr: 0.0, ..r }.validate().unwrap_err().contains("lr"));
        // The tiny preset's shape, as the trainer builds it.
        assert_eq!(TINY.config().hidden_size, kiln_model::Config::preset(kiln_model::Preset::Tiny).hidden_size);
        assert_eq!(TINY.config().intermediate_size, kiln_model::Config::preset(kiln_model::Preset::Tiny).intermediate_size);
    }
}
