//! Megatron-LM indexed datasets (`megatron/core/datasets/indexed_dataset.py`): the format
//! Megatron, NeMo and datatrove read, and what kiln's trainer memory-maps.
//!
//! A dataset is a pair of files sharing a path prefix (data-pipeline.md §7):
//!
//! * `PREFIX.bin`: the tokens of every sequence, concatenated, little-endian, no header.
//! * `PREFIX.idx`, little-endian: `b"MMIDIDX\x00\x00"`, `u64` version 1, `u8` dtype code
//!   (8 = uint16, 4 = int32), `u64` sequence count N, `u64` document-index count D, then
//!   `int32[N]` sequence lengths (tokens), `int64[N]` sequence byte offsets into `.bin`, and
//!   `int64[D]` document indices: `0`, then the sequence count at the end of each document.
//!
//! **dtype**: uint16 when the vocabulary has fewer than 65,500 ids, else int32 (Megatron's rule;
//! int32, not uint32, is what Megatron's code table has). The writer checks every id against
//! the dtype, so a too-small dtype is an error, never a silent wrap.
//!
//! **Atomicity**: `.bin` and `.idx` are written under temporary names in the destination
//! directory, fsynced, and renamed into place only by [`MegatronWriter::finish`]; an
//! interrupted or failed write leaves the temporaries to be deleted and the final names
//! untouched. Two renames cannot be one atomic step, so the `.idx` is the commit marker: the old
//! `.idx` is removed first, then `.bin` (and any sidecar such as an SFT `.mask`) is renamed, then
//! `.idx`. A crash in between leaves a `.bin` without `.idx`, which the reader refuses; a present
//! `.idx` always describes the `.bin` beside it (the reader checks the sizes agree).
//!
//! **Memory**: the writer streams tokens to `.bin` and sequence lengths and document indices to
//! anonymous spill files; the offsets are recomputed from the lengths at the end. Its memory use
//! does not grow with the dataset.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use kiln_corpus::shard::AtomicFile;
use serde::{Deserialize, Serialize};

use crate::error::{io_err, DataError, Result};

/// The 9 magic bytes that start an `.idx`.
pub const MAGIC: &[u8; 9] = b"MMIDIDX\x00\x00";
/// The index version kiln writes and reads.
pub const VERSION: u64 = 1;
/// Header bytes before the arrays: magic, version, dtype code, N, D.
pub const HEADER_LEN: usize = 9 + 8 + 1 + 8 + 8;

/// On-disk token type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    /// `uint16` (Megatron code 8): vocabularies below 65,500 ids.
    #[serde(rename = "uint16")]
    U16,
    /// `int32` (Megatron code 4): larger vocabularies.
    #[serde(rename = "int32")]
    I32,
}

impl DType {
    /// Megatron's threshold: uint16 only while the vocabulary is smaller than this.
    pub const U16_VOCAB_LIMIT: usize = 65_500;

    /// The dtype Megatron picks for a vocabulary of `ids` ids.
    pub fn for_vocab(ids: usize) -> DType {
        if ids < Self::U16_VOCAB_LIMIT {
            DType::U16
        } else {
            DType::I32
        }
    }

    /// The Megatron dtype code.
    pub fn code(self) -> u8 {
        match self {
            DType::U16 => 8,
            DType::I32 => 4,
        }
    }

    /// The dtype of a Megatron code, if kiln supports it.
    pub fn from_code(code: u8) -> Option<DType> {
        match code {
            8 => Some(DType::U16),
            4 => Some(DType::I32),
            _ => None,
        }
    }

    /// Bytes per token.
    pub fn size(self) -> usize {
        match self {
            DType::U16 => 2,
            DType::I32 => 4,
        }
    }

    /// numpy's name for it.
    pub fn name(self) -> &'static str {
        match self {
            DType::U16 => "uint16",
            DType::I32 => "int32",
        }
    }

    /// The largest token id it holds.
    pub fn max_id(self) -> u64 {
        match self {
            DType::U16 => u64::from(u16::MAX),
            DType::I32 => i32::MAX as u64,
        }
    }
}

