//! Test helpers: the tiny tokenizer and small corpora written the way `kiln corpus build` writes
//! them (Parquet shards + manifest.json).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_corpus::manifest::{SampleCounts, ShardInfo, TaskReport, MANIFEST_FORMAT, MANIFEST_VERSION};
use kiln_corpus::shard::Sample;
use kiln_corpus::{CorpusConfig, Manifest};
use kiln_tokenizer::Tokenizer;

/// `tests/fixtures/tiny-llama/tokenizer.json` of the workspace.
pub fn tokenizer_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama/tokenizer.json")
}

pub fn tokenizer() -> Tokenizer {
    Tokenizer::from_file(&tokenizer_path()).expect("tiny tokenizer loads")
}

pub fn sample(id: &str, repo: &str, text: &str) -> Sample {
    Sample {
        id: id.to_string(),
        repo: repo.to_string(),
        languages: vec!["Python".into()],
        text: text.to_string(),
        files: vec![],
        input: 0,
        seq: 0,
        content_hash: String::new(),
        bands: vec![],
        contaminated_by: vec![],
    }
}

/// Writes `shards` as `shard-NNNNN.parquet` plus a manifest listing them.
pub fn write_corpus(dir: &Path, shards: &[Vec<Sample>]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut infos = Vec::new();
    for (i, samples) in shards.iter().enumerate() {
        let file = format!("shard-{i:05}.parquet");
        kiln_corpus::shard::write_file(&dir.join(&file), samples, false).unwrap();
        let (sha256, file_bytes) = kiln_corpus::pipeline::sha256_file(&dir.join(&file)).unwrap();
        infos.push(ShardInfo {
            file,
            rows: samples.len() as u64,
            text_bytes: samples.iter().map(|s| s.text.len() as u64).sum(),
            file_bytes,
            sha256,
        });
    }
    let m = Manifest {
        format: MANIFEST_FORMAT.into(),
        version: MANIFEST_VERSION,
        kiln_version: "test".into(),
        inputs: vec![],
        tasks: 1,
        benchmarks: None,
        config: CorpusConfig::default(),
        files: TaskReport::default(),
        samples: SampleCounts::default(),
        languages: BTreeMap::new(),
        contamination: vec![],
        shards: infos,
    };
    std::fs::write(dir.join("manifest.json"), serde_json::to_string_pretty(&m).unwrap()).unwrap();
}
