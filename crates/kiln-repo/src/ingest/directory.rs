//! The directory reader: walks a working tree (or any directory) with `.gitignore` honoured,
//! pruning vendored and generated directories as it goes.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::{debug, warn};

use super::collector::{Collector, Flow};
use super::rules::{dir_rule, link_stays_inside, read_capped};
use super::{dir_name, IngestOptions, IngestSummary, SkipReason, ACCEPTED};
use crate::error::{RepoError, Result};
use crate::Repo;

/// Reads a directory's files (a working tree or any directory), honouring `.gitignore` (see the
/// module docs).
pub fn ingest_dir(path: &Path, opts: &IngestOptions) -> Result<(Repo, IngestSummary)> {
    // Fail early, with the real cause, when the root itself cannot be listed.
    std::fs::read_dir(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
            RepoError::NotARepository { path: path.to_path_buf(), message: format!("is not a directory; {ACCEPTED}") }
        }
        _ => RepoError::Io { path: path.to_path_buf(), source: e },
    })?;
    let root_canonical = std::fs::canonicalize(path).ok();
    let mut c = Collector::new(opts);

    // Pruned directories are recorded by the filter (which must be `'static + Sync`) and counted
    // as the walk goes, so that examples stay in walk order.
    let pruned: Arc<Mutex<Vec<(PathBuf, SkipReason)>>> = Arc::default();
    let pruned_in_filter = Arc::clone(&pruned);
    let walker = ignore::WalkBuilder::new(path)
        .hidden(false)
        .parents(false)
        .ignore(false)
        .git_global(false)
        .git_ignore(true)
        .git_exclude(true)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            if !is_dir || entry.depth() == 0 {
                return true;
            }
            match entry.file_name().to_str().and_then(dir_rule) {
                None => true,
                Some(None) => false,
                Some(Some(reason)) => {
                    if let Ok(mut p) = pruned_in_filter.lock() {
                        p.push((entry.path().to_path_buf(), reason));
                    }
                    false
                }
            }
        })
        .build();

    let rel = |p: &Path| -> Option<String> {
        let r = p.strip_prefix(path).ok()?;
        let parts: Option<Vec<&str>> = r.components().map(|c| c.as_os_str().to_str()).collect();
        Some(parts?.join("/"))
    };
    let drain_pruned = |c: &mut Collector| {
        let taken = pruned.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        for (p, reason) in taken {
            let shown = rel(&p).unwrap_or_else(|| p.display().to_string());
            c.skip(&format!("{shown}/"), reason);
        }
    };

    for entry in walker {
        drain_pruned(&mut c);
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "walk error");
                let shown = error_path(&e).and_then(|p| rel(&p)).unwrap_or_else(|| e.to_string());
                c.skip(&shown, SkipReason::Unreadable);
                continue;
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        let Some(rel_path) = rel(entry.path()) else {
            c.skip(&entry.path().to_string_lossy(), SkipReason::UnsafePath);
            continue;
        };
        if c.visit(&rel_path) == Flow::Stop {
            break;
        }
        let Some(ft) = entry.file_type() else {
            continue;
        };
        if ft.is_dir() {
            continue;
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).ok();
            let inside = target.as_deref().is_some_and(|t| symlink_on_disk_inside(&rel_path, t, root_canonical.as_deref()));
            c.skip(&rel_path, if inside { SkipReason::Symlink } else { SkipReason::SymlinkOutside });
            continue;
        }
        if !ft.is_file() {
            c.skip(&rel_path, SkipReason::NotRegularFile);
            continue;
        }
        let size = match entry.metadata() {
            Ok(m) => m.len(),
            Err(e) => {
                debug!(path = %rel_path, error = %e, "metadata unreadable");
                c.skip(&rel_path, SkipReason::Unreadable);
                continue;
            }
        };
        let language = match c.precheck(&rel_path, size) {
            Ok(l) => l,
            Err(Flow::Continue) => continue,
            Err(Flow::Stop) => break,
        };
        if c.charge(&rel_path, size) == Flow::Stop {
            break;
        }
        let bytes = match File::open(entry.path()).and_then(|f| read_capped(f, size, opts.max_file_bytes + 1)) {
            Ok(b) => b,
            Err(e) => {
                debug!(path = %rel_path, error = %e, "unreadable");
                c.skip(&rel_path, SkipReason::Unreadable);
                continue;
            }
        };
        // The file may have grown since its metadata was read.
        let extra = (bytes.len() as u64).saturating_sub(size);
        if extra > 0 && c.charge(&rel_path, extra) == Flow::Stop {
            break;
        }
        c.accept(rel_path, language, bytes);
    }
    drain_pruned(&mut c);
    Ok(c.finish(dir_name(path)))
}

/// The path an `ignore` walk error is about, if it says.
fn error_path(e: &ignore::Error) -> Option<PathBuf> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => error_path(err),
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        _ => None,
    }
}

/// Whether a symlink on disk at `rel_path` pointing at `target` stays inside the repository.
/// Relative targets are resolved lexically; absolute ones are compared with the canonical root.
fn symlink_on_disk_inside(rel_path: &str, target: &Path, root_canonical: Option<&Path>) -> bool {
    if target.is_absolute() {
        return match (root_canonical, std::fs::canonicalize(target)) {
            (Some(root), Ok(t)) => t.starts_with(root),
            _ => false,
        };
    }
    match target.to_str() {
        Some(t) => link_stays_inside(rel_path, t.as_bytes()),
        None => false,
    }
}