/// `PREFIX.bin`.
pub fn bin_path(prefix: &Path) -> PathBuf {
    with_suffix(prefix, ".bin")
}

/// `PREFIX.idx`.
pub fn idx_path(prefix: &Path) -> PathBuf {
    with_suffix(prefix, ".idx")
}

/// Appends a suffix to the file name (not `with_extension`, which would eat a dotted prefix
/// such as `data.v1`).
pub(crate) fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// What a finished dataset holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetCounts {
    /// Sequences (N).
    pub sequences: u64,
    /// Documents (D - 1).
    pub documents: u64,
    /// Tokens in `.bin`.
    pub tokens: u64,
}

// ---------------------------------------------------------------------------------------------
// Writer

/// Streams sequences into a new `PREFIX.bin/.idx` pair (see the module docs).
pub struct MegatronWriter {
    bin_path: PathBuf,
    idx_path: PathBuf,
    dtype: DType,
    bin: BufWriter<AtomicFile>,
    /// int32 sequence lengths, spilled.
    lengths: BufWriter<File>,
    /// int64 document indices, spilled (starts with the leading 0).
    docs: BufWriter<File>,
    counts: DatasetCounts,
    /// Sequences at the last `end_document`.
    closed: u64,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for MegatronWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MegatronWriter").field("bin", &self.bin_path).field("dtype", &self.dtype).field("counts", &self.counts).finish()
    }
}

impl MegatronWriter {
    /// Starts `PREFIX.bin/.idx` with tokens of `dtype`. Nothing appears under the final names
    /// before [`finish`](Self::finish).
    pub fn create(prefix: &Path, dtype: DType) -> Result<Self> {
        let bin_path = bin_path(prefix);
        let idx_path = idx_path(prefix);
        let dir = match prefix.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let bin = BufWriter::with_capacity(1 << 20, AtomicFile::create(&bin_path)?);
        let spill = || tempfile::tempfile_in(&dir).map(|f| BufWriter::with_capacity(1 << 16, f)).map_err(io_err(&dir));
        let lengths = spill()?;
        let mut docs = spill()?;
        docs.write_all(&0i64.to_le_bytes()).map_err(io_err(&dir))?;
        Ok(Self { bin_path, idx_path, dtype, bin, lengths, docs, counts: DatasetCounts::default(), closed: 0, scratch: Vec::new() })
    }

    /// The token type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Counts so far (documents: closed ones).
    pub fn counts(&self) -> DatasetCounts {
        self.counts
    }

    /// Appends one sequence. Every id must fit the dtype.
    pub fn add_sequence(&mut self, ids: &[u32]) -> Result<()> {
        if ids.len() > i32::MAX as usize {
            return Err(DataError::SequenceTooLong { path: self.bin_path.clone(), len: ids.len() });
        }
        let max = self.dtype.max_id();
        if let Some(&id) = ids.iter().find(|&&id| u64::from(id) > max) {
            return Err(DataError::IdOutOfRange { path: self.bin_path.clone(), id, dtype: self.dtype.name(), max });
        }
        self.scratch.clear();
        match self.dtype {
            DType::U16 => self.scratch.extend(ids.iter().flat_map(|&id| (id as u16).to_le_bytes())),
            DType::I32 => self.scratch.extend(ids.iter().flat_map(|&id| (id as i32).to_le_bytes())),
        }
        self.bin.write_all(&self.scratch).map_err(io_err(&self.bin_path))?;
        self.lengths.write_all(&(ids.len() as i32).to_le_bytes()).map_err(io_err(&self.idx_path))?;
        self.counts.sequences += 1;
        self.counts.tokens += ids.len() as u64;
        Ok(())
    }

    /// Closes the current document: the sequences added since the last call form one document.
    /// Does nothing when no sequence was added since (no empty documents).
    pub fn end_document(&mut self) -> Result<()> {
        if self.counts.sequences == self.closed {
            return Ok(());
        }
        self.docs.write_all(&(self.counts.sequences as i64).to_le_bytes()).map_err(io_err(&self.idx_path))?;
        self.closed = self.counts.sequences;
        self.counts.documents += 1;
        Ok(())
    }

