//! Round-trip quality of the quantizers on Gaussian rows: relative RMS error of
//! `dequantize(quantize(x))`, with upper bounds near llama.cpp's figures (Q4_K about 0.07-0.09
//! of the RMS, Q6_K about 0.02). Run with `--nocapture` to see the measured values.

use kiln_quant::{dequantize_row, quantize_row, GgmlType};

/// xorshift64* and Box-Muller: deterministic Gaussian values without a rand dependency.
pub struct Rng(u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    pub fn gauss(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

fn relative_rms(ty: GgmlType, x: &[f32]) -> f64 {
    let mut bytes = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    quantize_row(ty, x, &mut bytes).unwrap();
    let mut y = vec![0f32; x.len()];
    dequantize_row(ty, &bytes, &mut y).unwrap();
    let err: f64 = x.iter().zip(&y).map(|(a, b)| f64::from(a - b).powi(2)).sum();
    let sig: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum();
    (err / sig).sqrt()
}

#[test]
fn gaussian_round_trip_error_is_near_llama_cpp_s() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let x: Vec<f32> = (0..256 * 256).map(|_| rng.gauss() * 0.02).collect();
    let bounds = [
        (GgmlType::Q4K, 0.075),
        (GgmlType::Q5K, 0.038),
        (GgmlType::Q6K, 0.019),
        (GgmlType::Q4_0, 0.120),
        (GgmlType::Q4_1, 0.100),
        (GgmlType::Q5_0, 0.060),
        (GgmlType::Q5_1, 0.050),
        (GgmlType::Q8_0, 0.006),
    ];
    for (ty, bound) in bounds {
        let e = relative_rms(ty, &x);
        println!("{ty}: relative RMS error {e:.4}");
        assert!(e < bound, "{ty}: {e} >= {bound}");
    }
}

#[test]
fn k_quants_handle_constant_zero_and_one_signed_rows() {
    for ty in [GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K] {
        for x in [
            vec![0f32; 512],
            vec![0.75; 512],
            vec![-1.5; 512],
            (0..512).map(|i| i as f32 * 1e-3).collect(),
            (0..512).map(|i| -(i as f32)).collect(),
        ] {
            let e = relative_rms(ty, &x);
            let zero = x.iter().all(|v| *v == 0.0);
            assert!(if zero { e.is_nan() || e == 0.0 } else { e < 0.1 }, "{ty}: {e} on {:?}..", &x[..4]);
        }
    }
}
