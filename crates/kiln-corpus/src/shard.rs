//! Parquet shards of samples, written atomically.
//!
//! **Output schema** (one row per sample; `shard-NNNNN.parquet`; zstd pages for `text`, `id`,
//! `files.path`, `files.end` and `bytes`, the small columns plain):
//!
//! | column    | type | meaning |
//! |-----------|------|---------|
//! | id        | `utf8` | stable id: xxh3-128 hex of repo name + the sample's file paths |
//! | repo      | `utf8` | repository name |
//! | languages | `list<utf8>` | distinct languages of the files, sorted |
//! | text      | `utf8` | files rendered with path comments ([`kiln_repo::render`]), dependency ordered |
//! | files     | `list<struct{path: utf8, language: utf8?, start: u64, end: u64}>` | per file, `text[start..end]` is the file's text exactly (its path header is the line before `start`) |
//! | n_files   | `u32` | number of files |
//! | bytes     | `u64` | `text` length in bytes |
//!
//! Task candidate files (`tasks/task-I-of-N.parquet`) carry five more columns that only the merge
//! needs: `input` (u32, index in the sorted input list), `seq` (u32, sample number within the
//! input), `content_hash` (`utf8`, xxh3-128 hex of `text`), `bands` (`list<u64>`, the LSH band keys
//! of the MinHash signature) and `contaminated_by` (`list<utf8>`, benchmark task ids); their
//! compressed columns use LZ4 (raw), since they are read once.
//!
//! **Row groups** hold at most [`ROW_GROUP_ROWS`] samples and close at the first sample that
//! brings their text to [`ROW_GROUP_TEXT_BYTES`]; the merge encodes several at once
//! ([`ShardWriter::with_workers`]) and the file is the same whatever their number.
//!
//! **Atomicity**: every file goes through [`AtomicFile`]: written under a temporary name in the
//! destination directory, flushed, `fsync`ed, then renamed over the final name (and the directory
//! fsynced). A crash or an I/O error (disk full) at any point leaves either the old state or the
//! complete new file, never a half-written one; an abandoned temporary file is removed on drop.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow_array::builder::{ListBuilder, StringBuilder, UInt64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StringArray, StructArray, UInt32Array, UInt64Array};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use crate::error::{io_err, CorpusError, Result};

/// One file of a sample: where its text lies in the sample's text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileSpan {
    /// Repository-relative path.
    pub path: String,
    /// Language name, if known.
    pub language: Option<String>,
    /// Byte offset of the file's text in the sample text.
    pub start: u64,
    /// End (exclusive) of the file's text.
    pub end: u64,
}

/// One sample (a row of a shard or of a task candidate file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// Stable id (see the module docs).
    pub id: String,
    /// Repository name.
    pub repo: String,
    /// Distinct languages, sorted.
    pub languages: Vec<String>,
    /// Rendered text.
    pub text: String,
    /// Per-file spans, in text order.
    pub files: Vec<FileSpan>,
    /// Candidate-only: index of the input in the sorted input list.
    pub input: u32,
    /// Candidate-only: sample number within its input.
    pub seq: u32,
    /// Candidate-only: xxh3-128 hex of `text`.
    pub content_hash: String,
    /// Candidate-only: LSH band keys (empty when the text has no tokens).
    pub bands: Vec<u64>,
    /// Candidate-only: benchmark tasks the sample overlaps (empty when clean or not checked).
    pub contaminated_by: Vec<String>,
}

fn file_fields() -> Fields {
    Fields::from(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("language", DataType::Utf8, true),
        Field::new("start", DataType::UInt64, false),
        Field::new("end", DataType::UInt64, false),
    ])
}

