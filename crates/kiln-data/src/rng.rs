//! The random numbers behind FIM splits and epoch shuffles: [`kiln_base::rng`], re-exported so
//! `kiln_data::rng::SplitMix64` and the other paths keep working.

pub use kiln_base::rng::*;
