//! Reading and writing checkpoints in the Hugging Face layout: one `model.safetensors`, or shards
//! named by `model.safetensors.index.json`. Tensor names are transformers' own, so a kiln checkpoint
//! loads in transformers and a DeepSeek-Coder download loads here.
//!
//! Loading checks every tensor against the shapes `config.json` implies *before* the network is
//! built, so a mismatched or damaged checkpoint fails with the file and tensor named instead of a
//! shape error deep inside a matmul. Writing is atomic: each file is written beside its final name
//! and renamed into place, so an interrupted save never leaves a half-written checkpoint behind.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::safetensors::Load;
use candle_core::{DType, Device, Tensor};
use safetensors::SafeTensors;
use serde_json::{json, Value};

use crate::config::Config;
use crate::error::{ModelError, Result};

/// Single-file weights name.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Shard index name.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Tensors some checkpoints carry that the network recomputes (old transformers saved RoPE tables).
fn is_ignorable(name: &str) -> bool {
    name.ends_with("rotary_emb.inv_freq")
}

/// The weight files of a model directory: `model.safetensors` if present, else every shard the
/// index names (each checked to exist).
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(ModelError::MissingFile { path: dir.to_path_buf(), what: "model directory" });
    }
    let single = dir.join(SINGLE_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join(INDEX_FILE);
    if !index.is_file() {
        return Err(ModelError::MissingFile { path: single, what: "weights (nor model.safetensors.index.json)" });
    }
    let text = std::fs::read_to_string(&index).map_err(|source| ModelError::Io { path: index.clone(), source })?;
    let bad = |message: String| ModelError::BadIndex { path: index.clone(), message };
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let map = v.get("weight_map").and_then(Value::as_object).ok_or_else(|| bad("missing object `weight_map`".into()))?;
    let mut files: Vec<String> = Vec::new();
    for (name, file) in map {
        let file = file.as_str().ok_or_else(|| bad(format!("weight_map[`{name}`] is not a file name")))?;
        if !files.iter().any(|f| f == file) {
            files.push(file.to_string());
        }
    }
    files.sort();
    let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
    if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
        return Err(bad(format!("shard {} is listed but not present", missing.display())));
    }
    if paths.is_empty() {
        return Err(bad("weight_map is empty".into()));
    }
    Ok(paths)
}

/// Loads every tensor `cfg` requires from the checkpoint in `dir`, converted to `dtype` on `device`.
/// Fails before loading anything heavy if a name is missing or a shape disagrees with `cfg`.
pub fn load_checkpoint(dir: &Path, cfg: &Config, dtype: DType, device: &Device) -> Result<HashMap<String, Tensor>> {
    let expected: HashMap<String, Vec<usize>> = cfg.expected_tensors().into_iter().collect();
    let files = weight_files(dir)?;
    // Map every file first: headers are validated (and truncation detected) for all shards before
    // any tensor is copied, so a bad last shard does not cost a full load of the first ones.
    let mut maps = Vec::with_capacity(files.len());
    for path in &files {
        let file = File::open(path).map_err(|source| ModelError::Io { path: path.clone(), source })?;
        // SAFETY: the map is read-only and lives only during this call; kiln never writes to a
        // checkpoint it is reading (saves go to a temporary file that is renamed into place).
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| ModelError::Io { path: path.clone(), source })?;
        SafeTensors::deserialize(&mmap).map_err(|e| ModelError::BadSafetensors { path: path.clone(), message: e.to_string() })?;
        maps.push(mmap);
    }
    // Shape check across all shards.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, mmap) in maps.iter().enumerate() {
        let st = SafeTensors::deserialize(mmap).expect("validated above");
        for (name, view) in st.iter() {
            match expected.get(name) {
                Some(shape) if shape.as_slice() != view.shape() => {
                    return Err(ModelError::TensorShape {
                        file: files[i].clone(),
                        name: name.to_string(),
                        expected: shape.clone(),
                        found: view.shape().to_vec(),
                    })
                }
                Some(_) => {
                    seen.insert(name.to_string(), i);
                }
                None if is_ignorable(name) => {}
                None => tracing::warn!(tensor = name, file = %files[i].display(), "ignoring tensor the config does not use"),
            }
        }
    }
    let mut missing: Vec<&String> = expected.keys().filter(|n| !seen.contains_key(*n)).collect();
    if !missing.is_empty() {
        missing.sort();
        let examples: Vec<&str> = missing.iter().take(4).map(|s| s.as_str()).collect();
        return Err(ModelError::MissingTensors { dir: dir.to_path_buf(), count: missing.len(), examples: examples.join(", ") });
    }
    let mut out = HashMap::with_capacity(expected.len());
    for (i, mmap) in maps.iter().enumerate() {
        let st = SafeTensors::deserialize(mmap).expect("validated above");
        for (name, view) in st.iter() {
            if seen.get(name) != Some(&i) {
                continue;
            }
            let t = view
                .load(&Device::Cpu)
                .map_err(|e| ModelError::BadSafetensors { path: files[i].clone(), message: format!("tensor `{name}`: {e}") })?;
            out.insert(name.to_string(), t.to_dtype(dtype)?.to_device(device)?);
        }
    }
    tracing::debug!(tensors = out.len(), files = files.len(), "checkpoint loaded");
    Ok(out)
}

