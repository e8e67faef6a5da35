//! Damaged, hostile and unsupported files: each is refused with an error that names the file,
//! says what is wrong and where, and (where there is one) how to fix it; nothing panics and
//! nothing is allocated beyond what the file's size justifies.
use kiln_gguf::{ErrorKind, GgmlType, GgufFile, GgufWriter, Value};

/// Header with the given counts and nothing after it.
fn header(version: u32, tensors: u64, kvs: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(version.to_le_bytes());
    b.extend(tensors.to_le_bytes());
    b.extend(kvs.to_le_bytes());
    b
}

fn string(b: &mut Vec<u8>, s: &str) {
    b.extend((s.len() as u64).to_le_bytes());
    b.extend(s.as_bytes());
}

/// One tensor `w` with `dims` of type `ty` and no metadata, written by kiln: the tensor info
/// starts at byte 24; for one dimension its type id is at 45 and its offset at 49.
fn one_tensor(dims: &[usize], ty: GgmlType) -> Vec<u8> {
    let n: usize = dims.iter().product();
    let bytes = vec![7u8; ty.row_bytes(n).unwrap()];
    let mut w = GgufWriter::new();
    w.add_tensor("w", dims, ty, bytes);
    w.to_bytes("mem").unwrap()
}

fn err(bytes: Vec<u8>) -> (ErrorKind, String) {
    let e = GgufFile::parse(bytes, "some/dir/model.gguf").unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("some/dir/model.gguf: "), "{msg}");
    (e.kind, msg)
}

#[test]
fn not_gguf_empty_and_short_files() {
    let (k, m) = err(b"PK\x03\x04 a zip file".to_vec());
    assert!(matches!(k, ErrorKind::NotGguf { .. }) && m.contains("not a GGUF file") && m.contains("\"PK\\x03\\x04\""), "{m}");
    let (_, m) = err(Vec::new());
    assert!(m.contains("not a GGUF file (it starts with only 0 bytes"), "{m}");
    let (_, m) = err(b"GGUF\x03\x00".to_vec());
    assert!(m.contains("truncated at byte 4") && m.contains("the version"), "{m}");
    // The same through open(): an empty file is not mapped.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.gguf");
    std::fs::write(&p, b"").unwrap();
    let m = GgufFile::open(&p).unwrap_err().to_string();
    assert!(m.contains("empty.gguf") && m.contains("not a GGUF file"), "{m}");
    let m = GgufFile::open(dir.path().join("missing.gguf")).unwrap_err().to_string();
    assert!(m.contains("missing.gguf: cannot open"), "{m}");
}

#[test]
fn versions_other_than_2_and_3_are_refused_clearly() {
    let (k, m) = err(header(1, 0, 0));
    assert!(matches!(k, ErrorKind::UnsupportedVersion { version: 1, .. }), "{m}");
    assert!(m.contains("GGUF version 1 is not supported") && m.contains("versions 2 and 3") && m.contains("convert"), "{m}");
    let (_, m) = err(header(3u32.swap_bytes(), 0, 0));
    assert!(m.contains("big-endian"), "{m}");
    let (_, m) = err(header(4, 0, 0));
    assert!(m.contains("GGUF version 4 is not supported"), "{m}");
    // Version 2 has version 3's layout (only v1 differs), so it reads.
    assert_eq!(GgufFile::parse(header(2, 0, 0), "v2.gguf").unwrap().version(), 2);
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    let (k, m) = err(header(3, 0, 1 << 60));
    assert!(matches!(k, ErrorKind::CountTooLarge { count, .. } if count == 1 << 60), "{m}");
    assert!(m.contains("metadata count at byte 16 claims 1152921504606846976 entries, which cannot fit"), "{m}");
    let (_, m) = err(header(3, u64::MAX, 0));
    assert!(m.contains("tensor count at byte 8") && m.contains("cannot fit"), "{m}");
    // A string length of 2^63: truncated, not allocated.
    let mut b = header(3, 0, 1);
    b.extend((1u64 << 63).to_le_bytes());
    b.extend([0u8; 8]);
    let (_, m) = err(b);
    assert!(m.contains("truncated at byte 32") && m.contains("9223372036854775808 bytes"), "{m}");
    // Arrays: of strings (each at least 8 bytes) and of nested arrays (12).
    for (elem, min) in [(8u32, 8u64), (9, 12), (10, 8), (0, 1)] {
        let mut b = header(3, 0, 1);
        string(&mut b, "k");
        b.extend(9u32.to_le_bytes());
        b.extend(elem.to_le_bytes());
        b.extend(1000u64.to_le_bytes());
        b.extend(vec![0u8; 999]);
        let (_, m) = err(b);
        assert!(m.contains("metadata key `k`") && m.contains(&format!("at most {})", 999 / min)), "{m}");
    }
}

