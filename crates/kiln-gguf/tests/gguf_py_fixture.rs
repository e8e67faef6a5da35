//! Files written by gguf-py (llama.cpp's Python package) read back exactly: every metadata key
//! in order with its type and value, and every tensor's type, dims and bytes, as recorded in
//! `tests/fixtures/gguf/gguf-py-fixtures.json` by `scripts/make_gguf_fixtures.py`.
use std::path::{Path, PathBuf};

use kiln_gguf::{Array, ErrorKind, GgmlType, GgufFile, Value};
use serde_json::Value as Json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf")
}

fn spec() -> Json {
    let text = std::fs::read_to_string(fixtures().join("gguf-py-fixtures.json")).expect("committed fixture JSON");
    serde_json::from_str(&text).unwrap()
}

/// The value a JSON entry describes, typed by gguf-py's type names.
fn expected(entry: &Json) -> Value {
    let v = &entry["value"];
    match entry["type"].as_str().unwrap() {
        "UINT8" => Value::U8(v.as_u64().unwrap() as u8),
        "INT8" => Value::I8(v.as_i64().unwrap() as i8),
        "UINT16" => Value::U16(v.as_u64().unwrap() as u16),
        "INT16" => Value::I16(v.as_i64().unwrap() as i16),
        "UINT32" => Value::U32(v.as_u64().unwrap() as u32),
        "INT32" => Value::I32(v.as_i64().unwrap() as i32),
        "FLOAT32" => Value::F32(v.as_f64().unwrap() as f32),
        "BOOL" => Value::Bool(v.as_bool().unwrap()),
        "STRING" => Value::String(v.as_str().unwrap().to_string()),
        "UINT64" => Value::U64(v.as_u64().unwrap()),
        "INT64" => Value::I64(v.as_i64().unwrap()),
        "FLOAT64" => Value::F64(v.as_f64().unwrap()),
        "ARRAY" => Value::Array(expected_array(entry)),
        t => panic!("unknown type {t}"),
    }
}

