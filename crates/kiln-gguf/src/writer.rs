//! The writer: [`GgufWriter`] collects metadata and tensors and writes a GGUF v3 file, atomically
//! (a temporary file beside the target, fsync, rename), so a crash or an error never leaves a
//! half-written `.gguf` under the final name.
//!
//! Tensor data is either given up front ([`GgufWriter::add_tensor`], borrowed or owned) or
//! produced while writing ([`GgufWriter::declare_tensor`] + [`GgufWriter::write_with`]), so a
//! quantizer can stream a model larger than memory one tensor at a time.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{self, BufWriter, Read as _, Write};
use std::path::{Path, PathBuf};

use kiln_quant::GgmlType;

use crate::error::{ErrorKind, GgufError, Result};
use crate::value::{Array, Value};
use crate::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS};

/// llama.cpp's `GGML_MAX_NAME`: it refuses tensor names of this many bytes or more.
pub const MAX_TENSOR_NAME: usize = 64;

/// The version this writer writes.
pub const WRITE_VERSION: u32 = 3;

struct PendingTensor<'a> {
    name: String,
    dims: Vec<usize>,
    ty: GgmlType,
    /// `None` for a tensor whose bytes [`GgufWriter::write_with`]'s callback writes.
    data: Option<Cow<'a, [u8]>>,
}

/// Builds a GGUF v3 file. Keys and tensors are written in the order they were added.
///
/// ```
/// use kiln_gguf::{GgufFile, GgufWriter};
/// use kiln_quant::GgmlType;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("tiny.gguf");
/// let weights: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|x| x.to_le_bytes()).collect();
/// let mut w = GgufWriter::new();
/// w.add_metadata("general.architecture", "llama");
/// // Two rows of three values: dims innermost first.
/// w.add_tensor("w", &[3, 2], GgmlType::F32, weights.as_slice());
/// w.write(&path).unwrap();
///
/// let f = GgufFile::open(&path).unwrap();
/// assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
/// assert_eq!(f.tensor("w").unwrap().bytes, weights.as_slice());
/// ```
#[derive(Default)]
pub struct GgufWriter<'a> {
    metadata: Vec<(String, Value)>,
    tensors: Vec<PendingTensor<'a>>,
}

/// A tensor's place in the file, decided before anything is written.
struct Planned {
    n_bytes: u64,
    offset: u64,
}

struct Plan {
    alignment: u64,
    tensors: Vec<Planned>,
}

impl<'a> GgufWriter<'a> {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata key. `general.alignment` (a `u32` power of two) also sets the alignment
    /// of the data; without it the alignment is 32 and no key is written. A key added twice is an
    /// error at write time.
    pub fn add_metadata(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// Adds a tensor with its data: `dims` innermost first (`dims[0]` is the row length, a
    /// multiple of the type's block size), `bytes` exactly the type's size for that many values.
    /// Mistakes are reported by [`GgufWriter::write`], before anything is written.
    pub fn add_tensor(&mut self, name: impl Into<String>, dims: &[usize], ty: GgmlType, bytes: impl Into<Cow<'a, [u8]>>) -> &mut Self {
        self.tensors.push(PendingTensor { name: name.into(), dims: dims.to_vec(), ty, data: Some(bytes.into()) });
        self
    }

    /// Adds a tensor whose bytes [`GgufWriter::write_with`]'s callback will write.
    pub fn declare_tensor(&mut self, name: impl Into<String>, dims: &[usize], ty: GgmlType) -> &mut Self {
        self.tensors.push(PendingTensor { name: name.into(), dims: dims.to_vec(), ty, data: None });
        self
    }

    /// Writes the file to `path` atomically. Every tensor must have been given its data.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        self.write_with(path, |name, _| Err(io::Error::other(format!("tensor `{name}` was declared without data; use write_with"))))
    }

    /// Writes the file to `path` atomically; `fill(name, out)` writes the bytes of each tensor
    /// added with [`GgufWriter::declare_tensor`], in order. Writing a different number of bytes
    /// than the tensor takes is an error, and the target is left untouched.
    pub fn write_with<F>(&self, path: impl AsRef<Path>, fill: F) -> Result<()>
    where
        F: FnMut(&str, &mut dyn Write) -> io::Result<()>,
    {
        let path = path.as_ref();
        let fail = |kind| GgufError::new(path, kind);
        let io_err = |action: &str| {
            let action = action.to_string();
            move |source| GgufError::new(path, ErrorKind::Io { action, source })
        };
        let plan = self.plan().map_err(fail)?;
        let name = path.file_name().ok_or_else(|| fail(ErrorKind::InvalidInput { what: "the path has no file name".into() }))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let prefix = format!(".{}.", name.to_string_lossy());
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            // As File::create would: 0666 minus the umask (tempfile's default is 0600).
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        // Dropped on any error below: the temporary file is removed and `path` is untouched.
        let tmp = builder.tempfile_in(&dir).map_err(io_err("create a temporary file in the target directory"))?;
        {
            let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
            self.serialize(&plan, &mut out, fill).map_err(|e| match e {
                SerializeError::Io(source) => fail(ErrorKind::Io { action: "write".into(), source }),
                SerializeError::Invalid(kind) => fail(kind),
            })?;
            out.flush().map_err(io_err("write"))?;
        }
        tmp.as_file().sync_all().map_err(io_err("sync"))?;
        tmp.persist(path)
            .map_err(|e| GgufError::new(path, ErrorKind::Io { action: "rename the temporary file onto".into(), source: e.error }))?;
        // Make the rename itself durable; failure here loses nothing already written.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        tracing::debug!(path = %path.display(), keys = self.metadata.len(), tensors = self.tensors.len(), "GGUF file written");
        Ok(())
    }

