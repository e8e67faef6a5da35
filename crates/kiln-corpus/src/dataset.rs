//! Dataset files as corpus inputs: one row per source file, as The Stack, StarCoderData and
//! datatrove dumps ship code.
//!
//! In: a `.jsonl`, `.jsonl.gz`, `.ndjson` or `.parquet` file. Out: its rows grouped into
//! repositories ([`DatasetInput`]), each passed through the same per-file rules as a directory or
//! archive ([`kiln_repo::ingest::ingest_entries`]), so the rest of the pipeline cannot tell the
//! difference.
//!
//! Columns (the first present name of each list wins):
//! * text: `content` (The Stack), `text` (datatrove), `code`;
//! * path: `path`, `max_stars_repo_path` (The Stack), `file_path`, `filepath`;
//! * repository: `repo`, `repo_name`, `max_stars_repo_name` (The Stack), `repository`.
//!   Without a repository column every row is its own repository (`<file>#<row>`), so nothing is
//!   ordered across files; with one, rows of a repository may be anywhere in the file.
//!
//! Bad input: a JSONL line that is not a JSON object, or a row whose text or path is missing or
//! not a string, is skipped and counted as `bad_record` (logged with its line or row number), so
//! one damaged line does not cost the whole file. A damaged container (a truncated gzip stream, a
//! Parquet file without a valid footer, a column of an unusable type) fails the whole input with
//! an error naming the file: the pipeline reports it under `failed` and keeps nothing from it,
//! rather than keep an arbitrary prefix.
//!
//! Memory: a dataset input is read whole (rows have to be grouped by repository), so it is
//! bounded by the input file's size; split larger dumps into shards (datasets are shipped so).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use arrow_array::{Array, BinaryArray, LargeBinaryArray, LargeStringArray, StringArray, StringViewArray};
use kiln_repo::ingest::{ingest_entries, IngestOptions, IngestSummary};
use kiln_repo::Repo;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use tracing::warn;

use crate::error::{CorpusError, Result};

/// Accepted names of the text column, in order of preference.
pub const TEXT_COLUMNS: &[&str] = &["content", "text", "code"];
/// Accepted names of the path column.
pub const PATH_COLUMNS: &[&str] = &["path", "max_stars_repo_path", "file_path", "filepath"];
/// Accepted names of the repository column.
pub const REPO_COLUMNS: &[&str] = &["repo", "repo_name", "max_stars_repo_name", "repository"];

/// What a dataset file held.
#[derive(Debug, Default)]
pub struct DatasetInput {
    /// Its repositories, sorted by name, with what ingestion skipped in each.
    pub repos: Vec<(Repo, IngestSummary)>,
    /// Rows that were not usable records (see the module doc).
    pub bad_records: u64,
}

/// Whether `path` is read as a dataset file (by its name).
pub fn is_dataset(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
    [".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".parquet"].iter().any(|ext| name.ends_with(ext))
}

fn bad(path: &Path, message: impl Into<String>) -> CorpusError {
    CorpusError::Dataset { path: path.to_path_buf(), message: message.into() }
}

/// Rows grouped by repository: name → `(path, bytes)` entries.
#[derive(Default)]
struct Rows {
    repos: BTreeMap<String, Vec<(String, Vec<u8>)>>,
    bad_records: u64,
}

impl Rows {
    fn push(&mut self, repo: String, path: String, text: Vec<u8>) {
        self.repos.entry(repo).or_default().push((path, text));
    }

    fn finish(self, opts: &IngestOptions) -> DatasetInput {
        let repos = self.repos.into_iter().map(|(name, entries)| ingest_entries(&name, entries, opts)).collect();
        DatasetInput { repos, bad_records: self.bad_records }
    }
}

/// Reads a dataset file (JSONL, gzipped JSONL or Parquet).
pub fn read_dataset(path: &Path, opts: &IngestOptions) -> Result<DatasetInput> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("dataset").to_ascii_lowercase();
    let rows = if name.ends_with(".parquet") { read_parquet(path)? } else { read_jsonl(path)? };
    Ok(rows.finish(opts))
}

fn first_key<'a>(obj: &'a serde_json::Map<String, serde_json::Value>, keys: &[&str]) -> Option<&'a serde_json::Value> {
    keys.iter().find_map(|k| obj.get(*k))
}

