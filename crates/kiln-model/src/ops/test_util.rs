//! Test helpers shared by the ops' tests: each kernel is checked against the composed candle ops
//! it replaces, in value and in gradient, on random inputs; the kernels are applied directly (not
//! through the dispatching functions), so a silent fallback to the reference cannot make a test
//! pass.

use candle_core::{Device, Result, Tensor, Var};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

pub(super) fn randn(shape: &[usize], std: f32, seed: u64) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let normal = Normal::new(0f32, std).unwrap();
    Tensor::from_vec((0..n).map(|_| normal.sample(&mut rng)).collect::<Vec<_>>(), shape, &Device::Cpu).unwrap()
}

/// max |a - b| / max |b|.
pub(super) fn rel(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    let s = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    assert!(d.is_finite() && s.is_finite(), "non-finite: diff {d}, scale {s}");
    d / s.max(1e-12)
}

/// d sum(f(inputs) * g) / d inputs, for the inputs flagged in `wrt`.
fn grads(f: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor], wrt: &[bool], g: &Tensor) -> Vec<Tensor> {
    let vars: Vec<Option<Var>> = inputs.iter().zip(wrt).map(|(t, &w)| w.then(|| Var::from_tensor(t).unwrap())).collect();
    let args: Vec<Tensor> =
        inputs.iter().zip(&vars).map(|(t, v)| v.as_ref().map(|v| v.as_tensor().clone()).unwrap_or_else(|| t.clone())).collect();
    let y = f(&args).unwrap();
    let loss = (y * g).unwrap().sum_all().unwrap();
    let gs = loss.backward().unwrap();
    vars.iter().flatten().map(|v| gs.get(v.as_tensor()).expect("a gradient").clone()).collect()
}

/// Value within `1e-5` and every gradient within `1e-4`, relative to the reference's scale.
pub(super) fn check(
    name: &str,
    fused: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    reference: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    wrt: &[bool],
    seed: u64,
) {
    let (a, b) = (fused(inputs).unwrap(), reference(inputs).unwrap());
    let e = rel(&a, &b);
    assert!(e <= 1e-5, "{name}: value differs by {e} (relative)");
    let g = randn(b.dims(), 1.0, seed);
    let (ga, gb) = (grads(fused, inputs, wrt, &g), grads(reference, inputs, wrt, &g));
    for (i, (x, y)) in ga.iter().zip(&gb).enumerate() {
        let e = rel(x, y);
        assert!(e <= 1e-4, "{name}: gradient of input {i} differs by {e} (relative)");
    }
}