    /// The file as bytes (every tensor must have its data); `name` appears in errors.
    pub fn to_bytes(&self, name: impl Into<PathBuf>) -> Result<Vec<u8>> {
        let name = name.into();
        let plan = self.plan().map_err(|k| GgufError::new(&name, k))?;
        let mut out = Vec::new();
        let missing = |t: &str, _: &mut dyn Write| Err(io::Error::other(format!("tensor `{t}` was declared without data")));
        self.serialize(&plan, &mut out, missing).map_err(|e| match e {
            SerializeError::Io(source) => GgufError::new(&name, ErrorKind::Io { action: "serialize".into(), source }),
            SerializeError::Invalid(kind) => GgufError::new(&name, kind),
        })?;
        Ok(out)
    }

    /// Checks everything that can be checked before writing and places the tensors.
    fn plan(&self) -> Result<Plan, ErrorKind> {
        let invalid = |what: String| ErrorKind::InvalidInput { what };
        let mut keys = HashSet::new();
        let mut alignment = DEFAULT_ALIGNMENT;
        for (key, value) in &self.metadata {
            if !keys.insert(key.as_str()) {
                return Err(invalid(format!("metadata key `{key}` was added twice")));
            }
            if key == ALIGNMENT_KEY {
                alignment = match value {
                    Value::U32(a) if a.is_power_of_two() => u64::from(*a),
                    Value::U32(a) => return Err(ErrorKind::BadAlignment { found: a.to_string() }),
                    v => return Err(ErrorKind::BadAlignment { found: format!("a {}", v.describe()) }),
                };
            }
            check_nesting(value, key)?;
        }
        let mut names = HashSet::new();
        let mut offset = 0u64;
        let mut tensors = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let bad = |what: String| invalid(format!("tensor `{}`: {what}", t.name));
            if !names.insert(t.name.as_str()) {
                return Err(ErrorKind::DuplicateTensor { name: t.name.clone() });
            }
            if t.name.len() >= MAX_TENSOR_NAME {
                return Err(bad(format!(
                    "the name is {} bytes; llama.cpp reads names of at most {} bytes",
                    t.name.len(),
                    MAX_TENSOR_NAME - 1
                )));
            }
            if t.dims.len() > MAX_DIMS {
                return Err(bad(format!("{} dimensions; GGUF tensors have at most {MAX_DIMS}", t.dims.len())));
            }
            let n_elements = t
                .dims
                .iter()
                .try_fold(1u64, |n, &d| n.checked_mul(d as u64).filter(|&n| n <= i64::MAX as u64))
                .ok_or_else(|| bad(format!("dims {:?} overflow the element count", t.dims)))?;
            let row = t.dims.first().copied().unwrap_or(1);
            if !row.is_multiple_of(t.ty.block_size()) {
                return Err(bad(format!("row length {row} is not a multiple of the {} block size {}", t.ty, t.ty.block_size())));
            }
            let n_bytes = (n_elements / t.ty.block_size() as u64)
                .checked_mul(t.ty.block_bytes() as u64)
                .ok_or_else(|| bad(format!("dims {:?} overflow the byte count", t.dims)))?;
            if let Some(d) = &t.data {
                if d.len() as u64 != n_bytes {
                    return Err(bad(format!("{} bytes of data for {:?} {} values, which take {n_bytes}", d.len(), t.dims, t.ty)));
                }
            }
            tensors.push(Planned { n_bytes, offset });
            offset = n_bytes
                .checked_next_multiple_of(alignment)
                .and_then(|n| offset.checked_add(n))
                .ok_or_else(|| bad("the data section overflows u64".into()))?;
        }
        Ok(Plan { alignment, tensors })
    }

    fn serialize<W: Write, F>(&self, plan: &Plan, out: &mut W, mut fill: F) -> Result<(), SerializeError>
    where
        F: FnMut(&str, &mut dyn Write) -> io::Result<()>,
    {
        let mut w = Counting { inner: out, written: 0 };
        w.write_all(MAGIC)?;
        w.write_all(&WRITE_VERSION.to_le_bytes())?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        w.write_all(&(self.metadata.len() as u64).to_le_bytes())?;
        for (key, value) in &self.metadata {
            write_str(&mut w, key)?;
            w.write_all(&value.value_type().id().to_le_bytes())?;
            write_value(&mut w, value)?;
        }
        for (t, p) in self.tensors.iter().zip(&plan.tensors) {
            write_str(&mut w, &t.name)?;
            w.write_all(&(t.dims.len() as u32).to_le_bytes())?;
            for &d in &t.dims {
                w.write_all(&(d as u64).to_le_bytes())?;
            }
            w.write_all(&t.ty.id().to_le_bytes())?;
            w.write_all(&p.offset.to_le_bytes())?;
        }
        pad(&mut w, plan.alignment)?;
        for (t, p) in self.tensors.iter().zip(&plan.tensors) {
            let start = w.written;
            match &t.data {
                Some(d) => w.write_all(d)?,
                None => fill(&t.name, &mut w)?,
            }
            let got = w.written - start;
            if got != p.n_bytes {
                return Err(SerializeError::Invalid(ErrorKind::InvalidInput {
                    what: format!("tensor `{}`: the callback wrote {got} bytes, the tensor takes {}", t.name, p.n_bytes),
                }));
            }
            // llama.cpp pads every tensor, the last one included, and expects the padding.
            pad(&mut w, plan.alignment)?;
        }
        Ok(())
    }
}