#[test]
fn damaged_values_name_the_key_and_offset() {
    let kv = |ty: u32, value: &[u8]| {
        let mut b = header(3, 0, 1);
        string(&mut b, "general.name");
        b.extend(ty.to_le_bytes());
        b.extend(value);
        b
    };
    let (_, m) = err(kv(13, &[]));
    assert!(m.contains("metadata key `general.name`: unknown value type 13 (GGUF has 0..=12) at byte 44"), "{m}");
    let mut bad_utf8 = 2u64.to_le_bytes().to_vec();
    bad_utf8.extend([0xff, 0xfe]);
    let (_, m) = err(kv(8, &bad_utf8));
    assert!(m.contains("`general.name`") && m.contains("not UTF-8"), "{m}");
    let (_, m) = err(kv(4, &[1, 2]));
    assert!(m.contains("`general.name`: truncated at byte 48: a u32 value needs 4 bytes but the file has only 2 left"), "{m}");
    // 17 levels of nested arrays: refused (the reader is recursive).
    let mut nested = Vec::new();
    for _ in 0..17 {
        nested.extend(9u32.to_le_bytes());
        nested.extend(1u64.to_le_bytes());
    }
    nested.extend(4u32.to_le_bytes());
    nested.extend(0u64.to_le_bytes());
    let (_, m) = err(kv(9, &nested));
    assert!(m.contains("nested more than 16 deep"), "{m}");
    // A duplicate key.
    let mut b = header(3, 0, 2);
    for _ in 0..2 {
        string(&mut b, "dup");
        b.extend(7u32.to_le_bytes());
        b.push(1);
    }
    let (_, m) = err(b);
    assert!(m.contains("`dup` appears twice (second at byte 40)"), "{m}");
}

#[test]
fn alignment_must_be_a_u32_power_of_two() {
    for (v, found) in [(Value::U32(0), "0"), (Value::U32(48), "48"), (Value::U64(64), "a u64"), (Value::String("32".into()), "a string")] {
        let mut b = header(3, 0, 1);
        string(&mut b, "general.alignment");
        b.extend(v.value_type().id().to_le_bytes());
        match &v {
            Value::U32(x) => b.extend(x.to_le_bytes()),
            Value::U64(x) => b.extend(x.to_le_bytes()),
            Value::String(s) => string(&mut b, s),
            _ => unreachable!(),
        }
        let (k, m) = err(b);
        assert!(matches!(k, ErrorKind::BadAlignment { .. }), "{m}");
        assert!(m.contains(&format!("`general.alignment` is {found}; it must be a u32 power of two")), "{m}");
    }
}

#[test]
fn truncated_tensor_data_names_the_tensor_and_the_range() {
    let good = one_tensor(&[64, 2], GgmlType::Q8_0);
    // The tensor info ends at byte 65: data at 96, 136 bytes, padded to 32.
    assert_eq!(good.len(), 96 + 136 + 24);
    let f = GgufFile::parse(good.clone(), "ok.gguf").unwrap();
    assert_eq!(f.tensor("w").unwrap().bytes.len(), 136);
    let (k, m) = err(good[..150].to_vec());
    assert!(matches!(k, ErrorKind::TensorOutOfBounds { start: 96, end: 232, file_len: 150, .. }), "{m}");
    assert!(m.contains("tensor `w` data [96 .. 232) runs past the end of the file (150 bytes): the file is truncated"), "{m}");
    // Extreme offsets: no overflow, the same error.
    for off in [u64::MAX - 31, 1 << 63, 4096] {
        let mut b = one_tensor(&[32], GgmlType::F32);
        b[49..57].copy_from_slice(&off.to_le_bytes());
        let (k, m) = err(b);
        assert!(matches!(k, ErrorKind::TensorOutOfBounds { .. }), "{m}");
        assert!(m.contains(&format!("data [{} .. {})", u128::from(off) + 64, u128::from(off) + 64 + 128)), "{m}");
    }
    // A truncated tensor table.
    let (_, m) = err(good[..50].to_vec());
    assert!(m.contains("tensor #0 `w` (info at byte 24)") && m.contains("truncated"), "{m}");
}

