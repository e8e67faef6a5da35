//! The paper's per-size settings (Table 2, spec §5.1 and §6) as defaults for `kiln train`.

use kiln_model::Preset;

/// Max LR, batch (windows per optimizer step) and warmup steps of a preset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recipe {
    /// Peak learning rate.
    pub max_lr: f64,
    /// Windows per optimizer step (micro-batch x accumulation).
    pub batch_windows: usize,
    /// Linear warmup steps.
    pub warmup_steps: usize,
}

/// The paper's values for its three sizes (batch in sequences, warmup 2000 steps); `tiny` and
/// `small` get settings that train in minutes on a CPU: a higher LR, as small models tolerate
/// (the DeepSeek LLM fit η ∝ C^-0.125 grows as compute shrinks), batch 8, warmup 100.
pub fn recipe(preset: Preset) -> Recipe {
    match preset {
        Preset::DeepseekCoder1_3b => Recipe { max_lr: 5.3e-4, batch_windows: 1024, warmup_steps: 2000 },
        Preset::DeepseekCoder6_7b => Recipe { max_lr: 4.2e-4, batch_windows: 2304, warmup_steps: 2000 },
        Preset::DeepseekCoder33b => Recipe { max_lr: 3.5e-4, batch_windows: 3840, warmup_steps: 2000 },
        Preset::Small => Recipe { max_lr: 1e-3, batch_windows: 8, warmup_steps: 100 },
        Preset::Tiny => Recipe { max_lr: 2e-3, batch_windows: 8, warmup_steps: 100 },
    }
}
