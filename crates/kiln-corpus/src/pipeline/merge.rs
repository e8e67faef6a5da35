//! The merge: global exact and near dedup and sample-level decontamination over every task's
//! candidates, then the kept rows streamed, in input order, into the output shards, and the
//! manifest written last.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_select::filter::filter_record_batch;
use kiln_base::UnionFind;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use sha2::{Digest, Sha256};
use tracing::info;

use super::task::read_marker;
use super::BuildPlan;
use crate::error::{io_err, CorpusError, Result};
use crate::manifest::{ContaminationRecord, LangCount, Manifest, SampleCounts, ShardInfo, TaskReport, MANIFEST_FORMAT, MANIFEST_VERSION};
use crate::shard::{self, AtomicFile, ShardWriter};

/// Rows per batch when streaming task files in the merge.
const MERGE_BATCH_ROWS: usize = 1024;

/// What the merge keeps in memory per candidate sample.
struct Light {
    id: String,
    repo: String,
    input: u32,
    seq: u32,
    hash: String,
    bands: Vec<u64>,
    contaminated_by: Vec<String>,
}

fn read_light(path: &Path, out: &mut Vec<Light>) -> Result<()> {
    let pq = |e: &dyn std::fmt::Display| CorpusError::Parquet { path: path.to_path_buf(), message: e.to_string() };
    let file = File::open(path).map_err(io_err(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| pq(&e))?;
    // Every column but `text` and `files` (the bulk of the bytes).
    let names = ["id", "repo", "input", "seq", "content_hash", "bands", "contaminated_by"];
    let schema = builder.schema().clone();
    let roots: Vec<usize> = names.iter().filter_map(|n| schema.index_of(n).ok()).collect();
    if roots.len() != names.len() {
        return Err(pq(&"not a kiln task candidate file (columns missing)"));
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder.with_projection(mask).with_batch_size(8192).build().map_err(|e| pq(&e))?;
    for batch in reader {
        let batch = batch.map_err(|e| pq(&e))?;
        let c = |n: &str| batch.column_by_name(n).expect("projected");
        let (ids, repos, hashes) = (c("id").as_string::<i32>(), c("repo").as_string::<i32>(), c("content_hash").as_string::<i32>());
        let (inputs, seqs) = (c("input").as_primitive::<UInt32Type>(), c("seq").as_primitive::<UInt32Type>());
        let (bands, contam) = (c("bands").as_list::<i32>(), c("contaminated_by").as_list::<i32>());
        for i in 0..batch.num_rows() {
            let cv = contam.value(i);
            out.push(Light {
                id: ids.value(i).to_string(),
                repo: repos.value(i).to_string(),
                input: inputs.value(i),
                seq: seqs.value(i),
                hash: hashes.value(i).to_string(),
                bands: bands.value(i).as_primitive::<UInt64Type>().values().to_vec(),
                contaminated_by: cv.as_string::<i32>().iter().flatten().map(String::from).collect(),
            });
        }
    }
    Ok(())
}

/// The dedup and decontamination decisions over all candidates.
struct Decisions {
    keep: HashSet<(u32, u32)>,
    counts: SampleCounts,
    contamination: Vec<ContaminationRecord>,
}

fn decide(lights: &[Light], bands: usize) -> Decisions {
    let key = |i: usize| (&lights[i].id, lights[i].input, lights[i].seq);
    let mut counts = SampleCounts { candidates: lights.len() as u64, ..SampleCounts::default() };
    // Exact: smallest key per content hash survives.
    let mut by_hash: HashMap<&str, usize> = HashMap::new();
    for (i, l) in lights.iter().enumerate() {
        let e = by_hash.entry(l.hash.as_str()).or_insert(i);
        if key(i) < key(*e) {
            *e = i;
        }
    }
    let exact_kept: Vec<usize> = (0..lights.len()).filter(|&i| by_hash[lights[i].hash.as_str()] == i).collect();
    counts.exact_duplicates = (lights.len() - exact_kept.len()) as u64;
    // Near: the same banding as `dedup::lsh_candidate_pairs` (a bucket links its members to its
    // first member), on the exact survivors.
    let mut uf = UnionFind::new(exact_kept.len());
    for b in 0..bands {
        let mut buckets: HashMap<u64, usize> = HashMap::new();
        for (k, &i) in exact_kept.iter().enumerate() {
            let Some(&h) = lights[i].bands.get(b) else { continue };
            match buckets.get(&h) {
                Some(&first) => {
                    uf.union(first, k);
                }
                None => {
                    buckets.insert(h, k);
                }
            }
        }
    }
    let mut rep: HashMap<usize, usize> = HashMap::new();
    for (k, &i) in exact_kept.iter().enumerate() {
        let root = uf.find(k);
        let e = rep.entry(root).or_insert(i);
        if key(i) < key(*e) {
            *e = i;
        }
    }
    let mut near_kept = Vec::new();
    for (k, &i) in exact_kept.iter().enumerate() {
        let root = uf.find(k);
        if rep[&root] == i {
            near_kept.push(i);
        }
    }
    counts.near_duplicates = (exact_kept.len() - near_kept.len()) as u64;
    // Decontamination last, on the survivors (the paper's order: dedup, then decontaminate).
    let mut keep = HashSet::new();
    let mut contamination = Vec::new();
    for i in near_kept {
        let l = &lights[i];
        if l.contaminated_by.is_empty() {
            keep.insert((l.input, l.seq));
        } else {
            contamination.push(ContaminationRecord {
                sample: l.id.clone(),
                repo: l.repo.clone(),
                path: None,
                tasks: l.contaminated_by.clone(),
            });
        }
    }
    counts.contaminated = contamination.len() as u64;
    counts.kept = keep.len() as u64;
    Decisions { keep, counts, contamination }
}

/// A task file read in order, handed out as record batches (candidate schema) of one input's
/// rows at a time.
///
/// The merge moves rows as Arrow arrays from the task file to the shard writer: a kept row's
/// text is never turned back into a `String` and re-gathered into a new array (two copies of
/// every text, and their page faults, in the earlier row-by-row merge).
struct TaskStream {
    reader: ParquetRecordBatchReader,
    path: PathBuf,
    batch: Option<RecordBatch>,
    /// The next unread row of `batch`.
    row: usize,
}

impl TaskStream {
    fn open(path: &Path) -> Result<TaskStream> {
        let file = File::open(path).map_err(io_err(path))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(MERGE_BATCH_ROWS).build())
            .map_err(|e| CorpusError::Parquet { path: path.to_path_buf(), message: e.to_string() })?;
        Ok(TaskStream { reader, path: path.to_path_buf(), batch: None, row: 0 })
    }

    /// The batch holding the next unread row (a cheap clone: its columns are shared), that
    /// row's index and its input; `None` when the stream is done.
    fn current(&mut self) -> Result<Option<(RecordBatch, usize, u32)>> {
        let pq = |path: &Path, m: String| CorpusError::Parquet { path: path.to_path_buf(), message: m };
        while self.batch.as_ref().is_none_or(|b| self.row >= b.num_rows()) {
            match self.reader.next() {
                Some(batch) => {
                    self.batch = Some(batch.map_err(|e| pq(&self.path, e.to_string()))?);
                    self.row = 0;
                }
                None => return Ok(None),
            }
        }
        let batch = self.batch.clone().expect("the loop above stops at a batch with rows left");
        let input = input_column(&batch)
            .ok_or_else(|| pq(&self.path, "not a kiln task candidate file (no u32 column `input`)".into()))?
            .value(self.row);
        Ok(Some((batch, self.row, input)))
    }

    /// The next rows of input `j` (a slice of the current batch), or `None` when the stream's
    /// next row belongs to another input or the stream is done. A task's rows are in input
    /// order, so calling this until `None` yields all of input `j`'s rows.
    fn take_input(&mut self, j: u32) -> Result<Option<RecordBatch>> {
        let Some((batch, start, input)) = self.current()? else { return Ok(None) };
        if input != j {
            return Ok(None);
        }
        let inputs = input_column(&batch).expect("checked by `current`");
        let mut end = start + 1;
        while end < batch.num_rows() && inputs.value(end) == j {
            end += 1;
        }
        self.row = end;
        Ok(Some(batch.slice(start, end - start)))
    }

    /// The input of the first row not taken yet, if any (after the merge: rows the merge would
    /// otherwise skip silently, such as rows out of input order).
    fn leftover_input(&mut self) -> Result<Option<u32>> {
        Ok(self.current()?.map(|(_, _, input)| input))
    }
}

/// The `input` column of a candidate batch.
fn input_column(batch: &RecordBatch) -> Option<&arrow_array::UInt32Array> {
    batch.column_by_name("input").and_then(|c| c.as_primitive_opt::<UInt32Type>())
}

/// The kept rows of a candidate batch, in the output schema (the candidate-only columns
/// dropped). Zero-copy when every row is kept.
fn kept_rows(rows: &RecordBatch, keep: &HashSet<(u32, u32)>, path: &Path) -> Result<RecordBatch> {
    let pq = |m: String| CorpusError::Parquet { path: path.to_path_buf(), message: m };
    let u32s = |name: &str| {
        rows.column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<UInt32Type>())
            .ok_or_else(|| pq(format!("not a kiln task candidate file (no u32 column `{name}`)")))
    };
    let (inputs, seqs) = (u32s("input")?, u32s("seq")?);
    let mask: BooleanArray = (0..rows.num_rows()).map(|i| Some(keep.contains(&(inputs.value(i), seqs.value(i))))).collect();
    let output = shard::schema(false);
    let columns = output
        .fields()
        .iter()
        .map(|f| {
            rows.column_by_name(f.name()).cloned().ok_or_else(|| pq(format!("not a kiln task candidate file (no column `{}`)", f.name())))
        })
        .collect::<Result<Vec<_>>>()?;
    let projected = RecordBatch::try_new(output, columns).map_err(|e| pq(e.to_string()))?;
    if mask.true_count() == rows.num_rows() {
        return Ok(projected);
    }
    filter_record_batch(&projected, &mask).map_err(|e| pq(e.to_string()))
}

