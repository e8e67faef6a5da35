//! `KILN_SIMD` is read once, at first use (own test binary: the choice is process-wide).

use kiln_quant::{active_tier, Tier};

#[test]
fn kiln_simd_forces_the_scalar_tier() {
    // SAFETY (edition 2024 wording): no other thread of this test binary reads the environment.
    std::env::set_var("KILN_SIMD", "scalar");
    assert_eq!(active_tier(), Tier::Scalar);
    // Read once: changing it later has no effect.
    std::env::set_var("KILN_SIMD", "avx2");
    assert_eq!(active_tier(), Tier::Scalar);
}
