//! `KILN_SIMD` naming a tier this CPU may lack: the process keeps running on the best tier it
//! has at or below the request (own test binary: the choice is process-wide).

use kiln_quant::simd::CpuFeatures;
use kiln_quant::{active_tier, Tier};

#[test]
fn kiln_simd_avx512_falls_back_to_what_the_cpu_has() {
    // SAFETY (edition 2024 wording): no other thread of this test binary reads the environment.
    std::env::set_var("KILN_SIMD", "avx512");
    let tier = active_tier();
    assert!(tier.available());
    assert_eq!(tier, CpuFeatures::detect().best(), "avx512 is the top tier, so the best available one is used");
    assert!(Tier::ALL.contains(&tier));
}