/// Adds the rows' files to the per-language counts (`unknown` for files without a language).
fn count_languages(rows: &RecordBatch, languages: &mut BTreeMap<String, LangCount>, path: &Path) -> Result<()> {
    let pq = |m: &str| CorpusError::Parquet { path: path.to_path_buf(), message: m.to_string() };
    let files = rows.column_by_name("files").and_then(|c| c.as_list_opt::<i32>()).ok_or_else(|| pq("column `files` is not a list"))?;
    let spans = files.values().as_struct_opt().ok_or_else(|| pq("`files` items are not structs"))?;
    let field = |name: &str| spans.column_by_name(name).ok_or_else(|| pq("`files` lacks a field"));
    let langs = field("language")?.as_string_opt::<i32>().ok_or_else(|| pq("files.language is not utf8"))?;
    let starts = field("start")?.as_primitive_opt::<UInt64Type>().ok_or_else(|| pq("files.start is not u64"))?;
    let ends = field("end")?.as_primitive_opt::<UInt64Type>().ok_or_else(|| pq("files.end is not u64"))?;
    // Only the rows' own range of the (possibly sliced) list's values.
    let offsets = files.value_offsets();
    for k in offsets[0] as usize..offsets[rows.num_rows()] as usize {
        let name = if langs.is_valid(k) { langs.value(k) } else { "unknown" };
        let c = match languages.get_mut(name) {
            Some(c) => c,
            None => languages.entry(name.to_string()).or_default(),
        };
        c.files += 1;
        c.bytes += ends.value(k) - starts.value(k);
    }
    Ok(())
}

