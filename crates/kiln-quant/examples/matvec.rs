//! Throughput of kiln-quant's products on the DeepSeek-Coder 1.3B shapes.
//!
//! ```text
//! cargo run --release -p kiln-quant --example matvec [-- OPTIONS]
//!   --types Q4_K,Q6_K,...   weight types (default Q4_K,Q6_K,Q8_0,Q5_0,F16,F32)
//!   --threads 1,2           thread counts (default 1,2)
//!   --tiers scalar,avx2     kernel tiers (default: every available SIMD tier)
//!   --m 1,512               activation rows (default 1,512)
//!   --model                 also time a whole decode token (all matrices) for Q4_K_M and Q8_0
//!   --quick                 fewer repetitions
//!   --packed                Q4_K/Q6_K/Q5_0 matrices packed eight rows at a time (as kiln loads them)
//!   --hot                   kernel speed instead: one 256x2048 matrix that stays in L2, many
//!                           short runs (the best one is the undisturbed one)
//! ```
//!
//! Prints GFLOP/s (2 * rows * cols * m / time) and effective weight bandwidth (weight bytes read
//! per product / time) next to the machine's measured read bandwidth. For m = 1 each product
//! reads a different copy of the matrix from a ring larger than the last-level cache, as decode
//! does; m = 512 reuses one copy. Every figure is the best of several runs (the machine may be
//! shared: the best run is the least disturbed).

use std::time::{Duration, Instant};

use kiln_quant::{matmul_packed_with_tier, matmul_with_tier, GgmlType, PackedMatrix, Pool, QMatrix, Tier};

/// A weight matrix as the product sees it: row-major, or packed (with `--packed`, where the type allows).
enum Weights {
    Rows(QMatrix<'static>),
    Packed(PackedMatrix),
}

impl Weights {
    fn new(m: QMatrix<'static>, packed: bool) -> Weights {
        match PackedMatrix::pack(&m).filter(|_| packed) {
            Some(p) => Weights::Packed(p),
            None => Weights::Rows(m),
        }
    }
    fn rows(&self) -> usize {
        match self {
            Weights::Rows(m) => m.rows(),
            Weights::Packed(p) => p.rows(),
        }
    }
    fn cols(&self) -> usize {
        match self {
            Weights::Rows(m) => m.cols(),
            Weights::Packed(p) => p.cols(),
        }
    }
    fn bytes(&self) -> usize {
        match self {
            Weights::Rows(m) => m.data().len(),
            Weights::Packed(p) => p.bytes(),
        }
    }
    fn matmul(&self, tier: Tier, x: &[f32], m: usize, out: &mut [f32], pool: &Pool) {
        match self {
            Weights::Rows(w) => matmul_with_tier(tier, w, x, m, out, pool).unwrap(),
            Weights::Packed(w) => matmul_packed_with_tier(tier, w, x, m, out, pool).unwrap(),
        }
    }
}

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

/// Random weight bytes of `ty` with small finite scales in every f16 scale field.
fn random_matrix(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> QMatrix<'static> {
    let bytes = rows * ty.row_bytes(cols).unwrap();
    let mut data = vec![0u8; bytes];
    for c in data.chunks_mut(8) {
        let v = rng.next().to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
    let scale = kiln_quant::float::f32_to_f16(0.01).to_le_bytes();
    let fields: &[usize] = match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q6K => &[208],
        _ => &[],
    };
    if ty.is_quantized() {
        for b in data.chunks_exact_mut(ty.block_bytes()) {
            for &f in fields {
                b[f..f + 2].copy_from_slice(&scale);
            }
        }
    } else {
        // Finite values: rewrite every element.
        match ty {
            GgmlType::F32 => data.chunks_exact_mut(4).for_each(|c| c.copy_from_slice(&(rng.unit() * 0.05).to_le_bytes())),
            GgmlType::F16 => {
                data.chunks_exact_mut(2).for_each(|c| c.copy_from_slice(&kiln_quant::float::f32_to_f16(rng.unit() * 0.05).to_le_bytes()))
            }
            _ => data.chunks_exact_mut(2).for_each(|c| c.copy_from_slice(&kiln_quant::float::f32_to_bf16(rng.unit() * 0.05).to_le_bytes())),
        }
    }
    QMatrix::new(ty, rows, cols, data).unwrap()
}

/// Best-of-`reps` read bandwidth over a buffer much larger than the caches, in GB/s.
fn read_bandwidth(threads: usize, reps: usize) -> f64 {
    let len = 512usize << 20;
    let buf: Vec<u64> = (0..len / 8).map(|i| i as u64).collect();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let chunk = buf.len().div_ceil(threads);
            let hs: Vec<_> = buf.chunks(chunk).map(|c| s.spawn(move || c.iter().fold(0u64, |a, &v| a.wrapping_add(v)))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).fold(0, u64::wrapping_add)
        });
        std::hint::black_box(total);
        best = best.min(t.elapsed().as_secs_f64());
    }
    len as f64 / best / 1e9
}

