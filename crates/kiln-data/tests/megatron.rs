//! Megatron .bin/.idx: round trips, dtype limits, corrupt files, atomic writes, and an
//! independent numpy reader.

use std::path::Path;
use std::process::Command;

use kiln_data::megatron::{bin_path, idx_path};
use kiln_data::{DType, DataError, MegatronReader, MegatronWriter};

/// Documents of sequences: `docs[d][s]` is sequence `s` of document `d`.
type Docs = Vec<Vec<Vec<u32>>>;

fn sample_docs(max_id: u32) -> Docs {
    let mut x = 12345u64;
    let mut next = move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) as u32
    };
    (0..7)
        .map(|d| {
            (0..(d % 3 + 1))
                .map(|s| {
                    let len = (d * 5 + s * 3) % 11; // includes empty sequences
                    let mut seq: Vec<u32> = (0..len).map(|_| next() % (max_id + 1)).collect();
                    if d == 2 && s == 0 {
                        seq.push(max_id); // the largest id must survive
                    }
                    seq
                })
                .collect()
        })
        .collect()
}

fn write(prefix: &Path, dtype: DType, docs: &Docs) -> kiln_data::DatasetCounts {
    let mut w = MegatronWriter::create(prefix, dtype).unwrap();
    for doc in docs {
        for seq in doc {
            w.add_sequence(seq).unwrap();
        }
        w.end_document().unwrap();
    }
    w.finish().unwrap()
}

fn check_read(prefix: &Path, docs: &Docs) {
    let r = MegatronReader::open(prefix).unwrap();
    let flat: Vec<&Vec<u32>> = docs.iter().flatten().collect();
    assert_eq!(r.len(), flat.len());
    assert_eq!(r.documents(), docs.len());
    assert_eq!(r.total_tokens(), flat.iter().map(|s| s.len() as u64).sum::<u64>());
    for (i, seq) in flat.iter().enumerate() {
        assert_eq!(&r.sequence(i).unwrap(), *seq, "sequence {i}");
    }
    let mut next = 0;
    for (d, doc) in docs.iter().enumerate() {
        assert_eq!(r.document(d).unwrap(), next..next + doc.len());
        next += doc.len();
    }
    assert!(matches!(r.sequence(flat.len()), Err(DataError::OutOfRange { .. })));
}

#[test]
fn round_trip_uint16_and_int32() {
    let dir = tempfile::tempdir().unwrap();
    let docs16 = sample_docs(65_535);
    let c = write(&dir.path().join("a"), DType::for_vocab(32_256), &docs16);
    assert_eq!(c.documents, 7);
    assert_eq!(MegatronReader::open(&dir.path().join("a")).unwrap().dtype(), DType::U16);
    check_read(&dir.path().join("a"), &docs16);

    // A 70,000-id vocabulary needs int32; ids above 65,535 round-trip.
    let dtype = DType::for_vocab(70_000);
    assert_eq!(dtype, DType::I32);
    let mut docs32 = sample_docs(69_999);
    docs32[0][0].extend([65_536, 69_999, i32::MAX as u32]);
    write(&dir.path().join("b"), dtype, &docs32);
    assert_eq!(MegatronReader::open(&dir.path().join("b")).unwrap().dtype(), DType::I32);
    check_read(&dir.path().join("b"), &docs32);
    // The header says so: dtype code 4 at byte 17.
    assert_eq!(std::fs::read(idx_path(&dir.path().join("b"))).unwrap()[17], 4);
}

#[test]
fn an_empty_dataset_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty");
    MegatronWriter::create(&p, DType::U16).unwrap().finish().unwrap();
    let r = MegatronReader::open(&p).unwrap();
    assert!(r.is_empty());
    assert_eq!(r.documents(), 0);
}

#[test]
fn ids_that_do_not_fit_the_dtype_are_errors_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    let mut w = MegatronWriter::create(&p, DType::U16).unwrap();
    w.add_document(&[1, 2, 3]).unwrap();
    let err = w.add_sequence(&[5, 65_536]).unwrap_err();
    assert!(matches!(err, DataError::IdOutOfRange { id: 65_536, .. }), "{err}");
    assert!(err.to_string().contains("x.bin"), "{err}");
    drop(w);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "an abandoned writer left {left:?}");

    let mut w = MegatronWriter::create(&p, DType::I32).unwrap();
    assert!(matches!(w.add_sequence(&[u32::MAX]), Err(DataError::IdOutOfRange { .. })));
}

#[test]
fn an_interrupted_rewrite_keeps_the_old_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d");
    let docs = sample_docs(1000);
    write(&p, DType::U16, &docs);
    let mut w = MegatronWriter::create(&p, DType::U16).unwrap();
    w.add_document(&[9; 100]).unwrap();
    drop(w); // interrupted before finish
    check_read(&p, &docs);
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

