//! Differential tests of every SIMD tier this CPU has against the scalar reference, forced
//! through the internal dispatch (`kernels(tier)`), plus the dispatcher's own rules.
//!
//! Exactness: with unit scales and small integers (`exact_case`) every partial sum is an
//! integer below 2^24, so all tiers must agree bit for bit. With real scales only the f32
//! summation order differs: the tolerance is `1e-5 * sum |w_i a_i|` (f32 rounding of a few
//! hundred to a few thousand terms is well inside it) and the scalar reference itself must agree
//! with the f64 dot product of the dequantized rows within the same bound.

use super::scalar::{exact_case, float_kernel, q8_kernel, q8k_kernel, q8kx4_kernel, q8x4_kernel, Lcg};
use super::*;
use crate::act::{Q8Act, Q8KAct};
use crate::{dequantize_row, GgmlType as T};

fn tiers() -> Vec<&'static Kernels> {
    Tier::ALL.into_iter().filter_map(kernels).collect()
}

#[test]
fn exact_cases_agree_bit_for_bit_on_every_tier() {
    for (seed, nb32, nb256, nf) in
        [(1, 1, 1, 1), (2, 2, 2, 7), (3, 7, 3, 8), (4, 33, 1, 31), (5, 3, 2, 64), (6, 9, 3, 300), (7, 64, 3, 2048)]
    {
        let case = exact_case(seed, nb32, nb256, nf);
        for k in tiers() {
            for (ty, w) in &case.q8_weights {
                for j in 0..3 {
                    let (got, want) = (q8_kernel(k, *ty)(w, case.q8.row(j)), q8_kernel(&scalar::KERNELS, *ty)(w, case.q8.row(j)));
                    assert_eq!(got.to_bits(), want.to_bits(), "{} {ty} nb {nb32}: {got} vs {want}", k.tier);
                }
                let xs = [2, 0, 1, 2].map(|j| case.q8.row(j));
                let want = xs.map(|x| q8_kernel(&scalar::KERNELS, *ty)(w, x));
                assert_eq!(q8x4_kernel(k, *ty)(w, &xs), want, "{} {ty} x4 nb {nb32}", k.tier);
            }
            for (ty, w) in &case.q8k_weights {
                for j in 0..3 {
                    let (got, want) = (q8k_kernel(k, *ty)(w, case.q8k.row(j)), q8k_kernel(&scalar::KERNELS, *ty)(w, case.q8k.row(j)));
                    assert_eq!(got.to_bits(), want.to_bits(), "{} {ty} nb {nb256}: {got} vs {want}", k.tier);
                }
                let xs = [1, 2, 0, 1].map(|j| case.q8k.row(j));
                let want = xs.map(|x| q8k_kernel(&scalar::KERNELS, *ty)(w, x));
                assert_eq!(q8kx4_kernel(k, *ty)(w, &xs), want, "{} {ty} x4 nb {nb256}", k.tier);
            }
            for (ty, w) in &case.float_weights {
                let (got, want) = (float_kernel(k, *ty)(w, &case.f), float_kernel(&scalar::KERNELS, *ty)(w, &case.f));
                assert_eq!(got.to_bits(), want.to_bits(), "{} {ty} n {nf}: {got} vs {want}", k.tier);
            }
        }
    }
}

/// Random blocks with realistic f16 scales in every scale field (and random 6-bit / int8
/// sub-block scales from the random bytes).
fn random_weights(g: &mut Lcg, ty: T, blocks: usize) -> Vec<u8> {
    let mut w: Vec<u8> = (0..blocks * ty.block_bytes()).map(|_| g.byte()).collect();
    let fields: &[usize] = match ty {
        T::Q4_0 | T::Q5_0 | T::Q8_0 => &[0],
        T::Q4_1 | T::Q5_1 | T::Q4K | T::Q5K => &[0, 2],
        T::Q6K => &[208],
        _ => &[],
    };
    for b in w.chunks_exact_mut(ty.block_bytes()) {
        for &f in fields {
            let scale = (g.gauss() * 0.01).clamp(-0.05, 0.05);
            b[f..f + 2].copy_from_slice(&crate::float::f32_to_f16(scale).to_le_bytes());
        }
    }
    w
}

/// `sum |w_i a_i|` and the f64 dot product of the dequantized weight row with `a`.
fn reference(ty: T, w: &[u8], a: &[f32]) -> (f64, f64) {
    let mut wd = vec![0f32; a.len()];
    dequantize_row(ty, w, &mut wd).unwrap();
    let abs = wd.iter().zip(a).map(|(w, a)| f64::from(*w).abs() * f64::from(*a).abs()).sum();
    let dot = wd.iter().zip(a).map(|(w, a)| f64::from(*w) * f64::from(*a)).sum();
    (abs, dot)
}

