//! The network's parameter layout, defined once: which tensors a model has, under which Hugging
//! Face names, in which order.
//!
//! [`Params<T>`] holds one `T` per parameter in named fields (a tensor, a gradient buffer, a
//! shape, an optimizer moment...). Code that needs a particular parameter asks for the field
//! (`layers[l].q_proj`), never for a position in a list, so the model, the hand-written training
//! step, the optimizer, checkpoints and (later) GGUF export cannot disagree about which tensor is
//! which. Where a flat list is needed (safetensors, optimizer state files), [`Params::into_named`]
//! gives `(name, T)` pairs and [`Params::from_named`] reads them back by name, whatever the order.

use crate::config::Config;
use crate::error::{ModelError, Result};

/// One transformer block's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerParams<T> {
    /// Query projection (H·D, C).
    pub q_proj: T,
    /// Key projection (KV·D, C).
    pub k_proj: T,
    /// Value projection (KV·D, C).
    pub v_proj: T,
    /// Attention output projection (C, H·D).
    pub o_proj: T,
    /// SwiGLU gate projection (F, C).
    pub gate_proj: T,
    /// SwiGLU up projection (F, C).
    pub up_proj: T,
    /// SwiGLU down projection (C, F).
    pub down_proj: T,
    /// RMSNorm before attention (C).
    pub input_layernorm: T,
    /// RMSNorm before the MLP (C).
    pub post_attention_layernorm: T,
}

/// The Hugging Face name suffix of each field of [`LayerParams`], in the canonical order.
pub const LAYER_NAMES: [&str; 9] = [
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
];

impl<T> LayerParams<T> {
    /// The fields in the order of [`LAYER_NAMES`].
    pub fn fields(&self) -> [&T; 9] {
        [
            &self.q_proj,
            &self.k_proj,
            &self.v_proj,
            &self.o_proj,
            &self.gate_proj,
            &self.up_proj,
            &self.down_proj,
            &self.input_layernorm,
            &self.post_attention_layernorm,
        ]
    }

    /// The fields, mutable, in the order of [`LAYER_NAMES`].
    pub fn fields_mut(&mut self) -> [&mut T; 9] {
        [
            &mut self.q_proj,
            &mut self.k_proj,
            &mut self.v_proj,
            &mut self.o_proj,
            &mut self.gate_proj,
            &mut self.up_proj,
            &mut self.down_proj,
            &mut self.input_layernorm,
            &mut self.post_attention_layernorm,
        ]
    }

    /// Builds a layer by asking for each field by its name suffix.
    pub fn try_build(mut get: impl FnMut(&'static str) -> Result<T>) -> Result<Self> {
        Ok(LayerParams {
            q_proj: get(LAYER_NAMES[0])?,
            k_proj: get(LAYER_NAMES[1])?,
            v_proj: get(LAYER_NAMES[2])?,
            o_proj: get(LAYER_NAMES[3])?,
            gate_proj: get(LAYER_NAMES[4])?,
            up_proj: get(LAYER_NAMES[5])?,
            down_proj: get(LAYER_NAMES[6])?,
            input_layernorm: get(LAYER_NAMES[7])?,
            post_attention_layernorm: get(LAYER_NAMES[8])?,
        })
    }

    fn into_fields(self) -> [T; 9] {
        [
            self.q_proj,
            self.k_proj,
            self.v_proj,
            self.o_proj,
            self.gate_proj,
            self.up_proj,
            self.down_proj,
            self.input_layernorm,
            self.post_attention_layernorm,
        ]
    }
}

/// Every parameter of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct Params<T> {
    /// Token embedding (V, C): `model.embed_tokens.weight`.
    pub embed_tokens: T,
    /// The blocks: `model.layers.{i}.*`.
    pub layers: Vec<LayerParams<T>>,
    /// Final RMSNorm (C): `model.norm.weight`.
    pub norm: T,
    /// Output projection (V, C): `lm_head.weight`; `None` when tied to the embedding.
    pub lm_head: Option<T>,
}

/// The name of the embedding.
pub const EMBED_NAME: &str = "model.embed_tokens.weight";
/// The name of the final norm.
pub const NORM_NAME: &str = "model.norm.weight";
/// The name of the output projection.
pub const LM_HEAD_NAME: &str = "lm_head.weight";

