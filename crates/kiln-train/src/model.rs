//! The network as the trainer sees it: parameters held as `Var`s under their Hugging Face
//! names, and the loss with its gradients.

use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor, Var};
use kiln_model::{Config, Llama, Params};

use crate::error::{Result, TrainError};

/// Trainable parameters and the network built on them (updates to the `Var`s are seen by the
/// network: they share storage).
pub struct TrainModel {
    /// The resolved config.
    pub cfg: Config,
    /// Parameters in `Llama::named_tensors` order.
    pub params: Vec<(String, Var)>,
    model: Llama,
    /// The dtype the forward and backward run in; the parameters (master weights), their
    /// gradients and the optimizer state stay f32.
    compute: DType,
    /// Buffers of the hand-written CPU step, kept between steps.
    workspace: Mutex<crate::cpu_step::Workspace>,
}

impl TrainModel {
    /// Takes `model`'s weights (in f32) as trainable parameters.
    pub fn new(model: &Llama) -> Result<Self> {
        let cfg = model.config().clone();
        let params: Vec<(String, Var)> =
            model.named_tensors().into_iter().map(|(n, t)| Ok((n, Var::from_tensor(&t.to_dtype(DType::F32)?)?))).collect::<Result<_>>()?;
        let model =
            Llama::from_tensors(cfg.clone(), params.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect(), model.device())?;
        Ok(TrainModel { cfg, params, model, compute: DType::F32, workspace: Mutex::default() })
    }

