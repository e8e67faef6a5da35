//! `matmul` on odd shapes for every type, tier and a few thread counts: SIMD tiers agree with
//! the scalar tier within the f32 summation tolerance (see src/simd/tests.rs), every tier gives
//! the same bits for any thread count (each output is one dot product, whatever the tiling), and
//! the scalar tier equals per-row reference dot products exactly. A row of an n-row product
//! equals the one-row product of the same activations, bit for bit (batch invariance).

use kiln_quant::act::{Q8Act, Q8KAct};
use kiln_quant::{matmul, matmul_packed_with_tier, matmul_with_tier, GgmlType as T, PackedMatrix, Pool, QMatrix, QuantError, Tier};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn gauss(&mut self) -> f32 {
        let u = ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let v = ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

fn tiers() -> Vec<Tier> {
    Tier::ALL.into_iter().filter(|t| t.available()).collect()
}

fn reference_dot(w: &QMatrix<'_>, r: usize, x: &[f32]) -> f32 {
    let cols = w.cols();
    match w.ty().block_size() {
        32 => {
            let a = Q8Act::quantize(x, 1, cols);
            match w.ty() {
                T::Q4_0 => kiln_quant::q4_0::vec_dot(w.row(r), a.row(0)),
                T::Q4_1 => kiln_quant::q4_1::vec_dot(w.row(r), a.row(0)),
                T::Q5_0 => kiln_quant::q5_0::vec_dot(w.row(r), a.row(0)),
                T::Q5_1 => kiln_quant::q5_1::vec_dot(w.row(r), a.row(0)),
                _ => kiln_quant::q8_0::vec_dot(w.row(r), a.row(0)),
            }
        }
        256 => {
            let a = Q8KAct::quantize(x, 1, cols);
            match w.ty() {
                T::Q4K => kiln_quant::k_quants::vec_dot_q4k(w.row(r), a.row(0)),
                T::Q5K => kiln_quant::k_quants::vec_dot_q5k(w.row(r), a.row(0)),
                _ => kiln_quant::k_quants::vec_dot_q6k(w.row(r), a.row(0)),
            }
        }
        _ => {
            let mut wr = vec![0f32; cols];
            kiln_quant::dequantize_row(w.ty(), w.row(r), &mut wr).unwrap();
            // GGML's float products: activations rounded to the weights' 16-bit type first.
            let round = |v: f32| match w.ty() {
                T::F16 => half::f16::from_f32(v).to_f32(),
                T::Bf16 => half::bf16::from_f32(v).to_f32(),
                _ => v,
            };
            wr.iter().zip(x).fold(0f32, |s, (a, b)| s + a * round(*b))
        }
    }
}

#[test]
fn matmul_matches_the_reference_on_odd_shapes_for_every_tier_and_thread_count() {
    let mut g = Rng(7);
    let pools: Vec<Pool> = [1, 2, 3].into_iter().map(Pool::new).collect();
    let types = [T::Q4K, T::Q6K, T::Q8_0, T::Q5_0, T::Q4_0, T::Q5K, T::Q4_1, T::Q5_1, T::F16, T::F32, T::Bf16];
    for ty in types {
        let col_choices: &[usize] = match ty.block_size() {
            32 => &[32, 96, 1056],
            256 => &[256, 768],
            _ => &[1, 33, 300],
        };
        for &cols in col_choices {
            for (rows, n) in [(1, 1), (5, 2), (67, 7), (130, 33), (17, 1)] {
                let wv: Vec<f32> = (0..rows * cols).map(|_| g.gauss() * 0.05).collect();
                let w = QMatrix::quantize(ty, rows, cols, &wv).unwrap();
                let x: Vec<f32> = (0..n * cols).map(|_| g.gauss()).collect();
                let mut scalar = vec![0f32; n * rows];
                matmul_with_tier(Tier::Scalar, &w, &x, n, &mut scalar, &pools[0]).unwrap();
                // The scalar tier is the per-row reference, exactly.
                for j in 0..n {
                    for r in 0..rows {
                        let want = reference_dot(&w, r, &x[j * cols..(j + 1) * cols]);
                        assert_eq!(scalar[j * rows + r].to_bits(), want.to_bits(), "{ty} {rows}x{cols} n {n} ({j}, {r})");
                    }
                }
                // Bound for the summation-order tolerance: sum |w| |x| per output.
                let wd = w.dequantize();
                for tier in tiers() {
                    let mut first: Option<Vec<f32>> = None;
                    for pool in &pools {
                        let mut out = vec![f32::NAN; n * rows];
                        matmul_with_tier(tier, &w, &x, n, &mut out, pool).unwrap();
                        if let Some(f) = &first {
                            assert!(f.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()), "{tier} {ty}: thread count changed bits");
                        }
                        for j in 0..n {
                            for r in 0..rows {
                                let abs: f64 =
                                    (0..cols).map(|c| f64::from(wd[r * cols + c]).abs() * f64::from(x[j * cols + c]).abs()).sum();
                                let (got, want) = (out[j * rows + r], scalar[j * rows + r]);
                                assert!(
                                    (f64::from(got) - f64::from(want)).abs() <= 2e-5 * abs + 1e-30,
                                    "{tier} {ty} {rows}x{cols} n {n} threads {} ({j}, {r}): {got} vs {want}",
                                    pool.threads()
                                );
                            }
                        }
                        // Batch invariance: row j of an n-row product equals a one-row product of x[j].
                        if n > 1 {
                            let j = n - 1;
                            let mut one = vec![0f32; rows];
                            matmul_with_tier(tier, &w, &x[j * cols..(j + 1) * cols], 1, &mut one, pool).unwrap();
                            assert!(
                                one.iter().zip(&out[j * rows..]).all(|(a, b)| a.to_bits() == b.to_bits()),
                                "{tier} {ty}: n changed bits"
                            );
                        }
                        first.get_or_insert(out);
                    }
                }
            }
        }
    }
}

