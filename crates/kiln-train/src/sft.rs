//! Instruction tuning (paper §3.7, spec §8): conversations from `kiln data sft` (tokens plus a
//! loss mask over the responses and their `<|EOT|>`), batched with padding, and the loss over
//! the masked positions only.

use std::path::Path;

use candle_core::{DType, Tensor, D};
use kiln_data::loader::Cursor;
use kiln_data::rng::SplitMix64;
use kiln_data::sft::SftReader;

use crate::error::{Result, TrainError};
use crate::model::TrainModel;

/// Serves SFT samples in a seeded order per epoch, padded into batches.
pub struct SftLoader {
    reader: SftReader,
    seed: Option<u64>,
    order: Vec<u32>,
    order_epoch: u64,
    cursor: Cursor,
    /// Longest sequence kept (the model's positions + 1); longer samples are cut.
    max_len: usize,
    pad: u32,
}

/// A padded batch: `ids[i]` and `mask[i]` have the same length; mask 1 marks tokens to learn.
pub struct MaskedBatch {
    /// Token ids, padded with the pad id.
    pub ids: Vec<Vec<u32>>,
    /// 1 on response tokens and their `<|EOT|>`, 0 elsewhere (padding included).
    pub mask: Vec<Vec<u8>>,
}

impl SftLoader {
    /// Opens `PREFIX.bin/.idx/.mask`.
    pub fn open(prefix: &Path, seed: Option<u64>, max_len: usize, pad: u32) -> Result<Self> {
        let reader = SftReader::open(prefix)?;
        if reader.is_empty() {
            return Err(TrainError::Config(format!("{}: no SFT samples", prefix.display())));
        }
        let mut l =
            SftLoader { reader, seed, order: Vec::new(), order_epoch: u64::MAX, cursor: Cursor { epoch: 0, position: 0 }, max_len, pad };
        l.set_cursor(Cursor { epoch: 0, position: 0 })?;
        Ok(l)
    }

    /// Samples.
    pub fn len(&self) -> usize {
        self.reader.len()
    }

    /// Whether there are none (never: `open` refuses an empty set).
    pub fn is_empty(&self) -> bool {
        self.reader.is_empty()
    }

    /// Where the loader stands.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Moves to `cursor` (from a checkpoint).
    pub fn set_cursor(&mut self, cursor: Cursor) -> Result<()> {
        if cursor.position >= self.len() as u64 {
            return Err(TrainError::Config(format!(
                "data cursor {} is past the {} SFT samples: resumed with other data?",
                cursor.position,
                self.len()
            )));
        }
        if self.order_epoch != cursor.epoch {
            let mut order: Vec<u32> = (0..self.len() as u32).collect();
            if let Some(seed) = self.seed {
                SplitMix64::keyed(seed, &cursor.epoch.to_le_bytes()).shuffle(&mut order);
            }
            self.order = order;
            self.order_epoch = cursor.epoch;
        }
        self.cursor = cursor;
        Ok(())
    }

    /// The next `n` samples, cut to `max_len` and padded to the longest of them.
    pub fn next_batch(&mut self, n: usize) -> Result<MaskedBatch> {
        let mut ids = Vec::with_capacity(n);
        let mut mask = Vec::with_capacity(n);
        for _ in 0..n {
            let s = self.reader.sample(self.order[self.cursor.position as usize] as usize)?;
            let keep = s.ids.len().min(self.max_len);
            ids.push(s.ids[..keep].to_vec());
            mask.push(s.mask[..keep].to_vec());
            let next = self.cursor.position + 1;
            let c = if next == self.len() as u64 {
                Cursor { epoch: self.cursor.epoch + 1, position: 0 }
            } else {
                Cursor { epoch: self.cursor.epoch, position: next }
            };
            self.set_cursor(c)?;
        }
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0).max(2);
        for (i, m) in ids.iter_mut().zip(mask.iter_mut()) {
            i.resize(longest, self.pad);
            m.resize(longest, 0);
        }
        Ok(MaskedBatch { ids, mask })
    }
}

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
