//! Instruction tuning (paper §3.7, spec §8): the loss over the masked positions only of
//! conversations from `kiln data sft` (tokens plus a loss mask over the responses and their
//! `<|EOT|>`), batched with padding by kiln-data's [`SftLoader`].

use candle_core::{DType, Tensor, D};
pub use kiln_data::loader::{MaskedBatch, SftLoader};

use crate::error::Result;
use crate::model::TrainModel;

/// The mean cross-entropy over the masked targets of `batch` (target `t + 1` counts when its
/// mask is 1), tracked for backward, and the number of such targets.
pub fn masked_loss(model: &TrainModel, batch: &MaskedBatch) -> Result<(Tensor, usize)> {
    let t = batch.ids[0].len() - 1;
    let b = batch.ids.len();
    let dev = model.network().device();
    let inputs: Vec<u32> = batch.ids.iter().flat_map(|w| w[..t].iter().copied()).collect();
    let targets: Vec<u32> = batch.ids.iter().flat_map(|w| w[1..].iter().copied()).collect();
    let weights: Vec<f32> = batch.mask.iter().flat_map(|m| m[1..].iter().map(|&x| x as f32)).collect();
    let count = weights.iter().filter(|&&w| w > 0.0).count();
    let inputs = Tensor::from_vec(inputs, (b, t), dev)?;
    let targets = Tensor::from_vec(targets, b * t, dev)?;
    let weights = Tensor::from_vec(weights, b * t, dev)?;
    let logits = model.step_network()?.forward_train(&inputs)?; // (B, T, V), f32
    let v = logits.dim(D::Minus1)?;
    // Per-position cross-entropy (fused, with backward), weighted by the mask.
    let rows = kiln_model::ops::cross_entropy_rows(&logits.reshape((b * t, v))?, &targets)?.to_dtype(DType::F32)?;
    let loss = ((rows * weights)?.sum_all()? * (1.0 / count.max(1) as f64))?;
    Ok((loss, count))
}

/// [`masked_loss`] and the gradient of every parameter (in `model.params` order).
pub fn masked_loss_and_grads(model: &TrainModel, batch: &MaskedBatch) -> Result<(f64, Vec<Tensor>, usize)> {
    if model.hand_step_applies() {
        let t = batch.ids[0].len() - 1;
        let inputs: Vec<u32> = batch.ids.iter().flat_map(|w| w[..t].iter().copied()).collect();
        let targets: Vec<u32> = batch.ids.iter().flat_map(|w| w[1..].iter().copied()).collect();
        let mask: Vec<f32> = batch.mask.iter().flat_map(|m| m[1..].iter().map(|&x| x as f32)).collect();
        let count = mask.iter().filter(|&&w| w > 0.0).count();
        let weights: Vec<f32> = mask.iter().map(|&w| w / count.max(1) as f32).collect();
        let (loss, grads) = model.weighted_loss_and_grads(&inputs, &targets, &weights, batch.ids.len())?;
        return Ok((loss, grads, count));
    }
    let (loss, count) = masked_loss(model, batch)?;
    let grads = model.param_grads(&loss.backward()?)?;
    Ok((loss.to_scalar::<f32>()? as f64, grads, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use kiln_model::{Config, Llama, Preset, WeightDType};

    /// The fused masked loss equals log-softmax + gather + mask by hand, and ignores the
    /// unmasked positions.
    #[test]
    fn masked_loss_counts_only_masked_targets() {
        let mut cfg = Config::preset(Preset::Tiny);
        (cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers) = (40, 16, 32, 1);
        (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.max_position_embeddings) = (2, 2, 8, 32);
        (cfg.bos_token_id, cfg.eos_token_ids, cfg.pad_token_id) = (Some(0), vec![1], Some(1));
        let model = TrainModel::new(&Llama::random(cfg, WeightDType::F32, &Device::Cpu, 4).unwrap()).unwrap();
        let batch = MaskedBatch {
            ids: vec![vec![0, 5, 9, 12, 3, 1], vec![0, 7, 7, 2, 1, 1]],
            mask: vec![vec![0, 0, 0, 1, 1, 1], vec![0, 0, 1, 1, 0, 0]],
        };
        let (loss, count) = masked_loss(&model, &batch).unwrap();
        assert_eq!(count, 5);
        let inputs = Tensor::new(&[[0u32, 5, 9, 12, 3], [0, 7, 7, 2, 1]], &Device::Cpu).unwrap();
        let logp = candle_nn::ops::log_softmax(&model.network().forward_train(&inputs).unwrap(), D::Minus1).unwrap();
        let logp: Vec<Vec<Vec<f32>>> = logp.to_vec3().unwrap();
        let mut want = 0f64;
        for (b, (ids, mask)) in batch.ids.iter().zip(&batch.mask).enumerate() {
            for t in 0..5 {
                if mask[t + 1] == 1 {
                    want -= logp[b][t][ids[t + 1] as usize] as f64;
                }
            }
        }
        want /= 5.0;
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
