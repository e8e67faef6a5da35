//! The reader: [`GgufFile`] parses a whole GGUF file (memory-mapped, or from bytes) up front,
//! checking every count, length, dimension and offset against the file's size before it
//! allocates or slices anything, and then hands out metadata and zero-copy tensor views.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use kiln_quant::GgmlType;

use crate::error::{ErrorKind, GgufError, Result};
use crate::ggml_ids::{block_layout, type_name};
use crate::value::{Array, Value, ValueType};
use crate::{DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS};

/// Arrays of arrays deeper than this are refused: each level costs only 12 bytes of file, so
/// without a limit a small hostile file could exhaust the stack of the recursive parser.
pub(crate) const MAX_ARRAY_NESTING: u32 = 16;

/// Pre-allocation cap for arrays of strings or arrays, whose in-memory elements are larger than
/// their smallest encoding: beyond this the vector grows as elements are actually read, so memory
/// stays proportional to the bytes consumed even if the array turns out to be truncated.
const MAX_PREALLOC: usize = 1 << 16;

/// The bytes of the file: a read-only memory map, or a buffer given to [`GgufFile::parse`].
enum Storage {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    name: String,
    dims: Vec<usize>,
    type_id: u32,
    offset: u64,
    n_elements: u64,
    /// Absolute byte range of the data; `None` when the type id's layout is unknown to GGML.
    data: Option<Range<usize>>,
}

impl TensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Dimensions, innermost first: `dims()[0]` is the row length (GGML's `ne[0]`), the reverse of
    /// the row-major shape PyTorch and numpy print (`[n_embd, n_vocab]` for `token_embd`).
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }
    /// The GGML type id in the file (`ggml_type`).
    pub fn type_id(&self) -> u32 {
        self.type_id
    }
    /// GGML's name for the type id (`Q2_K`), whether or not kiln supports it.
    pub fn type_name(&self) -> Option<&'static str> {
        type_name(self.type_id)
    }
    /// The kiln type, when kiln supports the type id.
    pub fn ggml_type(&self) -> Option<GgmlType> {
        GgmlType::from_id(self.type_id)
    }
    /// The data's offset from the start of the data section, as stored.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Number of values (the product of the dimensions).
    pub fn n_elements(&self) -> u64 {
        self.n_elements
    }
    /// The data's absolute byte range in the file, when the type's layout is known.
    pub fn byte_range(&self) -> Option<Range<usize>> {
        self.data.clone()
    }
}

/// A tensor's data, borrowed from the file.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    /// The name.
    pub name: &'a str,
    /// The element type.
    pub ggml_type: GgmlType,
    /// Dimensions, innermost first (see [`TensorInfo::dims`]).
    pub dims: &'a [usize],
    /// The data: exactly `n_elements / block_size * block_bytes` bytes, rows one after another.
    /// From a memory-mapped file it starts at a multiple of the file's alignment from the map's
    /// (page-aligned) start.
    pub bytes: &'a [u8],
}

impl TensorView<'_> {
    /// Number of values.
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }
    /// Values per row (`dims[0]`; 1 for a 0-dimensional tensor).
    pub fn row_len(&self) -> usize {
        self.dims.first().copied().unwrap_or(1)
    }
    /// Number of rows (the product of the outer dimensions).
    pub fn n_rows(&self) -> usize {
        self.dims.iter().skip(1).product()
    }
}

/// A parsed GGUF file. See the crate documentation for the layout and conventions.
pub struct GgufFile {
    path: PathBuf,
    storage: Storage,
    version: u32,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .finish()
    }
}