/// The full name of field `suffix` of layer `layer`.
pub fn layer_name(layer: usize, suffix: &str) -> String {
    format!("model.layers.{layer}.{suffix}")
}

impl<T> Params<T> {
    /// Builds the parameters of `cfg`'s shape by asking for each one by its full name (the
    /// lm_head only when it is not tied).
    pub fn try_build(cfg: &Config, mut get: impl FnMut(&str) -> Result<T>) -> Result<Self> {
        let embed_tokens = get(EMBED_NAME)?;
        let layers =
            (0..cfg.num_hidden_layers).map(|l| LayerParams::try_build(|suffix| get(&layer_name(l, suffix)))).collect::<Result<Vec<_>>>()?;
        let norm = get(NORM_NAME)?;
        let lm_head = if cfg.tie_word_embeddings { None } else { Some(get(LM_HEAD_NAME)?) };
        Ok(Params { embed_tokens, layers, norm, lm_head })
    }

    /// Takes each parameter of `cfg`'s shape out of `named` by name (any order); a missing name
    /// is an error naming it, and names left over are returned.
    pub fn from_named(cfg: &Config, named: Vec<(String, T)>) -> Result<(Self, Vec<(String, T)>)> {
        let mut by_name: std::collections::HashMap<String, T> = named.into_iter().collect();
        let params = Self::try_build(cfg, |name| {
            by_name.remove(name).ok_or_else(|| ModelError::MissingTensors { dir: Default::default(), count: 1, examples: name.to_string() })
        })?;
        let mut rest: Vec<(String, T)> = by_name.into_iter().collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((params, rest))
    }

    /// Every parameter with its Hugging Face name, in the canonical order (embedding, then each
    /// layer's fields in [`LAYER_NAMES`] order, the final norm, the lm_head when untied).
    pub fn named(&self) -> Vec<(String, &T)> {
        let mut out = Vec::with_capacity(self.len());
        out.push((EMBED_NAME.to_string(), &self.embed_tokens));
        for (l, layer) in self.layers.iter().enumerate() {
            out.extend(LAYER_NAMES.iter().zip(layer.fields()).map(|(s, t)| (layer_name(l, s), t)));
        }
        out.push((NORM_NAME.to_string(), &self.norm));
        out.extend(self.lm_head.as_ref().map(|t| (LM_HEAD_NAME.to_string(), t)));
        out
    }

    /// [`Params::named`], by value.
    pub fn into_named(self) -> Vec<(String, T)> {
        let mut out = Vec::with_capacity(self.len());
        out.push((EMBED_NAME.to_string(), self.embed_tokens));
        for (l, layer) in self.layers.into_iter().enumerate() {
            out.extend(LAYER_NAMES.iter().zip(layer.into_fields()).map(|(s, t)| (layer_name(l, s), t)));
        }
        out.push((NORM_NAME.to_string(), self.norm));
        out.extend(self.lm_head.map(|t| (LM_HEAD_NAME.to_string(), t)));
        out
    }

    /// Number of parameters (tensors).
    pub fn len(&self) -> usize {
        2 + 9 * self.layers.len() + usize::from(self.lm_head.is_some())
    }

    /// Never empty (the embedding and the norm are always there).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The same layout with `f` applied to each parameter.
    pub fn map<'a, U>(&'a self, mut f: impl FnMut(&'a T) -> U) -> Params<U> {
        let layer = |l: &'a LayerParams<T>, f: &mut dyn FnMut(&'a T) -> U| LayerParams {
            q_proj: f(&l.q_proj),
            k_proj: f(&l.k_proj),
            v_proj: f(&l.v_proj),
            o_proj: f(&l.o_proj),
            gate_proj: f(&l.gate_proj),
            up_proj: f(&l.up_proj),
            down_proj: f(&l.down_proj),
            input_layernorm: f(&l.input_layernorm),
            post_attention_layernorm: f(&l.post_attention_layernorm),
        };
        Params {
            embed_tokens: f(&self.embed_tokens),
            layers: self.layers.iter().map(|l| layer(l, &mut f)).collect(),
            norm: f(&self.norm),
            lm_head: self.lm_head.as_ref().map(&mut f),
        }
    }
}

