//! The scalar tier (the reference definitions from the format modules), the length checks the
//! SIMD wrappers share, and the one-time self-check of a SIMD tier against this reference.

use super::{Kernels, Tier};
use crate::act::{Q8KRow, Q8Row};
use crate::{float, k_quants, packed, q4_0, q4_1, q5_0, q5_1, q8_0};

pub(super) static KERNELS: Kernels = Kernels {
    tier: Tier::Scalar,
    q4_0: q4_0::vec_dot,
    q4_1: q4_1::vec_dot,
    q5_0: q5_0::vec_dot,
    q5_1: q5_1::vec_dot,
    q8_0: q8_0::vec_dot,
    q4k: k_quants::vec_dot_q4k,
    q5k: k_quants::vec_dot_q5k,
    q6k: k_quants::vec_dot_q6k,
    q4_0x4: |w, xs| xs.map(|x| q4_0::vec_dot(w, x)),
    q4_1x4: |w, xs| xs.map(|x| q4_1::vec_dot(w, x)),
    q5_0x4: |w, xs| xs.map(|x| q5_0::vec_dot(w, x)),
    q5_1x4: |w, xs| xs.map(|x| q5_1::vec_dot(w, x)),
    q8_0x4: |w, xs| xs.map(|x| q8_0::vec_dot(w, x)),
    q4kx4: |w, xs| xs.map(|x| k_quants::vec_dot_q4k(w, x)),
    q5kx4: |w, xs| xs.map(|x| k_quants::vec_dot_q5k(w, x)),
    q6kx4: |w, xs| xs.map(|x| k_quants::vec_dot_q6k(w, x)),
    q4k_r8: |w, x| {
        check_q8k(w, x, packed::Q4K_R8_BYTES);
        packed::dot_q4k_r8(w, x)
    },
    q4k_r8x4: |w, xs| {
        xs.map(|x| {
            check_q8k(w, x, packed::Q4K_R8_BYTES);
            packed::dot_q4k_r8(w, x)
        })
    },
    q6k_r8: |w, x| {
        check_q8k(w, x, packed::Q6K_R8_BYTES);
        packed::dot_q6k_r8(w, x)
    },
    q6k_r8x4: |w, xs| {
        xs.map(|x| {
            check_q8k(w, x, packed::Q6K_R8_BYTES);
            packed::dot_q6k_r8(w, x)
        })
    },
    q5_0_r8: |w, x| {
        check_q8(w, x, packed::Q5_0_R8_BYTES);
        packed::dot_q5_0_r8(w, x)
    },
    q5_0_r8x4: |w, xs| {
        xs.map(|x| {
            check_q8(w, x, packed::Q5_0_R8_BYTES);
            packed::dot_q5_0_r8(w, x)
        })
    },
    q4_0_r8: |w, x| {
        check_q8(w, x, packed::Q4_0_R8_BYTES);
        packed::dot_q4_0_r8(w, x)
    },
    q4_0_r8x4: |w, xs| {
        xs.map(|x| {
            check_q8(w, x, packed::Q4_0_R8_BYTES);
            packed::dot_q4_0_r8(w, x)
        })
    },
    q8_0_r8: |w, x| {
        check_q8(w, x, packed::Q8_0_R8_BYTES);
        packed::dot_q8_0_r8(w, x)
    },
    q8_0_r8x4: |w, xs| {
        xs.map(|x| {
            check_q8(w, x, packed::Q8_0_R8_BYTES);
            packed::dot_q8_0_r8(w, x)
        })
    },
    f32: float::vec_dot_f32,
    f16: float::vec_dot_f16,
    bf16: float::vec_dot_bf16,
    f32_tile: |w, rows, x, n, out| scalar_tile(w, rows, x, n, out, 4, float::vec_dot_f32),
    f16_tile: |w, rows, x, n, out| scalar_tile(w, rows, x, n, out, 2, float::vec_dot_f16),
    bf16_tile: |w, rows, x, n, out| scalar_tile(w, rows, x, n, out, 2, float::vec_dot_bf16),
    attend: crate::attention::attend_reference,
};

/// The lengths a 32-block kernel relies on: `x.d.len()` blocks everywhere.
#[inline]
pub(crate) fn check_q8(w: &[u8], x: Q8Row<'_>, bytes: usize) {
    let nb = x.d.len();
    assert!(
        w.len() == nb * bytes && x.qs.len() == nb * 32 && x.s.len() == nb && x.sums.len() == nb,
        "weight row and Q8 activation lengths differ"
    );
}