#[test]
fn packed_products_equal_the_scalar_row_major_product_for_every_tier_thread_count_and_batch() {
    let mut g = Rng(21);
    let pools: Vec<Pool> = [1, 2, 3].into_iter().map(Pool::new).collect();
    for ty in [T::Q4K, T::Q6K, T::Q5_0, T::Q8_0, T::Q4_0] {
        let cols = 2 * ty.block_size() * if ty.block_size() == 32 { 3 } else { 1 };
        // Row counts: one group, several with a task split, the most groups a task takes and more.
        for (rows, n) in [(8, 1), (40, 5), (136, 9), (520, 1)] {
            let wv: Vec<f32> = (0..rows * cols).map(|_| g.gauss() * 0.05).collect();
            let w = QMatrix::quantize(ty, rows, cols, &wv).unwrap();
            let p = PackedMatrix::pack(&w).unwrap();
            let x: Vec<f32> = (0..n * cols).map(|_| g.gauss()).collect();
            let mut want = vec![0f32; n * rows];
            matmul_with_tier(Tier::Scalar, &w, &x, n, &mut want, &pools[0]).unwrap();
            for tier in tiers() {
                for pool in &pools {
                    let mut got = vec![f32::NAN; n * rows];
                    matmul_packed_with_tier(tier, &p, &x, n, &mut got, pool).unwrap();
                    let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{tier} {ty} {rows}x{cols} n {n} threads {}", pool.threads());
                }
            }
            let mut short = vec![0f32; rows];
            assert!(matches!(
                matmul_packed_with_tier(Tier::Scalar, &p, &x[1..], 1, &mut short, &pools[0]),
                Err(QuantError::ValueLength { .. })
            ));
        }
    }
}

#[test]
fn quantized_products_track_the_f32_product() {
    // End to end: Q8_0 and Q6_K weights with quantized activations stay close to the exact f32
    // product of the dequantized weights (activation quantization error only).
    let mut g = Rng(11);
    let (rows, cols, n) = (64, 512, 3);
    let wv: Vec<f32> = (0..rows * cols).map(|_| g.gauss() * 0.05).collect();
    let x: Vec<f32> = (0..n * cols).map(|_| g.gauss()).collect();
    let pool = Pool::new(2);
    for ty in [T::Q8_0, T::Q6K, T::Q4K] {
        let w = QMatrix::quantize(ty, rows, cols, &wv).unwrap();
        let wd = w.dequantize();
        let mut out = vec![0f32; n * rows];
        matmul(&w, &x, n, &mut out, &pool).unwrap();
        let mut err = 0f64;
        let mut sig = 0f64;
        for j in 0..n {
            for r in 0..rows {
                let exact: f64 = (0..cols).map(|c| f64::from(wd[r * cols + c]) * f64::from(x[j * cols + c])).sum();
                err += (f64::from(out[j * rows + r]) - exact).powi(2);
                sig += exact * exact;
            }
        }
        let rel = (err / sig).sqrt();
        assert!(rel < 0.01, "{ty}: relative error {rel} from activation quantization");
    }
}

#[test]
fn shapes_are_checked() {
    let pool = Pool::new(1);
    let w = QMatrix::new(T::Q8_0, 2, 32, vec![0u8; 68]).unwrap();
    let mut out = vec![0f32; 2];
    let err = matmul(&w, &[0f32; 31], 1, &mut out, &pool).unwrap_err();
    assert_eq!(err.to_string(), "activations: expected 32 f32 values, got 31");
    let err = matmul(&w, &[0f32; 32], 1, &mut [0f32; 3], &pool).unwrap_err();
    assert_eq!(err.to_string(), "output: expected 2 f32 values, got 3");
    assert_eq!(QMatrix::new(T::Q8_0, 2, 32, vec![0u8; 67]).unwrap_err().to_string(), "Q8_0 data for 64 values needs 68 bytes, got 67");
    assert!(matches!(QMatrix::new(T::Q4K, 1, 5504, vec![]), Err(QuantError::NotBlockMultiple { .. })));
    assert!(matches!(QMatrix::new(T::Q8K, 1, 256, vec![0u8; 292]), Err(QuantError::Unsupported { .. })));
    if !Tier::Avx512.available() {
        let err = matmul_with_tier(Tier::Avx512, &w, &[0f32; 32], 1, &mut out, &pool).unwrap_err();
        assert_eq!(err.to_string(), "this CPU cannot run the avx512 kernels");
    }
}
