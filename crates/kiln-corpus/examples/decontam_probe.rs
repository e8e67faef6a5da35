//! Lists the files of a repository that decontamination would drop, with what matched.
//!
//!     cargo run --release -p kiln-corpus --example decontam_probe -- DIR [BENCHMARKS_DIR|bundled [MIN_COVERAGE]]
use std::path::PathBuf;

use kiln_corpus::{BenchmarkSource, DecontamConfig, DecontamIndex};
use kiln_repo::ingest::{ingest_path, IngestOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().expect("usage: decontam_probe DIR [BENCHMARKS_DIR]"));
    let bench = match args.get(1).map(String::as_str) {
        None | Some("bundled") => BenchmarkSource::Bundled,
        Some(dir) => BenchmarkSource::Dir(PathBuf::from(dir)),
    };
    let b = bench.load().expect("benchmarks load");
    let mut cfg = DecontamConfig::default();
    if let Some(c) = args.get(2) {
        cfg.min_coverage = c.parse().expect("MIN_COVERAGE is a number in 0..=1");
    }
    let index = DecontamIndex::build(&b, &cfg);
    let (repo, _) = ingest_path(&dir, &IngestOptions::default()).expect("input reads");
    let mut n = 0;
    for f in &repo.files {
        if let Some(c) = index.check(&f.text) {
            n += 1;
            println!("{} -> {:?} ({} n-gram hits, {} exact hits)", f.path, c.tasks, c.ngram_hits, c.exact_hits);
            for (gram, tasks) in index.explain(&f.text) {
                println!("    {tasks:?}: {gram}");
            }
        }
    }
    println!("{n} of {} files contaminated", repo.files.len());
}