/// The schema of output shards, or of task candidate files when `candidate`.
pub fn schema(candidate: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("repo", DataType::Utf8, false),
        Field::new("languages", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
        Field::new("text", DataType::Utf8, false),
        Field::new("files", DataType::List(Arc::new(Field::new("item", DataType::Struct(file_fields()), true))), false),
        Field::new("n_files", DataType::UInt32, false),
        Field::new("bytes", DataType::UInt64, false),
    ];
    if candidate {
        fields.extend([
            Field::new("input", DataType::UInt32, false),
            Field::new("seq", DataType::UInt32, false),
            Field::new("content_hash", DataType::Utf8, false),
            Field::new("bands", DataType::List(Arc::new(Field::new("item", DataType::UInt64, true))), false),
            Field::new("contaminated_by", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
        ]);
    }
    Arc::new(Schema::new(fields))
}

fn string_list<'a>(rows: impl Iterator<Item = &'a [String]>) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for row in rows {
        for s in row {
            b.values().append_value(s);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

/// The `text` column, its buffer sized up front: growing it by doubling copied every text once
/// more and faulted in fresh pages at each step (a tenth of a build without the parse).
fn text_array(samples: &[Sample]) -> StringArray {
    let bytes = samples.iter().map(|s| s.text.len()).sum();
    let mut b = StringBuilder::with_capacity(samples.len(), bytes);
    for s in samples {
        b.append_value(&s.text);
    }
    b.finish()
}

/// Builds one record batch from samples.
pub fn to_batch(samples: &[Sample], candidate: bool) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let files: Vec<&FileSpan> = samples.iter().flat_map(|s| &s.files).collect();
    let file_struct = StructArray::try_new(
        file_fields(),
        vec![
            Arc::new(StringArray::from_iter_values(files.iter().map(|f| &f.path))) as ArrayRef,
            Arc::new(files.iter().map(|f| f.language.as_deref()).collect::<StringArray>()),
            Arc::new(UInt64Array::from_iter_values(files.iter().map(|f| f.start))),
            Arc::new(UInt64Array::from_iter_values(files.iter().map(|f| f.end))),
        ],
        None,
    )?;
    let files_list = ListArray::try_new(
        Arc::new(Field::new("item", DataType::Struct(file_fields()), true)),
        OffsetBuffer::from_lengths(samples.iter().map(|s| s.files.len())),
        Arc::new(file_struct),
        None,
    )?;
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(samples.iter().map(|s| &s.id))),
        Arc::new(StringArray::from_iter_values(samples.iter().map(|s| &s.repo))),
        string_list(samples.iter().map(|s| s.languages.as_slice())),
        Arc::new(text_array(samples)),
        Arc::new(files_list),
        Arc::new(UInt32Array::from_iter_values(samples.iter().map(|s| s.files.len() as u32))),
        Arc::new(UInt64Array::from_iter_values(samples.iter().map(|s| s.text.len() as u64))),
    ];
    if candidate {
        let mut bands = ListBuilder::new(UInt64Builder::new());
        for s in samples {
            bands.values().append_slice(&s.bands);
            bands.append(true);
        }
        cols.extend([
            Arc::new(UInt32Array::from_iter_values(samples.iter().map(|s| s.input))) as ArrayRef,
            Arc::new(UInt32Array::from_iter_values(samples.iter().map(|s| s.seq))),
            Arc::new(StringArray::from_iter_values(samples.iter().map(|s| &s.content_hash))),
            Arc::new(bands.finish()),
            string_list(samples.iter().map(|s| s.contaminated_by.as_slice())),
        ]);
    }
    RecordBatch::try_new(schema(candidate), cols)
}