impl GgufFile {
    /// Opens and memory-maps the file at `path` and parses its header, metadata and tensor table.
    ///
    /// Every tensor whose type layout GGML knows is checked to lie inside the file here, so a
    /// truncated file fails at open. A tensor of a type kiln does not support fails only when it
    /// is asked for ([`GgufFile::tensor`]): the metadata of any GGUF (a Q2_K model's vocabulary,
    /// say) stays readable.
    ///
    /// The map is read-only; as with every memory-mapped reader, another process truncating or
    /// rewriting the file while it is open is not supported (kiln's own writer replaces files by
    /// renaming, which leaves open maps intact).
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let io = |action: &str, source| GgufError::new(path, ErrorKind::Io { action: action.to_string(), source });
        let file = std::fs::File::open(path).map_err(|e| io("open", e))?;
        let len = file.metadata().map_err(|e| io("read the size of", e))?.len();
        let storage = if len == 0 {
            Storage::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only and every access is bounds-checked against its
            // length; see the note above on files changed by other processes while mapped.
            Storage::Mmap(unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io("memory-map", e))?)
        };
        Self::from_storage(storage, path.to_path_buf())
    }

    /// Parses a GGUF file held in memory; `path` names it in errors.
    pub fn parse(bytes: Vec<u8>, path: impl Into<PathBuf>) -> Result<GgufFile> {
        Self::from_storage(Storage::Owned(bytes), path.into())
    }

    fn from_storage(storage: Storage, path: PathBuf) -> Result<GgufFile> {
        let parsed = match parse(storage.bytes()) {
            Ok(p) => p,
            Err(kind) => return Err(GgufError::new(path, kind)),
        };
        tracing::debug!(
            path = %path.display(),
            version = parsed.version,
            keys = parsed.metadata.len(),
            tensors = parsed.tensors.len(),
            "GGUF file parsed"
        );
        Ok(GgufFile {
            path,
            storage,
            version: parsed.version,
            key_index: parsed.key_index,
            metadata: parsed.metadata,
            tensor_index: parsed.tensor_index,
            tensors: parsed.tensors,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
        })
    }

    fn err(&self, kind: ErrorKind) -> GgufError {
        GgufError::new(&self.path, kind)
    }

    /// The file's path (or the name given to [`GgufFile::parse`]).
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// The data alignment: `general.alignment`, or 32.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// Where the data section starts: the end of the tensor table rounded up to the alignment.
    /// Tensor offsets count from here.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }
    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// Tells the OS that bytes `start..start + len` of a memory-mapped file will not be read
    /// through the map for now (a tensor copied elsewhere, e.g. repacked): the whole pages inside
    /// the range leave this process's resident set. They stay in the page cache, and a later read
    /// faults them back in unchanged. Does nothing for a file held in memory, and a range
    /// outside the file is ignored. Returns the bytes released.
    pub fn release(&self, start: usize, len: usize) -> usize {
        let Storage::Mmap(map) = &self.storage else { return 0 };
        // Inward to 64 KiB boundaries (a multiple of any page size Linux uses on x86-64 and
        // arm64), so no page of a neighbouring tensor is released.
        const ALIGN: usize = 64 << 10;
        let end = start.saturating_add(len).min(map.len());
        let (lo, hi) = (start.checked_next_multiple_of(ALIGN).unwrap_or(usize::MAX), end / ALIGN * ALIGN);
        if lo >= hi {
            return 0;
        }
        #[cfg(unix)]
        {
            // SAFETY: the map is a read-only shared file mapping (`Mmap::map`): MADV_DONTNEED
            // only drops this process's page-table entries, and the next access reads the same
            // file bytes back (the map's general assumption: the file is not rewritten while
            // mapped).
            match unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, lo, hi - lo) } {
                Ok(()) => hi - lo,
                Err(e) => {
                    tracing::debug!(error = %e, "madvise(DONTNEED) failed; the pages stay resident");
                    0
                }
            }
        }
        #[cfg(not(unix))]
        0
    }

    /// Metadata key/value pairs, in file order.
    pub fn metadata(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    fn require(&self, key: &str, expected: &'static str) -> Result<&Value> {
        self.get(key).ok_or_else(|| self.err(ErrorKind::MissingKey { key: key.to_string(), expected }))
    }

    fn wrong(&self, key: &str, expected: &'static str, found: String) -> GgufError {
        self.err(ErrorKind::WrongType { key: key.to_string(), expected, found })
    }

    /// An integer that fits `T`, from any integer type (no lossy conversion).
    fn get_int<T: TryFrom<i128>>(&self, key: &str, expected: &'static str) -> Result<T> {
        let v = self.require(key, expected)?;
        let i = v.as_int().ok_or_else(|| self.wrong(key, expected, v.describe()))?;
        T::try_from(i).map_err(|_| self.wrong(key, expected, format!("{} {i} (out of range)", v.describe())))
    }

    /// `key` as `u32`: any integer type whose value fits.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get_int(key, "u32")
    }
    /// `key` as `u64`: any integer type whose value fits.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get_int(key, "u64")
    }
    /// `key` as `i64`: any integer type whose value fits.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.get_int(key, "i64")
    }
    /// `key` as `f32`: an `f32`, or an `f64` narrowed.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key, "f32")?;
        v.as_f64().map(|f| f as f32).ok_or_else(|| self.wrong(key, "f32", v.describe()))
    }
    /// `key` as `f64`: an `f64`, or an `f32` widened.
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let v = self.require(key, "f64")?;
        v.as_f64().ok_or_else(|| self.wrong(key, "f64", v.describe()))
    }
    /// `key` as a bool.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let v = self.require(key, "bool")?;
        v.as_bool().ok_or_else(|| self.wrong(key, "bool", v.describe()))
    }
    /// `key` as a string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key, "string")?;
        v.as_str().ok_or_else(|| self.wrong(key, "string", v.describe()))
    }
    /// `key` as an array of any element type.
    pub fn get_array(&self, key: &str) -> Result<&Array> {
        let v = self.require(key, "array")?;
        v.as_array().ok_or_else(|| self.wrong(key, "array", v.describe()))
    }
    /// `key` as an array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<&[String]> {
        let v = self.require(key, "array of string")?;
        v.as_array().and_then(Array::as_strings).ok_or_else(|| self.wrong(key, "array of string", v.describe()))
    }
    /// `key` as an array of integers (any integer element type) whose values fit `i64`.
    pub fn get_int_array(&self, key: &str) -> Result<Vec<i64>> {
        const EXPECTED: &str = "array of integers";
        let v = self.require(key, EXPECTED)?;
        let ints = v.as_array().and_then(Array::to_ints).ok_or_else(|| self.wrong(key, EXPECTED, v.describe()))?;
        ints.into_iter()
            .map(|i| i64::try_from(i).map_err(|_| self.wrong(key, EXPECTED, format!("{} holding {i} (out of range)", v.describe()))))
            .collect()
    }
    /// `key` as an array of `f32` (`f32` elements, or `f64` narrowed).
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        let v = self.require(key, "array of f32")?;
        let f = v.as_array().and_then(Array::to_f64s).ok_or_else(|| self.wrong(key, "array of f32", v.describe()))?;
        Ok(f.into_iter().map(|x| x as f32).collect())
    }

    /// The tensor table, in file order.
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.tensors
    }
    /// The tensor table entry named `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }
    /// The tensor named `name`; an error if there is none or its type is not one kiln supports.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| self.err(ErrorKind::NoSuchTensor { name: name.to_string(), count: self.tensors.len() }))?;
        self.view(info)
    }
    /// Every tensor in file order; unsupported types give an error in their place.
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = Result<TensorView<'_>>> {
        self.tensors.iter().map(|t| self.view(t))
    }

    fn view<'a>(&'a self, info: &'a TensorInfo) -> Result<TensorView<'a>> {
        let unsupported = || {
            self.err(ErrorKind::UnsupportedType {
                name: info.name.clone(),
                type_id: info.type_id,
                type_name: type_name(info.type_id).unwrap_or("unknown to GGML"),
                supported: GgmlType::ALL.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
            })
        };
        let ty = info.ggml_type().ok_or_else(unsupported)?;
        // Supported types always have a known layout, so the range was checked at parse time.
        let range = info.data.clone().ok_or_else(unsupported)?;
        let bytes = self.bytes().get(range.clone()).ok_or_else(|| {
            self.err(ErrorKind::TensorOutOfBounds {
                name: info.name.clone(),
                start: range.start as u128,
                end: range.end as u128,
                file_len: self.bytes().len() as u64,
            })
        })?;
        Ok(TensorView { name: &info.name, ggml_type: ty, dims: &info.dims, bytes })
    }
}

