//! The part of `kiln corpus build` that the Python baseline of `benches/corpus_vs_datasketch.py`
//! also does, on one thread: read each file, the rule filters, a MinHash signature of the kept
//! files and an LSH query + insert of its band keys. No tree-sitter parse, graph, rendering or
//! Parquet. Prints one JSON line: files, bytes, kept, near-duplicate hits, seconds.
//!
//!     find DIR -name '*.py' | cargo run --release -p kiln-corpus --example filters_minhash
use std::collections::HashMap;
use std::io::BufRead;

use kiln_corpus::{check_file, FilterConfig, LshParams, MinHasher};
use kiln_repo::SourceFile;

fn main() {
    let paths: Vec<String> = std::io::stdin().lock().lines().map(|l| l.expect("stdin is text")).collect();
    let filters = FilterConfig::default();
    let params = LshParams::default();
    let hasher = MinHasher::from_params(&params);
    let mut buckets: Vec<HashMap<u64, u32>> = vec![HashMap::new(); params.bands];
    let (mut bytes, mut kept, mut dups) = (0u64, 0u64, 0u64);
    let start = std::time::Instant::now();
    for (i, path) in paths.iter().enumerate() {
        let Ok(data) = std::fs::read(path) else { continue };
        bytes += data.len() as u64;
        let Ok(text) = String::from_utf8(data) else { continue };
        let file = SourceFile::new(path.clone(), text);
        if check_file(&file, &filters).is_err() {
            continue;
        }
        kept += 1;
        let keys = hasher.signature(&file.text).band_keys(params.bands, params.rows);
        let mut hit = false;
        for (band, key) in buckets.iter_mut().zip(keys) {
            hit |= band.contains_key(&key);
            band.entry(key).or_insert(i as u32);
        }
        dups += hit as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{}", serde_json::json!({"files": paths.len(), "bytes": bytes, "kept": kept, "near_dup_hits": dups, "seconds": secs}));
}