fn close(got: f32, want: f64, abs: f64) -> bool {
    (f64::from(got) - want).abs() <= 1e-5 * abs + 1e-30
}

#[test]
fn random_rows_agree_within_summation_tolerance() {
    let mut g = Lcg(42);
    for cols in [256, 512, 768, 2048, 5632] {
        let x: Vec<f32> = (0..cols).map(|_| g.gauss()).collect();
        // Row 0 is `x`; rows 1-3 other activations for the four-row kernels.
        let mut x4 = x.clone();
        x4.extend((0..3 * cols).map(|_| g.gauss() * 3.0));
        let q8 = Q8Act::quantize(&x4, 4, cols);
        let q8k = Q8KAct::quantize(&x4, 4, cols);
        // The activations as the kernels see them.
        let a8: Vec<f32> = (0..cols).map(|i| f32::from(q8.qs[i]) * q8.d[i / 32]).collect();
        let a8k: Vec<f32> = (0..cols).map(|i| f32::from(q8k.qs[i]) * q8k.d[i / 256]).collect();
        for ty in [T::Q4_0, T::Q4_1, T::Q5_0, T::Q5_1, T::Q8_0, T::Q4K, T::Q5K, T::Q6K, T::F32, T::F16, T::Bf16] {
            let w = if ty.is_quantized() {
                random_weights(&mut g, ty, cols / ty.block_size())
            } else {
                let v: Vec<f32> = (0..cols).map(|_| g.gauss() * 0.02).collect();
                let mut b = vec![0u8; ty.row_bytes(cols).unwrap()];
                crate::quantize_row(ty, &v, &mut b).unwrap();
                b
            };
            let a = match ty.block_size() {
                32 => &a8,
                256 => &a8k,
                _ => &x,
            };
            let (abs, want) = reference(ty, &w, a);
            for k in tiers() {
                let got = match ty.block_size() {
                    32 => q8_kernel(k, ty)(&w, q8.row(0)),
                    256 => q8k_kernel(k, ty)(&w, q8k.row(0)),
                    _ => float_kernel(k, ty)(&w, &x),
                };
                assert!(close(got, want, abs), "{} {ty} cols {cols}: {got} vs f64 {want} (sum|.| {abs})", k.tier);
                // The four-row kernels: each row bit-equal to the tier's one-row kernel.
                match ty.block_size() {
                    32 => {
                        let xs = [3, 1, 0, 2].map(|j| q8.row(j));
                        assert_eq!(q8x4_kernel(k, ty)(&w, &xs), xs.map(|x| q8_kernel(k, ty)(&w, x)), "{} {ty} x4", k.tier);
                    }
                    256 => {
                        let xs = [0, 2, 3, 1].map(|j| q8k.row(j));
                        assert_eq!(q8kx4_kernel(k, ty)(&w, &xs), xs.map(|x| q8k_kernel(k, ty)(&w, x)), "{} {ty} x4", k.tier);
                    }
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn dispatcher_only_ever_picks_supported_known_tiers() {
    let requests = [
        None,
        Some(""),
        Some("scalar"),
        Some("avx2"),
        Some("avx512"),
        Some("AVX512"),
        Some(" avx2 "),
        Some("amx"),
        Some("avx512vnni"),
        Some("bogus"),
    ];
    for bits in 0u32..128 {
        let f = |i: u32| bits & (1 << i) != 0;
        let cpu = CpuFeatures { avx2: f(0), fma: f(1), f16c: f(2), avx512f: f(3), avx512bw: f(4), avx512vl: f(5), avx512vnni: f(6) };
        for req in requests {
            let (tier, warning) = resolve(req, cpu);
            assert!(Tier::ALL.contains(&tier));
            assert!(cpu.supports(tier), "{req:?} on {cpu:?} gave unsupported {tier}");
            let parsed = req.and_then(Tier::parse);
            match parsed {
                Some(t) if cpu.supports(t) => assert_eq!((tier, warning.is_none()), (t, true)),
                Some(t) => {
                    assert!(tier < t && warning.is_some(), "{req:?} on {cpu:?}: {tier} {warning:?}");
                    assert_eq!(tier, Tier::ALL.into_iter().rev().find(|x| *x < t && cpu.supports(*x)).unwrap());
                }
                None if req.is_some_and(|r| !r.trim().is_empty()) => assert_eq!((tier, warning.is_some()), (cpu.best(), true)),
                None => assert_eq!((tier, warning), (cpu.best(), None)),
            }
        }
    }
}

#[test]
fn forcing_a_missing_tier_falls_back_with_a_warning() {
    let avx2_only = CpuFeatures { avx2: true, fma: true, f16c: true, ..CpuFeatures::default() };
    let (tier, warning) = resolve(Some("avx512"), avx2_only);
    assert_eq!(tier, Tier::Avx2);
    assert_eq!(warning.as_deref(), Some("KILN_SIMD=avx512 but this CPU lacks it; using avx2"));
    let (tier, warning) = resolve(Some("avx2"), CpuFeatures::default());
    assert_eq!((tier, warning.as_deref()), (Tier::Scalar, Some("KILN_SIMD=avx2 but this CPU lacks it; using scalar")));
    // AVX-512 without VNNI (e.g. Skylake-X) is not the avx512 tier.
    let no_vnni = CpuFeatures { avx512f: true, avx512bw: true, avx512vl: true, ..avx2_only };
    assert_eq!(no_vnni.best(), Tier::Avx2);
    // On this machine: the tables exist exactly for the available tiers, and the active one is
    // one of them.
    for t in Tier::ALL {
        assert_eq!(kernels(t).is_some(), t.available(), "{t}");
    }
    assert!(active_tier().available());
}

#[test]
fn self_check_accepts_every_available_tier() {
    for k in tiers() {
        assert_eq!(scalar::self_check(k), Ok(()), "{}", k.tier);
    }
}

#[test]
fn packed_groups_equal_the_row_major_references_bit_for_bit_on_every_tier() {
    let mut g = Lcg(77);
    for ty in [T::Q4K, T::Q6K, T::Q5_0, T::Q8_0, T::Q4_0] {
        for cols in [256, 768, 2048] {
            let w = random_weights(&mut g, ty, 8 * cols / ty.block_size());
            let m = crate::QMatrix::new(ty, 8, cols, w).unwrap();
            let p = crate::PackedMatrix::pack(&m).unwrap();
            let x: Vec<f32> = (0..4 * cols).map(|_| g.gauss()).collect();
            let (q8, q8k) = (Q8Act::quantize(&x, 4, cols), Q8KAct::quantize(&x, 4, cols));
            for k in tiers() {
                let (one, four): (Vec<[f32; 8]>, Vec<[f32; 8]>) = match ty {
                    T::Q5_0 | T::Q8_0 | T::Q4_0 => {
                        let xs = [0, 1, 2, 3].map(|j| q8.row(j));
                        let (f1, f4) = scalar::packed_q8_kernels(k, ty);
                        ((0..4).map(|j| f1(p.group(0), q8.row(j))).collect(), f4(p.group(0), &xs).to_vec())
                    }
                    _ => {
                        let (f1, f4) = if ty == T::Q4K { (k.q4k_r8, k.q4k_r8x4) } else { (k.q6k_r8, k.q6k_r8x4) };
                        let xs = [0, 1, 2, 3].map(|j| q8k.row(j));
                        ((0..4).map(|j| f1(p.group(0), q8k.row(j))).collect(), f4(p.group(0), &xs).to_vec())
                    }
                };
                for j in 0..4 {
                    let want: [f32; 8] = std::array::from_fn(|r| match ty {
                        T::Q5_0 | T::Q8_0 | T::Q4_0 => q8_kernel(&scalar::KERNELS, ty)(m.row(r), q8.row(j)),
                        _ => q8k_kernel(&scalar::KERNELS, ty)(m.row(r), q8k.row(j)),
                    });
                    assert_eq!(one[j], want, "{} {ty} cols {cols} act {j}", k.tier);
                    assert_eq!(four[j], want, "{} {ty} cols {cols} act {j} x4", k.tier);
                }
            }
        }
    }
}

#[test]
fn float_tiles_equal_the_tier_s_own_dot_product_for_every_shape() {
    let mut g = Lcg(5);
    for ty in [T::F32, T::F16, T::Bf16] {
        // Rows and activation counts around the 3 x 4 and 8 x 1 blocks; column counts with
        // tails and more than one cache chunk.
        for (rows, n, cols) in [(1, 1, 7), (8, 1, 2048), (11, 1, 40), (3, 4, 8), (7, 5, 1100), (5, 9, 33), (16, 32, 520)] {
            let wv: Vec<f32> = (0..rows * cols).map(|_| g.gauss() * 0.05).collect();
            let mut w = vec![0u8; rows * ty.row_bytes(cols).unwrap()];
            crate::quantize_row(ty, &wv, &mut w).unwrap();
            let x: Vec<f32> = (0..n * cols).map(|_| g.gauss()).collect();
            let rb = ty.row_bytes(cols).unwrap();
            for k in tiers() {
                let mut out = vec![f32::NAN; rows * n];
                scalar::float_tile_kernel(k, ty)(&w, rows, &x, n, &mut out);
                for r in 0..rows {
                    for j in 0..n {
                        let want = float_kernel(k, ty)(&w[r * rb..(r + 1) * rb], &x[j * cols..(j + 1) * cols]);
                        assert_eq!(out[j * rows + r].to_bits(), want.to_bits(), "{} {ty} {rows}x{cols} n {n} ({r}, {j})", k.tier);
                    }
                }
            }
        }
    }
}