/// The lengths a k-quant kernel relies on.
#[inline]
pub(crate) fn check_q8k(w: &[u8], x: Q8KRow<'_>, bytes: usize) {
    let nb = x.d.len();
    assert!(w.len() == nb * bytes && x.qs.len() == nb * 256 && x.bsums.len() == nb * 16, "weight row and Q8_K activation lengths differ");
}

/// The lengths a float tile relies on: `n` activation rows of `cols` values, `rows` weight rows
/// of `cols * elem` bytes, `n * rows` outputs.
#[inline]
pub(crate) fn check_tile(w: &[u8], rows: usize, x: &[f32], n: usize, out: &[f32], elem: usize) {
    assert!(n > 0 && x.len().is_multiple_of(n), "activation length is not a multiple of the row count");
    assert!(w.len() == rows * (x.len() / n) * elem && out.len() == n * rows, "weight, activation and output lengths differ");
}

/// The scalar tier's float tile: one reference dot product per output.
fn scalar_tile(w: &[u8], rows: usize, x: &[f32], n: usize, out: &mut [f32], elem: usize, dot: fn(&[u8], &[f32]) -> f32) {
    check_tile(w, rows, x, n, out, elem);
    let cols = x.len() / n;
    for r in 0..rows {
        for j in 0..n {
            out[j * rows + r] = dot(&w[r * cols * elem..(r + 1) * cols * elem], &x[j * cols..(j + 1) * cols]);
        }
    }
}

/// A tiny deterministic generator for the self-check inputs.
pub(crate) struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    /// Uniform in `-r..=r`.
    pub fn small(&mut self, r: i32) -> i32 {
        (self.next() % (2 * r as u32 + 1)) as i32 - r
    }
    /// Standard normal (Box-Muller).
    #[cfg(test)]
    pub fn gauss(&mut self) -> f32 {
        let u = (f64::from(self.next()) + 0.5) / 4_294_967_296.0 * 2.0;
        let v = (f64::from(self.next()) + 0.5) / 4_294_967_296.0 * 2.0;
        ((-2.0 * u.min(1.0).ln()).sqrt() * (std::f64::consts::PI * v).cos()) as f32
    }
}

/// Weight rows and three activation rows whose dot products are small integers (unit scales, activations
/// in -7..=7, Q6_K scales in -32..=31), so every summation order gives the same f32: a correct
/// kernel must match the reference exactly. Bounds: Q5_K, the largest, stays below 2^24 for
/// the 3 blocks used.
pub(crate) struct ExactCase {
    pub q8_weights: Vec<(crate::GgmlType, Vec<u8>)>,
    pub q8: crate::act::Q8Act,
    pub q8k_weights: Vec<(crate::GgmlType, Vec<u8>)>,
    pub q8k: crate::act::Q8KAct,
    pub float_weights: Vec<(crate::GgmlType, Vec<u8>)>,
    pub f: Vec<f32>,
}

pub(crate) fn exact_case(seed: u64, nb32: usize, nb256: usize, nf: usize) -> ExactCase {
    use crate::act::{Q8Act, Q8KAct};
    use crate::GgmlType as T;
    let mut g = Lcg(seed);
    let one = 0x3C00u16.to_le_bytes();
    let mut q8_weights = Vec::new();
    for (ty, fields) in [(T::Q4_0, &[0usize][..]), (T::Q4_1, &[0, 2]), (T::Q5_0, &[0]), (T::Q5_1, &[0, 2]), (T::Q8_0, &[0])] {
        let mut w: Vec<u8> = (0..nb32 * ty.block_bytes()).map(|_| g.byte()).collect();
        for b in w.chunks_exact_mut(ty.block_bytes()) {
            for &f in fields {
                b[f..f + 2].copy_from_slice(&one);
            }
        }
        q8_weights.push((ty, w));
    }
    let mut q8 = Q8Act::zeroed(3, nb32 * 32);
    q8.qs.iter_mut().for_each(|q| *q = g.small(7) as i8);
    for (i, ((d, s), sum)) in q8.d.iter_mut().zip(q8.s.iter_mut()).zip(q8.sums.iter_mut()).enumerate() {
        *d = 1.0;
        *sum = q8.qs[32 * i..32 * i + 32].iter().map(|&q| i16::from(q)).sum();
        *s = f32::from(*sum);
    }
    let mut q8k_weights = Vec::new();
    for ty in [T::Q4K, T::Q5K, T::Q6K] {
        let mut w: Vec<u8> = (0..nb256 * ty.block_bytes()).map(|_| g.byte()).collect();
        for b in w.chunks_exact_mut(ty.block_bytes()) {
            if ty == T::Q6K {
                b[208..210].copy_from_slice(&one);
                b[192..208].iter_mut().for_each(|s| *s = g.small(31) as i8 as u8);
            } else {
                b[0..2].copy_from_slice(&one);
                b[2..4].copy_from_slice(&one);
            }
        }
        q8k_weights.push((ty, w));
    }
    let mut q8k = Q8KAct::zeroed(3, nb256 * 256);
    q8k.qs.iter_mut().for_each(|q| *q = g.small(7) as i8);
    q8k.d.iter_mut().for_each(|d| *d = 1.0);
    for (j, s) in q8k.bsums.iter_mut().enumerate() {
        *s = q8k.qs[16 * j..16 * j + 16].iter().map(|&q| i16::from(q)).sum();
    }
    let f: Vec<f32> = (0..nf).map(|_| g.small(7) as f32).collect();
    let wf: Vec<f32> = (0..nf).map(|_| g.small(8) as f32).collect();
    let mut float_weights = Vec::new();
    for ty in [T::F32, T::F16, T::Bf16] {
        let mut w = vec![0u8; ty.row_bytes(nf).unwrap()];
        crate::quantize_row(ty, &wf, &mut w).unwrap();
        float_weights.push((ty, w));
    }
    ExactCase { q8_weights, q8, q8k_weights, q8k, float_weights, f }
}

