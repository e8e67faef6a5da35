//! The AVX-512 tier: the same bodies compiled with AVX-512 F/BW/VL + VNNI (EVEX encodings, 32
//! vector registers, `vpdpbusd` for the u8 x i8 sums); the float kernels are the AVX2 tile
//! bodies compiled with these features.

use super::x86_int::{self as int, Vnni};
use super::{x86_float as fl, Kernels, Tier};

tier_kernels!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", Vnni, fl::f32_avx2, fl::f16_avx2, fl::bf16_avx2, fl::attend_avx2);

pub(super) static KERNELS: Kernels = Kernels {
    tier: Tier::Avx512,
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
