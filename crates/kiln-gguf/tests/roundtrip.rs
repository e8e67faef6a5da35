//! What kiln's writer writes, kiln's reader reads back identically (metadata in order with exact
//! types, tensor dims and bytes), with llama.cpp's layout (aligned data section and offsets,
//! every tensor padded); and the writer is atomic: on any error the target is untouched and no
//! temporary file is left behind.
use std::io::Write;

use kiln_gguf::{Array, ErrorKind, GgmlType, GgufFile, GgufWriter, Value, ValueType};

/// One value of every type, and arrays of every element type (empty ones too, and nested).
fn all_values() -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = vec![
        ("general.architecture".into(), "llama".into()),
        ("u8".into(), Value::U8(255)),
        ("i8".into(), Value::I8(-128)),
        ("u16".into(), Value::U16(65535)),
        ("i16".into(), Value::I16(-32768)),
        ("u32".into(), Value::U32(u32::MAX)),
        ("i32".into(), Value::I32(i32::MIN)),
        ("f32".into(), Value::F32(-1.25e-7)),
        ("bool.true".into(), Value::Bool(true)),
        ("bool.false".into(), Value::Bool(false)),
        ("string".into(), "tab\t, newline\n, NUL\0, ünïcødé ✓".into()),
        ("string.empty".into(), "".into()),
        ("u64".into(), Value::U64(u64::MAX)),
        ("i64".into(), Value::I64(i64::MIN)),
        ("f64".into(), Value::F64(std::f64::consts::PI)),
        ("a.u8".into(), vec![0u8, 1, 255].into()),
        ("a.i8".into(), vec![-1i8, 127].into()),
        ("a.u16".into(), vec![1u16, 65535].into()),
        ("a.i16".into(), vec![-2i16, 3].into()),
        ("a.u32".into(), vec![7u32; 100].into()),
        ("a.i32".into(), vec![1i32, -2, 3].into()),
        ("a.f32".into(), vec![0.5f32, f32::INFINITY, -0.0].into()),
        ("a.bool".into(), vec![true, false].into()),
        ("a.string".into(), vec!["<｜begin▁of▁sentence｜>", "Ġthe", ""].into()),
        ("a.u64".into(), vec![u64::MAX, 0].into()),
        ("a.i64".into(), vec![i64::MIN, i64::MAX].into()),
        ("a.f64".into(), vec![1e-300f64, -2.5].into()),
        (
            "a.nested".into(),
            vec![Array::U32(vec![1, 2]), Array::String(vec!["x".into()]), Array::Array(vec![Array::Bool(vec![true])])].into(),
        ),
    ];
    for t in [ValueType::U8, ValueType::I32, ValueType::String, ValueType::Array, ValueType::F64] {
        v.push((format!("empty.{t}"), Array::empty(t).into()));
    }
    v
}

/// Deterministic bytes of the right length for `n` values of `ty`.
fn data(ty: GgmlType, n: usize, seed: u8) -> Vec<u8> {
    (0..ty.row_bytes(n).unwrap()).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn tensors() -> Vec<(String, Vec<usize>, GgmlType, Vec<u8>)> {
    GgmlType::ALL
        .iter()
        .enumerate()
        .map(|(i, &ty)| {
            let dims = vec![ty.block_size() * 2, 3, 1 + i % 2];
            let n = dims.iter().product();
            (format!("blk.{i}.{}.weight", ty.name().to_lowercase()), dims, ty, data(ty, n, i as u8))
        })
        .collect()
}

fn check_layout(f: &GgufFile, len: u64) {
    let a = f.alignment();
    assert_eq!(f.data_offset() % a, 0);
    let mut expect = 0;
    for t in f.tensor_infos() {
        assert_eq!(t.offset(), expect, "{}: tensors packed in order, each padded", t.name());
        let n = t.byte_range().unwrap().len() as u64;
        expect += n.div_ceil(a) * a;
    }
    assert_eq!(f.data_offset() + expect, len, "the last tensor is padded too");
}

#[test]
fn every_value_type_and_every_ggml_type_round_trip() {
    for alignment in [None, Some(64u32), Some(1)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.gguf");
        let mut w = GgufWriter::new();
        let mut md = all_values();
        if let Some(a) = alignment {
            md.insert(1, ("general.alignment".into(), Value::U32(a)));
        }
        for (k, v) in &md {
            w.add_metadata(k.clone(), v.clone());
        }
        let ts = tensors();
        for (name, dims, ty, bytes) in &ts {
            w.add_tensor(name.clone(), dims, *ty, bytes.as_slice());
        }
        w.write(&path).unwrap();
        let written = std::fs::read(&path).unwrap();
        assert_eq!(w.to_bytes("mem").unwrap(), written, "to_bytes is the file's content");

        let f = GgufFile::open(&path).unwrap();
        assert_eq!(f.version(), 3);
        assert_eq!(f.alignment(), u64::from(alignment.unwrap_or(32)));
        let got: Vec<(String, Value)> = f.metadata().map(|(k, v)| (k.to_string(), v.clone())).collect();
        assert_eq!(got, md);
        assert_eq!(f.tensor_infos().len(), ts.len());
        for (t, (name, dims, ty, bytes)) in f.tensors().zip(&ts) {
            let t = t.unwrap();
            assert_eq!((t.name, t.ggml_type, t.dims, t.bytes), (name.as_str(), *ty, dims.as_slice(), bytes.as_slice()));
        }
        check_layout(&f, written.len() as u64);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["all.gguf"], "no temporary file left");
    }
}

