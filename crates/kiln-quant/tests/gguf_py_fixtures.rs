//! Bit-for-bit agreement with gguf-py (`gguf.quants`, version in tests/fixtures/quant/manifest.json)
//! on the fixtures written by scripts/make_quant_fixtures.py: dequantization of random and
//! special blocks for every type, quantization of f32 rows for the types gguf-py quantizes.

use std::path::PathBuf;

use kiln_quant::{dequantize_row, quantize_row, GgmlType};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/quant").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run scripts/make_quant_fixtures.py)", path.display()))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Same bits, or both NaN: NaN payloads depend on operand order inside the multiply, which
/// neither numpy nor LLVM promise (x86 keeps the first operand's payload).
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn dequantize_equals_gguf_py_for_every_type() {
    for ty in GgmlType::ALL.into_iter().filter(|t| *t != GgmlType::Q8K) {
        let blocks = fixture(&format!("{}.blocks.bin", ty.name()));
        let expected = f32s(&fixture(&format!("{}.deq.f32", ty.name())));
        let mut out = vec![0f32; expected.len()];
        dequantize_row(ty, &blocks, &mut out).unwrap();
        let mut bad = 0;
        for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
            if !same(*a, *b) {
                if bad < 5 {
                    eprintln!(
                        "{ty} value {i} (block {}): kiln {a:e} ({:#010x}) gguf-py {b:e} ({:#010x})",
                        i / ty.block_size(),
                        a.to_bits(),
                        b.to_bits()
                    );
                }
                bad += 1;
            }
        }
        assert_eq!(bad, 0, "{ty}: {bad} of {} values differ", expected.len());
        // Float types: NaN payloads too (no arithmetic involved).
        if !ty.is_quantized() {
            assert!(out.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits()), "{ty}: NaN payloads differ");
        }
    }
}

#[test]
fn quantize_equals_gguf_py() {
    let src = f32s(&fixture("quantize.src.f32"));
    for ty in [GgmlType::F16, GgmlType::Bf16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0] {
        let expected = fixture(&format!("{}.quant.bin", ty.name()));
        let row_len = 256;
        let row_bytes = ty.row_bytes(row_len).unwrap();
        assert_eq!(expected.len(), src.len() / row_len * row_bytes);
        for (r, (x, want)) in src.chunks_exact(row_len).zip(expected.chunks_exact(row_bytes)).enumerate() {
            let mut got = vec![0u8; row_bytes];
            quantize_row(ty, x, &mut got).unwrap();
            if got != *want {
                let bb = ty.block_bytes();
                let blk = got.chunks(bb).zip(want.chunks(bb)).position(|(a, b)| a != b).unwrap();
                panic!(
                    "{ty} row {r} block {blk}: kiln {:02x?}\n gguf-py {:02x?}\n input {:?}",
                    &got[blk * bb..(blk + 1) * bb],
                    &want[blk * bb..(blk + 1) * bb],
                    &x[blk * ty.block_size()..(blk + 1) * ty.block_size()]
                );
            }
        }
    }
}

#[test]
fn shape_errors_are_reported() {
    let mut out = vec![0f32; 33];
    let err = dequantize_row(GgmlType::Q8_0, &[0u8; 34], &mut out).unwrap_err();
    assert_eq!(err.to_string(), "a row of 33 values is not a whole number of Q8_0 blocks (32 values each)");
    let mut out = vec![0f32; 32];
    let err = dequantize_row(GgmlType::Q8_0, &[0u8; 35], &mut out).unwrap_err();
    assert_eq!(err.to_string(), "Q8_0 data for 32 values needs 34 bytes, got 35");
    let err = dequantize_row(GgmlType::Q8K, &[0u8; 292], &mut vec![0f32; 256]).unwrap_err();
    assert_eq!(err.to_string(), "dequantize is not supported for Q8_K");
    let err = quantize_row(GgmlType::Q8K, &[0f32; 256], &mut [0u8; 292]).unwrap_err();
    assert_eq!(err.to_string(), "quantize is not supported for Q8_K");
}
