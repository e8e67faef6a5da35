//! The engine behind the model seam: a fake model (it always predicts the token after the last
//! one, `(t + 1) mod V`) implements `CausalLm` in a few lines, and generation, batched decoding
//! and prefix-cache hits run through the engine unchanged. Then the real float model: batched
//! generation equals one-at-a-time generation bit for bit.
#[path = "../../../tests/support/fixtures.rs"]
mod fixtures;

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::Device;
use fixtures::fixture;
use kiln_infer::{CausalLm, Engine, FinishReason, GenerateParams, Generation, InferError, Job, KvCache, Request, SamplingParams, Sink};
use kiln_model::{Config, Llama, Preset, WeightDType};
use kiln_tokenizer::Tokenizer;

/// The fake model's cache: the ids it has processed.
struct SeenIds(Vec<u32>);

impl KvCache for SeenIds {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn truncate(&mut self, len: usize) {
        self.0.truncate(len)
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Predicts `(last + 1) mod V` with certainty; counts what it is asked to do.
struct NextId {
    cfg: Config,
    /// Tokens processed by prefills.
    prefilled: AtomicUsize,
    /// Widest decode step seen.
    widest_step: AtomicUsize,
    /// Every prefill's length, in order.
    prefills: Mutex<Vec<usize>>,
}

impl NextId {
    fn new(vocab_size: usize) -> Self {
        let cfg = Config { vocab_size, max_position_embeddings: 256, ..Config::preset(Preset::Tiny) };
        Self { cfg, prefilled: AtomicUsize::new(0), widest_step: AtomicUsize::new(0), prefills: Mutex::new(Vec::new()) }
    }

    fn row(&self, last: u32) -> Vec<f32> {
        let v = self.cfg.vocab_size;
        let mut row = vec![0.0; v];
        row[(last as usize + 1) % v] = 10.0;
        row
    }

