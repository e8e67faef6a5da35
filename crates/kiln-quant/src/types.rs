//! The GGML tensor types kiln reads and writes: their ids in GGUF files (`ggml_type` in
//! llama.cpp's `ggml.h`, `GGMLQuantizationType` in gguf-py), how many values a block holds and
//! how many bytes it takes.

/// A GGML tensor element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
    /// 32 values: f16 scale d, 16 bytes of 4-bit q; w = (q - 8) d.
    Q4_0,
    /// 32 values: f16 d, f16 m, 16 bytes of 4-bit q; w = q d + m.
    Q4_1,
    /// 32 values: f16 d, 4 bytes of fifth bits, 16 bytes of low nibbles; w = (q - 16) d.
    Q5_0,
    /// 32 values: f16 d, f16 m, 4 bytes of fifth bits, 16 bytes of nibbles; w = q d + m.
    Q5_1,
    /// 32 values: f16 d, 32 int8 q; w = q d.
    Q8_0,
    /// 256 values in 8 sub-blocks of 32: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins,
    /// 128 bytes of nibbles; w = d sc q - dmin m.
    Q4K,
    /// 256 values: as Q4_K plus 32 bytes of fifth bits.
    Q5K,
    /// 256 values in 16 sub-blocks of 16: 128 bytes of low nibbles, 64 bytes of high 2 bits,
    /// 16 int8 scales, f16 d; w = d sc (q - 32).
    Q6K,
    /// 256 values: f32 d, 256 int8 q, 16 int16 sums of 16 (activations for k-quant products).
    Q8K,
}

impl GgmlType {
    /// Every type kiln knows.
    pub const ALL: [GgmlType; 12] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Bf16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
        GgmlType::Q8K,
    ];

    /// The type's id in GGUF files.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4K => 12,
            GgmlType::Q5K => 13,
            GgmlType::Q6K => 14,
            GgmlType::Q8K => 15,
            GgmlType::Bf16 => 30,
        }
    }

    /// The type with GGUF id `id`, if kiln supports it.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GgmlType::ALL.into_iter().find(|t| t.id() == id)
    }

    /// The name llama.cpp and gguf-py print (`Q4_K`, `F16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Bf16 => "BF16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4K => "Q4_K",
            GgmlType::Q5K => "Q5_K",
            GgmlType::Q6K => "Q6_K",
            GgmlType::Q8K => "Q8_K",
        }
    }

    /// Values per block (1 for the float types).
    pub fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => 32,
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K | GgmlType::Q8K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::Bf16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q5_0 => 22,
            GgmlType::Q5_1 => 24,
            GgmlType::Q8_0 => 34,
            GgmlType::Q4K => 144,
            GgmlType::Q5K => 176,
            GgmlType::Q6K => 210,
            GgmlType::Q8K => 292,
        }
    }

    /// Bytes of a row of `n` values, or `None` when `n` is not a whole number of blocks.
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        n.is_multiple_of(self.block_size()).then(|| n / self.block_size() * self.block_bytes())
    }

    /// Whether this is a quantized (block) type.
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sizes_are_llama_cpp_s() {
        for t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
        }
        assert_eq!(GgmlType::from_id(10), None, "Q2_K is not supported");
        // Bytes per weight as llama.cpp states them: Q4_K 4.5 bits, Q6_K 6.5625, Q8_0 8.5.
        assert_eq!(GgmlType::Q4K.block_bytes() * 8, 256 * 9 / 2);
        assert_eq!(GgmlType::Q6K.block_bytes() * 8, 256 * 65 / 10 + 16);
        assert_eq!(GgmlType::Q8_0.row_bytes(64), Some(68));
        assert_eq!(GgmlType::Q4K.row_bytes(5504), None, "the 1.3B model's ffn width is not a multiple of 256");
    }
}