#[test]
fn streamed_tensors_are_written_by_the_callback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streamed.gguf");
    let mut w = GgufWriter::new();
    let eager = data(GgmlType::F16, 64, 1);
    w.add_metadata("general.architecture", "llama");
    w.declare_tensor("a", &[256, 4], GgmlType::Q4K);
    w.add_tensor("b", &[64], GgmlType::F16, eager.as_slice());
    w.declare_tensor("c", &[32, 2], GgmlType::Q8_0);
    let mut calls = Vec::new();
    w.write_with(&path, |name, out: &mut dyn Write| {
        calls.push(name.to_string());
        let (ty, n) = if name == "a" { (GgmlType::Q4K, 1024) } else { (GgmlType::Q8_0, 64) };
        // Row by row, as a quantizer would.
        let all = data(ty, n, 9);
        all.chunks(all.len() / 2).try_for_each(|row| out.write_all(row))
    })
    .unwrap();
    assert_eq!(calls, ["a", "c"]);
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.tensor("a").unwrap().bytes, data(GgmlType::Q4K, 1024, 9));
    assert_eq!(f.tensor("b").unwrap().bytes, eager);
    assert_eq!(f.tensor("c").unwrap().bytes, data(GgmlType::Q8_0, 64, 9));
    // write() cannot fill declared tensors.
    let m = w.write(dir.path().join("x.gguf")).unwrap_err().to_string();
    assert!(m.contains("x.gguf") && m.contains("tensor `a` was declared without data"), "{m}");
}

#[test]
fn failed_writes_leave_the_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, b"the previous file").unwrap();
    let files = || {
        let mut v: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    };
    // The callback writes too little, fails, or too much: each after part of the file is out.
    for mode in 0..3 {
        let mut w = GgufWriter::new();
        w.add_tensor("first", &[1 << 16], GgmlType::F32, vec![0u8; 1 << 18]);
        w.declare_tensor("second", &[32], GgmlType::F32);
        let e = w
            .write_with(&path, |_, out: &mut dyn Write| match mode {
                0 => out.write_all(&[0; 100]),
                1 => Err(std::io::Error::other("quantizer failed")),
                _ => out.write_all(&[0; 200]),
            })
            .unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with(&path.display().to_string()), "{m}");
        match mode {
            1 => assert!(m.contains("quantizer failed"), "{m}"),
            _ => assert!(m.contains("tensor `second`: the callback wrote") && m.contains("the tensor takes 128"), "{m}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"the previous file");
        assert_eq!(files(), ["model.gguf"]);
    }
}