fn corrupt(name: &str, edit: impl FnOnce(&mut Vec<u8>), bin_edit: Option<fn(&mut Vec<u8>)>) -> (DataError, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    write(&p, DType::U16, &sample_docs(500));
    let mut idx = std::fs::read(idx_path(&p)).unwrap();
    edit(&mut idx);
    std::fs::write(idx_path(&p), idx).unwrap();
    if let Some(f) = bin_edit {
        let mut bin = std::fs::read(bin_path(&p)).unwrap();
        f(&mut bin);
        std::fs::write(bin_path(&p), bin).unwrap();
    }
    let err = MegatronReader::open(&p).unwrap_err();
    let msg = err.to_string();
    (err, msg)
}

/// A corruption: file stem, edit of the .idx, optional edit of the .bin, expected message part.
type Case = (&'static str, Box<dyn FnOnce(&mut Vec<u8>)>, Option<fn(&mut Vec<u8>)>, &'static str);

#[test]
fn corrupt_indexes_give_errors_naming_the_file() {
    let cases: Vec<Case> = vec![
        ("magic", Box::new(|b: &mut Vec<u8>| b[0] = b'X'), None, "magic"),
        ("version", Box::new(|b: &mut Vec<u8>| b[9] = 2), None, "version 2"),
        ("dtype", Box::new(|b: &mut Vec<u8>| b[17] = 6), None, "dtype code 6"),
        ("truncated", Box::new(|b: &mut Vec<u8>| b.truncate(b.len() - 5)), None, "bytes"),
        ("header", Box::new(|b: &mut Vec<u8>| b.truncate(20)), None, "truncated"),
        ("count", Box::new(|b: &mut Vec<u8>| b[18] += 1), None, "sequences"),
        (
            "offset",
            Box::new(|b: &mut Vec<u8>| {
                let n = u64::from_le_bytes(b[18..26].try_into().unwrap()) as usize;
                b[34 + 4 * n + 8] ^= 2
            }),
            None,
            "starts at byte",
        ),
        (
            "docs",
            Box::new(|b: &mut Vec<u8>| {
                let l = b.len();
                b[l - 8] = 99
            }),
            None,
            "document index",
        ),
        ("binsize", Box::new(|_: &mut Vec<u8>| {}), Some(|b: &mut Vec<u8>| b.extend([0, 0])), "bytes, but"),
    ];
    for (name, edit, bin_edit, want) in cases {
        let (err, msg) = corrupt(name, edit, bin_edit);
        assert!(matches!(err, DataError::BadDataset { .. }), "{name}: {err:?}");
        assert!(msg.contains(&format!("{name}.idx")) || msg.contains(&format!("{name}.bin")), "{name}: {msg}");
        assert!(msg.contains(want), "{name}: {msg}");
    }
    // A missing .idx (e.g. a crash between the renames) is an I/O error naming it.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m");
    write(&p, DType::U16, &sample_docs(9));
    std::fs::remove_file(idx_path(&p)).unwrap();
    let msg = MegatronReader::open(&p).unwrap_err().to_string();
    assert!(msg.contains("m.idx"), "{msg}");
}

fn python_with_numpy() -> bool {
    Command::new("python3").args(["-c", "import numpy"]).output().map(|o| o.status.success()).unwrap_or(false)
}

#[test]
fn an_independent_numpy_reader_reads_what_kiln_writes() {
    if !python_with_numpy() {
        eprintln!("SKIPPING an_independent_numpy_reader_reads_what_kiln_writes: python3/numpy not found (CI must `pip install numpy`)");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/megatron_reader.py");
    let dir = tempfile::tempdir().unwrap();
    let mut docs32 = sample_docs(69_999);
    docs32[1][0].push(1 << 30);
    for (name, dtype, docs, want_dtype) in [("u16", DType::U16, sample_docs(65_535), "uint16"), ("i32", DType::I32, docs32, "int32")] {
        let p = dir.path().join(name);
        write(&p, dtype, &docs);
        let out = Command::new("python3").arg(&script).arg(&p).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["dtype"], want_dtype);
        let seqs: Vec<Vec<u32>> = serde_json::from_value(v["sequences"].clone()).unwrap();
        let flat: Vec<Vec<u32>> = docs.iter().flatten().cloned().collect();
        assert_eq!(seqs, flat);
        let doc_idx: Vec<usize> = serde_json::from_value(v["document_indices"].clone()).unwrap();
        let mut want = vec![0];
        for d in &docs {
            want.push(want.last().unwrap() + d.len());
        }
        assert_eq!(doc_idx, want);
    }
}