/// The dot-product kernel of `k` for a 32-block type.
pub(crate) fn q8_kernel(k: &Kernels, ty: crate::GgmlType) -> super::DotQ8 {
    use crate::GgmlType as T;
    match ty {
        T::Q4_0 => k.q4_0,
        T::Q4_1 => k.q4_1,
        T::Q5_0 => k.q5_0,
        T::Q5_1 => k.q5_1,
        T::Q8_0 => k.q8_0,
        _ => unreachable!("{ty} does not use Q8 activations"),
    }
}

/// The four-row dot-product kernel of `k` for a 32-block type.
pub(crate) fn q8x4_kernel(k: &Kernels, ty: crate::GgmlType) -> super::DotQ8x4 {
    use crate::GgmlType as T;
    match ty {
        T::Q4_0 => k.q4_0x4,
        T::Q4_1 => k.q4_1x4,
        T::Q5_0 => k.q5_0x4,
        T::Q5_1 => k.q5_1x4,
        T::Q8_0 => k.q8_0x4,
        _ => unreachable!("{ty} does not use Q8 activations"),
    }
}

/// The four-row dot-product kernel of `k` for a k-quant type.
pub(crate) fn q8kx4_kernel(k: &Kernels, ty: crate::GgmlType) -> super::DotQ8Kx4 {
    use crate::GgmlType as T;
    match ty {
        T::Q4K => k.q4kx4,
        T::Q5K => k.q5kx4,
        T::Q6K => k.q6kx4,
        _ => unreachable!("{ty} does not use Q8_K activations"),
    }
}

/// The dot-product kernel of `k` for a k-quant type.
pub(crate) fn q8k_kernel(k: &Kernels, ty: crate::GgmlType) -> super::DotQ8K {
    use crate::GgmlType as T;
    match ty {
        T::Q4K => k.q4k,
        T::Q5K => k.q5k,
        T::Q6K => k.q6k,
        _ => unreachable!("{ty} does not use Q8_K activations"),
    }
}

/// The tile kernel of `k` for a float type.
pub(crate) fn float_tile_kernel(k: &Kernels, ty: crate::GgmlType) -> super::FloatTile {
    use crate::GgmlType as T;
    match ty {
        T::F32 => k.f32_tile,
        T::F16 => k.f16_tile,
        T::Bf16 => k.bf16_tile,
        _ => unreachable!("{ty} is not a float type"),
    }
}

/// The dot-product kernel of `k` for a float type.
pub(crate) fn float_kernel(k: &Kernels, ty: crate::GgmlType) -> super::DotF {
    use crate::GgmlType as T;
    match ty {
        T::F32 => k.f32,
        T::F16 => k.f16,
        T::Bf16 => k.bf16,
        _ => unreachable!("{ty} is not a float type"),
    }
}

/// The packed kernels of `k` for a 32-block type with a packed layout (Q5_0, Q8_0, Q4_0).
pub(crate) fn packed_q8_kernels(k: &Kernels, ty: crate::GgmlType) -> (super::DotQ8R8, super::DotQ8R8x4) {
    use crate::GgmlType as T;
    match ty {
        T::Q5_0 => (k.q5_0_r8, k.q5_0_r8x4),
        T::Q8_0 => (k.q8_0_r8, k.q8_0_r8x4),
        T::Q4_0 => (k.q4_0_r8, k.q4_0_r8x4),
        _ => unreachable!("{ty} has no packed 32-block layout"),
    }
}