enum SerializeError {
    Io(io::Error),
    Invalid(ErrorKind),
}

impl From<io::Error> for SerializeError {
    fn from(e: io::Error) -> Self {
        SerializeError::Io(e)
    }
}

/// Counts bytes written, for padding and for checking what the fill callback wrote.
struct Counting<'w, W: Write> {
    inner: &'w mut W,
    written: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pad<W: Write>(w: &mut Counting<W>, alignment: u64) -> io::Result<()> {
    let n = w.written.next_multiple_of(alignment) - w.written;
    io::copy(&mut io::repeat(0).take(n), w).map(|_| ())
}

/// Refuses arrays nested deeper than the reader accepts, so kiln never writes what it cannot read.
fn check_nesting(value: &Value, key: &str) -> Result<(), ErrorKind> {
    fn depth(a: &Array) -> u32 {
        match a {
            // An empty array of arrays still has arrays as its element type: one level more.
            Array::Array(v) => 1 + v.iter().map(depth).max().unwrap_or(1),
            _ => 1,
        }
    }
    match value {
        Value::Array(a) if depth(a) > crate::reader::MAX_ARRAY_NESTING => Err(ErrorKind::InvalidInput {
            what: format!("metadata key `{key}`: arrays nested more than {} deep", crate::reader::MAX_ARRAY_NESTING),
        }),
        _ => Ok(()),
    }
}

fn write_str<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_value<W: Write>(w: &mut W, v: &Value) -> io::Result<()> {
    match v {
        Value::U8(x) => w.write_all(&x.to_le_bytes()),
        Value::I8(x) => w.write_all(&x.to_le_bytes()),
        Value::U16(x) => w.write_all(&x.to_le_bytes()),
        Value::I16(x) => w.write_all(&x.to_le_bytes()),
        Value::U32(x) => w.write_all(&x.to_le_bytes()),
        Value::I32(x) => w.write_all(&x.to_le_bytes()),
        Value::F32(x) => w.write_all(&x.to_le_bytes()),
        Value::Bool(x) => w.write_all(&[u8::from(*x)]),
        Value::String(s) => write_str(w, s),
        Value::Array(a) => write_array(w, a),
        Value::U64(x) => w.write_all(&x.to_le_bytes()),
        Value::I64(x) => w.write_all(&x.to_le_bytes()),
        Value::F64(x) => w.write_all(&x.to_le_bytes()),
    }
}

/// An array body: element type, length, elements (nested arrays repeat this without a type id
/// of their own before it, as gguf-py writes them).
fn write_array<W: Write>(w: &mut W, a: &Array) -> io::Result<()> {
    w.write_all(&a.elem_type().id().to_le_bytes())?;
    w.write_all(&(a.len() as u64).to_le_bytes())?;
    fn each<W: Write, T: Copy, const N: usize>(w: &mut W, v: &[T], f: fn(T) -> [u8; N]) -> io::Result<()> {
        v.iter().try_for_each(|&x| w.write_all(&f(x)))
    }
    match a {
        Array::U8(v) => w.write_all(v),
        Array::I8(v) => each(w, v, i8::to_le_bytes),
        Array::U16(v) => each(w, v, u16::to_le_bytes),
        Array::I16(v) => each(w, v, i16::to_le_bytes),
        Array::U32(v) => each(w, v, u32::to_le_bytes),
        Array::I32(v) => each(w, v, i32::to_le_bytes),
        Array::F32(v) => each(w, v, f32::to_le_bytes),
        Array::Bool(v) => each(w, v, |b: bool| [u8::from(b)]),
        Array::String(v) => v.iter().try_for_each(|s| write_str(w, s)),
        Array::Array(v) => v.iter().try_for_each(|a| write_array(w, a)),
        Array::U64(v) => each(w, v, u64::to_le_bytes),
        Array::I64(v) => each(w, v, i64::to_le_bytes),
        Array::F64(v) => each(w, v, f64::to_le_bytes),
    }
}