#[test]
fn bad_tensor_infos_are_refused_by_name() {
    let base = one_tensor(&[32], GgmlType::F32);
    let mut misaligned = base.clone();
    misaligned[49] = 8;
    let (_, m) = err(misaligned);
    assert!(m.contains("tensor #0 `w`") && m.contains("data offset 8 is not a multiple of the file's alignment 32"), "{m}");
    let mut q8 = one_tensor(&[32, 3], GgmlType::Q8_0);
    // Row length 32 -> 16: not a whole Q8_0 block.
    q8[37] = 16;
    let (_, m) = err(q8);
    assert!(m.contains("row length 16 is not a multiple of the Q8_0 block size 32"), "{m}");
    // Five dimensions, and dimensions whose product overflows.
    let mut b = header(3, 1, 0);
    string(&mut b, "t");
    b.extend(5u32.to_le_bytes());
    b.extend(vec![0u8; 64]);
    let (_, m) = err(b);
    assert!(m.contains("5 dimensions; GGUF tensors have at most 4"), "{m}");
    for dims in [[1u64 << 32, 1 << 32], [0, u64::MAX], [0, 1 << 63]] {
        let mut b = header(3, 1, 0);
        string(&mut b, "t");
        b.extend(2u32.to_le_bytes());
        dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        let (_, m) = err(b);
        assert!(m.contains("makes the element count overflow"), "{m}");
    }
    // The same name twice.
    let mut b = header(3, 2, 0);
    for _ in 0..2 {
        string(&mut b, "t");
        b.extend(1u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
    }
    let (_, m) = err(b);
    assert!(m.contains("tensor `t` appears twice"), "{m}");
}

#[test]
fn unsupported_types_fail_when_asked_for_with_the_fix() {
    // 256 f32 values take 1024 bytes; as Q2_K (id 10) they take 84, which lie in the file.
    let mut b = one_tensor(&[256], GgmlType::F32);
    b[45..49].copy_from_slice(&10u32.to_le_bytes());
    let f = GgufFile::parse(b.clone(), "q2k.gguf").unwrap();
    assert_eq!(f.tensor_infos()[0].type_name(), Some("Q2_K"));
    assert_eq!(f.tensor_infos()[0].byte_range(), Some(64..148));
    let e = f.tensor("w").unwrap_err();
    let m = e.to_string();
    assert!(
        m.starts_with("q2k.gguf: tensor `w` has type id 10 (Q2_K), which kiln does not support; requantize with llama-quantize to Q4_K_M"),
        "{m}"
    );
    assert!(m.contains("Q8_0") && m.contains("kiln reads F32, F16, BF16"), "{m}");
    assert_eq!(f.tensors().filter(Result::is_err).count(), 1);
    // An id GGML never had: no layout, so the data cannot be checked; refused when asked for.
    b[45..49].copy_from_slice(&1000u32.to_le_bytes());
    let f = GgufFile::parse(b, "odd.gguf").unwrap();
    assert_eq!(f.tensor_infos()[0].byte_range(), None);
    let m = f.tensor("w").unwrap_err().to_string();
    assert!(m.contains("type id 1000 (unknown to GGML)"), "{m}");
}

#[test]
fn zero_dimensional_and_empty_tensors() {
    // n_dims = 0 is one value (GGML's convention); a zero dimension is no values.
    let mut w = GgufWriter::new();
    w.add_tensor("scalar", &[], GgmlType::F32, 2.5f32.to_le_bytes().to_vec());
    w.add_tensor("empty", &[0, 5], GgmlType::F16, Vec::new());
    let f = GgufFile::parse(w.to_bytes("mem").unwrap(), "z.gguf").unwrap();
    let s = f.tensor("scalar").unwrap();
    assert_eq!((s.n_elements(), s.row_len(), s.n_rows(), s.bytes.len()), (1, 1, 1, 4));
    let e = f.tensor("empty").unwrap();
    assert_eq!((e.n_elements(), e.row_len(), e.n_rows(), e.bytes.len()), (0, 0, 5, 0));
}
