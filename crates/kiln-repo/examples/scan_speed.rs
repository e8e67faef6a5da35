//! Throughput of the parse-free import scanner against the tree-sitter extractor, on one core.
//!
//! Usage: `cargo run --release -p kiln-repo --example scan_speed -- DIR [DIR...]`
//!
//! Reads every file of an import language under the directories (symlinks and `site-packages`
//! skipped, as the differential test does), then times one pass of `scan::scan` and one of
//! `imports::analyze` over all of them, and prints MB/s for each, overall and per import syntax.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_repo::imports::{analyze, file_syntax};
use kiln_repo::lang::ImportSyntax;
use kiln_repo::scan::scan;
use kiln_repo::SourceFile;

fn collect(root: &Path, out: &mut Vec<(ImportSyntax, String)>) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_symlink() || path.file_name().is_some_and(|n| n == "site-packages") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                let file = SourceFile::new(path.to_string_lossy().into_owned(), text);
                if let Some(syntax) = file_syntax(&file) {
                    out.push((syntax, file.text));
                }
            }
        }
    }
}

/// Runs `f` over every file once; total time per syntax, and a checksum so the work is kept.
fn time(files: &[(ImportSyntax, String)], f: impl Fn(ImportSyntax, &str) -> usize) -> (BTreeMap<String, Duration>, usize) {
    let mut per: BTreeMap<String, Duration> = BTreeMap::new();
    let mut sum = 0;
    for (syntax, text) in files {
        let start = Instant::now();
        sum += f(*syntax, text);
        *per.entry(format!("{syntax:?}")).or_default() += start.elapsed();
    }
    (per, sum)
}

fn mb_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

fn main() {
    let dirs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if dirs.is_empty() {
        eprintln!("usage: scan_speed DIR [DIR...]");
        std::process::exit(2);
    }
    let mut files = Vec::new();
    for d in &dirs {
        collect(d, &mut files);
    }
    let mut bytes: BTreeMap<String, usize> = BTreeMap::new();
    for (s, t) in &files {
        *bytes.entry(format!("{s:?}")).or_default() += t.len();
    }
    let total: usize = bytes.values().sum();
    let (scan_t, n_scan) = time(&files, |s, t| scan(s, t).imports.len());
    let (parse_t, n_parse) = time(&files, |s, t| analyze(s, t).imports.len());
    println!("{} files, {:.1} MB; imports found: scan {n_scan}, analyze {n_parse}", files.len(), total as f64 / 1e6);
    println!("{:<12} {:>10} {:>12} {:>14}", "syntax", "MB", "scan MB/s", "analyze MB/s");
    for (name, b) in &bytes {
        println!("{name:<12} {:>10.1} {:>12.0} {:>14.1}", *b as f64 / 1e6, mb_s(*b, scan_t[name]), mb_s(*b, parse_t[name]));
    }
    let (st, pt): (Duration, Duration) = (scan_t.values().sum(), parse_t.values().sum());
    println!("{:<12} {:>10.1} {:>12.0} {:>14.1}", "all", total as f64 / 1e6, mb_s(total, st), mb_s(total, pt));
}
