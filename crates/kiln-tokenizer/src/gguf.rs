//! The metadata section of a GGUF file (llama.cpp's model format), enough to read a tokenizer.
//!
//! Layout (little-endian, GGUF v2/v3): `b"GGUF"`, `u32 version`, `u64 tensor_count`,
//! `u64 kv_count`, then `kv_count` pairs of (string key, `u32` value type, value). Strings are
//! `u64 length` + UTF-8 bytes; arrays are `u32 element type`, `u64 length`, elements. Tensor
//! infos and data follow; they are not read here.
//!
//! Every length is checked against the bytes left in the file before anything is allocated, so
//! a damaged or hostile file gives an error naming it, never a huge allocation or a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any integer type (u8..u64, i8..i64), widened.
    Int(i128),
    /// f32 or f64.
    Float(f64),
    /// bool.
    Bool(bool),
    /// string.
    Str(String),
    /// array of any of the above.
    Array(Vec<Value>),
}

impl Value {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i128> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The bool, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// The array, if this is one.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// A GGUF file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: not a readable GGUF file: {message}")]
pub struct GgufError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, with the byte offset where it was found.
    pub message: String,
}

/// The metadata of a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// Format version (2 or 3).
    pub version: u32,
    /// Number of tensors the file declares (0 for a vocabulary-only file).
    pub tensor_count: u64,
    /// Key → value.
    pub kv: BTreeMap<String, Value>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn err(&self, message: impl std::fmt::Display) -> GgufError {
        GgufError { path: self.path.to_path_buf(), message: format!("{message} (at byte {})", self.pos) }
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], GgufError> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(self.err(format!("needs {n} more bytes, {left} left (truncated file?)")));
        }
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let n = self.u64()?;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }

    fn value(&mut self, ty: u32, depth: u32) -> Result<Value, GgufError> {
        let int = |b: &[u8], signed: bool| -> i128 {
            let mut buf = [0u8; 16];
            buf[..b.len()].copy_from_slice(b);
            if signed && b[b.len() - 1] & 0x80 != 0 {
                buf[b.len()..].fill(0xff);
            }
            i128::from_le_bytes(buf)
        };
        Ok(match ty {
            0 => Value::Int(int(self.take(1)?, false)),
            1 => Value::Int(int(self.take(1)?, true)),
            2 => Value::Int(int(self.take(2)?, false)),
            3 => Value::Int(int(self.take(2)?, true)),
            4 => Value::Int(int(self.take(4)?, false)),
            5 => Value::Int(int(self.take(4)?, true)),
            6 => Value::Float(f32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as f64),
            7 => Value::Bool(self.take(1)?[0] != 0),
            8 => Value::Str(self.string()?),
            9 => {
                if depth > 0 {
                    return Err(self.err("nested arrays are not supported"));
                }
                let elem = self.u32()?;
                let n = self.u64()?;
                // Every element takes at least one byte: a length beyond the file is damage.
                if n > (self.bytes.len() - self.pos) as u64 {
                    return Err(self.err(format!("array of {n} elements cannot fit in the file")));
                }
                let mut out = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    out.push(self.value(elem, depth + 1)?);
                }
                Value::Array(out)
            }
            10 => Value::Int(int(self.take(8)?, false)),
            11 => Value::Int(int(self.take(8)?, true)),
            12 => Value::Float(f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))),
            t => return Err(self.err(format!("unknown value type {t}"))),
        })
    }
}

/// Reads the metadata of the GGUF file at `path`.
pub fn read_metadata(path: &Path) -> Result<Metadata, GgufError> {
    let bytes = std::fs::read(path).map_err(|e| GgufError { path: path.to_path_buf(), message: e.to_string() })?;
    parse_metadata(&bytes, path)
}

/// Parses GGUF metadata from `bytes`; `path` is for error messages.
pub fn parse_metadata(bytes: &[u8], path: &Path) -> Result<Metadata, GgufError> {
    let mut r = Reader { bytes, pos: 0, path };
    if r.take(4).ok() != Some(b"GGUF".as_slice()) {
        return Err(GgufError { path: path.to_path_buf(), message: "missing the `GGUF` magic at byte 0".into() });
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(r.err(format!("GGUF version {version} is not supported (kiln reads versions 2 and 3)")));
    }
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    let mut kv = BTreeMap::new();
    for _ in 0..kv_count {
        let key = r.string()?;
        let ty = r.u32()?;
        let value = r.value(ty, 0).map_err(|e| GgufError { message: format!("key `{key}`: {}", e.message), ..e })?;
        kv.insert(key, value);
    }
    Ok(Metadata { version, tensor_count, kv })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gguf(kvs: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend((kvs.len() as u64).to_le_bytes());
        for (k, ty, v) in kvs {
            b.extend((k.len() as u64).to_le_bytes());
            b.extend(k.as_bytes());
            b.extend(ty.to_le_bytes());
            b.extend(v);
        }
        b
    }

    fn s(text: &str) -> Vec<u8> {
        let mut v = (text.len() as u64).to_le_bytes().to_vec();
        v.extend(text.as_bytes());
        v
    }

    #[test]
    fn reads_scalars_strings_and_arrays() {
        let mut arr = 8u32.to_le_bytes().to_vec();
        arr.extend(2u64.to_le_bytes());
        arr.extend(s("a"));
        arr.extend(s("bc"));
        let bytes = gguf(&[("name", 8, s("x")), ("n", 5, (-7i32).to_le_bytes().to_vec()), ("flag", 7, vec![1]), ("list", 9, arr)]);
        let m = parse_metadata(&bytes, Path::new("t.gguf")).unwrap();
        assert_eq!(m.kv["name"].as_str(), Some("x"));
        assert_eq!(m.kv["n"].as_int(), Some(-7));
        assert_eq!(m.kv["flag"].as_bool(), Some(true));
        let list: Vec<&str> = m.kv["list"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(list, ["a", "bc"]);
    }

    #[test]
    fn damaged_files_name_the_file_and_problem() {
        let e = parse_metadata(b"GGML....", Path::new("bad.gguf")).unwrap_err().to_string();
        assert!(e.contains("bad.gguf") && e.contains("magic"), "{e}");
        let good = gguf(&[("name", 8, s("hello"))]);
        let e = parse_metadata(&good[..good.len() - 2], Path::new("cut.gguf")).unwrap_err().to_string();
        assert!(e.contains("cut.gguf") && e.contains("truncated") && e.contains("`name`"), "{e}");
        // A huge array length is refused before allocating.
        let mut arr = 4u32.to_le_bytes().to_vec();
        arr.extend(u64::MAX.to_le_bytes());
        let e = parse_metadata(&gguf(&[("big", 9, arr)]), Path::new("big.gguf")).unwrap_err().to_string();
        assert!(e.contains("cannot fit"), "{e}");
        let mut v4 = good.clone();
        v4[4] = 9;
        let e = parse_metadata(&v4, Path::new("v9.gguf")).unwrap_err().to_string();
        assert!(e.contains("version 9"), "{e}");
    }
}
