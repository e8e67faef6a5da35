//! Mutation fuzzing of the reader with proptest, on real GGUF files: the gguf-py fixtures, the
//! committed DeepSeek-Coder vocabulary and a kiln-written file with every value and tensor type.
//! Mutations flip and set bytes, truncate, overwrite counts/lengths/type ids/offsets with extreme
//! values (often at positions that hold a length in the original), delete, insert, splice within
//! a file and graft pieces of another.
//!
//! For every mutated file: no panic; an error names the file; a file that is accepted gives
//! tensor views of exactly the right length, and writing it back with [`GgufWriter`] gives a file
//! that reads again and writes back byte-identically.
//!
//! `cargo test` runs a quick fixed-seed pass (500 cases, under a few seconds). `scripts/fuzz_gguf.sh
//! [SECONDS]` sets `KILN_GGUF_FUZZ_SECS` to run random-seed batches until the deadline and print
//! the cases per second. A failure prints the base file and the (shrunk) mutation list, which
//! reproduce it exactly; each finding gets a regression test in `tests/reader_errors.rs`.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kiln_gguf::{Array, GgmlType, GgufFile, GgufWriter, Value, ValueType};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

const NAME: &str = "fuzz/case.gguf";

struct Base {
    name: &'static str,
    bytes: Vec<u8>,
    /// Offsets whose u64 is small in the original: mostly string and array lengths.
    length_fields: Vec<usize>,
}

fn kiln_written() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama");
    w.add_metadata("general.alignment", 64u32);
    w.add_metadata("u8", 1u8).add_metadata("i16", -2i16).add_metadata("f64", 0.5f64).add_metadata("b", true);
    w.add_metadata("names", vec!["a", "bb", "ccc"]);
    w.add_metadata("nested", vec![Array::U64(vec![1, 2]), Array::Array(vec![Array::empty(ValueType::String)])]);
    for (i, ty) in GgmlType::ALL.into_iter().enumerate() {
        let dims = [ty.block_size(), 1 + i % 3];
        let n = dims[0] * dims[1];
        w.add_tensor(format!("t{i}"), &dims, ty, vec![i as u8; ty.row_bytes(n).unwrap()]);
    }
    w.to_bytes("base").unwrap()
}

fn bases() -> Vec<Base> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let read = |p: &str| std::fs::read(root.join(p)).unwrap_or_else(|e| panic!("committed fixture {p}: {e}"));
    let files = [
        ("gguf-py-fixture.gguf", read("gguf/gguf-py-fixture.gguf")),
        ("gguf-py-fixture-align64.gguf", read("gguf/gguf-py-fixture-align64.gguf")),
        ("ggml-vocab-deepseek-coder.gguf", read("deepseek-coder-vocab/ggml-vocab-deepseek-coder.gguf")),
        ("kiln-written", kiln_written()),
    ];
    files
        .into_iter()
        .map(|(name, bytes)| {
            let length_fields = (8..bytes.len().saturating_sub(8))
                .filter(|&p| {
                    let v = u64::from_le_bytes(bytes[p..p + 8].try_into().unwrap());
                    v > 0 && v < 1 << 24
                })
                .collect();
            Base { name, bytes, length_fields }
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Pos {
    Any(Index),
    /// Within the first 512 bytes: header, first keys, small files' tensor tables.
    Head(Index),
    /// A position that held a small u64 (a length or count) in the original.
    LengthField(Index),
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Pos, u8),
    SetByte(Pos, u8),
    PutU64(Pos, u64),
    PutU32(Pos, u32),
    Truncate(Index),
    Delete(Pos, usize),
    Insert(Pos, Vec<u8>),
    /// Overwrite `len` bytes at `to` with the bytes at `from`.
    Splice(Pos, usize, Pos),
    /// Insert a copy of `len` bytes from `from` at `to`.
    Duplicate(Pos, usize, Pos),
    /// Overwrite `len` bytes at `to` with bytes from another base file (picked by the Index, a
    /// position in it by the second), e.g. a vocabulary's strings over a tensor table.
    Graft(Index, Index, usize, Pos),
}

fn pos() -> impl Strategy<Value = Pos> {
    prop_oneof![any::<Index>().prop_map(Pos::Any), any::<Index>().prop_map(Pos::Head), any::<Index>().prop_map(Pos::LengthField)]
}

fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        prop::sample::select(vec![
            0,
            1,
            2,
            7,
            8,
            12,
            13,
            24,
            31,
            32,
            64,
            255,
            256,
            65535,
            u32::MAX as u64,
            1 << 32,
            1 << 40,
            1 << 60,
            1 << 62,
            1 << 63,
            i64::MAX as u64,
            u64::MAX - 31,
            u64::MAX - 1,
            u64::MAX,
        ]),
        0u64..2_000_000,
        any::<u64>(),
    ]
}