    /// Loads a model directory (for continued training: long context, SFT, resume).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::new(&Llama::load(dir, Some(kiln_model::WeightDType::F32), device)?)
    }

    /// The network (for evaluation and saving).
    pub fn network(&self) -> &Llama {
        &self.model
    }

    /// Runs the forward and backward in `dtype` (f32, or bf16/f16: mixed precision): each step
    /// casts the f32 master weights to `dtype`; the casts are part of the graph, so gradients
    /// arrive back in f32 and the optimizer updates the f32 weights.
    pub fn set_compute_dtype(&mut self, dtype: DType) {
        self.compute = dtype;
    }

    /// The dtype of the forward and backward.
    pub fn compute_dtype(&self) -> DType {
        self.compute
    }

    /// The network a training step runs: the model itself in f32, else a view of the master
    /// weights cast to the compute dtype (differentiable casts).
    pub fn step_network(&self) -> Result<std::borrow::Cow<'_, Llama>> {
        if self.compute == DType::F32 {
            return Ok(std::borrow::Cow::Borrowed(&self.model));
        }
        let cast = self
            .params
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().to_dtype(self.compute)?)))
            .collect::<Result<std::collections::HashMap<_, _>>>()?;
        Ok(std::borrow::Cow::Owned(Llama::from_tensors(self.cfg.clone(), cast, self.model.device())?))
    }

    /// Inputs and targets of windows of `T + 1` tokens: `(B, T)` each.
    fn batch(&self, windows: &[Vec<u32>]) -> Result<(Tensor, Tensor)> {
        let t = windows[0].len() - 1;
        let dev = self.model.device();
        let inputs: Vec<u32> = windows.iter().flat_map(|w| w[..t].iter().copied()).collect();
        let targets: Vec<u32> = windows.iter().flat_map(|w| w[1..].iter().copied()).collect();
        Ok((Tensor::from_vec(inputs, (windows.len(), t), dev)?, Tensor::from_vec(targets, (windows.len(), t), dev)?))
    }

    /// Mean next-token cross-entropy over every position of `windows` (tracked for backward).
    pub fn loss(&self, windows: &[Vec<u32>]) -> Result<Tensor> {
        let (inputs, targets) = self.batch(windows)?;
        let logits = self.step_network()?.forward_train(&inputs)?; // (B, T, V), f32
        let (b, t, v) = logits.dims3()?;
        // kiln's fused cross-entropy: one pass per row each way (candle's composed one makes ~10).
        Ok(kiln_model::ops::cross_entropy(&logits.reshape((b * t, v))?, &targets.flatten_all()?)?)
    }

    /// The loss of `windows` and the gradient of every parameter (in `params` order; a zero
    /// tensor for a parameter the loss does not reach). f32 on the CPU takes the hand-written
    /// step ([`crate::cpu_step`]), anything else candle's autograd; both compute the same thing.
    pub fn loss_and_grads(&self, windows: &[Vec<u32>]) -> Result<(f64, Vec<Tensor>)> {
        if self.hand_step_applies() {
            let t = windows[0].len() - 1;
            let inputs: Vec<u32> = windows.iter().flat_map(|w| w[..t].iter().copied()).collect();
            let targets: Vec<u32> = windows.iter().flat_map(|w| w[1..].iter().copied()).collect();
            let weights = vec![1.0 / inputs.len() as f32; inputs.len()];
            return self.weighted_loss_and_grads(&inputs, &targets, &weights, windows.len());
        }
        self.autograd_loss_and_grads(windows)
    }

    /// [`TrainModel::loss_and_grads`] through candle's autograd (every device and dtype; the
    /// reference the hand-written step is tested against).
    pub fn autograd_loss_and_grads(&self, windows: &[Vec<u32>]) -> Result<(f64, Vec<Tensor>)> {
        let loss = self.loss(windows)?;
        let grads = self.param_grads(&loss.backward()?)?;
        Ok((loss.to_scalar::<f32>()? as f64, grads))
    }

    /// Whether [`crate::cpu_step`] can run this model: f32 compute, every parameter f32 on the
    /// CPU.
    pub fn hand_step_applies(&self) -> bool {
        self.compute == DType::F32 && self.model.device().is_cpu() && self.params.iter().all(|(_, v)| v.dtype() == DType::F32)
    }

    /// `sum_r weights[r] * CE(r)` over the B·T positions of `inputs` (B rows of T, flattened)
    /// and its gradients, through the hand-written CPU step.
    pub fn weighted_loss_and_grads(&self, inputs: &[u32], targets: &[u32], weights: &[f32], b: usize) -> Result<(f64, Vec<Tensor>)> {
        // The step reads each parameter by its role, found by name here, and each gradient goes
        // back to the parameter of the same name: the order of `params` cannot mix them up.
        let named: Vec<(String, Tensor)> = self.params.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
        let (params, extra) = Params::from_named(&self.cfg, named)?;
        if let Some((name, _)) = extra.first() {
            return Err(TrainError::Config(format!("parameter {name} is not part of the network's layout")));
        }
        let (cos, sin) = self.model.rope_tables();
        let mut ws = self.workspace.lock().unwrap_or_else(|e| e.into_inner());
        let out = crate::cpu_step::loss_and_grads(&self.cfg, &params, cos, sin, inputs, targets, weights, b, &mut ws)?;
        let mut by_name: std::collections::HashMap<String, Vec<f32>> = out.grads.into_named().into_iter().collect();
        let grads = self
            .params
            .iter()
            .map(|(name, v)| {
                let g = by_name.remove(name).ok_or_else(|| TrainError::Config(format!("no gradient for parameter {name}")))?;
                Ok(Tensor::from_vec(g, v.shape(), v.device())?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((out.loss, grads))
    }

    /// Each parameter's gradient from a backward pass, in `params` order (zeros for a parameter
    /// the loss does not reach).
    pub fn param_grads(&self, grads: &candle_core::backprop::GradStore) -> Result<Vec<Tensor>> {
        self.params
            .iter()
            .map(|(_, v)| match grads.get(v.as_tensor()) {
                Some(g) => Ok(g.clone()),
                None => Ok(v.as_tensor().zeros_like()?),
            })
            .collect()
    }

    /// The loss without building a backward graph (evaluation).
    pub fn eval_loss(&self, windows: &[Vec<u32>]) -> Result<f64> {
        Ok(self.loss(windows)?.detach().to_scalar::<f32>()? as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_model::{Preset, WeightDType};

    /// bf16 compute: the loss and gradients track the f32 ones (to bf16 precision), the
    /// gradients arrive in f32 for the f32 master weights, and a few AdamW steps lower the loss.
    #[test]
    fn bf16_compute_keeps_f32_master_weights() {
        let mut cfg = Config::preset(Preset::Tiny);
        (cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers) = (64, 32, 64, 2);
        (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.max_position_embeddings) = (4, 2, 8, 64);
        (cfg.bos_token_id, cfg.eos_token_ids, cfg.pad_token_id) = (Some(0), vec![1], Some(1));
        cfg.initializer_range = 0.1;
        let mut model = TrainModel::new(&Llama::random(cfg, WeightDType::F32, &Device::Cpu, 11).unwrap()).unwrap();
        let windows: Vec<Vec<u32>> = (0..4).map(|b| (0..17u32).map(|j| (j * 5 + b * 3) % 64).collect()).collect();
        let (loss32, grads32) = model.loss_and_grads(&windows).unwrap();
        model.set_compute_dtype(DType::BF16);
        assert!(!model.hand_step_applies());
        let (loss16, grads16) = model.loss_and_grads(&windows).unwrap();
        assert!((loss16 - loss32).abs() < 2e-2 * loss32, "bf16 loss {loss16} vs f32 {loss32}");
        let (mut dot, mut n32, mut n16) = (0f64, 0f64, 0f64);
        for (g32, g16) in grads32.iter().zip(&grads16) {
            assert_eq!(g16.dtype(), DType::F32, "gradients of the master weights are f32");
            let (a, b) = (g32.flatten_all().unwrap().to_vec1::<f32>().unwrap(), g16.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            for (x, y) in a.iter().zip(&b) {
                (dot, n32, n16) = (dot + (*x as f64) * (*y as f64), n32 + (*x as f64).powi(2), n16 + (*y as f64).powi(2));
            }
        }
        let cosine = dot / (n32.sqrt() * n16.sqrt());
        assert!(cosine > 0.99, "bf16 gradients point elsewhere than f32 ones: cosine {cosine}");
        let mut opt = crate::AdamW::new(&model.params, crate::AdamWConfig::default()).unwrap();
        for _ in 0..20 {
            let (_, grads) = model.loss_and_grads(&windows).unwrap();
            opt.step(&grads, 1e-2).unwrap();
        }
        assert!(model.params.iter().all(|(_, v)| v.dtype() == DType::F32));
        let (after, _) = model.loss_and_grads(&windows).unwrap();
        assert!(after < 0.7 * loss16, "20 bf16 steps moved the loss from {loss16} to {after} only");
    }
}