fn read_jsonl(path: &Path) -> Result<Rows> {
    let file = File::open(path).map_err(|e| CorpusError::Io { path: path.to_path_buf(), source: e })?;
    let reader: Box<dyn Read> = if path.to_string_lossy().to_ascii_lowercase().ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(file)
    };
    let stem = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut rows = Rows::default();
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| bad(path, format!("unreadable after line {number}: {e} (truncated or damaged file?)")))?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record = match serde_json::from_slice::<serde_json::Value>(&line) {
            Ok(serde_json::Value::Object(obj)) => obj,
            Ok(_) => {
                warn!(file = %path.display(), line = number, "not a JSON object; skipped");
                rows.bad_records += 1;
                continue;
            }
            Err(e) => {
                warn!(file = %path.display(), line = number, error = %e, "not valid JSON; skipped");
                rows.bad_records += 1;
                continue;
            }
        };
        let text = first_key(&record, TEXT_COLUMNS).and_then(|v| v.as_str());
        let file_path = first_key(&record, PATH_COLUMNS).and_then(|v| v.as_str());
        let (Some(text), Some(file_path)) = (text, file_path) else {
            warn!(file = %path.display(), line = number, "no string text ({TEXT_COLUMNS:?}) or path ({PATH_COLUMNS:?}) field; skipped");
            rows.bad_records += 1;
            continue;
        };
        let repo = match first_key(&record, REPO_COLUMNS).and_then(|v| v.as_str()) {
            Some(r) => r.to_string(),
            None => format!("{stem}#{number}"),
        };
        rows.push(repo, file_path.to_string(), text.as_bytes().to_vec());
    }
    Ok(rows)
}

/// One string-like Arrow column, row by row (`None` for a null).
/// Row `i` of a string-like column as bytes (`None` for a null).
type RowBytes<'a> = Box<dyn Fn(usize) -> Option<&'a [u8]> + 'a>;

fn column_strings<'a>(path: &Path, name: &str, col: &'a dyn Array) -> Result<RowBytes<'a>> {
    let any = col.as_any();
    macro_rules! strings {
        ($t:ty, $bytes:expr) => {
            if let Some(a) = any.downcast_ref::<$t>() {
                return Ok(Box::new(move |i| if a.is_null(i) { None } else { Some($bytes(a.value(i))) }));
            }
        };
    }
    strings!(StringArray, |s: &'a str| s.as_bytes());
    strings!(LargeStringArray, |s: &'a str| s.as_bytes());
    strings!(StringViewArray, |s: &'a str| s.as_bytes());
    strings!(BinaryArray, |b: &'a [u8]| b);
    strings!(LargeBinaryArray, |b: &'a [u8]| b);
    Err(bad(path, format!("column `{name}` has type {}, expected a string or binary column", col.data_type())))
}

fn read_parquet(path: &Path) -> Result<Rows> {
    let file = File::open(path).map_err(|e| CorpusError::Io { path: path.to_path_buf(), source: e })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad(path, format!("not a readable Parquet file: {e} (truncated or damaged?)")))?;
    let schema = builder.schema().clone();
    let find = |names: &'static [&'static str]| names.iter().find_map(|n| schema.index_of(n).ok().map(|i| (i, *n)));
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let text = find(TEXT_COLUMNS).ok_or_else(|| bad(path, format!("no text column (one of {TEXT_COLUMNS:?}); columns are {columns:?}")))?;
    let file_path =
        find(PATH_COLUMNS).ok_or_else(|| bad(path, format!("no path column (one of {PATH_COLUMNS:?}); columns are {columns:?}")))?;
    let repo = find(REPO_COLUMNS);
    let mut wanted: Vec<usize> = [Some(text.0), Some(file_path.0), repo.map(|r| r.0)].into_iter().flatten().collect();
    wanted.sort_unstable();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted.iter().copied());
    let reader = builder.with_projection(mask).build().map_err(|e| bad(path, e.to_string()))?;
    let stem = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut rows = Rows::default();
    let mut row = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| bad(path, format!("unreadable after row {row}: {e} (truncated or damaged file?)")))?;
        // Column positions in the projected batch follow the projected schema's order.
        let col = |name: &str| batch.column_by_name(name).expect("projected column is present");
        let texts = column_strings(path, text.1, col(text.1).as_ref())?;
        let paths = column_strings(path, file_path.1, col(file_path.1).as_ref())?;
        let repos = match repo {
            Some((_, name)) => Some(column_strings(path, name, col(name).as_ref())?),
            None => None,
        };
        for i in 0..batch.num_rows() {
            row += 1;
            let p = paths(i).and_then(|p| std::str::from_utf8(p).ok());
            let (Some(t), Some(p)) = (texts(i), p) else {
                warn!(file = %path.display(), row, "null text or path; skipped");
                rows.bad_records += 1;
                continue;
            };
            let r = match repos.as_ref().and_then(|r| r(i)) {
                Some(r) => String::from_utf8_lossy(r).into_owned(),
                None => format!("{stem}#{row}"),
            };
            rows.push(r, p.to_string(), t.to_vec());
        }
    }
    Ok(rows)
}