/// What [`parse`] finds, before it is joined with the storage and the path.
struct Parsed {
    version: u32,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

/// A position in the file; every read checks the bytes left first.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], ErrorKind> {
        let left = self.left();
        if n > left as u64 {
            return Err(ErrorKind::Truncated {
                offset: self.pos as u64,
                what: what(),
                needed: n,
                left: left as u64,
                file_len: self.bytes.len() as u64,
            });
        }
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], ErrorKind> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N as u64, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32, ErrorKind> {
        self.array(&|| what.to_string()).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, ErrorKind> {
        self.array(&|| what.to_string()).map(u64::from_le_bytes)
    }

    /// A string; `what` names it in errors only (built lazily: vocabularies hold ~100k strings).
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, ErrorKind> {
        let at = self.pos as u64;
        let n = u64::from_le_bytes(self.array(&|| format!("the length of {}", what()))?);
        let raw = self.take(n, &|| format!("{} ({n} bytes, length at byte {at})", what()))?;
        let text =
            std::str::from_utf8(raw).map_err(|e| ErrorKind::Malformed { offset: at, what: format!("{} is not UTF-8 ({e})", what()) })?;
        Ok(text.to_owned())
    }

    /// `n` fixed-size numbers; `n` was checked against the bytes left by the caller.
    fn numbers<T, const N: usize>(&mut self, n: u64, conv: fn([u8; N]) -> T) -> Result<Vec<T>, ErrorKind> {
        let raw = self.take(n * N as u64, &|| format!("{n} array elements"))?;
        Ok(raw
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                conv(a)
            })
            .collect())
    }

    fn value(&mut self, ty_at: u64, ty_id: u32, depth: u32) -> Result<Value, ErrorKind> {
        let ty = ValueType::from_id(ty_id)
            .ok_or_else(|| ErrorKind::Malformed { offset: ty_at, what: format!("unknown value type {ty_id} (GGUF has 0..=12)") })?;
        let what = || format!("a {ty} value");
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array(&what).map(u8::from_le_bytes)?),
            ValueType::I8 => Value::I8(self.array(&what).map(i8::from_le_bytes)?),
            ValueType::U16 => Value::U16(self.array(&what).map(u16::from_le_bytes)?),
            ValueType::I16 => Value::I16(self.array(&what).map(i16::from_le_bytes)?),
            ValueType::U32 => Value::U32(self.array(&what).map(u32::from_le_bytes)?),
            ValueType::I32 => Value::I32(self.array(&what).map(i32::from_le_bytes)?),
            ValueType::F32 => Value::F32(self.array(&what).map(f32::from_le_bytes)?),
            ValueType::Bool => Value::Bool(self.array::<1>(&what)?[0] != 0),
            ValueType::String => Value::String(self.string(&|| "the string".into())?),
            ValueType::Array => Value::Array(self.array_value(depth)?),
            ValueType::U64 => Value::U64(self.array(&what).map(u64::from_le_bytes)?),
            ValueType::I64 => Value::I64(self.array(&what).map(i64::from_le_bytes)?),
            ValueType::F64 => Value::F64(self.array(&what).map(f64::from_le_bytes)?),
        })
    }

    fn array_value(&mut self, depth: u32) -> Result<Array, ErrorKind> {
        let at = self.pos as u64;
        let elem_id = self.u32("the array element type")?;
        let elem = ValueType::from_id(elem_id)
            .ok_or_else(|| ErrorKind::Malformed { offset: at, what: format!("unknown array element type {elem_id} (GGUF has 0..=12)") })?;
        if elem == ValueType::Array && depth + 1 >= MAX_ARRAY_NESTING {
            return Err(ErrorKind::Malformed { offset: at, what: format!("arrays nested more than {MAX_ARRAY_NESTING} deep") });
        }
        let n_at = self.pos as u64;
        let n = self.u64("the array length")?;
        let left = self.left() as u64;
        let max = left / elem.min_encoded_len() as u64;
        if n > max {
            return Err(ErrorKind::CountTooLarge { offset: n_at, what: format!("an array of {elem}"), count: n, left, max });
        }
        let cap = (n as usize).min(MAX_PREALLOC);
        Ok(match elem {
            ValueType::U8 => Array::U8(self.take(n, &|| format!("{n} array elements"))?.to_vec()),
            ValueType::I8 => Array::I8(self.numbers(n, i8::from_le_bytes)?),
            ValueType::U16 => Array::U16(self.numbers(n, u16::from_le_bytes)?),
            ValueType::I16 => Array::I16(self.numbers(n, i16::from_le_bytes)?),
            ValueType::U32 => Array::U32(self.numbers(n, u32::from_le_bytes)?),
            ValueType::I32 => Array::I32(self.numbers(n, i32::from_le_bytes)?),
            ValueType::F32 => Array::F32(self.numbers(n, f32::from_le_bytes)?),
            ValueType::Bool => Array::Bool(self.numbers(n, |[b]: [u8; 1]| b != 0)?),
            ValueType::U64 => Array::U64(self.numbers(n, u64::from_le_bytes)?),
            ValueType::I64 => Array::I64(self.numbers(n, i64::from_le_bytes)?),
            ValueType::F64 => Array::F64(self.numbers(n, f64::from_le_bytes)?),
            ValueType::String => {
                let mut v = Vec::with_capacity(cap);
                for i in 0..n {
                    v.push(self.string(&|| format!("string {i} of the array"))?);
                }
                Array::String(v)
            }
            ValueType::Array => {
                let mut v = Vec::with_capacity(cap);
                for _ in 0..n {
                    v.push(self.array_value(depth + 1)?);
                }
                Array::Array(v)
            }
        })
    }
}