    /// Appends a one-sequence document.
    pub fn add_document(&mut self, ids: &[u32]) -> Result<()> {
        self.add_sequence(ids)?;
        self.end_document()
    }

    /// Closes any open document, writes the index and moves both files into place.
    pub fn finish(self) -> Result<DatasetCounts> {
        self.finish_with(Vec::new())
    }

    /// [`finish`](Self::finish), committing `sidecars` (files that belong with the pair, like an
    /// SFT `.mask`) after `.bin` and before `.idx`, so the `.idx` stays the commit marker.
    pub(crate) fn finish_with(mut self, sidecars: Vec<AtomicFile>) -> Result<DatasetCounts> {
        self.end_document()?;
        let counts = self.counts;
        let bin = self.bin.into_inner().map_err(|e| DataError::Io { path: self.bin_path.clone(), source: e.into_error() })?;
        let idx = write_index(&self.idx_path, self.dtype, counts, self.lengths, self.docs)?;
        match std::fs::remove_file(&self.idx_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&self.idx_path)(e)),
            _ => {}
        }
        bin.commit()?;
        for s in sidecars {
            s.commit()?;
        }
        idx.commit()?;
        tracing::debug!(bin = %self.bin_path.display(), sequences = counts.sequences, documents = counts.documents, tokens = counts.tokens, "megatron dataset written");
        Ok(counts)
    }
}

/// Writes the `.idx` (not yet committed) from the spilled lengths and document indices.
fn write_index(path: &Path, dtype: DType, counts: DatasetCounts, lengths: BufWriter<File>, docs: BufWriter<File>) -> Result<AtomicFile> {
    let rewind = |w: BufWriter<File>| -> std::io::Result<File> {
        let mut f = w.into_inner().map_err(|e| e.into_error())?;
        f.seek(SeekFrom::Start(0))?;
        Ok(f)
    };
    let mut lengths = rewind(lengths).map_err(io_err(path))?;
    let mut docs = rewind(docs).map_err(io_err(path))?;
    let mut out = BufWriter::with_capacity(1 << 20, AtomicFile::create(path)?);
    let mut w = || -> std::io::Result<()> {
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        out.write_all(&[dtype.code()])?;
        out.write_all(&counts.sequences.to_le_bytes())?;
        out.write_all(&(counts.documents + 1).to_le_bytes())?;
        std::io::copy(&mut lengths, &mut out)?;
        // Offsets: running sum of the lengths, in bytes.
        lengths.seek(SeekFrom::Start(0))?;
        let mut r = BufReader::with_capacity(1 << 16, &mut lengths);
        let mut offset = 0i64;
        let mut buf = [0u8; 4];
        for _ in 0..counts.sequences {
            r.read_exact(&mut buf)?;
            out.write_all(&offset.to_le_bytes())?;
            offset += i64::from(i32::from_le_bytes(buf)) * dtype.size() as i64;
        }
        std::io::copy(&mut docs, &mut out)?;
        out.flush()
    };
    w().map_err(io_err(path))?;
    out.into_inner().map_err(|e| DataError::Io { path: path.to_path_buf(), source: e.into_error() })
}

// ---------------------------------------------------------------------------------------------
// Reader

/// A memory-mapped file, or nothing for an empty file (which cannot be mapped everywhere).
pub(crate) enum Bytes {
    Map(memmap2::Mmap),
    Empty,
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({})", self.as_slice().len())
    }
}

impl Bytes {
    pub(crate) fn open(path: &Path) -> Result<Bytes> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        if len == 0 {
            return Ok(Bytes::Empty);
        }
        // SAFETY: the mapping is read-only and lives as long as the reader. Mapped memory changes
        // if another process writes the file in place; kiln never does (datasets are replaced by
        // atomic rename, which leaves a mapped inode untouched), and every value read from the
        // map is bounds-checked against the index validated at open.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(path))?;
        Ok(Bytes::Map(map))
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Empty => &[],
        }
    }
}