fn extreme_u32() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..=14, 28u32..=42, prop::sample::select(vec![255, 1000, 1 << 16, 1 << 31, u32::MAX - 1, u32::MAX]), any::<u32>()]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (pos(), 1u8..=255).prop_map(|(p, x)| Mutation::Flip(p, x)),
        1 => (pos(), any::<u8>()).prop_map(|(p, x)| Mutation::SetByte(p, x)),
        3 => (pos(), extreme_u64()).prop_map(|(p, x)| Mutation::PutU64(p, x)),
        2 => (pos(), extreme_u32()).prop_map(|(p, x)| Mutation::PutU32(p, x)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (pos(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        1 => (pos(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(p, b)| Mutation::Insert(p, b)),
        1 => (pos(), 1usize..256, pos()).prop_map(|(a, n, b)| Mutation::Splice(a, n, b)),
        1 => (pos(), 1usize..256, pos()).prop_map(|(a, n, b)| Mutation::Duplicate(a, n, b)),
        1 => (any::<Index>(), any::<Index>(), 1usize..512, pos()).prop_map(|(f, a, n, b)| Mutation::Graft(f, a, n, b)),
    ]
}

fn resolve(p: &Pos, len: usize, base: &Base) -> usize {
    if len == 0 {
        return 0;
    }
    let at = match p {
        Pos::Any(i) => i.index(len),
        Pos::Head(i) => i.index(len.min(512)),
        Pos::LengthField(i) if !base.length_fields.is_empty() => base.length_fields[i.index(base.length_fields.len())],
        Pos::LengthField(i) => i.index(len),
    };
    at.min(len - 1)
}

fn apply(base: &Base, all: &[Base], muts: &[Mutation]) -> Vec<u8> {
    let mut b = base.bytes.clone();
    for m in muts {
        let len = b.len();
        match m {
            Mutation::Flip(p, x) if len > 0 => b[resolve(p, len, base)] ^= x,
            Mutation::SetByte(p, x) if len > 0 => b[resolve(p, len, base)] = *x,
            Mutation::PutU64(p, v) => put(&mut b, resolve(p, len, base), &v.to_le_bytes()),
            Mutation::PutU32(p, v) => put(&mut b, resolve(p, len, base), &v.to_le_bytes()),
            Mutation::Truncate(i) => b.truncate(i.index(len + 1)),
            Mutation::Delete(p, n) if len > 0 => {
                let at = resolve(p, len, base);
                b.drain(at..(at + n).min(len));
            }
            Mutation::Insert(p, bytes) => {
                let at = resolve(p, len, base);
                b.splice(at..at, bytes.iter().copied());
            }
            Mutation::Splice(from, n, to) if len > 0 => {
                let f = resolve(from, len, base);
                let chunk = b[f..(f + n).min(len)].to_vec();
                put(&mut b, resolve(to, len, base), &chunk);
            }
            Mutation::Duplicate(from, n, to) if len > 0 => {
                let f = resolve(from, len, base);
                let chunk = b[f..(f + n).min(len)].to_vec();
                let at = resolve(to, len, base);
                b.splice(at..at, chunk);
            }
            Mutation::Graft(other, from, n, to) if len > 0 => {
                let src = &all[other.index(all.len())].bytes;
                let f = from.index(src.len());
                put(&mut b, resolve(to, len, base), &src[f..(f + n).min(src.len())]);
            }
            _ => {}
        }
    }
    b
}

/// Overwrites at `at`, clipped to the end (a write at the very end of a file grows nothing).
fn put(b: &mut [u8], at: usize, v: &[u8]) {
    let end = (at + v.len()).min(b.len());
    if at < end {
        b[at..end].copy_from_slice(&v[..end - at]);
    }
}

fn names_file(e: &kiln_gguf::GgufError) -> Result<(), TestCaseError> {
    let m = e.to_string();
    prop_assert!(m.starts_with(&format!("{NAME}: ")), "error does not name the file: {m}");
    Ok(())
}

/// Writes an accepted file back with kiln's writer (None when it holds something the writer
/// rightly refuses to produce: a type kiln does not support or a name llama.cpp would refuse).
fn rewrite(f: &GgufFile) -> Option<Result<Vec<u8>, kiln_gguf::GgufError>> {
    // A huge (valid) alignment would make the writer pad gigabytes; the reader takes it because
    // a file without tensors never reaches its data section.
    if f.alignment() > 1 << 20 || f.tensor_infos().iter().any(|t| t.ggml_type().is_none() || t.name().len() >= 64) {
        return None;
    }
    let mut w = GgufWriter::new();
    for (k, v) in f.metadata() {
        w.add_metadata(k, v.clone());
    }
    for t in f.tensors() {
        let t = t.ok()?;
        w.add_tensor(t.name, t.dims, t.ggml_type, t.bytes);
    }
    Some(w.to_bytes(NAME))
}

static CASES: AtomicU64 = AtomicU64::new(0);

/// Outcomes by kind (`accepted`, or the error variant), to see that mutations reach every check.
static OUTCOMES: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

fn count(outcome: String) {
    *OUTCOMES.lock().unwrap_or_else(|e| e.into_inner()).entry(outcome).or_default() += 1;
}

fn outcomes() -> String {
    let o = OUTCOMES.lock().unwrap_or_else(|e| e.into_inner());
    o.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

fn check(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    CASES.fetch_add(1, Ordering::Relaxed);
    let file_len = bytes.len();
    let f = match GgufFile::parse(bytes, NAME) {
        Ok(f) => f,
        Err(e) => {
            count(format!("{:?}", e.kind).split(|c: char| !c.is_alphanumeric()).next().unwrap_or("?").to_string());
            return names_file(&e);
        }
    };
    count("accepted".into());
    // Every getter on every key: values or errors naming the file.
    for (k, v) in f.metadata() {
        let _ = v.describe();
        for r in [f.get_u32(k).map(drop), f.get_u64(k).map(drop), f.get_i64(k).map(drop), f.get_f32(k).map(drop)] {
            if let Err(e) = r {
                names_file(&e)?;
            }
        }
        for r in [f.get_str(k).map(drop), f.get_array(k).map(drop), f.get_str_array(k).map(drop), f.get_int_array(k).map(drop)] {
            if let Err(e) = r {
                names_file(&e)?;
            }
        }
        if let Value::Array(a) = v {
            let _ = (a.to_ints(), a.to_f64s(), a.len());
        }
    }
    for (info, t) in f.tensor_infos().iter().zip(f.tensors()) {
        match t {
            Ok(t) => {
                let want = t.ggml_type.row_bytes(t.row_len()).unwrap() * t.n_rows();
                prop_assert_eq!(t.bytes.len(), want, "tensor {} has the wrong byte length", t.name);
                prop_assert!(info.byte_range().unwrap().end <= file_len);
                prop_assert_eq!(t.n_elements() as u64, info.n_elements());
            }
            Err(e) => names_file(&e)?,
        }
    }
    if let Some(first) = rewrite(&f) {
        let first = first.map_err(|e| TestCaseError::fail(format!("an accepted file could not be written back: {e}")))?;
        let again = GgufFile::parse(first.clone(), NAME).map_err(|e| TestCaseError::fail(format!("kiln's output does not read: {e}")))?;
        let second = rewrite(&again).expect("same content").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(first == second, "write -> read -> write is not byte-identical");
    }
    Ok(())
}

fn run(runner: &mut TestRunner, bases: &[Base]) -> Result<(), String> {
    let strategy = (any::<Index>(), prop::collection::vec(mutation(), 1..5));
    runner
        .run(&strategy, |(which, muts)| {
            let base = &bases[which.index(bases.len())];
            check(apply(base, bases, &muts))
        })
        .map_err(|e| {
            // Name the base the shrunk case used (the Index resolves against the list).
            let hint = bases.iter().map(|b| b.name).collect::<Vec<_>>().join(", ");
            format!("{e}\nbases (the first Index picks one): {hint}")
        })
}

fn config(cases: u32, seed: RngSeed) -> Config {
    Config { cases, failure_persistence: None, rng_seed: seed, ..Config::default() }
}

#[test]
fn mutated_gguf_files_never_panic_and_errors_name_the_file() {
    let bases = bases();
    // The unmutated files pass the same checks.
    for b in &bases {
        check(b.bytes.clone()).unwrap();
        assert!(GgufFile::parse(b.bytes.clone(), NAME).is_ok(), "{}", b.name);
    }
    let secs: u64 = std::env::var("KILN_GGUF_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    if secs == 0 {
        let seed = std::env::var("KILN_GGUF_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x6767_7566);
        let t = Instant::now();
        run(&mut TestRunner::new(config(500, RngSeed::Fixed(seed))), &bases).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("fuzz: {} cases in {:.1?} (seed {seed}); outcomes: {}", CASES.load(Ordering::Relaxed), t.elapsed(), outcomes());
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut batches = 0u64;
    while Instant::now() < deadline {
        let seed: u64 = rand_seed(batches);
        run(&mut TestRunner::new(config(2000, RngSeed::Fixed(seed))), &bases).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        batches += 1;
        let n = CASES.load(Ordering::Relaxed);
        let s = start.elapsed().as_secs_f64();
        eprintln!("fuzz: batch {batches} (seed {seed}) ok; {n} cases in {s:.0} s = {:.0} cases/s", n as f64 / s);
    }
    let n = CASES.load(Ordering::Relaxed);
    let s = start.elapsed().as_secs_f64();
    eprintln!("fuzz: done: {n} cases in {s:.0} s = {:.0} cases/s, no failures; outcomes: {}", n as f64 / s, outcomes());
}

/// A fresh seed per batch, printed so a failure can be rerun with KILN_GGUF_FUZZ_SEED.
fn rand_seed(batch: u64) -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    (t ^ batch.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}