struct Opts {
    types: Vec<GgmlType>,
    threads: Vec<usize>,
    tiers: Vec<Tier>,
    ms: Vec<usize>,
    model: bool,
    quick: bool,
    hot: bool,
    packed: bool,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        types: vec![GgmlType::Q4K, GgmlType::Q6K, GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::F16, GgmlType::F32],
        threads: vec![1, 2],
        tiers: Tier::ALL.into_iter().filter(|t| *t != Tier::Scalar && t.available()).collect(),
        ms: vec![1, 512],
        model: false,
        quick: false,
        hot: false,
        packed: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = || args.get(i + 1).expect("option needs a value").split(',').map(str::to_owned).collect::<Vec<_>>();
        match args[i].as_str() {
            "--types" => {
                o.types = val()
                    .iter()
                    .map(|s| GgmlType::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(s)).expect("unknown type"))
                    .collect()
            }
            "--threads" => o.threads = val().iter().map(|s| s.parse().unwrap()).collect(),
            "--tiers" => o.tiers = val().iter().map(|s| Tier::parse(s).expect("unknown tier")).filter(|t| t.available()).collect(),
            "--m" => o.ms = val().iter().map(|s| s.parse().unwrap()).collect(),
            "--model" => {
                o.model = true;
                i -= 1;
            }
            "--quick" => {
                o.quick = true;
                i -= 1;
            }
            "--packed" => {
                o.packed = true;
                i -= 1;
            }
            "--hot" => {
                o.hot = true;
                i -= 1;
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

/// Seconds per product: best of `rounds` rounds, each cycling once through `ring` (m = 1) or
/// repeating one product (m > 1).
fn time_products(tier: Tier, ring: &[Weights], x: &[f32], m: usize, pool: &Pool, rounds: usize, min_round: Duration) -> f64 {
    let rows = ring[0].rows();
    let mut out = vec![0f32; m * rows];
    // Warm-up (first use selects kernels, wakes the pool, faults pages in).
    ring[0].matmul(tier, x, m, &mut out, pool);
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let start = Instant::now();
        let mut count = 0usize;
        while count == 0 || start.elapsed() < min_round {
            for w in ring {
                w.matmul(tier, x, m, &mut out, pool);
                count += 1;
            }
        }
        best = best.min(start.elapsed().as_secs_f64() / count as f64);
    }
    std::hint::black_box(&out);
    best
}

/// The Q4_K_M (llama.cpp's choice for a 24-layer model whose ffn width 5504 is not a multiple of
/// 256) or Q8_0 decode matrices of DeepSeek-Coder 1.3B: (type, rows, cols) per product.
fn model_products(q8: bool) -> Vec<(GgmlType, usize, usize)> {
    let (h, f, v, n_layer) = (2048, 5504, 32256, 24);
    let mut p = Vec::new();
    for i in 0..n_layer {
        let more_bits = i < n_layer / 8 || i >= 7 * n_layer / 8 || (i - n_layer / 8) % 3 == 2;
        let t = |k: GgmlType| if q8 { GgmlType::Q8_0 } else { k };
        for _ in 0..3 {
            p.push((t(GgmlType::Q4K), h, h)); // attn_q, attn_k, attn_output
        }
        p.push((t(if more_bits { GgmlType::Q6K } else { GgmlType::Q4K }), h, h)); // attn_v
        p.push((t(GgmlType::Q4K), f, h)); // ffn_gate
        p.push((t(GgmlType::Q4K), f, h)); // ffn_up
                                          // ffn_down: 5504 columns, so Q6_K falls back to Q8_0 and Q4_K to Q5_0.
        p.push((t(if more_bits { GgmlType::Q8_0 } else { GgmlType::Q5_0 }), h, f));
    }
    p.push((if q8 { GgmlType::Q8_0 } else { GgmlType::Q6K }, v, h)); // output
    p
}

fn main() {
    let o = parse_opts();
    let rounds = if o.hot {
        30
    } else if o.quick {
        3
    } else {
        5
    };
    let min_round = Duration::from_millis(if o.hot {
        5
    } else if o.quick {
        150
    } else {
        400
    });
    let features = kiln_quant::simd::CpuFeatures::detect();
    println!("cpu features: {features:?}");
    println!(
        "available tiers: {:?}; default tier {}",
        Tier::ALL.into_iter().filter(|t| t.available()).collect::<Vec<_>>(),
        kiln_quant::active_tier()
    );
    for &t in &o.threads {
        println!("memory read bandwidth, {t} thread(s): {:.1} GB/s", read_bandwidth(t, rounds));
    }
    let pools: Vec<Pool> = o.threads.iter().map(|&t| Pool::new(t)).collect();
    let mut rng = Rng(0x1234_5678);
    let shapes: &[(&str, usize, usize)] = if o.hot {
        &[("hot 256x2048", 256, 2048)]
    } else {
        &[
            ("attn 2048x2048", 2048, 2048),
            ("ffn up 5504x2048", 5504, 2048),
            ("ffn down 2048x5504", 2048, 5504),
            ("output 32256x2048", 32256, 2048),
        ]
    };
    println!("\n{:<6} {:<20} {:>4} {:>7} {:>3} {:>10} {:>9} {:>8}", "type", "shape", "m", "tier", "thr", "ms", "GFLOP/s", "GB/s");
    for &ty in &o.types {
        for &(name, rows, cols) in shapes {
            if ty.row_bytes(cols).is_none() {
                continue;
            }
            let bytes = rows * ty.row_bytes(cols).unwrap();
            for &m in &o.ms {
                if m > 1 && rows > 5504 {
                    continue; // the output matrix is used at m = 1 (the last position) only
                }
                // Decode: a ring of copies larger than the last-level cache.
                let copies = if m == 1 && !o.hot { (256usize << 20).div_ceil(bytes).max(2) } else { 1 };
                let ring: Vec<Weights> = (0..copies).map(|_| Weights::new(random_matrix(ty, rows, cols, &mut rng), o.packed)).collect();
                let x: Vec<f32> = (0..m * cols).map(|_| rng.unit()).collect();
                for &tier in &o.tiers {
                    for pool in &pools {
                        let s = time_products(tier, &ring, &x, m, pool, rounds, min_round);
                        let flops = 2.0 * rows as f64 * cols as f64 * m as f64;
                        println!(
                            "{:<6} {:<20} {:>4} {:>7} {:>3} {:>10.3} {:>9.1} {:>8.1}",
                            ty.name(),
                            name,
                            m,
                            tier.name(),
                            pool.threads(),
                            s * 1e3,
                            flops / s / 1e9,
                            bytes as f64 / s / 1e9
                        );
                    }
                }
            }
        }
    }
    if o.model {
        for q8 in [false, true] {
            let products = model_products(q8);
            let ws: Vec<Weights> =
                products.iter().map(|&(ty, rows, cols)| Weights::new(random_matrix(ty, rows, cols, &mut rng), o.packed)).collect();
            let bytes: usize = ws.iter().map(Weights::bytes).sum();
            let xs: Vec<Vec<f32>> = [2048usize, 5504].iter().map(|&c| (0..c).map(|_| rng.unit()).collect()).collect();
            for &tier in &o.tiers {
                for pool in &pools {
                    let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; w.rows()]).collect();
                    let mut best = f64::INFINITY;
                    for _ in 0..rounds + 1 {
                        let start = Instant::now();
                        for (w, out) in ws.iter().zip(&mut outs) {
                            let x = if w.cols() == 2048 { &xs[0] } else { &xs[1] };
                            w.matmul(tier, x, 1, out, pool);
                        }
                        best = best.min(start.elapsed().as_secs_f64());
                    }
                    println!(
                        "decode token, {} ({:.2} GB of weights read): {} {} thread(s): {:.2} ms = {:.1} tok/s (matrix products only), {:.1} GB/s",
                        if q8 { "Q8_0" } else { "Q4_K_M" },
                        bytes as f64 / 1e9,
                        tier.name(),
                        pool.threads(),
                        best * 1e3,
                        1.0 / best,
                        bytes as f64 / best / 1e9
                    );
                }
            }
        }
    }
}