fn expected_array(entry: &Json) -> Array {
    let items = entry["value"].as_array().unwrap();
    let all = |f: &dyn Fn(&Json) -> Value| items.iter().map(f).collect::<Vec<_>>();
    let elem = entry["elem"].as_str().unwrap();
    if elem == "ARRAY" {
        return Array::Array(items.iter().map(expected_array).collect());
    }
    // Reuse the scalar conversion for each element, then unwrap into the typed vector.
    let vals = all(&|x| expected(&serde_json::json!({"type": elem, "value": x})));
    macro_rules! typed {
        ($variant:ident) => {
            Array::$variant(
                vals.into_iter()
                    .map(|v| match v {
                        Value::$variant(x) => x,
                        _ => unreachable!(),
                    })
                    .collect(),
            )
        };
    }
    match elem {
        "UINT8" => typed!(U8),
        "INT8" => typed!(I8),
        "UINT16" => typed!(U16),
        "INT16" => typed!(I16),
        "UINT32" => typed!(U32),
        "INT32" => typed!(I32),
        "FLOAT32" => typed!(F32),
        "BOOL" => typed!(Bool),
        "STRING" => typed!(String),
        "UINT64" => typed!(U64),
        "INT64" => typed!(I64),
        "FLOAT64" => typed!(F64),
        t => panic!("unknown element type {t}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn files_written_by_gguf_py_read_back_exactly() {
    let spec = spec();
    let files = spec["files"].as_object().unwrap();
    assert_eq!(files.len(), 2);
    for (name, want) in files {
        let f = GgufFile::open(fixtures().join(name)).unwrap();
        assert_eq!(u64::from(f.version()), want["version"].as_u64().unwrap(), "{name}");
        assert_eq!(f.alignment(), want["alignment"].as_u64().unwrap(), "{name}");
        assert_eq!(f.data_offset() % f.alignment(), 0);

        let want_md = want["metadata"].as_array().unwrap();
        let got_keys: Vec<&str> = f.metadata().map(|(k, _)| k).collect();
        let want_keys: Vec<&str> = want_md.iter().map(|e| e["key"].as_str().unwrap()).collect();
        assert_eq!(got_keys, want_keys, "{name}: keys in file order");
        for e in want_md {
            let key = e["key"].as_str().unwrap();
            assert_eq!(f.get(key), Some(&expected(e)), "{name}: key {key}");
        }

        let want_t = want["tensors"].as_array().unwrap();
        assert_eq!(f.tensor_infos().len(), want_t.len());
        for (info, t) in f.tensor_infos().iter().zip(want_t) {
            let tname = t["name"].as_str().unwrap();
            assert_eq!(info.name(), tname);
            let dims: Vec<usize> = serde_json::from_value(t["dims"].clone()).unwrap();
            assert_eq!(info.dims(), dims, "{tname}: dims innermost first");
            assert_eq!(u64::from(info.type_id()), t["type_id"].as_u64().unwrap());
            assert_eq!(info.type_name(), t["type"].as_str());
            assert_eq!(info.offset() % f.alignment(), 0);
            match GgmlType::from_id(info.type_id()) {
                Some(ty) => {
                    let view = f.tensor(tname).unwrap();
                    assert_eq!(view.ggml_type, ty);
                    assert_eq!(view.dims, dims.as_slice());
                    assert_eq!(view.bytes.len() as u64, t["n_bytes"].as_u64().unwrap());
                    assert_eq!(hex(view.bytes), t["hex"].as_str().unwrap(), "{tname}: bytes");
                    assert_eq!(view.bytes.len(), ty.row_bytes(view.row_len()).unwrap() * view.n_rows());
                }
                None => {
                    // Q2_K: the metadata and the other tensors read; this one is refused by name.
                    let e = f.tensor(tname).unwrap_err();
                    assert!(matches!(e.kind, ErrorKind::UnsupportedType { type_id: 10, .. }), "{e}");
                    let msg = e.to_string();
                    assert!(msg.contains(name) && msg.contains(tname) && msg.contains("Q2_K") && msg.contains("llama-quantize"), "{msg}");
                    // Its bytes were still checked to lie inside the file.
                    assert_eq!(info.byte_range().unwrap().len() as u64, t["n_bytes"].as_u64().unwrap());
                }
            }
        }
    }
}

#[test]
fn typed_getters_convert_losslessly_and_name_key_and_type() {
    let f = GgufFile::open(fixtures().join("gguf-py-fixture.gguf")).unwrap();
    assert_eq!(f.get_u32("test.u8").unwrap(), 200);
    assert_eq!(f.get_u64("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(f.get_i64("test.i64").unwrap(), -(1i64 << 62) - 3);
    assert_eq!(f.get_f32("test.f32").unwrap(), 1.5);
    assert_eq!(f.get_f64("test.f64").unwrap(), 0.1);
    assert!(f.get_bool("test.bool").unwrap());
    assert_eq!(f.get_str("test.string").unwrap(), "héllo, wörld ✓");
    assert_eq!(f.get_str_array("test.arr.str").unwrap(), ["a", "bc", "✓", ""]);
    assert_eq!(f.get_int_array("test.arr.i32").unwrap(), [1, -2, 3]);
    assert_eq!(f.get_f32_array("test.arr.f32").unwrap(), [0.5, -0.25, 3.0]);
    assert_eq!(f.get_array("test.arr.nested").unwrap().as_arrays().unwrap().len(), 2);

    let msg = |e: kiln_gguf::GgufError| e.to_string();
    let e = msg(f.get_u32("test.i8").unwrap_err());
    assert!(e.contains("gguf-py-fixture.gguf") && e.contains("`test.i8`") && e.contains("expected u32") && e.contains("-100"), "{e}");
    let e = msg(f.get_u32("test.u64").unwrap_err());
    assert!(e.contains("`test.u64`") && e.contains("out of range"), "{e}");
    let e = msg(f.get_str("test.u8").unwrap_err());
    assert!(e.contains("`test.u8` is u8, expected string"), "{e}");
    let e = msg(f.get_str_array("test.arr.i32").unwrap_err());
    assert!(e.contains("is array of 3 i32, expected array of string"), "{e}");
    let e = msg(f.get_int_array("test.arr.u64").unwrap_err());
    assert!(e.contains("18446744073709551615") && e.contains("out of range"), "{e}");
    let e = msg(f.get_f32("no.such.key").unwrap_err());
    assert!(e.contains("`no.such.key` is missing (expected f32)"), "{e}");
    let e = msg(f.tensor("nope").unwrap_err());
    assert!(e.contains("no tensor named `nope`"), "{e}");
}