#[test]
fn the_writer_refuses_what_it_could_not_write_correctly() {
    let dir = tempfile::tempdir().unwrap();
    type Build = Box<dyn Fn(&mut GgufWriter)>;
    let cases: Vec<(Build, &str)> = vec![
        (
            Box::new(|w| {
                w.add_metadata("k", 1u8).add_metadata("k", 2u8);
            }),
            "metadata key `k` was added twice",
        ),
        (
            Box::new(|w| {
                w.add_metadata("general.alignment", 48u32);
            }),
            "`general.alignment` is 48",
        ),
        (
            Box::new(|w| {
                w.add_metadata("general.alignment", 32u64);
            }),
            "`general.alignment` is a u64",
        ),
        (
            Box::new(|w| {
                w.add_tensor("t", &[32], GgmlType::F32, vec![0; 127]);
            }),
            "tensor `t`: 127 bytes of data for [32] F32 values, which take 128",
        ),
        (
            Box::new(|w| {
                w.add_tensor("t", &[16], GgmlType::Q8_0, vec![0; 17]);
            }),
            "row length 16 is not a multiple of the Q8_0 block size 32",
        ),
        (
            Box::new(|w| {
                w.add_tensor("t", &[1, 1, 1, 1, 1], GgmlType::F32, vec![0; 4]);
            }),
            "5 dimensions",
        ),
        (
            Box::new(|w| {
                w.add_tensor("t", &[1 << 40, 1 << 40], GgmlType::F32, vec![]);
            }),
            "overflow the element count",
        ),
        (
            Box::new(|w| {
                w.add_tensor("x".repeat(64), &[1], GgmlType::F32, vec![0; 4]);
            }),
            "the name is 64 bytes; llama.cpp reads names of at most 63",
        ),
        (
            Box::new(|w| {
                w.add_tensor("t", &[1], GgmlType::F32, vec![0; 4]).add_tensor("t", &[1], GgmlType::F32, vec![0; 4]);
            }),
            "tensor `t` appears twice",
        ),
        (
            Box::new(|w| {
                let deep = (0..16).fold(Array::U8(vec![1]), |a, _| Array::Array(vec![a]));
                w.add_metadata("deep", deep);
            }),
            "metadata key `deep`: arrays nested more than 16 deep",
        ),
    ];
    for (build, want) in cases {
        let mut w = GgufWriter::new();
        build(&mut w);
        let path = dir.path().join("refused.gguf");
        let m = w.write(&path).unwrap_err().to_string();
        assert!(m.starts_with(&path.display().to_string()) && m.contains(want), "{m}\nwanted: {want}");
        assert!(!path.exists());
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left behind");
    // 16 levels is the most the reader takes, and the writer writes it.
    let deepest = (0..15).fold(Array::U8(vec![1]), |a, _| Array::Array(vec![a]));
    let mut w = GgufWriter::new();
    w.add_metadata("deep", deepest.clone());
    let f = GgufFile::parse(w.to_bytes("mem").unwrap(), "deep.gguf").unwrap();
    assert_eq!(f.get_array("deep").unwrap(), &deepest);
    let mut w = GgufWriter::new();
    w.add_metadata("deep", (0..15).fold(Array::empty(ValueType::Array), |a, _| Array::Array(vec![a])));
    let m = w.to_bytes("mem").unwrap_err().to_string();
    assert!(m.contains("nested more than 16 deep"), "{m}");
    assert!(matches!(w.to_bytes("mem").unwrap_err().kind, ErrorKind::InvalidInput { .. }));
}

#[test]
fn released_pages_read_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.gguf");
    let big = data(GgmlType::F32, 200_000, 9);
    let small = data(GgmlType::F32, 8, 1);
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama");
    w.add_tensor("small", &[8], GgmlType::F32, small.as_slice());
    w.add_tensor("big", &[200_000], GgmlType::F32, big.as_slice());
    w.write(&path).unwrap();
    let f = GgufFile::open(&path).unwrap();
    let view = f.tensor("big").unwrap();
    let start = view.bytes.as_ptr() as usize - f.bytes().as_ptr() as usize;
    assert_eq!(view.bytes, big.as_slice());
    let resident_before = mapped_rss_kb(&path);
    // 800 KB: the whole 64 KiB units inside it are released; a range too small for one is not.
    let released = f.release(start, big.len());
    assert!(released >= big.len() - 2 * (64 << 10) && released <= big.len(), "released {released}");
    if let (Some(before), Some(after)) = (resident_before, mapped_rss_kb(&path)) {
        assert!(before - after >= released / 1024, "resident {before} KiB -> {after} KiB after releasing {released} bytes");
    }
    assert_eq!(f.release(start, 100), 0);
    assert_eq!(f.release(usize::MAX - 10, 100), 0);
    // A later read faults the file's bytes back in, and neighbouring tensors are untouched.
    assert_eq!(f.tensor("big").unwrap().bytes, big.as_slice());
    assert_eq!(f.tensor("small").unwrap().bytes, small.as_slice());
    // A file held in memory has nothing to release.
    let owned = GgufFile::parse(std::fs::read(&path).unwrap(), &path).unwrap();
    assert_eq!(owned.release(start, big.len()), 0);
}

/// The resident KiB of this process's map of `path` (Linux's /proc/self/smaps), if readable.
fn mapped_rss_kb(path: &std::path::Path) -> Option<usize> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let name = path.canonicalize().ok()?.to_string_lossy().into_owned();
    let mut lines = smaps.lines();
    while let Some(line) = lines.next() {
        if line.ends_with(&name) {
            for l in lines.by_ref() {
                if let Some(kb) = l.strip_prefix("Rss:") {
                    return kb.trim().trim_end_matches("kB").trim().parse().ok();
                }
            }
        }
    }
    None
}
