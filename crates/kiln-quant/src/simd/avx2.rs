//! The AVX2 tier: the `x86_int`/`x86_float` bodies compiled with AVX2 + FMA + F16C.

use super::x86_int::{self as int, Avx2};
use super::{x86_float as fl, Kernels, Tier};

tier_kernels!("avx2,fma,f16c", Avx2, fl::f32_avx2, fl::f16_avx2, fl::bf16_avx2, fl::attend_avx2);

pub(super) static KERNELS: Kernels = Kernels {
    tier: Tier::Avx2,
    q4_0,
    q4_1,
    q5_0,
    q5_1,
    q8_0,
    q4k,
    q5k,
    q6k,
    q4_0x4,
    q4_1x4,
    q5_0x4,
    q5_1x4,
    q8_0x4,
    q4kx4,
    q5kx4,
    q6kx4,
    q4k_r8,
    q4k_r8x4,
    q6k_r8,
    q6k_r8x4,
    q5_0_r8,
    q5_0_r8x4,
    q4_0_r8,
    q4_0_r8x4,
    q8_0_r8,
    q8_0_r8x4,
    f32: dot_f32,
    f16: dot_f16,
    bf16: dot_bf16,
    f32_tile,
    f16_tile,
    bf16_tile,
    attend,
};
