//! Unit tests on hand-built byte strings. The first two moved here from kiln-tokenizer's former
//! GGUF metadata parser (`kiln_tokenizer::gguf`), which this crate replaces.

use crate::GgufFile;

fn gguf(kvs: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend((kvs.len() as u64).to_le_bytes());
    for (k, ty, v) in kvs {
        b.extend((k.len() as u64).to_le_bytes());
        b.extend(k.as_bytes());
        b.extend(ty.to_le_bytes());
        b.extend(v);
    }
    b
}

fn s(text: &str) -> Vec<u8> {
    let mut v = (text.len() as u64).to_le_bytes().to_vec();
    v.extend(text.as_bytes());
    v
}

fn parse_metadata(bytes: &[u8], path: &str) -> crate::Result<GgufFile> {
    GgufFile::parse(bytes.to_vec(), path)
}

#[test]
fn reads_scalars_strings_and_arrays() {
    let mut arr = 8u32.to_le_bytes().to_vec();
    arr.extend(2u64.to_le_bytes());
    arr.extend(s("a"));
    arr.extend(s("bc"));
    let bytes = gguf(&[("name", 8, s("x")), ("n", 5, (-7i32).to_le_bytes().to_vec()), ("flag", 7, vec![1]), ("list", 9, arr)]);
    let m = parse_metadata(&bytes, "t.gguf").unwrap();
    assert_eq!(m.get("name").unwrap().as_str(), Some("x"));
    assert_eq!(m.get("n").unwrap().as_int(), Some(-7));
    assert_eq!(m.get("flag").unwrap().as_bool(), Some(true));
    let list: Vec<&str> = m.get("list").unwrap().as_array().unwrap().as_strings().unwrap().iter().map(String::as_str).collect();
    assert_eq!(list, ["a", "bc"]);
}

#[test]
fn damaged_files_name_the_file_and_problem() {
    let e = parse_metadata(b"GGML....", "bad.gguf").unwrap_err().to_string();
    assert!(e.contains("bad.gguf") && e.contains("magic"), "{e}");
    let good = gguf(&[("name", 8, s("hello"))]);
    let e = parse_metadata(&good[..good.len() - 2], "cut.gguf").unwrap_err().to_string();
    assert!(e.contains("cut.gguf") && e.contains("truncated") && e.contains("`name`"), "{e}");
    // A huge array length is refused before allocating.
    let mut arr = 4u32.to_le_bytes().to_vec();
    arr.extend(u64::MAX.to_le_bytes());
    let e = parse_metadata(&gguf(&[("big", 9, arr)]), "big.gguf").unwrap_err().to_string();
    assert!(e.contains("cannot fit"), "{e}");
    let mut v4 = good.clone();
    v4[4] = 9;
    let e = parse_metadata(&v4, "v9.gguf").unwrap_err().to_string();
    assert!(e.contains("version 9"), "{e}");
}

#[test]
fn a_parsed_file_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<GgufFile>();
    shared::<crate::TensorView<'static>>();
}
