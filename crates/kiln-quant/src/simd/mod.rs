//! Run-time dispatch of the dot-product kernels over three tiers: `scalar` (the reference
//! definitions in the format modules), `avx2` (AVX2 + FMA + F16C) and `avx512` (AVX-512
//! F/BW/VL + VNNI, plus the AVX2 set). Nothing else is ever selected: no AMX (some machines
//! report AMX that crashes when used), no tier the CPU or OS lacks (`is_x86_feature_detected!`
//! checks CPUID and the OS-enabled register state).
//!
//! The tier is chosen once, at first use: the best the CPU supports, or the one named by the
//! environment variable `KILN_SIMD=scalar|avx2|avx512` (read once; a tier the CPU lacks falls
//! back to the best available one below it, with a warning, never a crash). Before a SIMD tier is
//! used its kernels are checked once against the scalar reference on a small fixed input (exact
//! integer results); a mismatch logs an error and drops to the tier below.
//!
//! Tests and benchmarks force tiers through [`Tier`] and the `*_with_tier` entry points rather
//! than the environment.

use std::sync::OnceLock;

use crate::act::{Q8KRow, Q8Row};

/// Defines a tier's kernels: safe wrappers that check the slice lengths and call the
/// `#[inline(always)]` x86 bodies inside a `#[target_feature]` function.
#[cfg(target_arch = "x86_64")]
macro_rules! tier_kernels {
    ($features:literal, $isa:ty, $f32:path, $f16:path, $bf16:path, $attend:path) => {
        tier_kernels!(@q8 $features, $isa, q4_0, q4_0_n, q4_0x4, 18);
        tier_kernels!(@q8 $features, $isa, q4_1, q4_1_n, q4_1x4, 20);
        tier_kernels!(@q8 $features, $isa, q5_0, q5_0_n, q5_0x4, 22);
        tier_kernels!(@q8 $features, $isa, q5_1, q5_1_n, q5_1x4, 24);
        tier_kernels!(@q8 $features, $isa, q8_0, q8_0_n, q8_0x4, 34);
        tier_kernels!(@q8k $features, $isa, q4k, q4k_n, q4kx4, 144);
        tier_kernels!(@q8k $features, $isa, q5k, q5k_n, q5kx4, 176);
        tier_kernels!(@q8k $features, $isa, q6k, q6k_n, q6kx4, 210);
        tier_kernels!(@r8k $features, q4k_r8, q4k_r8_n, q4k_r8x4, crate::packed::Q4K_R8_BYTES);
        tier_kernels!(@r8k $features, q6k_r8, q6k_r8_n, q6k_r8x4, crate::packed::Q6K_R8_BYTES);
        tier_kernels!(@r8 $features, q5_0_r8, q5_0_r8_n, q5_0_r8x4, crate::packed::Q5_0_R8_BYTES, int::q4_5_0_r8::<true, N>);
        tier_kernels!(@r8 $features, q4_0_r8, q4_0_r8_n, q4_0_r8x4, crate::packed::Q4_0_R8_BYTES, int::q4_5_0_r8::<false, N>);
        tier_kernels!(@r8 $features, q8_0_r8, q8_0_r8_n, q8_0_r8x4, crate::packed::Q8_0_R8_BYTES, int::q8_0_r8::<N>);
        tier_kernels!(@tile $features, f32_tile, fl::F32W);
        tier_kernels!(@tile $features, f16_tile, fl::F16W);
        tier_kernels!(@tile $features, bf16_tile, fl::Bf16W);
        tier_kernels!(@f $features, dot_f32, $f32, 4);
        tier_kernels!(@f $features, dot_f16, $f16, 2);
        tier_kernels!(@f $features, dot_bf16, $bf16, 2);
        fn attend(a: &crate::attention::Attend<'_>, scratch: &mut Vec<f32>, out: &mut [f32]) {
            #[target_feature(enable = $features)]
            unsafe fn inner(a: &crate::attention::Attend<'_>, scratch: &mut Vec<f32>, out: &mut [f32]) {
                $attend(a, scratch, out)
            }
            // SAFETY: as above; `crate::attention` checked the lengths the body relies on.
            unsafe { inner(a, scratch, out) }
        }
    };
    (@q8 $features:literal, $isa:ty, $name:ident, $gen:ident, $name4:ident, $bytes:expr) => {
        #[target_feature(enable = $features)]
        unsafe fn $gen<const N: usize>(w: &[u8], xs: &[crate::act::Q8Row<'_>; N]) -> [f32; N] {
            int::$name::<$isa, N>(w, xs)
        }
        fn $name(w: &[u8], x: crate::act::Q8Row<'_>) -> f32 {
            super::scalar::check_q8(w, x, $bytes);
            // SAFETY: this tier's table is only reachable through `kernels`, which checked the
            // CPU features; the lengths the body relies on were checked just above.
            unsafe { $gen::<1>(w, &[x])[0] }
        }
        fn $name4(w: &[u8], xs: &[crate::act::Q8Row<'_>; 4]) -> [f32; 4] {
            xs.iter().for_each(|x| super::scalar::check_q8(w, *x, $bytes));
            // SAFETY: as above.
            unsafe { $gen::<4>(w, xs) }
        }
    };
    (@q8k $features:literal, $isa:ty, $name:ident, $gen:ident, $name4:ident, $bytes:expr) => {
        #[target_feature(enable = $features)]
        unsafe fn $gen<const N: usize>(w: &[u8], xs: &[crate::act::Q8KRow<'_>; N]) -> [f32; N] {
            int::$name::<$isa, N>(w, xs)
        }
        fn $name(w: &[u8], x: crate::act::Q8KRow<'_>) -> f32 {
            super::scalar::check_q8k(w, x, $bytes);
            // SAFETY: this tier's table is only reachable through `kernels`, which checked the
            // CPU features; the lengths the body relies on were checked just above.
            unsafe { $gen::<1>(w, &[x])[0] }
        }
        fn $name4(w: &[u8], xs: &[crate::act::Q8KRow<'_>; 4]) -> [f32; 4] {
            xs.iter().for_each(|x| super::scalar::check_q8k(w, *x, $bytes));
            // SAFETY: as above.
            unsafe { $gen::<4>(w, xs) }
        }
    };
    (@r8k $features:literal, $name:ident, $gen:ident, $name4:ident, $bytes:expr) => {
        #[target_feature(enable = $features)]
        unsafe fn $gen<const N: usize>(w: &[u8], xs: &[crate::act::Q8KRow<'_>; N]) -> [[f32; 8]; N] {
            int::$name::<N>(w, xs)
        }
        fn $name(w: &[u8], x: crate::act::Q8KRow<'_>) -> [f32; 8] {
            super::scalar::check_q8k(w, x, $bytes);
            // SAFETY: as for the row kernels.
            unsafe { $gen::<1>(w, &[x])[0] }
        }
        fn $name4(w: &[u8], xs: &[crate::act::Q8KRow<'_>; 4]) -> [[f32; 8]; 4] {
            xs.iter().for_each(|x| super::scalar::check_q8k(w, *x, $bytes));
            // SAFETY: as above.
            unsafe { $gen::<4>(w, xs) }
        }
    };
    (@r8 $features:literal, $name:ident, $gen:ident, $name4:ident, $bytes:expr, $body:path) => {
        #[target_feature(enable = $features)]
        unsafe fn $gen<const N: usize>(w: &[u8], xs: &[crate::act::Q8Row<'_>; N]) -> [[f32; 8]; N] {
            $body(w, xs)
        }
        fn $name(w: &[u8], x: crate::act::Q8Row<'_>) -> [f32; 8] {
            super::scalar::check_q8(w, x, $bytes);
            // SAFETY: as for the row kernels.
            unsafe { $gen::<1>(w, &[x])[0] }
        }
        fn $name4(w: &[u8], xs: &[crate::act::Q8Row<'_>; 4]) -> [[f32; 8]; 4] {
            xs.iter().for_each(|x| super::scalar::check_q8(w, *x, $bytes));
            // SAFETY: as above.
            unsafe { $gen::<4>(w, xs) }
        }
    };
    (@tile $features:literal, $name:ident, $load:ty) => {
        fn $name(w: &[u8], rows: usize, x: &[f32], n: usize, out: &mut [f32]) {
            #[target_feature(enable = $features)]
            unsafe fn inner(w: &[u8], rows: usize, x: &[f32], n: usize, out: &mut [f32]) {
                fl::float_tile::<$load>(w, rows, x, n, out)
            }
            super::scalar::check_tile(w, rows, x, n, out, <$load as fl::FloatLoad>::ELEM);
            // SAFETY: as above; the lengths the body relies on were checked just above.
            unsafe { inner(w, rows, x, n, out) }
        }
    };
    (@f $features:literal, $name:ident, $body:path, $elem:expr) => {
        fn $name(w: &[u8], x: &[f32]) -> f32 {
            #[target_feature(enable = $features)]
            unsafe fn inner(w: &[u8], x: &[f32]) -> f32 {
                $body(w, x)
            }
            assert_eq!(w.len(), x.len() * $elem, "weight row and activation lengths differ");
            // SAFETY: as above.
            unsafe { inner(w, x) }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod scalar;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86_float;
#[cfg(target_arch = "x86_64")]
mod x86_int;

/// The environment variable that forces a tier.
pub const ENV_VAR: &str = "KILN_SIMD";

/// A kernel tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Portable reference code.
    Scalar,
    /// AVX2 + FMA + F16C (256-bit).
    Avx2,
    /// AVX-512 F/BW/VL + VNNI (and the AVX2 set): `vpdpbusd`.
    Avx512,
}

impl Tier {
    /// Every tier, lowest first.
    pub const ALL: [Tier; 3] = [Tier::Scalar, Tier::Avx2, Tier::Avx512];

    /// The name `KILN_SIMD` takes.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Avx2 => "avx2",
            Tier::Avx512 => "avx512",
        }
    }

    /// Parses a `KILN_SIMD` value (case-insensitive).
    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this CPU (and OS) can run the tier.
    pub fn available(self) -> bool {
        CpuFeatures::detect().supports(self)
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The CPU features the tiers need (all false off x86-64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// AVX2.
    pub avx2: bool,
    /// FMA3.
    pub fma: bool,
    /// F16C (f16 conversions).
    pub f16c: bool,
    /// AVX-512 Foundation.
    pub avx512f: bool,
    /// AVX-512 byte and word instructions.
    pub avx512bw: bool,
    /// AVX-512 on 128/256-bit vectors.
    pub avx512vl: bool,
    /// AVX-512 VNNI (`vpdpbusd`).
    pub avx512vnni: bool,
}

impl CpuFeatures {
    /// Detects the running CPU's features (cached by std).
    pub fn detect() -> CpuFeatures {
        #[cfg(target_arch = "x86_64")]
        {
            CpuFeatures {
                avx2: is_x86_feature_detected!("avx2"),
                fma: is_x86_feature_detected!("fma"),
                f16c: is_x86_feature_detected!("f16c"),
                avx512f: is_x86_feature_detected!("avx512f"),
                avx512bw: is_x86_feature_detected!("avx512bw"),
                avx512vl: is_x86_feature_detected!("avx512vl"),
                avx512vnni: is_x86_feature_detected!("avx512vnni"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        CpuFeatures::default()
    }

    /// Whether these features suffice for `tier`.
    pub fn supports(&self, tier: Tier) -> bool {
        let avx2 = self.avx2 && self.fma && self.f16c;
        match tier {
            Tier::Scalar => true,
            Tier::Avx2 => avx2,
            Tier::Avx512 => avx2 && self.avx512f && self.avx512bw && self.avx512vl && self.avx512vnni,
        }
    }

    /// The best tier these features support.
    pub fn best(&self) -> Tier {
        Tier::ALL.into_iter().rev().find(|t| self.supports(*t)).unwrap_or(Tier::Scalar)
    }
}

/// The tier to use given a `KILN_SIMD` value and the CPU's features, with the warning to log
/// when the request cannot be honoured. Never returns a tier `cpu` does not support.
pub fn resolve(requested: Option<&str>, cpu: CpuFeatures) -> (Tier, Option<String>) {
    let best = cpu.best();
    let Some(req) = requested.filter(|s| !s.trim().is_empty()) else {
        return (best, None);
    };
    match Tier::parse(req) {
        None => (best, Some(format!("{ENV_VAR}={req:?} is not one of scalar, avx2, avx512; using {best}"))),
        Some(t) if cpu.supports(t) => (t, None),
        Some(t) => {
            let fallback = Tier::ALL.into_iter().rev().find(|f| *f < t && cpu.supports(*f)).unwrap_or(Tier::Scalar);
            (fallback, Some(format!("{ENV_VAR}={t} but this CPU lacks it; using {fallback}")))
        }
    }
}

/// Dot product of a 32-block weight row with Q8 activations.
pub(crate) type DotQ8 = fn(&[u8], Q8Row<'_>) -> f32;
/// Dot products of a 32-block weight row with four Q8 activation rows (each row's result equal
/// to the single-row kernel's, bit for bit).
pub(crate) type DotQ8x4 = fn(&[u8], &[Q8Row<'_>; 4]) -> [f32; 4];
/// Dot product of a k-quant weight row with Q8_K activations.
pub(crate) type DotQ8K = fn(&[u8], Q8KRow<'_>) -> f32;
/// Dot products of a k-quant weight row with four Q8_K activation rows (bit-equal to `DotQ8K`).
pub(crate) type DotQ8Kx4 = fn(&[u8], &[Q8KRow<'_>; 4]) -> [f32; 4];
/// Dot products of an eight-row packed k-quant group ([`crate::packed`]) with one Q8_K
/// activation row: one result per row, each equal to the row-major reference's bit for bit.
pub(crate) type DotQ8KR8 = fn(&[u8], Q8KRow<'_>) -> [f32; 8];
/// [`DotQ8KR8`] for four activation rows.
pub(crate) type DotQ8KR8x4 = fn(&[u8], &[Q8KRow<'_>; 4]) -> [[f32; 8]; 4];
/// Dot products of an eight-row packed 32-block group with one Q8 activation row.
pub(crate) type DotQ8R8 = fn(&[u8], Q8Row<'_>) -> [f32; 8];
/// [`DotQ8R8`] for four activation rows.
pub(crate) type DotQ8R8x4 = fn(&[u8], &[Q8Row<'_>; 4]) -> [[f32; 8]; 4];
/// Dot product of an F32/F16/BF16 weight row with f32 activations.
pub(crate) type DotF = fn(&[u8], &[f32]) -> f32;

/// Products of `rows` float weight rows (`w`, row-major) with `n` f32 activation rows (`x`):
/// `out[j * rows + r] = dot(w_r, x_j)`, each output the same bits whatever `rows` and `n` are.
pub(crate) type FloatTile = fn(&[u8], usize, &[f32], usize, &mut [f32]);

/// Attention of a group of query heads over one KV head's cache (see [`crate::attention`]).
pub(crate) type AttendFn = fn(&crate::attention::Attend<'_>, &mut Vec<f32>, &mut [f32]);

/// One tier's kernels. The SIMD tables are reachable only through [`kernels`], which checks
/// the CPU first; that is what makes their safe `fn` pointers sound.
pub(crate) struct Kernels {
    pub tier: Tier,
    pub q4_0: DotQ8,
    pub q4_1: DotQ8,
    pub q5_0: DotQ8,
    pub q5_1: DotQ8,
    pub q8_0: DotQ8,
    pub q4k: DotQ8K,
    pub q5k: DotQ8K,
    pub q6k: DotQ8K,
    pub q4_0x4: DotQ8x4,
    pub q4_1x4: DotQ8x4,
    pub q5_0x4: DotQ8x4,
    pub q5_1x4: DotQ8x4,
    pub q8_0x4: DotQ8x4,
    pub q4kx4: DotQ8Kx4,
    pub q5kx4: DotQ8Kx4,
    pub q6kx4: DotQ8Kx4,
    pub q4k_r8: DotQ8KR8,
    pub q4k_r8x4: DotQ8KR8x4,
    pub q6k_r8: DotQ8KR8,
    pub q6k_r8x4: DotQ8KR8x4,
    pub q5_0_r8: DotQ8R8,
    pub q5_0_r8x4: DotQ8R8x4,
    pub q4_0_r8: DotQ8R8,
    pub q4_0_r8x4: DotQ8R8x4,
    pub q8_0_r8: DotQ8R8,
    pub q8_0_r8x4: DotQ8R8x4,
    pub f32: DotF,
    pub f16: DotF,
    pub bf16: DotF,
    pub f32_tile: FloatTile,
    pub f16_tile: FloatTile,
    pub bf16_tile: FloatTile,
    pub attend: AttendFn,
}

/// The kernels of `tier`, or `None` when this CPU cannot run it.
pub(crate) fn kernels(tier: Tier) -> Option<&'static Kernels> {
    if !tier.available() {
        return None;
    }
    match tier {
        Tier::Scalar => Some(&scalar::KERNELS),
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => Some(&avx2::KERNELS),
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => Some(&avx512::KERNELS),
        #[cfg(not(target_arch = "x86_64"))]
        _ => None,
    }
}

static ACTIVE: OnceLock<&'static Kernels> = OnceLock::new();

/// The kernels in use: chosen at first call (see the module docs), then fixed.
pub(crate) fn active_kernels() -> &'static Kernels {
    ACTIVE.get_or_init(|| {
        let requested = std::env::var(ENV_VAR).ok();
        let (mut tier, warning) = resolve(requested.as_deref(), CpuFeatures::detect());
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        loop {
            let k = kernels(tier).expect("resolve returns supported tiers");
            match scalar::self_check(k) {
                Ok(()) => {
                    tracing::debug!(tier = tier.name(), "kiln-quant kernels selected");
                    return k;
                }
                Err(e) => {
                    let below = Tier::ALL.into_iter().rev().find(|t| *t < tier).unwrap_or(Tier::Scalar);
                    tracing::error!("kiln-quant {tier} kernels disagree with the reference ({e}); using {below}");
                    tier = below;
                }
            }
        }
    })
}

/// The tier in use (see the module docs for how it is chosen).
pub fn active_tier() -> Tier {
    active_kernels().tier
}
