//! kiln-quant's `matmul` against candle-core's `QMatMul` on the same weight bytes.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p kiln-quant --features candle-compare \
//!     --example candle_compare [-- --threads 2]
//! ```
//!
//! candle's CPU products run on rayon's global pool, so set `RAYON_NUM_THREADS` to the same
//! thread count as `--threads` (default 2). For m = 1 both cycle through a ring of copies larger
//! than the last-level cache (decode reads weights from memory); m = 64 and 512 reuse one copy.
//! Prints milliseconds per product (best of several rounds), the ratio candle / kiln (above 1:
//! kiln is faster) and the largest difference between the two outputs relative to their RMS
//! (both quantize activations, candle to Q8_K/Q8_0 with its own rounding, so they differ
//! slightly).

use std::time::{Duration, Instant};

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul};
use candle_core::{Device, Module, Tensor};
use kiln_quant::{matmul, GgmlType, Pool, QMatrix};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn random_bytes(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let mut data = vec![0u8; rows * ty.row_bytes(cols).unwrap()];
    for c in data.chunks_mut(8) {
        let v = rng.next().to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
    let scale = kiln_quant::float::f32_to_f16(0.01).to_le_bytes();
    let fields: &[usize] = match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q6K => &[208],
        _ => unreachable!(),
    };
    for b in data.chunks_exact_mut(ty.block_bytes()) {
        for &f in fields {
            b[f..f + 2].copy_from_slice(&scale);
        }
    }
    data
}

fn best_of(rounds: usize, min_round: Duration, mut f: impl FnMut() -> usize) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let start = Instant::now();
        let mut count = 0;
        while count == 0 || start.elapsed() < min_round {
            count += f();
        }
        best = best.min(start.elapsed().as_secs_f64() / count as f64);
    }
    best
}

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let threads = args.iter().position(|a| a == "--threads").map_or(2, |i| args[i + 1].parse().unwrap());
    let pool = Pool::new(threads);
    let dev = Device::Cpu;
    let mut rng = Rng(99);
    println!(
        "kiln tier {}, {threads} thread(s); RAYON_NUM_THREADS={:?}",
        kiln_quant::active_tier(),
        std::env::var("RAYON_NUM_THREADS").ok()
    );
    println!("{:<6} {:<10} {:>4} {:>10} {:>10} {:>8} {:>10}", "type", "shape", "m", "kiln ms", "candle ms", "ratio", "max diff");
    for (ty, cty) in [
        (GgmlType::Q4K, GgmlDType::Q4K),
        (GgmlType::Q6K, GgmlDType::Q6K),
        (GgmlType::Q8_0, GgmlDType::Q8_0),
        (GgmlType::Q5_0, GgmlDType::Q5_0),
    ] {
        for (rows, cols) in [(2048usize, 2048usize), (5504, 2048)] {
            for m in [1usize, 64, 512] {
                let bytes = rows * ty.row_bytes(cols).unwrap();
                let copies = if m == 1 { (256usize << 20).div_ceil(bytes) } else { 1 };
                let raw: Vec<Vec<u8>> = (0..copies).map(|_| random_bytes(ty, rows, cols, &mut rng)).collect();
                let kw: Vec<QMatrix<'_>> = raw.iter().map(|r| QMatrix::new(ty, rows, cols, r.as_slice()).unwrap()).collect();
                let cw: Vec<QMatMul> = raw
                    .iter()
                    .map(|r| QMatMul::from_qtensor(qtensor_from_ggml(cty, r, vec![rows, cols], &dev)?))
                    .collect::<candle_core::Result<_>>()?;
                let x: Vec<f32> = (0..m * cols).map(|_| rng.unit()).collect();
                let xt = Tensor::from_slice(&x, (m, cols), &dev)?;
                let mut out = vec![0f32; m * rows];
                // Alternate short rounds of each, keep each one's best: on a shared machine both
                // see the same disturbances.
                let min_round = Duration::from_millis(if m == 1 { 100 } else { 50 });
                let (mut tk, mut tc) = (f64::INFINITY, f64::INFINITY);
                for _ in 0..if m == 512 { 6 } else { 10 } {
                    tk = tk.min(best_of(1, min_round, || {
                        for w in &kw {
                            matmul(w, &x, m, &mut out, &pool).unwrap();
                        }
                        kw.len()
                    }));
                    tc = tc.min(best_of(1, min_round, || {
                        for w in &cw {
                            std::hint::black_box(w.forward(&xt).unwrap());
                        }
                        cw.len()
                    }));
                }
                matmul(&kw[0], &x, m, &mut out, &pool).unwrap();
                let co: Vec<f32> = cw[0].forward(&xt)?.flatten_all()?.to_vec1()?;
                let rms = (co.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / co.len() as f64).sqrt();
                let diff = out.iter().zip(&co).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max) / rms;
                println!(
                    "{:<6} {:<10} {:>4} {:>10.3} {:>10.3} {:>8.2} {:>10.2e}",
                    ty.name(),
                    format!("{rows}x{cols}"),
                    m,
                    tk * 1e3,
                    tc * 1e3,
                    tc / tk,
                    diff
                );
            }
        }
    }
    Ok(())
}
