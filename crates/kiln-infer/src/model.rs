//! The model seam: what the decoding engine needs from a network, and nothing more.
//!
//! [`CausalLm`] is implemented by every way kiln runs a model: the float network
//! ([`kiln_model::Llama`], below), and the quantized and CUDA models to come. The engine
//! ([`crate::engine`]), the server, evaluation and the CLI talk only to this trait, so a new model
//! type plugs in here once and is served, batched, prefix-cached and evaluated without touching
//! them.
//!
//! A sequence's state is a [`KvCache`], made by the model that reads it ([`CausalLm::new_cache`]);
//! a cache handed to another model type is an error, not a crash.

use std::any::Any;

use candle_core::{Device, Tensor};
use kiln_model::{Config, Llama};

use crate::{InferError, Result};

/// The key/value state of one sequence: the positions a model has already processed.
pub trait KvCache: Send + Any {
    /// Positions held (the position of the next token).
    fn len(&self) -> usize;
    /// True when no position is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Keeps the first `len` positions (a prefix cache reuses them for the next prompt that
    /// starts with the same tokens).
    fn truncate(&mut self, len: usize);
    /// For the model that made it: its concrete type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// A causal language model the engine can drive.
///
/// Logits are f32, one row of `config().vocab_size` per position asked for. Implementations must
/// check their inputs (ids below the vocabulary, positions within `max_position_embeddings`) and
/// return errors, never panic.
pub trait CausalLm: Send + Sync {
    /// The architecture's hyper-parameters (vocabulary, positions, shapes).
    fn config(&self) -> &Config;
    /// A short description for logs and `kiln model info` (e.g. `llama f32 on cpu`).
    fn describe(&self) -> String;
    /// An empty cache for one sequence.
    fn new_cache(&self) -> Box<dyn KvCache>;
    /// Processes `ids` after the positions already in `cache` (which grows by `ids.len()`) and
    /// returns the logits of the last position (V).
    fn prefill(&self, ids: &[u32], cache: &mut dyn KvCache) -> Result<Vec<f32>>;
    /// As [`CausalLm::prefill`], returning the logits of every position of `ids` (T x V, row
    /// major): what scoring a text (bits per byte) needs.
    fn prefill_all(&self, ids: &[u32], cache: &mut dyn KvCache) -> Result<Vec<f32>>;
    /// One decode step for several sequences: `tokens[i]` is the next token of the sequence
    /// held by `caches[i]` (each at its own length); every cache grows by one position.
    /// Returns the next-token logits (S x V, row major). A sequence's logits must not depend on
    /// which other sequences share the step (batch invariance) where the implementation can
    /// promise it; the f32 CPU path does, bit for bit.
    fn decode(&self, tokens: &[u32], caches: &mut [&mut dyn KvCache]) -> Result<Vec<f32>>;
}

/// The float network's cache is kiln-model's own.
impl KvCache for kiln_model::Cache {
    fn len(&self) -> usize {
        self.seq_len()
    }
    fn truncate(&mut self, len: usize) {
        kiln_model::Cache::truncate(self, len)
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The concrete cache of `model`, or an error naming the mix-up (a cache made by another model).
pub fn downcast_cache<'c, C: KvCache>(cache: &'c mut dyn KvCache, model: &str) -> Result<&'c mut C> {
    cache.as_any_mut().downcast_mut::<C>().ok_or_else(|| {
        InferError::Internal(format!(
            "a KV cache made by another model type was given to {model}: every cache must come from its model's new_cache"
        ))
    })
}

fn ids_tensor(ids: &[u32], device: &Device) -> Result<Tensor> {
    Ok(Tensor::new(ids, device)?.unsqueeze(0)?) // (1, T)
}

impl CausalLm for Llama {
    fn config(&self) -> &Config {
        Llama::config(self)
    }

    fn describe(&self) -> String {
        format!("llama {:?} on {:?}", self.dtype(), self.device())
    }

    fn new_cache(&self) -> Box<dyn KvCache> {
        Box::new(Llama::new_cache(self))
    }

    fn prefill(&self, ids: &[u32], cache: &mut dyn KvCache) -> Result<Vec<f32>> {
        let cache = downcast_cache::<kiln_model::Cache>(cache, "the float llama")?;
        Ok(self.forward_last(&ids_tensor(ids, self.device())?, cache)?.squeeze(0)?.to_vec1::<f32>()?)
    }

    fn prefill_all(&self, ids: &[u32], cache: &mut dyn KvCache) -> Result<Vec<f32>> {
        let cache = downcast_cache::<kiln_model::Cache>(cache, "the float llama")?;
        Ok(self.forward(&ids_tensor(ids, self.device())?, cache)?.flatten_all()?.to_vec1::<f32>()?)
    }

    fn decode(&self, tokens: &[u32], caches: &mut [&mut dyn KvCache]) -> Result<Vec<f32>> {
        let mut concrete = Vec::with_capacity(caches.len());
        for c in caches.iter_mut() {
            concrete.push(downcast_cache::<kiln_model::Cache>(&mut **c, "the float llama")?);
        }
        Ok(self.decode_batch(tokens, &mut concrete)?.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// The CPU network's cache is kiln-model's own.
impl KvCache for kiln_model::cpu_llama::CpuCache {
    fn len(&self) -> usize {
        kiln_model::cpu_llama::CpuCache::len(self)
    }
    fn truncate(&mut self, len: usize) {
        kiln_model::cpu_llama::CpuCache::truncate(self, len)
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl CausalLm for kiln_model::cpu_llama::CpuLlama {
    fn config(&self) -> &Config {
        kiln_model::cpu_llama::CpuLlama::config(self)
    }

    fn describe(&self) -> String {
        let w = self.weights();
        format!(
            "llama on the CPU, {} weights ({:.2} GB)",
            w.layers.first().map_or_else(|| w.embed.type_name(), |l| l.gate.type_name()),
            self.weight_bytes() as f64 / 1e9
        )
    }

    fn new_cache(&self) -> Box<dyn KvCache> {
        Box::new(kiln_model::cpu_llama::CpuLlama::new_cache(self))
    }

    fn prefill(&self, ids: &[u32], cache: &mut dyn KvCache) -> Result<Vec<f32>> {
        let cache = downcast_cache::<kiln_model::cpu_llama::CpuCache>(cache, "the CPU llama")?;
        Ok(self.forward(ids, &[ids.len()], &mut [cache], kiln_model::cpu_llama::Wanted::LastOfEach)?)
    }

    fn prefill_all(&self, ids: &[u32], cache: &mut dyn KvCache) -> Result<Vec<f32>> {
        let cache = downcast_cache::<kiln_model::cpu_llama::CpuCache>(cache, "the CPU llama")?;
        Ok(self.forward(ids, &[ids.len()], &mut [cache], kiln_model::cpu_llama::Wanted::All)?)
    }

    fn decode(&self, tokens: &[u32], caches: &mut [&mut dyn KvCache]) -> Result<Vec<f32>> {
        let mut concrete = Vec::with_capacity(caches.len());
        for c in caches.iter_mut() {
            concrete.push(downcast_cache::<kiln_model::cpu_llama::CpuCache>(&mut **c, "the CPU llama")?);
        }
        Ok(self.forward(tokens, &vec![1; tokens.len()], &mut concrete, kiln_model::cpu_llama::Wanted::LastOfEach)?)
    }
}