/// How `found` looks in a "not a GGUF file" message.
fn describe_magic(bytes: &[u8]) -> String {
    match bytes.get(..4) {
        Some(m) => format!("\"{}\"", m.escape_ascii()),
        None => format!("only {} bytes", bytes.len()),
    }
}

fn parse(bytes: &[u8]) -> Result<Parsed, ErrorKind> {
    if bytes.get(..4) != Some(MAGIC.as_slice()) {
        return Err(ErrorKind::NotGguf { found: describe_magic(bytes) });
    }
    let mut c = Cursor { bytes, pos: 4 };
    let version = c.u32("the version")?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(ErrorKind::UnsupportedVersion {
                version,
                hint: "version 1 (before August 2023) stored lengths in 32 bits; kiln reads versions 2 and 3: \
                       convert the model again with a current llama.cpp (convert_hf_to_gguf.py)",
            })
        }
        v if (1..=3).contains(&v.swap_bytes()) => {
            return Err(ErrorKind::UnsupportedVersion {
                version,
                hint: "this looks like a big-endian GGUF file; kiln reads little-endian files \
                       (convert the model again without --bigendian)",
            })
        }
        _ => return Err(ErrorKind::UnsupportedVersion { version, hint: "kiln reads versions 2 and 3" }),
    }
    let tensor_count_at = c.pos as u64;
    let tensor_count = c.u64("the tensor count")?;
    let kv_count_at = c.pos as u64;
    let kv_count = c.u64("the metadata count")?;

    // The smallest key/value pair: an empty key (8), its type (4) and a one-byte value.
    let (left, max) = (c.left() as u64, c.left() as u64 / 13);
    if kv_count > max {
        return Err(ErrorKind::CountTooLarge { offset: kv_count_at, what: "the metadata count".into(), count: kv_count, left, max });
    }
    let mut metadata = Vec::with_capacity((kv_count as usize).min(MAX_PREALLOC));
    let mut key_index = HashMap::new();
    for i in 0..kv_count {
        let at = c.pos as u64;
        let key = c.string(&|| format!("the key of metadata entry {i}"))?;
        let in_key = |e| ErrorKind::InKey { key: key.clone(), source: Box::new(e) };
        let ty_at = c.pos as u64;
        let ty = c.u32("the value type").map_err(in_key)?;
        let value = c.value(ty_at, ty, 0).map_err(in_key)?;
        if key_index.contains_key(&key) {
            return Err(ErrorKind::DuplicateKey { key, offset: at });
        }
        key_index.insert(key.clone(), metadata.len());
        metadata.push((key, value));
    }

    let alignment = match key_index.get(crate::ALIGNMENT_KEY).map(|&i| &metadata[i].1) {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if a.is_power_of_two() => u64::from(*a),
        Some(v) => {
            let found = match v {
                Value::U32(a) => format!("{a}"),
                v => format!("a {}", v.describe()),
            };
            return Err(ErrorKind::BadAlignment { found });
        }
    };

    // The smallest tensor info: an empty name (8), n_dims (4), type (4), offset (8).
    let (left, max) = (c.left() as u64, c.left() as u64 / 24);
    if tensor_count > max {
        return Err(ErrorKind::CountTooLarge { offset: tensor_count_at, what: "the tensor count".into(), count: tensor_count, left, max });
    }
    let mut tensors = Vec::with_capacity((tensor_count as usize).min(MAX_PREALLOC));
    let mut tensor_index = HashMap::new();
    for index in 0..tensor_count {
        let at = c.pos as u64;
        let info = tensor_info(&mut c, index, at)?;
        if tensor_index.insert(info.name.clone(), tensors.len()).is_some() {
            return Err(ErrorKind::DuplicateTensor { name: info.name });
        }
        tensors.push((at, info));
    }
    let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;

    let file_len = bytes.len() as u64;
    let tensors = tensors
        .into_iter()
        .enumerate()
        .map(|(index, (at, mut t))| {
            let bad = |what: String| ErrorKind::BadTensorInfo { index: index as u64, name: t.name.clone(), offset: at, what };
            if !t.offset.is_multiple_of(alignment) {
                return Err(bad(format!("data offset {} is not a multiple of the file's alignment {alignment}", t.offset)));
            }
            let Some((block, block_bytes)) = block_layout(t.type_id) else { return Ok(t) };
            let row = t.dims.first().copied().unwrap_or(1) as u64;
            if !row.is_multiple_of(block) {
                let name = type_name(t.type_id).unwrap_or("?");
                return Err(bad(format!("row length {row} is not a multiple of the {name} block size {block}")));
            }
            // u128: offsets and sizes up to 2^63 each cannot overflow.
            let n_bytes = u128::from(t.n_elements / block) * u128::from(block_bytes);
            let start = u128::from(data_offset) + u128::from(t.offset);
            let end = start + n_bytes;
            if end > u128::from(file_len) {
                return Err(ErrorKind::TensorOutOfBounds { name: t.name.clone(), start, end, file_len });
            }
            // Both fit: they are at most the length of a slice.
            t.data = Some(start as usize..end as usize);
            Ok(t)
        })
        .collect::<Result<Vec<_>, _>>()?;

    Ok(Parsed { version, metadata, key_index, tensors, tensor_index, alignment, data_offset })
}