impl<T> Params<T> {
    /// The same layout with `f` applied to each parameter, by value.
    pub fn into_map<U>(self, mut f: impl FnMut(T) -> U) -> Params<U> {
        let Params { embed_tokens, layers, norm, lm_head } = self;
        Params {
            embed_tokens: f(embed_tokens),
            layers: layers
                .into_iter()
                .map(|l| LayerParams {
                    q_proj: f(l.q_proj),
                    k_proj: f(l.k_proj),
                    v_proj: f(l.v_proj),
                    o_proj: f(l.o_proj),
                    gate_proj: f(l.gate_proj),
                    up_proj: f(l.up_proj),
                    down_proj: f(l.down_proj),
                    input_layernorm: f(l.input_layernorm),
                    post_attention_layernorm: f(l.post_attention_layernorm),
                })
                .collect(),
            norm: f(norm),
            lm_head: lm_head.map(f),
        }
    }

    /// [`Params::map`] with a fallible `f`: the first error is returned.
    pub fn try_map<'a, U, E>(&'a self, mut f: impl FnMut(&'a T) -> std::result::Result<U, E>) -> std::result::Result<Params<U>, E> {
        let mut first_error = None;
        let mapped = self.map(|t| match f(t) {
            Ok(u) => Some(u),
            Err(e) => {
                first_error.get_or_insert(e);
                None
            }
        });
        match first_error {
            Some(e) => Err(e),
            None => Ok(mapped.into_map(|u| u.expect("every value mapped when no error"))),
        }
    }
}

impl Params<Vec<usize>> {
    /// The shape of every parameter of `cfg`.
    pub fn shapes(cfg: &Config) -> Self {
        let (d, f, hd, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim, cfg.vocab_size);
        let (q, kv) = (cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd);
        let layer = LayerParams {
            q_proj: vec![q, d],
            k_proj: vec![kv, d],
            v_proj: vec![kv, d],
            o_proj: vec![d, q],
            gate_proj: vec![f, d],
            up_proj: vec![f, d],
            down_proj: vec![d, f],
            input_layernorm: vec![d],
            post_attention_layernorm: vec![d],
        };
        Params {
            embed_tokens: vec![v, d],
            layers: vec![layer; cfg.num_hidden_layers],
            norm: vec![d],
            lm_head: (!cfg.tie_word_embeddings).then(|| vec![v, d]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    fn cfg(tied: bool) -> Config {
        Config { num_hidden_layers: 3, tie_word_embeddings: tied, ..Config::preset(Preset::Tiny) }
    }

    /// Names are unique, follow the Hugging Face layout, and reading a shuffled list back by
    /// name puts every value in its own field.
    #[test]
    fn names_round_trip_in_any_order() {
        for tied in [false, true] {
            let cfg = cfg(tied);
            let named: Vec<(String, String)> = Params::shapes(&cfg).named().into_iter().map(|(n, _)| (n.clone(), n)).collect();
            assert_eq!(named.len(), 2 + 9 * 3 + usize::from(!tied));
            let unique: std::collections::HashSet<&String> = named.iter().map(|(n, _)| n).collect();
            assert_eq!(unique.len(), named.len());
            assert_eq!(named[1].0, "model.layers.0.self_attn.q_proj.weight");
            let mut shuffled = named.clone();
            shuffled.reverse();
            shuffled.swap(3, 11);
            shuffled.push(("extra.weight".into(), "extra.weight".into()));
            let (params, rest) = Params::from_named(&cfg, shuffled).unwrap();
            // Each field holds the value stored under its own name.
            for (name, value) in params.named() {
                assert_eq!(&name, value);
            }
            assert_eq!(params.layers[2].down_proj, "model.layers.2.mlp.down_proj.weight");
            assert_eq!(rest, vec![("extra.weight".to_string(), "extra.weight".to_string())]);
            assert_eq!(params.clone().into_named(), named);
            let missing: Vec<(String, String)> = named.into_iter().filter(|(n, _)| !n.contains("layers.1.mlp.up_proj")).collect();
            let err = Params::from_named(&cfg, missing).unwrap_err().to_string();
            assert!(err.contains("model.layers.1.mlp.up_proj.weight"), "{err}");
        }
    }

    /// The shapes agree with the parameter count the config computes.
    #[test]
    fn shapes_add_up_to_the_parameter_count() {
        for tied in [false, true] {
            let cfg = cfg(tied);
            let total: usize = Params::shapes(&cfg).named().iter().map(|(_, s)| s.iter().product::<usize>()).sum();
            assert_eq!(total, cfg.num_parameters());
        }
    }
}
