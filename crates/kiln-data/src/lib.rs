//! kiln-data: training data. Planned (issue #5): the FIM transform (PSM, rate 0.5), packing,
//! the Megatron `.bin/.idx` reader and writer, the data loader and SFT samples.
//! Nothing is implemented yet.
#![deny(missing_docs)]