    fn seen(cache: &mut dyn KvCache) -> kiln_infer::Result<&mut SeenIds> {
        kiln_infer::model::downcast_cache::<SeenIds>(cache, "the fake model")
    }
}

impl CausalLm for NextId {
    fn config(&self) -> &Config {
        &self.cfg
    }
    fn describe(&self) -> String {
        "fake next-id model".into()
    }
    fn new_cache(&self) -> Box<dyn KvCache> {
        Box::new(SeenIds(Vec::new()))
    }
    fn prefill(&self, ids: &[u32], cache: &mut dyn KvCache) -> kiln_infer::Result<Vec<f32>> {
        let all = self.prefill_all(ids, cache)?;
        Ok(all[all.len() - self.cfg.vocab_size..].to_vec())
    }
    fn prefill_all(&self, ids: &[u32], cache: &mut dyn KvCache) -> kiln_infer::Result<Vec<f32>> {
        let seen = Self::seen(cache)?;
        seen.0.extend_from_slice(ids);
        self.prefilled.fetch_add(ids.len(), Ordering::Relaxed);
        self.prefills.lock().unwrap().push(ids.len());
        Ok(ids.iter().flat_map(|&t| self.row(t)).collect())
    }
    fn decode(&self, tokens: &[u32], caches: &mut [&mut dyn KvCache]) -> kiln_infer::Result<Vec<f32>> {
        self.widest_step.fetch_max(tokens.len(), Ordering::Relaxed);
        let mut out = Vec::with_capacity(tokens.len() * self.cfg.vocab_size);
        for (&t, c) in tokens.iter().zip(caches.iter_mut()) {
            Self::seen(&mut **c)?.0.push(t);
            out.extend(self.row(t));
        }
        Ok(out)
    }
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_dir(&fixture("tiny-llama")).unwrap()
}

fn greedy(n: usize) -> GenerateParams {
    GenerateParams { max_new_tokens: n, sampling: SamplingParams::default(), ..Default::default() }
}

#[test]
fn a_fake_model_generates_through_the_engine() {
    let (model, tok) = (NextId::new(512), tokenizer());
    let engine = Engine::new(&model, &tok).unwrap();
    let mut streamed = String::new();
    let g = engine.generate(&[10, 11], &greedy(5), |p| streamed.push_str(p)).unwrap();
    assert_eq!(g.ids, vec![12, 13, 14, 15, 16]);
    assert_eq!(g.finish_reason, FinishReason::Length);
    assert_eq!(g.text, tok.decode(&g.ids, true).unwrap());
    assert_eq!(streamed, g.text, "streamed pieces add up to the text");
    // An EOS id ends it, kept in ids, never in the text.
    let g = engine.generate(&[10], &GenerateParams { eos_ids: vec![13], ..greedy(9) }, |_| {}).unwrap();
    assert_eq!((g.ids, g.finish_reason), (vec![11, 12, 13], FinishReason::Eos));
    // A cancelled request stops before its next token.
    let cancel = Arc::new(AtomicBool::new(true));
    let g = engine.generate_cancellable(&[10], &greedy(9), cancel, |_| {}).unwrap();
    assert_eq!(g.finish_reason, FinishReason::Cancelled);
    assert!(g.ids.is_empty());
}

#[test]
fn a_fake_model_decodes_requests_together() {
    let (model, tok) = (NextId::new(512), tokenizer());
    let engine = Engine::new(&model, &tok).unwrap().with_max_batch(2);
    let requests: Vec<Request> = [(vec![20], 4), (vec![100, 101], 2), (vec![300], 6)]
        .into_iter()
        .map(|(ids, n)| Request { ids, params: greedy(n), cache_prompt: false })
        .collect();
    let results = engine.generate_batch(requests);
    let ids: Vec<Vec<u32>> = results.into_iter().map(|r| r.unwrap().ids).collect();
    assert_eq!(ids, vec![vec![21, 22, 23, 24], vec![102, 103], vec![301, 302, 303, 304, 305, 306]]);
    assert_eq!(model.widest_step.load(Ordering::Relaxed), 2, "two sequences shared decode steps, never three");
    // A bad request fails alone: the others still generate.
    let bad = Request { ids: vec![], params: greedy(2), cache_prompt: false };
    let good = Request { ids: vec![7], params: greedy(2), cache_prompt: false };
    let results = engine.generate_batch(vec![bad, good]);
    assert!(matches!(results[0], Err(InferError::BadRequest(_))), "{:?}", results[0].as_ref().err());
    assert_eq!(results[1].as_ref().unwrap().ids, vec![8, 9]);
}

/// Collects a job's result.
struct Collect(Arc<Mutex<Vec<Generation>>>);

impl Sink for Collect {
    fn text(&mut self, _: &str) {}
    fn done(self, result: kiln_infer::Result<Generation>) {
        self.0.lock().unwrap().push(result.unwrap());
    }
}

#[test]
fn a_fake_model_reuses_a_cached_prefix() {
    let (model, tok) = (NextId::new(512), tokenizer());
    let engine = Engine::new(&model, &tok).unwrap().with_min_reuse(32);
    let prompt: Vec<u32> = (100..140).collect(); // 40 tokens
    let mut longer = prompt.clone();
    longer.extend([7, 8, 9]);
    let short: Vec<u32> = (100..110).collect(); // shares only 10 tokens: below min_reuse
    let done = Arc::new(Mutex::new(Vec::new()));
    let mut jobs = [prompt.clone(), longer.clone(), short, longer]
        .into_iter()
        .enumerate()
        .map(|(i, ids)| Job {
            request: Request { ids, params: greedy(3), cache_prompt: i != 3 },
            cancel: Arc::new(AtomicBool::new(false)),
            sink: Collect(done.clone()),
        })
        .collect::<Vec<_>>()
        .into_iter();
    engine.run(|_| jobs.next(), |_| {});
    let done = done.lock().unwrap();
    let cached: Vec<usize> = done.iter().map(|g| g.timings.cached_tokens).collect();
    // The second request finds the first one's 40 prompt tokens in the free slot; the third
    // shares too few; the fourth does not allow reuse.
    assert_eq!(cached, vec![0, 40, 0, 0]);
    assert_eq!(*model.prefills.lock().unwrap(), vec![40, 3, 10, 43], "only the new tokens are prefilled on a hit");
    // Reused or not, the text is the same (the fake model only looks at the last token).
    assert_eq!(done[1].ids, done[3].ids);
}

#[test]
fn a_cache_from_another_model_is_an_error_not_a_crash() {
    let model = NextId::new(512);
    let float = Llama::random(Config { vocab_size: 512, ..Config::preset(Preset::Tiny) }, WeightDType::F32, &Device::Cpu, 1).unwrap();
    let mut foreign = CausalLm::new_cache(&float);
    let err = model.prefill(&[1, 2], foreign.as_mut()).unwrap_err();
    assert!(matches!(err, InferError::Internal(_)), "{err}");
}

/// The real float model: a request's tokens are the same bits batched with others or alone.
#[test]
fn batched_generation_equals_generation_alone_on_the_float_model() {
    let dir = fixture("tiny-llama");
    let model = Llama::load(&dir, None, &Device::Cpu).unwrap();
    let tok = Tokenizer::from_dir(&dir).unwrap();
    let prompts: Vec<Vec<u32>> = vec![vec![400, 5, 6, 7], vec![400, 33], vec![400, 90, 91, 92, 93, 94, 95], vec![400, 12, 12]];
    let sampled = |seed| GenerateParams {
        max_new_tokens: 12,
        sampling: SamplingParams { temperature: 0.8, top_p: Some(0.9), seed, ..Default::default() },
        ..Default::default()
    };
    let alone = Engine::new(&model, &tok).unwrap();
    let want: Vec<Vec<u32>> = prompts.iter().enumerate().map(|(i, p)| alone.generate(p, &sampled(i as u64), |_| {}).unwrap().ids).collect();
    let batched = Engine::new(&model, &tok).unwrap().with_max_batch(3);
    let requests = prompts.iter().enumerate().map(|(i, p)| Request { ids: p.clone(), params: sampled(i as u64), cache_prompt: false });
    let got: Vec<Vec<u32>> = batched.generate_batch(requests.collect()).into_iter().map(|g| g.unwrap().ids).collect();
    assert_eq!(got, want);
}