/// Output shards being written.
struct Shards<'p> {
    out: &'p Path,
    target: u64,
    /// The shard being written: its writer (which gathers row groups itself), path and the text
    /// bytes of the rows handed to it.
    current: Option<(ShardWriter<AtomicFile>, PathBuf, u64)>,
    done: Vec<ShardInfo>,
}

impl Shards<'_> {
    /// Appends kept rows (output schema).
    fn push(&mut self, rows: RecordBatch) -> Result<()> {
        let bytes = rows
            .column_by_name("bytes")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| CorpusError::Parquet { path: self.out.to_path_buf(), message: "kept rows lack the u64 column `bytes`".into() })?
            .clone();
        let mut start = 0;
        let mut shard_bytes = self.current.as_ref().map_or(0, |c| c.2);
        for i in 0..rows.num_rows() {
            shard_bytes += bytes.value(i);
            // A shard closes at the first sample that takes it to the target size (so a shard
            // can exceed it by one sample; a sample is never split).
            if shard_bytes >= self.target {
                self.write(rows.slice(start, i + 1 - start), shard_bytes)?;
                self.close()?;
                start = i + 1;
                shard_bytes = 0;
            }
        }
        if start < rows.num_rows() {
            self.write(rows.slice(start, rows.num_rows() - start), shard_bytes)?;
        }
        Ok(())
    }

    /// Hands rows to the current shard, opening it if needed; `shard_bytes` is its text size
    /// with them.
    fn write(&mut self, rows: RecordBatch, shard_bytes: u64) -> Result<()> {
        if self.current.is_none() {
            let name = format!("shard-{:05}.parquet", self.done.len());
            let path = self.out.join(&name);
            // The merge runs on one thread; its zstd work is spread over the build's threads.
            let writer = ShardWriter::new(AtomicFile::create(&path)?, &path, false)?.with_workers(rayon::current_num_threads());
            self.current = Some((writer, path, 0));
        }
        let (w, _, bytes) = self.current.as_mut().expect("opened above");
        w.write_batch(&rows)?;
        *bytes = shard_bytes;
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if let Some((w, path, text_bytes)) = self.current.take() {
            let rows = w.rows();
            w.finish()?.commit()?;
            let (sha256, file_bytes) = sha256_file(&path)?;
            let file = path.file_name().expect("shard name").to_string_lossy().into_owned();
            info!(shard = %file, rows, text_bytes, "shard written");
            self.done.push(ShardInfo { file, rows, text_bytes, file_bytes, sha256 });
        }
        Ok(())
    }
}