fn tensor_info(c: &mut Cursor, index: u64, at: u64) -> Result<TensorInfo, ErrorKind> {
    let wrap = |name: &str, e: ErrorKind| ErrorKind::BadTensorInfo { index, name: name.to_string(), offset: at, what: e.to_string() };
    let name = c.string(&|| "the tensor name".into()).map_err(|e| wrap("", e))?;
    let bad = |what: String| ErrorKind::BadTensorInfo { index, name: name.clone(), offset: at, what };
    let n_dims = c.u32("the dimension count").map_err(|e| wrap(&name, e))?;
    if n_dims as usize > MAX_DIMS {
        return Err(bad(format!("{n_dims} dimensions; GGUF tensors have at most {MAX_DIMS}")));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    let (mut n_elements, mut nonzero_product) = (1u64, 1u64);
    for d in 0..n_dims {
        let ne = c.u64("a dimension").map_err(|e| wrap(&name, e))?;
        // llama.cpp stores dimensions as int64_t and refuses element counts beyond INT64_MAX.
        // The product of the nonzero dimensions is bounded too, so that no partial product
        // (rows = dims[1] * dims[2] ...) can overflow even when another dimension is 0.
        nonzero_product = match nonzero_product.checked_mul(ne.max(1)) {
            Some(n) if n <= i64::MAX as u64 => n,
            _ => return Err(bad(format!("dimension {d} = {ne} makes the element count overflow (dims so far {dims:?})"))),
        };
        n_elements *= ne;
        let ne = usize::try_from(ne).map_err(|_| bad(format!("dimension {d} = {ne} does not fit this machine's usize")))?;
        dims.push(ne);
    }
    let type_id = c.u32("the type id").map_err(|e| wrap(&name, e))?;
    let offset = c.u64("the data offset").map_err(|e| wrap(&name, e))?;
    Ok(TensorInfo { name, dims, type_id, offset, n_elements, data: None })
}
