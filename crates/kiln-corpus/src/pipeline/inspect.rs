//! Reading a finished corpus back: samples by id, or the first few.

use std::path::Path;

use crate::error::{CorpusError, Result};
use crate::manifest::Manifest;
use crate::shard::{self, Sample};

/// Reads samples of a finished corpus: the one with `id`, or the first `n`.
pub fn inspect(dir: &Path, n: usize, id: Option<&str>) -> Result<Vec<Sample>> {
    let m = Manifest::load(dir)?;
    let mut out = Vec::new();
    for path in m.shard_paths(dir) {
        let mut stop = false;
        shard::read_file(&path, 256, |batch| {
            for s in batch {
                if stop {
                    break;
                }
                match id {
                    Some(want) if s.id == want => {
                        out.push(s);
                        stop = true;
                    }
                    Some(_) => {}
                    None => {
                        out.push(s);
                        stop = out.len() >= n;
                    }
                }
            }
            Ok(())
        })?;
        if stop {
            break;
        }
    }
    if let (Some(want), true) = (id, out.is_empty()) {
        return Err(CorpusError::Plan(format!("no sample with id {want} in {}", dir.display())));
    }
    Ok(out)
}
