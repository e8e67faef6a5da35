//! Compressors as anchors for a language model's bits per byte: a model that has learned code
//! must beat zstd at its strongest common level on the same text (the quickstart report's
//! yardstick; zstd -19 gives about 1.9 bits per byte on python3 standard library files one
//! by one, about 1.25 on all of them as one stream, where it can reuse across files).

/// zstd's level for the anchors (`zstd -19`).
pub const ZSTD_LEVEL: i32 = 19;

/// Bits of `bytes` compressed alone with zstd at [`ZSTD_LEVEL`] (frame header included, as a
/// `.zst` file would hold).
pub fn zstd_bits(bytes: &[u8]) -> u64 {
    // Compressing a slice in memory only fails on allocation failure or a bad level.
    let compressed = zstd::bulk::compress(bytes, ZSTD_LEVEL).expect("zstd compresses an in-memory buffer");
    8 * compressed.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetitive_text_compresses_and_round_trips() {
        let text = "def f(x):\n    return x + 1\n".repeat(200);
        let bits = zstd_bits(text.as_bytes());
        assert!(bits < 8 * text.len() as u64 / 20, "{bits} bits for {} bytes", text.len());
        let back = zstd::bulk::decompress(&zstd::bulk::compress(text.as_bytes(), ZSTD_LEVEL).unwrap(), text.len()).unwrap();
        assert_eq!(back, text.as_bytes());
        // Random bytes do not compress: about 8 bits per byte plus the frame.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect();
        assert!(zstd_bits(&noise) >= 8 * 4000, "{}", zstd_bits(&noise));
    }
}