/// Writes `bytes` to `path` atomically ([`kiln_base::fs::write_atomic`]: a temporary file in the
/// same directory, fsync, rename). Errors name `path`.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    kiln_base::fs::write_atomic(path, bytes).map_err(|e| ModelError::Io { path: path.to_path_buf(), source: e.source })
}

fn write_safetensors(path: &Path, tensors: &[(&str, &Tensor)]) -> Result<()> {
    let tmp = kiln_base::fs::tmp_path(path);
    let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    safetensors::serialize_to_file(tensors.iter().map(|(n, t)| (*n, *t)), Some(metadata), &tmp)
        .map_err(|e| ModelError::BadSafetensors { path: path.to_path_buf(), message: e.to_string() })?;
    kiln_base::fs::persist(&tmp, path).map_err(|e| ModelError::Io { path: e.path, source: e.source })
}

/// Saves `tensors` into `dir` with HF names: one `model.safetensors` when the total fits in
/// `max_shard_bytes` (or no limit is given), else `model-0000i-of-0000N.safetensors` shards plus
/// `model.safetensors.index.json`, as transformers' `save_pretrained` does. Files of the other
/// layout left by an earlier save are removed so loaders never see two conflicting copies.
pub fn save_checkpoint(dir: &Path, tensors: &[(String, Tensor)], max_shard_bytes: Option<usize>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io { path: dir.to_path_buf(), source })?;
    let mut sorted: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    sorted.sort_by_key(|(name, _)| natural_key(name));
    let bytes = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
    let total: usize = sorted.iter().map(|(_, t)| bytes(t)).sum();
    let limit = max_shard_bytes.unwrap_or(usize::MAX);
    let mut shards: Vec<Vec<(&str, &Tensor)>> = vec![vec![]];
    let mut current = 0usize;
    for (name, t) in sorted {
        let b = bytes(t);
        if current > 0 && current + b > limit {
            shards.push(vec![]);
            current = 0;
        }
        shards.last_mut().expect("non-empty").push((name, t));
        current += b;
    }
    if shards.len() == 1 {
        write_safetensors(&dir.join(SINGLE_FILE), &shards[0])?;
        remove_if_exists(&dir.join(INDEX_FILE))?;
        return Ok(());
    }
    let n = shards.len();
    let mut weight_map = BTreeMap::new();
    for (i, shard) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, n);
        write_safetensors(&dir.join(&file), shard)?;
        for (name, _) in shard {
            weight_map.insert(name.to_string(), file.clone());
        }
    }
    let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    atomic_write(&dir.join(INDEX_FILE), serde_json::to_string_pretty(&index).expect("json").as_bytes())?;
    // The index is written last, then the stale single file goes: a crash in between leaves a
    // directory that still loads (the single file wins), never one with a dangling index.
    remove_if_exists(&dir.join(SINGLE_FILE))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ModelError::Io { path: path.to_path_buf(), source }),
    }
}

/// Sort key that orders `layers.10` after `layers.9`, so shards hold whole layers in order.
fn natural_key(name: &str) -> Vec<(u64, String)> {
    name.split('.').map(|part| (part.parse::<u64>().map(|n| n + 1).unwrap_or(0), part.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_keeps_layers_in_sequence() {
        let mut names = vec!["model.layers.10.x", "model.layers.9.x", "lm_head.weight", "model.layers.1.x"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(names, vec!["lm_head.weight", "model.layers.1.x", "model.layers.9.x", "model.layers.10.x"]);
    }
}