/// Reads samples back from a batch (either schema; candidate-only fields default when absent).
pub fn from_batch(batch: &RecordBatch) -> std::result::Result<Vec<Sample>, String> {
    let col = |name: &str| batch.column_by_name(name).ok_or_else(|| format!("missing column `{name}`"));
    let strs = |name: &str| -> std::result::Result<&StringArray, String> {
        col(name)?.as_string_opt::<i32>().ok_or_else(|| format!("column `{name}` is not utf8"))
    };
    let lists = |name: &str| -> std::result::Result<&ListArray, String> {
        col(name)?.as_list_opt::<i32>().ok_or_else(|| format!("column `{name}` is not a list"))
    };
    let ids = strs("id")?;
    let repos = strs("repo")?;
    let texts = strs("text")?;
    let langs = lists("languages")?;
    let files = lists("files")?;
    let optional_u32 = |name: &str| batch.column_by_name(name).and_then(|c| c.as_primitive_opt::<UInt32Type>().cloned());
    let inputs = optional_u32("input");
    let seqs = optional_u32("seq");
    let hashes = batch.column_by_name("content_hash").and_then(|c| c.as_string_opt::<i32>().cloned());
    let bands = batch.column_by_name("bands").and_then(|c| c.as_list_opt::<i32>().cloned());
    let contam = batch.column_by_name("contaminated_by").and_then(|c| c.as_list_opt::<i32>().cloned());
    let str_list = |l: &ListArray, i: usize| -> std::result::Result<Vec<String>, String> {
        let v = l.value(i);
        let a = v.as_string_opt::<i32>().ok_or("list item is not utf8")?;
        Ok(a.iter().map(|s| s.unwrap_or_default().to_string()).collect())
    };
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let fv = files.value(i);
        let fs = fv.as_struct_opt().ok_or("`files` items are not structs")?;
        let fcol = |name: &str| fs.column_by_name(name).ok_or_else(|| format!("`files` lacks field `{name}`"));
        let paths = fcol("path")?.as_string_opt::<i32>().ok_or("files.path is not utf8")?;
        let fl = fcol("language")?.as_string_opt::<i32>().ok_or("files.language is not utf8")?;
        let starts = fcol("start")?.as_primitive_opt::<UInt64Type>().ok_or("files.start is not u64")?;
        let ends = fcol("end")?.as_primitive_opt::<UInt64Type>().ok_or("files.end is not u64")?;
        let spans = (0..fs.len())
            .map(|k| FileSpan {
                path: paths.value(k).to_string(),
                language: fl.is_valid(k).then(|| fl.value(k).to_string()),
                start: starts.value(k),
                end: ends.value(k),
            })
            .collect();
        out.push(Sample {
            id: ids.value(i).to_string(),
            repo: repos.value(i).to_string(),
            languages: str_list(langs, i)?,
            text: texts.value(i).to_string(),
            files: spans,
            input: inputs.as_ref().map_or(0, |a| a.value(i)),
            seq: seqs.as_ref().map_or(0, |a| a.value(i)),
            content_hash: hashes.as_ref().map_or_else(String::new, |a| a.value(i).to_string()),
            bands: bands.as_ref().map_or_else(Vec::new, |a| a.value(i).as_primitive::<UInt64Type>().values().to_vec()),
            contaminated_by: match &contam {
                Some(a) => str_list(a, i)?,
                None => Vec::new(),
            },
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Atomic files

/// A file that appears under its final name only when [`AtomicFile::commit`] succeeds: kiln-base's
/// [`kiln_base::fs::AtomicFile`] (the one atomic write), with its errors as [`CorpusError::Io`].
#[derive(Debug)]
pub struct AtomicFile(kiln_base::fs::AtomicFile);

/// The corpus error for an atomic write's error, naming the file it concerns.
fn write_err(e: kiln_base::fs::WriteError) -> CorpusError {
    CorpusError::Io { path: e.path, source: e.source }
}

impl AtomicFile {
    /// Creates `.NAME.tmp-PID` next to `dest` (same directory, so the rename is atomic).
    pub fn create(dest: &Path) -> Result<AtomicFile> {
        kiln_base::fs::AtomicFile::create(dest).map(AtomicFile).map_err(write_err)
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        self.0.dest()
    }

    /// Flushes, fsyncs and renames to the final name, then fsyncs the directory so the rename
    /// itself survives a crash.
    pub fn commit(self) -> Result<()> {
        self.0.commit().map_err(write_err)
    }

    /// Writes a whole file atomically.
    pub fn write_all_to(dest: &Path, bytes: &[u8]) -> Result<()> {
        let mut f = AtomicFile::create(dest)?;
        f.write_all(bytes).map_err(io_err(dest))?;
        f.commit()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

// ---------------------------------------------------------------------------------------------
// Writer / reader

/// The leaf columns written compressed: the text, and the per-row strings and offsets that
/// zstd still halves.
const COMPRESSED_COLUMNS: [&[&str]; 5] =
    [&["text"], &["id"], &["files", "list", "item", "path"], &["files", "list", "item", "end"], &["bytes"]];

/// Most samples per row group: a reader holds a few row groups of text at a time.
pub const ROW_GROUP_ROWS: usize = 4096;
/// Most text per row group (a row group closes at the first sample reaching it; one sample is
/// never split): keeps a reader's and the writer's memory bounded when samples are large (4096
/// repository samples of a megabyte would be a 4 GB row group), and gives the merge's parallel
/// encoding units of work.
pub const ROW_GROUP_TEXT_BYTES: u64 = 32 << 20;

/// Streams samples into one Parquet file (zstd; LZ4 for task candidate files). Generic over the
/// sink so tests can inject I/O failures; the pipeline uses `ShardWriter<AtomicFile>`.
///
/// Rows are gathered into row groups ([`ROW_GROUP_ROWS`], [`ROW_GROUP_TEXT_BYTES`]); each full
/// row group is encoded (and compressed) on its own thread when the writer has several
/// [`workers`](Self::with_workers), at most that many at once, and appended to the file in order,
/// so the file is the same whatever the worker count. Why: the merge writes every kept byte
/// through zstd on one thread, which caps a many-core build at a few hundred MB/s however many
/// tasks ran in parallel before it.
pub struct ShardWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    columns: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    path: PathBuf,
    candidate: bool,
    rows: u64,
    /// The row group being gathered: slices of the batches written.
    gathered: Vec<RecordBatch>,
    gathered_rows: usize,
    gathered_bytes: u64,
    /// Row groups handed to the file writer or to a worker so far.
    row_groups: usize,
    /// Row groups being encoded on worker threads, oldest first.
    encoding: VecDeque<JoinHandle<parquet::errors::Result<Vec<ArrowColumnChunk>>>>,
    workers: usize,
    /// [`ROW_GROUP_ROWS`] and [`ROW_GROUP_TEXT_BYTES`], smaller in tests.
    row_group_rows: usize,
    row_group_bytes: u64,
}

impl<W: Write + Send> ShardWriter<W> {
    /// Starts a file; `path` is used in error messages. Encodes on the calling thread.
    pub fn new(sink: W, path: &Path, candidate: bool) -> Result<Self> {
        // Intermediate task files are written once and read once by the merge: LZ4, ~7 % off a
        // build over the cargo registry against zstd level 1 (their files ~1.45x larger). Final
        // shards are kept: zstd level 3 (zstd's default).
        let codec = if candidate { Compression::LZ4_RAW } else { Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level")) };
        // Only the columns compression shrinks are compressed: the other ones are a few bytes
        // per row (or random, like band keys), and every compressed column chunk creates a
        // codec context when written and another when read (zstd's: 6 % of a build over 400
        // small repositories).
        let mut props = WriterProperties::builder().set_compression(Compression::UNCOMPRESSED);
        for column in COMPRESSED_COLUMNS {
            props = props.set_column_compression(ColumnPath::new(column.iter().map(|c| c.to_string()).collect()), codec);
        }
        let props = props
            // Sample texts are all distinct: a dictionary page for them is built, found useless
            // and thrown away for every row group (5 % of a corpus build's time). Off for `text`.
            .set_column_dictionary_enabled(ColumnPath::from("text"), false)
            .build();
        let schema = schema(candidate);
        // ArrowWriter sets up the file as an Arrow reader expects it (the Arrow schema in the
        // footer); its lower half then takes row groups encoded anywhere.
        let (file, columns) = ArrowWriter::try_new(sink, schema.clone(), Some(props))
            .and_then(|w| w.into_serialized_writer())
            .map_err(|e| pq_err(path, e))?;
        Ok(ShardWriter {
            file,
            columns,
            schema,
            path: path.to_path_buf(),
            candidate,
            rows: 0,
            gathered: Vec::new(),
            gathered_rows: 0,
            gathered_bytes: 0,
            row_groups: 0,
            encoding: VecDeque::new(),
            workers: 1,
            row_group_rows: ROW_GROUP_ROWS,
            row_group_bytes: ROW_GROUP_TEXT_BYTES,
        })
    }

    #[cfg(test)]
    fn with_row_group_limits(mut self, rows: usize, bytes: u64) -> Self {
        (self.row_group_rows, self.row_group_bytes) = (rows, bytes);
        self
    }

    /// Encodes up to `workers` row groups at once on threads of their own (1: on the calling
    /// thread). Memory: up to `workers` row groups of text plus their encoded pages.
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Appends samples.
    pub fn write(&mut self, samples: &[Sample]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        let batch = to_batch(samples, self.candidate).map_err(|e| pq_err(&self.path, e))?;
        self.write_batch(&batch)
    }

    /// Appends a record batch already in this file's schema (the merge's kept rows).
    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if batch.schema().fields() != self.schema.fields() {
            return Err(pq_err(&self.path, format!("rows in the wrong schema: {:?}, expected {:?}", batch.schema(), self.schema)));
        }
        let text = batch
            .column_by_name("text")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| pq_err(&self.path, "rows lack the utf8 column `text`"))?
            .clone();
        let mut start = 0;
        for i in 0..batch.num_rows() {
            self.gathered_rows += 1;
            self.gathered_bytes += text.value_length(i) as u64;
            if self.gathered_rows == self.row_group_rows || self.gathered_bytes >= self.row_group_bytes {
                self.gathered.push(batch.slice(start, i + 1 - start));
                start = i + 1;
                self.end_row_group()?;
            }
        }
        if start < batch.num_rows() {
            self.gathered.push(batch.slice(start, batch.num_rows() - start));
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Hands the gathered rows over as one row group: encoded here, or on a new worker thread
    /// after waiting for the oldest one when all workers are busy.
    fn end_row_group(&mut self) -> Result<()> {
        let rows = std::mem::take(&mut self.gathered);
        self.gathered_rows = 0;
        self.gathered_bytes = 0;
        if rows.is_empty() {
            return Ok(());
        }
        let writers = self.columns.create_column_writers(self.row_groups).map_err(|e| pq_err(&self.path, e))?;
        self.row_groups += 1;
        if self.workers == 1 {
            let chunks = encode_row_group(writers, &self.schema, &rows).map_err(|e| pq_err(&self.path, e))?;
            return self.append(chunks);
        }
        if self.encoding.len() >= self.workers {
            self.append_oldest()?;
        }
        let schema = self.schema.clone();
        self.encoding.push_back(std::thread::spawn(move || encode_row_group(writers, &schema, &rows)));
        Ok(())
    }

    fn append_oldest(&mut self) -> Result<()> {
        let Some(worker) = self.encoding.pop_front() else { return Ok(()) };
        let chunks = worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)).map_err(|e| pq_err(&self.path, e))?;
        self.append(chunks)
    }

    /// Writes one encoded row group to the file.
    fn append(&mut self, chunks: Vec<ArrowColumnChunk>) -> Result<()> {
        let path = &self.path;
        let mut row_group = self.file.next_row_group().map_err(|e| pq_err(path, e))?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group).map_err(|e| pq_err(path, e))?;
        }
        row_group.close().map_err(|e| pq_err(path, e))?;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the last row group and the footer and returns the sink (commit it if it is an
    /// [`AtomicFile`]).
    pub fn finish(mut self) -> Result<W> {
        self.end_row_group()?;
        while !self.encoding.is_empty() {
            self.append_oldest()?;
        }
        let path = self.path;
        self.file.into_inner().map_err(|e| pq_err(&path, e))
    }
}

/// Encodes rows as one row group's column chunks (the work `ArrowWriter::write` does inline).
fn encode_row_group(
    mut writers: Vec<ArrowColumnWriter>,
    schema: &SchemaRef,
    rows: &[RecordBatch],
) -> parquet::errors::Result<Vec<ArrowColumnChunk>> {
    for batch in rows {
        let mut writer = writers.iter_mut();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            for leaf in compute_leaves(field, column)? {
                writer.next().expect("one column writer per leaf").write(&leaf)?;
            }
        }
    }
    writers.into_iter().map(|w| w.close()).collect()
}

fn pq_err(path: &Path, e: impl std::fmt::Display) -> CorpusError {
    CorpusError::Parquet { path: path.to_path_buf(), message: e.to_string() }
}

/// Writes `samples` to `dest` atomically.
pub fn write_file(dest: &Path, samples: &[Sample], candidate: bool) -> Result<()> {
    let mut w = ShardWriter::new(AtomicFile::create(dest)?, dest, candidate)?;
    w.write(samples)?;
    w.finish()?.commit()
}

/// Reads a Parquet file of samples in batches of `batch_rows`, calling `f` on each batch.
pub fn read_file(path: &Path, batch_rows: usize, mut f: impl FnMut(Vec<Sample>) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(io_err(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| pq_err(path, e))?
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(|e| pq_err(path, e))?;
    for batch in reader {
        let batch = batch.map_err(|e| pq_err(path, e))?;
        f(from_batch(&batch).map_err(|m| pq_err(path, m))?)?;
    }
    Ok(())
}

/// Reads a whole file (small files and tests).
pub fn read_all(path: &Path) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    read_file(path, 1024, |b| {
        out.extend(b);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn sample(i: usize) -> Sample {
        let text = format!("# a.py\nimport os\nprint({i})\n").repeat(50);
        Sample {
            id: format!("{i:032x}"),
            repo: "r".into(),
            languages: vec!["Python".into()],
            files: vec![FileSpan { path: "a.py".into(), language: Some("Python".into()), start: 7, end: text.len() as u64 }],
            text,
            input: 0,
            seq: i as u32,
            content_hash: format!("{i:032x}"),
            bands: vec![i as u64; 4],
            contaminated_by: Vec::new(),
        }
    }

    /// Row groups close at the row limit or at the first sample reaching the text limit, however
    /// the rows arrive in batches, and the file is byte for byte the same whatever the number of
    /// encoding workers.
    #[test]
    fn row_groups_follow_the_limits_and_workers_do_not_change_the_file() {
        let samples: Vec<Sample> = (0..61)
            .map(|i| {
                let mut s = sample(i);
                s.text.truncate(40 + (i * 7919) % 1400);
                s.files[0].end = s.text.len() as u64;
                s
            })
            .collect();
        let (max_rows, max_bytes) = (8, 5000u64);
        let mut want = Vec::new();
        let (mut rows, mut bytes) = (0, 0u64);
        for s in &samples {
            rows += 1;
            bytes += s.text.len() as u64;
            if rows == max_rows || bytes >= max_bytes {
                want.push(rows as i64);
                (rows, bytes) = (0, 0);
            }
        }
        if rows > 0 {
            want.push(rows as i64);
        }
        assert!(want.iter().any(|&r| r < max_rows as i64) && want.contains(&(max_rows as i64)), "both limits are exercised: {want:?}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.parquet");
        let mut files = Vec::new();
        for workers in [1, 2, 3] {
            let mut w = ShardWriter::new(Vec::new(), Path::new("mem.parquet"), false)
                .unwrap()
                .with_workers(workers)
                .with_row_group_limits(max_rows, max_bytes);
            let mut at = 0;
            for (k, n) in [7, 1, 13, 0, 2, 30, 100].into_iter().enumerate() {
                let end = (at + n).min(samples.len());
                if k % 2 == 0 {
                    w.write(&samples[at..end]).unwrap();
                } else {
                    w.write_batch(&to_batch(&samples[at..end], false).unwrap()).unwrap();
                }
                at = end;
            }
            assert_eq!(w.rows(), samples.len() as u64);
            let bytes = w.finish().unwrap();
            std::fs::write(&path, &bytes).unwrap();
            let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
            let got: Vec<i64> = reader.metadata().row_groups().iter().map(|g| g.num_rows()).collect();
            assert_eq!(got, want, "{workers} workers");
            files.push(bytes);
        }
        assert!(files.iter().all(|f| f == &files[0]), "same bytes with 1, 2 and 3 workers");
        let back = read_all(&path).unwrap();
        assert_eq!(
            back.iter().map(|b| (&b.id, &b.text, &b.files)).collect::<Vec<_>>(),
            samples.iter().map(|s| (&s.id, &s.text, &s.files)).collect::<Vec<_>>()
        );
    }

    /// Rows of another schema are refused with the file's name, not written.
    #[test]
    fn rows_of_the_wrong_schema_are_refused() {
        let mut w = ShardWriter::new(Vec::new(), Path::new("out/shard-00000.parquet"), false).unwrap();
        let err = w.write_batch(&to_batch(&[sample(1)], true).unwrap()).unwrap_err().to_string();
        assert!(err.contains("shard-00000.parquet") && err.contains("wrong schema"), "{err}");
        assert_eq!(w.rows(), 0);
    }

    /// zstd (shards) or LZ4 (task files) on the columns listed in COMPRESSED_COLUMNS (each path
    /// must name a real leaf, or the setting silently does nothing), plain elsewhere; rows
    /// round-trip.
    #[test]
    fn only_the_listed_columns_are_compressed_and_rows_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let samples: Vec<Sample> = (0..20).map(sample).collect();
        for candidate in [false, true] {
            let path = dir.path().join(format!("c{candidate}.parquet"));
            write_file(&path, &samples, candidate).unwrap();
            let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
            let mut compressed = Vec::new();
            for c in reader.metadata().row_group(0).columns() {
                let name = c.column_path().string();
                match c.compression() {
                    Compression::ZSTD(_) if !candidate => compressed.push(name),
                    Compression::LZ4_RAW if candidate => compressed.push(name),
                    Compression::UNCOMPRESSED => {}
                    other => panic!("{name}: unexpected codec {other:?} (candidate {candidate})"),
                }
            }
            let mut want: Vec<String> = COMPRESSED_COLUMNS.iter().map(|p| p.join(".")).collect();
            want.sort();
            compressed.sort();
            assert_eq!(compressed, want, "candidate {candidate}");
            let back = read_all(&path).unwrap();
            assert_eq!(back.len(), samples.len());
            for (b, s) in back.iter().zip(&samples) {
                assert_eq!((&b.id, &b.text, &b.files), (&s.id, &s.text, &s.files));
                if candidate {
                    assert_eq!((&b.bands, b.seq, &b.content_hash), (&s.bands, s.seq, &s.content_hash));
                }
            }
        }
    }
}
