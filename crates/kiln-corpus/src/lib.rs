//! kiln-corpus: the corpus pipeline. Planned (issue #4): rule filters, quality screen, exact and
//! MinHash-LSH near-dedup, decontamination, Parquet shards, statistics and a stage/task runner.
//! Nothing is implemented yet.
#![deny(missing_docs)]
