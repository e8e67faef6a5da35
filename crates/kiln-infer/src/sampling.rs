//! Choosing the next token from logits: greedy, or temperature with top-k / top-p (nucleus)
//! filtering, seeded so that a run can be repeated exactly. The order of the filters is
//! transformers': repetition penalty, temperature, top-k, top-p, then a draw.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How to pick tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (argmax); otherwise logits are divided by it before the softmax.
    pub temperature: f32,
    /// Keep only the k most likely tokens (None or 0: no limit).
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probabilities sum to at least p (None or 1.0: off).
    pub top_p: Option<f32>,
    /// CTRL-style penalty on tokens already in the prompt or output (1.0: off).
    pub repetition_penalty: f32,
    /// Seed of the random draw.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self { temperature: 0.0, top_k: None, top_p: None, repetition_penalty: 1.0, seed: 0 }
    }
}

impl SamplingParams {
    /// Checks the ranges, naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!("temperature must be >= 0, got {}", self.temperature));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(format!("top_p must be in (0, 1], got {p}"));
            }
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(format!("repetition_penalty must be > 0, got {}", self.repetition_penalty));
        }
        Ok(())
    }
}

/// A seeded sampler.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

/// Index of the largest value; the first one on ties, as `torch.argmax` does.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

impl Sampler {
    /// A sampler whose draws depend only on `params.seed`.
    pub fn new(params: SamplingParams) -> Self {
        let rng = StdRng::seed_from_u64(params.seed);
        Self { params, rng }
    }

    /// Picks the next token. `history` is every id so far (prompt and output), for the penalty.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let penalty = self.params.repetition_penalty;
        if penalty != 1.0 {
            let mut seen = history.to_vec();
            seen.sort_unstable();
            seen.dedup();
            for id in seen {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
                }
            }
        }
        if self.params.temperature == 0.0 {
            return argmax(logits);
        }
        let t = self.params.temperature;
        let mut cand: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l / t)).collect();
        // Sort descending; the stable sort keeps lower ids first on ties.
        cand.sort_by(|a, b| b.1.total_cmp(&a.1));
        if let Some(k) = self.params.top_k.filter(|&k| k > 0) {
            cand.truncate(k);
        }
        let max = cand[0].1;
        let mut probs: Vec<f32> = cand.iter().map(|(_, l)| (l - max).exp()).collect();
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        if let Some(p) = self.params.top_p.filter(|&p| p < 1.0) {
            // Keep tokens until the mass before them reaches p (always keeps the first).
            let mut mass = 0.0;
            let keep = probs.iter().take_while(|&&q| {
                let before = mass;
                mass += q;
                before < p
            });
            let n = keep.count().max(1);
            probs.truncate(n);
            let s: f32 = probs.iter().sum();
            probs.iter_mut().for_each(|q| *q /= s);
        }
        let r: f32 = self.rng.random();
        let mut acc = 0.0;
        for (i, q) in probs.iter().enumerate() {
            acc += q;
            if r < acc {
                return cand[i].0;
            }
        }
        cand[probs.len() - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&mut [0.1, 3.0, 3.0, -1.0], &[]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_at_any_temperature() {
        let mut s = Sampler::new(SamplingParams { temperature: 5.0, top_k: Some(1), ..Default::default() });
        for _ in 0..50 {
            assert_eq!(s.sample(&mut [0.0, 1.0, 0.5, 0.9], &[]), 1);
        }
    }

    #[test]
    fn top_p_excludes_the_tail() {
        // Probabilities ~ [0.64, 0.24, 0.09, 0.03]: p = 0.8 keeps the first two only.
        let logits = [2.0f32, 1.0, 0.0, -1.0];
        let mut s = Sampler::new(SamplingParams { temperature: 1.0, top_p: Some(0.8), seed: 3, ..Default::default() });
        let mut counts = [0usize; 4];
        for _ in 0..2000 {
            counts[s.sample(&mut logits.clone(), &[]) as usize] += 1;
        }
        assert_eq!(counts[2] + counts[3], 0, "{counts:?}");
        assert!(counts[0] > counts[1] && counts[1] > 300, "{counts:?}");
    }

    #[test]
    fn same_seed_same_draws_and_distribution_follows_softmax() {
        let logits = [0.0f32, (3.0f32).ln()]; // probabilities 0.25 / 0.75
        let params = SamplingParams { temperature: 1.0, seed: 42, ..Default::default() };
        let draw = |params: &SamplingParams| {
            let mut s = Sampler::new(params.clone());
            (0..4000).map(|_| s.sample(&mut logits.clone(), &[])).collect::<Vec<_>>()
        };
        let a = draw(&params);
        assert_eq!(a, draw(&params));
        let ones = a.iter().filter(|&&x| x == 1).count() as f64 / a.len() as f64;
        assert!((ones - 0.75).abs() < 0.03, "{ones}");
        assert_ne!(a, draw(&SamplingParams { seed: 43, ..params }));
    }

    #[test]
    fn repetition_penalty_demotes_seen_tokens() {
        let mut s = Sampler::new(SamplingParams { repetition_penalty: 2.0, ..Default::default() });
        assert_eq!(s.sample(&mut [1.0, 1.5, 0.2], &[1]), 0);
    }
}