/// A validated, memory-mapped Megatron dataset.
pub struct MegatronReader {
    idx_path: PathBuf,
    bin_path: PathBuf,
    dtype: DType,
    sequences: usize,
    doc_entries: usize,
    idx: Bytes,
    bin: Bytes,
}

impl std::fmt::Debug for MegatronReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MegatronReader")
            .field("idx", &self.idx_path)
            .field("dtype", &self.dtype)
            .field("sequences", &self.sequences)
            .field("documents", &self.documents())
            .finish()
    }
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn le_i64(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn le_i32(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

impl MegatronReader {
    /// Opens `PREFIX.idx` and `PREFIX.bin` and validates the index against both files: magic,
    /// version, dtype, array sizes, offsets contiguous and matching the lengths, document
    /// indices monotone, and the `.bin` size equal to the tokens the index describes.
    pub fn open(prefix: &Path) -> Result<Self> {
        let idx_path = idx_path(prefix);
        let bin_path = bin_path(prefix);
        let idx = Bytes::open(&idx_path)?;
        let bin = Bytes::open(&bin_path)?;
        let bad = |message: String| DataError::BadDataset { path: idx_path.clone(), message };
        let b = idx.as_slice();
        if b.len() < HEADER_LEN {
            return Err(bad(format!("truncated: {} bytes, a Megatron index header alone is {HEADER_LEN}", b.len())));
        }
        if &b[..9] != MAGIC {
            return Err(bad(format!(
                "bad magic {:?}, expected {:?} (not a Megatron .idx)",
                String::from_utf8_lossy(&b[..9]),
                String::from_utf8_lossy(MAGIC)
            )));
        }
        let version = le_u64(b, 9);
        if version != VERSION {
            return Err(bad(format!("index version {version}, only version {VERSION} is supported")));
        }
        let code = b[17];
        let dtype = DType::from_code(code)
            .ok_or_else(|| bad(format!("dtype code {code} is not supported (kiln reads 8 = uint16 and 4 = int32 token files)")))?;
        let n = le_u64(b, 18);
        let d = le_u64(b, 26);
        let want =
            n.checked_mul(12).and_then(|x| d.checked_mul(8).and_then(|y| x.checked_add(y))).and_then(|x| x.checked_add(HEADER_LEN as u64));
        match want {
            Some(w) if w == b.len() as u64 => {}
            Some(w) => {
                return Err(bad(format!(
                    "{} bytes, but a header with {n} sequences and {d} document indices needs {w} (truncated, or written by another tool with extra arrays)",
                    b.len()
                )))
            }
            None => return Err(bad(format!("impossible counts: {n} sequences, {d} document indices"))),
        }
        let (n, d) = (n as usize, d as usize);
        if d == 0 {
            return Err(bad("the document index array is empty; it must start with 0".into()));
        }
        let reader = Self { idx_path: idx_path.clone(), bin_path: bin_path.clone(), dtype, sequences: n, doc_entries: d, idx, bin };
        reader.validate()?;
        Ok(reader)
    }

    fn validate(&self) -> Result<()> {
        let bad = |message: String| DataError::BadDataset { path: self.idx_path.clone(), message };
        let size = self.dtype.size() as i64;
        let mut expected = 0i64;
        for i in 0..self.sequences {
            let len = self.raw_length(i);
            if len < 0 {
                return Err(bad(format!("sequence {i} has negative length {len}")));
            }
            let off = self.raw_offset(i);
            if off != expected {
                return Err(bad(format!("sequence {i} starts at byte {off}, but the lengths before it end at {expected}")));
            }
            expected =
                expected.checked_add(i64::from(len) * size).ok_or_else(|| bad(format!("sequence lengths overflow at sequence {i}")))?;
        }
        let bin_len = self.bin.as_slice().len() as i64;
        if expected != bin_len {
            return Err(DataError::BadDataset {
                path: self.bin_path.clone(),
                message: format!("{bin_len} bytes, but {} says its sequences take {expected}", self.idx_path.display()),
            });
        }
        let mut prev = 0i64;
        for j in 0..self.doc_entries {
            let v = self.raw_doc(j);
            let first_ok = j > 0 || v == 0;
            if !first_ok || v < prev || v > self.sequences as i64 {
                return Err(bad(format!(
                    "document index {j} is {v}; document indices must start at 0 and rise to at most the {} sequences",
                    self.sequences
                )));
            }
            prev = v;
        }
        Ok(())
    }

    fn raw_length(&self, i: usize) -> i32 {
        le_i32(self.idx.as_slice(), HEADER_LEN + 4 * i)
    }

    fn raw_offset(&self, i: usize) -> i64 {
        le_i64(self.idx.as_slice(), HEADER_LEN + 4 * self.sequences + 8 * i)
    }

    fn raw_doc(&self, j: usize) -> i64 {
        le_i64(self.idx.as_slice(), HEADER_LEN + 12 * self.sequences + 8 * j)
    }

    /// The `.idx` path.
    pub fn idx_path(&self) -> &Path {
        &self.idx_path
    }

    /// The token type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.sequences
    }

    /// Whether there are no sequences.
    pub fn is_empty(&self) -> bool {
        self.sequences == 0
    }

    /// Number of documents.
    pub fn documents(&self) -> usize {
        self.doc_entries - 1
    }

    /// Tokens in the dataset.
    pub fn total_tokens(&self) -> u64 {
        (self.bin.as_slice().len() / self.dtype.size()) as u64
    }

    /// The sequences of document `d`.
    pub fn document(&self, d: usize) -> Result<Range<usize>> {
        if d >= self.documents() {
            return Err(DataError::OutOfRange { path: self.idx_path.clone(), index: d, len: self.documents() });
        }
        Ok(self.raw_doc(d) as usize..self.raw_doc(d + 1) as usize)
    }

    fn check(&self, i: usize) -> Result<()> {
        if i >= self.sequences {
            return Err(DataError::OutOfRange { path: self.idx_path.clone(), index: i, len: self.sequences });
        }
        Ok(())
    }

    /// Length in tokens of sequence `i`.
    pub fn sequence_len(&self, i: usize) -> Result<usize> {
        self.check(i)?;
        Ok(self.raw_length(i) as usize)
    }

    /// Position of sequence `i`'s first token in the whole token stream (byte offset / dtype
    /// size), e.g. to index a sidecar file aligned with `.bin`.
    pub fn token_offset(&self, i: usize) -> Result<u64> {
        self.check(i)?;
        Ok(self.raw_offset(i) as u64 / self.dtype.size() as u64)
    }

    /// Sequence `i`'s tokens, replacing the contents of `out` (reuse `out` to avoid allocating).
    pub fn sequence_into(&self, i: usize, out: &mut Vec<u32>) -> Result<()> {
        self.check(i)?;
        let start = self.raw_offset(i) as usize;
        let bytes = &self.bin.as_slice()[start..start + self.raw_length(i) as usize * self.dtype.size()];
        out.clear();
        match self.dtype {
            DType::U16 => out.extend(bytes.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))),
            DType::I32 => {
                for c in bytes.chunks_exact(4) {
                    let v = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    let id = u32::try_from(v).map_err(|_| DataError::BadDataset {
                        path: self.bin_path.clone(),
                        message: format!("sequence {i} holds the negative token id {v}"),
                    })?;
                    out.push(id);
                }
            }
        }
        Ok(())
    }

    /// Sequence `i`'s tokens.
    pub fn sequence(&self, i: usize) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        self.sequence_into(i, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_follows_megatron_threshold() {
        assert_eq!(DType::for_vocab(32_256), DType::U16);
        assert_eq!(DType::for_vocab(65_499), DType::U16);
        assert_eq!(DType::for_vocab(65_500), DType::I32);
        assert_eq!(DType::for_vocab(102_400), DType::I32);
        for d in [DType::U16, DType::I32] {
            assert_eq!(DType::from_code(d.code()), Some(d));
        }
    }

    #[test]
    fn suffix_keeps_dotted_prefixes() {
        assert_eq!(bin_path(Path::new("out/data.v1")), PathBuf::from("out/data.v1.bin"));
        assert_eq!(idx_path(Path::new("train")), PathBuf::from("train.idx"));
    }
}
