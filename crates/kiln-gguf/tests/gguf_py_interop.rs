//! Files kiln writes are read by gguf-py's `GGUFReader` (llama.cpp's Python package) with the
//! same keys, types, values, tensor types, dims and bytes. Runs `tests/gguf_reader_check.py`;
//! skipped, loudly, when python3 with `gguf` is missing (CI installs it: `pip install gguf==0.19.0`).
use std::path::Path;
use std::process::Command;

use kiln_gguf::{Array, GgmlType, GgufWriter, Value, ValueType};
use serde_json::{json, Value as Json};

fn python_with_gguf() -> bool {
    Command::new("python3").args(["-c", "import gguf"]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// gguf-py's name for a value type.
fn py_type(t: ValueType) -> &'static str {
    match t {
        ValueType::U8 => "UINT8",
        ValueType::I8 => "INT8",
        ValueType::U16 => "UINT16",
        ValueType::I16 => "INT16",
        ValueType::U32 => "UINT32",
        ValueType::I32 => "INT32",
        ValueType::F32 => "FLOAT32",
        ValueType::Bool => "BOOL",
        ValueType::String => "STRING",
        ValueType::Array => "ARRAY",
        ValueType::U64 => "UINT64",
        ValueType::I64 => "INT64",
        ValueType::F64 => "FLOAT64",
    }
}

/// gguf-py's `types` list: an array adds its first element's types.
fn py_types(v: &Value) -> Vec<&'static str> {
    match v {
        Value::Array(a) => array_types(a),
        v => vec![py_type(v.value_type())],
    }
}

fn array_types(a: &Array) -> Vec<&'static str> {
    let mut t = vec!["ARRAY"];
    match a {
        Array::Array(v) if !v.is_empty() => t.extend(array_types(&v[0])),
        a if !a.is_empty() => t.push(py_type(a.elem_type())),
        _ => {}
    }
    t
}

/// gguf-py's `contents()`: scalars as JSON, arrays flattened.
fn py_contents(v: &Value) -> Json {
    fn flat(a: &Array, out: &mut Vec<Json>) {
        match a {
            Array::U8(v) => out.extend(v.iter().map(|x| json!(x))),
            Array::I8(v) => out.extend(v.iter().map(|x| json!(x))),
            Array::U16(v) => out.extend(v.iter().map(|x| json!(x))),
            Array::I16(v) => out.extend(v.iter().map(|x| json!(x))),
            Array::U32(v) => out.extend(v.iter().map(|x| json!(x))),
            Array::I32(v) => out.extend(v.iter().map(|x| json!(x))),
            Array::F32(v) => out.extend(v.iter().map(|&x| json!(f64::from(x)))),
            Array::Bool(v) => out.extend(v.iter().map(|x| json!(x))),
            Array::String(v) => out.extend(v.iter().map(|x| json!(x))),
            Array::Array(v) => v.iter().for_each(|a| flat(a, out)),
            Array::U64(v) => out.extend(v.iter().map(|x| json!(x))),
            Array::I64(v) => out.extend(v.iter().map(|x| json!(x))),
            Array::F64(v) => out.extend(v.iter().map(|x| json!(x))),
        }
    }
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::F32(x) => json!(f64::from(*x)),
        Value::Bool(x) => json!(x),
        Value::String(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F64(x) => json!(x),
        Value::Array(a) => {
            let mut out = Vec::new();
            flat(a, &mut out);
            Json::Array(out)
        }
    }
}

fn metadata(alignment: Option<u32>) -> Vec<(String, Value)> {
    let mut md: Vec<(String, Value)> = vec![("general.architecture".into(), "llama".into())];
    if let Some(a) = alignment {
        md.push(("general.alignment".into(), Value::U32(a)));
    }
    md.extend([
        ("llama.context_length".into(), Value::U32(16384)),
        ("llama.rope.freq_base".into(), Value::F32(100000.0)),
        ("llama.attention.layer_norm_rms_epsilon".into(), Value::F32(1e-6)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(true)),
        ("tokenizer.ggml.tokens".into(), vec!["<｜begin▁of▁sentence｜>", "Ġthe", "", "\0nul"].into()),
        ("tokenizer.ggml.token_type".into(), vec![3i32, 1, 1, 4].into()),
        ("t.u8".into(), Value::U8(255)),
        ("t.i8".into(), Value::I8(-128)),
        ("t.u16".into(), Value::U16(65535)),
        ("t.i16".into(), Value::I16(-32768)),
        ("t.i32".into(), Value::I32(i32::MIN)),
        ("t.u64".into(), Value::U64(u64::MAX)),
        ("t.i64".into(), Value::I64(i64::MIN)),
        ("t.f64".into(), Value::F64(std::f64::consts::E)),
        ("t.a.u8".into(), vec![0u8, 255].into()),
        ("t.a.u64".into(), vec![u64::MAX, 1].into()),
        ("t.a.f64".into(), vec![0.1f64, -1e300].into()),
        ("t.a.bool".into(), vec![false, true].into()),
        ("t.a.f32".into(), vec![0.1f32, -2.5].into()),
        ("t.a.nested".into(), vec![Array::U32(vec![1, 2]), Array::U32(vec![3])].into()),
        ("t.a.nested2".into(), vec![Array::Array(vec![Array::String(vec!["deep".into()])])].into()),
        ("t.a.empty".into(), Array::empty(ValueType::I32).into()),
    ]);
    md
}

