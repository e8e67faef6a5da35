//! kiln-benchdata: the public code benchmarks kiln ships, built into the binary.
//!
//! In: nothing at run time. Out: the bytes of the files under the repository's `data/benchmarks/`
//! (HumanEval, MBPP, HumanEval infilling, MultiPL-E and the javatuples jar its Java tests need),
//! embedded at compile time. So `kiln eval` and the corpus decontamination work from any directory
//! after `cargo install`, with no download and no checkout beside the binary. A user's own copy
//! (`--data FILE`, `--benchmarks DIR`) still wins.
//!
//! The files are unmodified copies of their sources (the MultiPL-E JSONL files gzip-compressed);
//! `data/benchmarks/README.md` lists origins, licences and checksums. Each one is a few hundred
//! kilobytes, 2 MB in all.
#![deny(missing_docs)]

/// One embedded file: its path under `data/benchmarks/` and its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundledFile {
    /// Path relative to `data/benchmarks/` (e.g. `humaneval/HumanEval.jsonl.gz`).
    pub path: &'static str,
    /// The file's bytes (gzip or plain JSONL, a jar).
    pub bytes: &'static [u8],
}

impl BundledFile {
    /// How errors and run records name it: `bundled:PATH`.
    pub fn label(&self) -> String {
        format!("bundled:{}", self.path)
    }
}

macro_rules! bundled {
    ($path:literal) => {
        BundledFile { path: $path, bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/benchmarks/", $path)) }
    };
}

/// OpenAI's HumanEval (164 problems; MIT).
pub const HUMANEVAL: BundledFile = bundled!("humaneval/HumanEval.jsonl.gz");
/// MBPP, all 974 problems as in DeepSeek-Coder's evaluation folder (CC-BY-4.0).
pub const MBPP: BundledFile = bundled!("mbpp/mbpp.jsonl");
/// HumanEval single-line infilling (1,033 tasks; MIT).
pub const INFILLING_SINGLE_LINE: BundledFile = bundled!("humaneval-infilling/HumanEval-SingleLineInfilling.jsonl.gz");
/// HumanEval multi-line infilling (5,815 tasks; MIT).
pub const INFILLING_MULTI_LINE: BundledFile = bundled!("humaneval-infilling/HumanEval-MultiLineInfilling.jsonl.gz");
/// HumanEval random-span infilling (1,640 tasks; MIT).
pub const INFILLING_RANDOM_SPAN: BundledFile = bundled!("humaneval-infilling/HumanEval-RandomSpanInfilling.jsonl.gz");
/// HumanEval random-span infilling, light (164 tasks; MIT).
pub const INFILLING_RANDOM_SPAN_LIGHT: BundledFile = bundled!("humaneval-infilling/HumanEval-RandomSpanInfillingLight.jsonl.gz");
/// The jar MultiPL-E's Java tests compile and run against.
pub const JAVATUPLES: BundledFile = bundled!("multipl-e/javatuples-1.2.jar");

/// MultiPL-E's HumanEval translations, by MultiPL-E language name (`cpp`, `cs`, `go`, `java`,
/// `js`, `php`, `python`, `rs`, `sh`, `ts`), as in DeepSeek-Coder's evaluation folder (MIT).
pub const MULTIPL_E: [(&str, BundledFile); 10] = [
    ("cpp", bundled!("multipl-e/humaneval-cpp.jsonl.gz")),
    ("cs", bundled!("multipl-e/humaneval-cs.jsonl.gz")),
    ("go", bundled!("multipl-e/humaneval-go.jsonl.gz")),
    ("java", bundled!("multipl-e/humaneval-java.jsonl.gz")),
    ("js", bundled!("multipl-e/humaneval-js.jsonl.gz")),
    ("php", bundled!("multipl-e/humaneval-php.jsonl.gz")),
    ("python", bundled!("multipl-e/humaneval-python.jsonl.gz")),
    ("rs", bundled!("multipl-e/humaneval-rs.jsonl.gz")),
    ("sh", bundled!("multipl-e/humaneval-sh.jsonl.gz")),
    ("ts", bundled!("multipl-e/humaneval-ts.jsonl.gz")),
];

/// The MultiPL-E file of a language (its MultiPL-E name, e.g. `cpp`).
pub fn multipl_e(language: &str) -> Option<BundledFile> {
    MULTIPL_E.iter().find(|(l, _)| *l == language).map(|(_, f)| *f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every embedded file is the file in data/benchmarks (no stale copy), and non-trivial.
    #[test]
    fn embedded_files_equal_the_repository_copies() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/benchmarks");
        let all =
            [HUMANEVAL, MBPP, INFILLING_SINGLE_LINE, INFILLING_MULTI_LINE, INFILLING_RANDOM_SPAN, INFILLING_RANDOM_SPAN_LIGHT, JAVATUPLES];
        for f in all.iter().chain(MULTIPL_E.iter().map(|(_, f)| f)) {
            let on_disk = std::fs::read(dir.join(f.path)).unwrap_or_else(|e| panic!("{}: {e}", f.path));
            assert_eq!(on_disk, f.bytes, "{}", f.path);
            assert!(f.bytes.len() > 30_000, "{} is only {} bytes", f.path, f.bytes.len());
        }
        assert_eq!(multipl_e("rs").map(|f| f.path), Some("multipl-e/humaneval-rs.jsonl.gz"));
        assert_eq!(multipl_e("cobol"), None);
        assert_eq!(HUMANEVAL.label(), "bundled:humaneval/HumanEval.jsonl.gz");
    }
}