/// sha256 (hex) and size of a file.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io_err(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, n))
}

/// The merge: global dedup and decontamination over all tasks' candidates, then the shards and
/// the manifest. Every task must be finished.
pub fn merge(plan: &BuildPlan) -> Result<Manifest> {
    let mut reports = Vec::with_capacity(plan.tasks);
    for t in 0..plan.tasks {
        let Some(marker) = read_marker(plan, t)? else {
            return Err(CorpusError::Plan(format!(
                "task {t} of {} is not finished (no {}); run `kiln corpus build ... --task {t} --tasks {}` first",
                plan.tasks,
                plan.task_path(t, "done").display(),
                plan.tasks
            )));
        };
        reports.push(marker.report);
    }
    let mut files = TaskReport { tasks: plan.tasks, ..TaskReport::default() };
    let mut lights = Vec::new();
    for (t, r) in reports.iter().enumerate() {
        files.merge(r);
        read_light(&plan.task_path(t, "parquet"), &mut lights)?;
    }
    files.inputs = plan.inputs.iter().map(|p| p.display().to_string()).collect();
    let d = decide(&lights, plan.config.lsh.bands);
    drop(lights);
    info!(
        candidates = d.counts.candidates,
        exact = d.counts.exact_duplicates,
        near = d.counts.near_duplicates,
        contaminated = d.counts.contaminated,
        kept = d.counts.kept,
        "dedup and decontamination"
    );

    // The old manifest goes first, so no reader trusts it while shards are rewritten; then stray
    // shards of an interrupted merge.
    let mpath = plan.out.join("manifest.json");
    match std::fs::remove_file(&mpath) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CorpusError::Io { path: mpath, source: e }),
    }
    for entry in std::fs::read_dir(&plan.out).map_err(io_err(&plan.out))? {
        let entry = entry.map_err(io_err(&plan.out))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("shard-") && name.ends_with(".parquet") {
            std::fs::remove_file(entry.path()).map_err(io_err(entry.path()))?;
        }
    }

    let mut streams: Vec<TaskStream> = (0..plan.tasks).map(|t| TaskStream::open(&plan.task_path(t, "parquet"))).collect::<Result<_>>()?;
    let mut shards = Shards { out: &plan.out, target: plan.config.shard_bytes, current: None, done: Vec::new() };
    let mut languages: BTreeMap<String, LangCount> = BTreeMap::new();
    // Input j lives in task j % N, and a task's rows are in input order: visiting inputs in
    // order and draining the matching task stream yields the global input order.
    for j in 0..plan.inputs.len() {
        let s = &mut streams[j % plan.tasks];
        while let Some(rows) = s.take_input(j as u32)? {
            let kept = kept_rows(&rows, &d.keep, &s.path)?;
            if kept.num_rows() > 0 {
                count_languages(&kept, &mut languages, &s.path)?;
                shards.push(kept)?;
            }
        }
    }
    shards.close()?;
    // Every row must have been visited, and exactly the kept ones written: a task file whose rows
    // are not in its inputs' order would otherwise lose rows without a word.
    for s in &mut streams {
        if let Some(input) = s.leftover_input()? {
            return Err(CorpusError::Parquet {
                path: s.path.clone(),
                message: format!("a row of input {input} is out of input order (the file was not written by this task); delete the task's .done marker to rerun it"),
            });
        }
    }
    let written: u64 = shards.done.iter().map(|s| s.rows).sum();
    if written != d.counts.kept {
        return Err(CorpusError::Plan(format!(
            "the merge wrote {written} samples but kept {} candidates: the task files in {} disagree with their candidates; delete that folder to rerun every task",
            d.counts.kept,
            plan.tasks_dir().display()
        )));
    }
    let contamination = files.contamination.iter().cloned().chain(d.contamination).collect();
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        version: MANIFEST_VERSION,
        kiln_version: env!("CARGO_PKG_VERSION").into(),
        inputs: files.inputs.clone(),
        tasks: plan.tasks,
        benchmarks: plan.benchmarks.as_ref().map(crate::decontam::BenchmarkSource::label),
        config: plan.config.clone(),
        files,
        samples: d.counts,
        languages,
        contamination,
        shards: shards.done,
    };
    // Written last: the commit point of the whole build.
    AtomicFile::write_all_to(&mpath, &serde_json::to_vec_pretty(&manifest).expect("manifest serialises"))?;
    info!(shards = manifest.shards.len(), kept = manifest.samples.kept, "manifest written");
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::{exact_duplicates, near_duplicates, LshParams, MinHasher};
    use xxhash_rust::xxh3::xxh3_128;

    /// The merge's band-key dedup (the fast, distributed path) agrees with the reference
    /// `dedup::exact_duplicates` + `dedup::near_duplicates` on the same texts.
    #[test]
    fn merge_dedup_agrees_with_reference_dedup() {
        let base: String = (0..300).map(|i| format!("let value_{i} = compute({i}, other_{i});\n")).collect();
        let mut texts: Vec<String> = Vec::new();
        for k in 0..12 {
            let mut t = base.clone();
            // Edits of growing size: from near copies (3 lines edited: J ~ 0.98) to different
            // documents (k = 10: every line). (25 edits per step, as before, started at J 0.85,
            // where detection is a coin flip, so the last assertion held by luck of the seed.)
            for e in 0..k * k * 3 {
                t = t.replace(&format!("value_{e} "), &format!("changed_{e}_{k} "));
            }
            texts.push(t);
        }
        texts.push(texts[0].clone()); // an exact copy
        texts.push(String::new()); // no tokens
        texts.push("completely unrelated text about something else entirely here".into());
        let params = LshParams::default();
        let hasher = MinHasher::from_params(&params);
        let (b, r) = (params.bands, params.rows);
        let ids: Vec<String> = (0..texts.len()).map(|i| format!("{:032x}", (i * 7919) % 101)).collect();
        let lights: Vec<Light> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let sig = hasher.signature(t);
                let bands = sig.band_keys(b, r);
                Light {
                    id: ids[i].clone(),
                    repo: "r".into(),
                    input: i as u32,
                    seq: 0,
                    hash: format!("{:032x}", xxh3_128(t.as_bytes())),
                    bands,
                    contaminated_by: vec![],
                }
            })
            .collect();
        let d = decide(&lights, b);
        let docs: Vec<(String, &str)> = ids.iter().cloned().zip(texts.iter().map(|s| s.as_str())).collect();
        let exact = exact_duplicates(&docs);
        let survivors: Vec<(String, &str)> = docs.iter().filter(|(id, _)| exact.keep.contains(id)).cloned().collect();
        let near = near_duplicates(&survivors, &params);
        let mut want: Vec<&String> = near.keep.iter().collect();
        want.sort();
        let mut got: Vec<&String> = (0..lights.len()).filter(|&i| d.keep.contains(&(i as u32, 0))).map(|i| &ids[i]).collect();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(d.counts.exact_duplicates as usize, exact.removed.len());
        assert_eq!(d.counts.near_duplicates as usize, near.removed.len());
        assert!(d.counts.near_duplicates >= 1, "planted near copies are found: {:?}", d.counts);
    }
}