/// Eight rows of `ty` made from the row `w` (value bytes XOR-ed with the row number, scale fields
/// kept), packed; `None` for a type without a packed layout.
fn eight_rows(ty: crate::GgmlType, w: &[u8]) -> Option<crate::PackedMatrix> {
    use crate::GgmlType as T;
    let (lo, hi) = match ty {
        T::Q4K => (16, 144),
        T::Q6K => (0, 192),
        T::Q5_0 => (2, 22),
        T::Q8_0 => (2, 34),
        T::Q4_0 => (2, 18),
        _ => return None,
    };
    let bytes = ty.block_bytes();
    let rows: Vec<u8> = (0..8u8)
        .flat_map(|r| {
            w.chunks_exact(bytes).flat_map(move |b| {
                b.iter().enumerate().map(move |(i, v)| if (lo..hi).contains(&i) { v ^ r.wrapping_mul(0x25) } else { *v })
            })
        })
        .collect();
    let m = crate::QMatrix::new(ty, 8, w.len() / bytes * ty.block_size(), rows).ok()?;
    crate::PackedMatrix::pack(&m)
}

/// Checks every kernel of `k` against the reference on an exact case (odd block counts and a
/// float length with tails); the error names the first mismatch.
pub(super) fn self_check(k: &Kernels) -> Result<(), String> {
    if k.tier == Tier::Scalar {
        return Ok(());
    }
    let case = exact_case(0x5EED, 5, 3, 75);
    let rows4 = |n: usize| [0, 1, 2, 3].map(|j| j % n);
    for (ty, w) in &case.q8_weights {
        let (got, want) = (q8_kernel(k, *ty)(w, case.q8.row(0)), q8_kernel(&KERNELS, *ty)(w, case.q8.row(0)));
        if got != want {
            return Err(format!("{ty}: {got} vs {want}"));
        }
        let xs = rows4(case.q8.rows()).map(|j| case.q8.row(j));
        let (got, want) = (q8x4_kernel(k, *ty)(w, &xs), xs.map(|x| q8_kernel(&KERNELS, *ty)(w, x)));
        if got != want {
            return Err(format!("{ty} x4: {got:?} vs {want:?}"));
        }
    }
    for (ty, w) in &case.q8k_weights {
        let (got, want) = (q8k_kernel(k, *ty)(w, case.q8k.row(0)), q8k_kernel(&KERNELS, *ty)(w, case.q8k.row(0)));
        if got != want {
            return Err(format!("{ty}: {got} vs {want}"));
        }
        let xs = rows4(case.q8k.rows()).map(|j| case.q8k.row(j));
        let (got, want) = (q8kx4_kernel(k, *ty)(w, &xs), xs.map(|x| q8k_kernel(&KERNELS, *ty)(w, x)));
        if got != want {
            return Err(format!("{ty} x4: {got:?} vs {want:?}"));
        }
    }
    for (ty, w) in &case.float_weights {
        let (got, want) = (float_kernel(k, *ty)(w, &case.f), float_kernel(&KERNELS, *ty)(w, &case.f));
        if got != want {
            return Err(format!("{ty}: {got} vs {want}"));
        }
    }
    // The packed kernels, on eight rows made from each exact-case row (the value bytes varied
    // per row, the scale fields kept).
    for (ty, w) in case.q8k_weights.iter().chain(&case.q8_weights) {
        let Some(p) = eight_rows(*ty, w) else { continue };
        let (got, want, got4, want4) = match ty {
            crate::GgmlType::Q4K | crate::GgmlType::Q6K => {
                let (one, four, ref1, ref4) = if *ty == crate::GgmlType::Q4K {
                    (k.q4k_r8, k.q4k_r8x4, KERNELS.q4k_r8, KERNELS.q4k_r8x4)
                } else {
                    (k.q6k_r8, k.q6k_r8x4, KERNELS.q6k_r8, KERNELS.q6k_r8x4)
                };
                let xs = rows4(case.q8k.rows()).map(|j| case.q8k.row(j));
                (one(p.group(0), case.q8k.row(0)), ref1(p.group(0), case.q8k.row(0)), four(p.group(0), &xs), ref4(p.group(0), &xs))
            }
            _ => {
                let xs = rows4(case.q8.rows()).map(|j| case.q8.row(j));
                let g = p.group(0);
                let ((one, four), (ref1, ref4)) = (packed_q8_kernels(k, *ty), packed_q8_kernels(&KERNELS, *ty));
                (one(g, case.q8.row(0)), ref1(g, case.q8.row(0)), four(g, &xs), ref4(g, &xs))
            }
        };
        if got != want || got4 != want4 {
            return Err(format!("packed {ty}: {got:?} vs {want:?}, x4 {got4:?} vs {want4:?}"));
        }
    }
    Ok(())
}