#[test]
fn gguf_py_reads_what_kiln_writes() {
    if !python_with_gguf() {
        eprintln!(
            "SKIPPING gguf_py_reads_what_kiln_writes: python3 with the `gguf` package not found \
             (install it with `python3 -m pip install gguf==0.19.0`; CI does)"
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gguf_reader_check.py");
    let dir = tempfile::tempdir().unwrap();
    for alignment in [None, Some(64)] {
        let md = metadata(alignment);
        let mut w = GgufWriter::new();
        for (k, v) in &md {
            w.add_metadata(k.clone(), v.clone());
        }
        // Every type kiln knows, 2-D and 3-D, and a 1-D norm vector.
        let mut tensors = Vec::new();
        for (i, ty) in GgmlType::ALL.into_iter().enumerate() {
            let dims = if i % 2 == 0 { vec![ty.block_size() * 2, 3] } else { vec![ty.block_size(), 2, 2] };
            let n: usize = dims.iter().product();
            let bytes: Vec<u8> = (0..ty.row_bytes(n).unwrap()).map(|b| (b * 7 + i) as u8).collect();
            tensors.push((format!("blk.{i}.{}", ty.name()), dims, ty, bytes));
        }
        tensors.push(("output_norm.weight".into(), vec![8], GgmlType::F32, (0..32).collect()));
        for (name, dims, ty, bytes) in &tensors {
            w.add_tensor(name.clone(), dims, *ty, bytes.as_slice());
        }
        let path = dir.path().join(format!("kiln-{}.gguf", alignment.unwrap_or(32)));
        w.write(&path).unwrap();
        let kiln = kiln_gguf::GgufFile::open(&path).unwrap();

        let out = Command::new("python3").arg(&script).arg(&path).output().unwrap();
        assert!(out.status.success(), "gguf-py could not read {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        let got: Json = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got["alignment"], alignment.unwrap_or(32));
        assert_eq!(got["data_offset"], kiln.data_offset());

        let fields = got["fields"].as_array().unwrap();
        assert_eq!(fields.len(), md.len());
        for (f, (k, v)) in fields.iter().zip(&md) {
            assert_eq!(f["key"], json!(k));
            assert_eq!(f["types"], json!(py_types(v)), "{k}");
            assert_eq!(f["value"], py_contents(v), "{k}");
        }
        let pt = got["tensors"].as_array().unwrap();
        assert_eq!(pt.len(), tensors.len());
        for (t, (name, dims, ty, bytes)) in pt.iter().zip(&tensors) {
            assert_eq!(t["name"], json!(name));
            assert_eq!(t["type"], json!(ty.name()));
            // Innermost first on both sides; numpy's data shape is the reverse (checked by the script).
            assert_eq!(t["shape"], json!(dims), "{name}");
            assert_eq!(t["n_elements"], json!(dims.iter().product::<usize>()));
            assert_eq!(t["n_bytes"], json!(bytes.len()));
            assert_eq!(t["data_offset"], json!(kiln.tensor_info(name).unwrap().byte_range().unwrap().start));
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(t["hex"], json!(hex), "{name}");
        }
        let f32_norm = pt.last().unwrap();
        assert_eq!(f32_norm["data_shape"], json!([8]));
        let q8 = pt.iter().find(|t| t["type"] == "Q8_0").unwrap();
        assert_eq!(q8["shape"], json!([32, 2, 2]));
        assert_eq!(q8["data_shape"], json!([2, 2, 34]), "numpy: outermost first, the row in bytes");
    }
}
