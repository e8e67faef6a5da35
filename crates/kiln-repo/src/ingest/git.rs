//! The git reader: a repository's HEAD tree through gix, bare or not, without a checkout.

use std::path::Path;

use tracing::warn;

use super::collector::{Collector, Flow};
use super::rules::{dir_rule, MAX_LINK_TARGET};
use super::{dir_name, IngestOptions, IngestSummary, SkipReason, ACCEPTED};
use crate::error::{RepoError, Result};
use crate::Repo;

/// Reads the HEAD tree of a git repository with gix, bare or not, without a checkout: only
/// committed content, never the working tree. `path` is the repository (the working tree, its
/// `.git` directory, or a bare repository). The user's git configuration and environment are not
/// read.
pub fn ingest_git(path: &Path, opts: &IngestOptions) -> Result<(Repo, IngestSummary)> {
    let git_err = |message: String| RepoError::Git { path: path.to_path_buf(), message };
    let repo = gix::open_opts(path, gix::open::Options::isolated())
        .map_err(|e| git_err(format!("cannot open as a git repository ({e}); {ACCEPTED}")))?;
    let tree_id = repo.head_tree_id().map_err(|e| git_err(format!("cannot read HEAD's tree (is the repository empty?): {e}")))?.detach();
    let hash_kind = repo.object_hash();
    let mut c = Collector::new(opts);

    // Depth-first with an explicit stack (no recursion, so a deep tree cannot overflow the stack).
    let mut stack: Vec<(String, gix::ObjectId)> = vec![(String::new(), tree_id)];
    'walk: while let Some((prefix, id)) = stack.pop() {
        let shown = if prefix.is_empty() { "/".to_string() } else { format!("{prefix}/") };
        let tree = match repo.try_find_object(id) {
            Ok(Some(obj)) if obj.kind == gix::object::Kind::Tree => obj.detach().data,
            Ok(Some(obj)) => {
                warn!(path = %shown, kind = %obj.kind, "tree entry points at a non-tree");
                c.skip(&shown, SkipReason::Unreadable);
                continue;
            }
            Ok(None) => {
                c.skip(&shown, SkipReason::MissingObject);
                continue;
            }
            Err(e) => {
                warn!(path = %shown, error = %e, "tree unreadable");
                c.skip(&shown, SkipReason::Unreadable);
                continue;
            }
        };
        let entries = match gix::objs::TreeRef::from_bytes(&tree, hash_kind) {
            Ok(t) => t.entries,
            Err(e) => {
                warn!(path = %shown, error = %e, "tree undecodable");
                c.skip(&shown, SkipReason::Unreadable);
                continue;
            }
        };
        let mut subtrees = Vec::new();
        for entry in entries {
            let name_bytes: &[u8] = entry.filename.as_ref();
            let name = match std::str::from_utf8(name_bytes) {
                Ok(n) if !n.is_empty() && n != "." && n != ".." && !n.contains(['/', '\\', '\0']) => n,
                _ => {
                    let lossy = String::from_utf8_lossy(name_bytes);
                    c.skip(&format!("{prefix}/{lossy}"), SkipReason::UnsafePath);
                    continue;
                }
            };
            let rel_path = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
            if c.visit(&rel_path) == Flow::Stop {
                break 'walk;
            }
            let oid = entry.oid.to_owned();
            match entry.mode.kind() {
                gix::objs::tree::EntryKind::Tree => match dir_rule(name) {
                    None => subtrees.push((rel_path, oid)),
                    Some(None) => {}
                    Some(Some(reason)) => c.skip(&format!("{rel_path}/"), reason),
                },
                gix::objs::tree::EntryKind::Commit => c.skip(&rel_path, SkipReason::Submodule),
                gix::objs::tree::EntryKind::Link => {
                    let target = match repo.try_find_object(oid) {
                        Ok(Some(obj)) if obj.data.len() as u64 <= MAX_LINK_TARGET => Some(obj.detach().data),
                        _ => None,
                    };
                    c.link(&rel_path, target.as_deref());
                }
                gix::objs::tree::EntryKind::Blob | gix::objs::tree::EntryKind::BlobExecutable => {
                    let size = match repo.try_find_header(oid) {
                        Ok(Some(h)) => h.size(),
                        Ok(None) => {
                            c.skip(&rel_path, SkipReason::MissingObject);
                            continue;
                        }
                        Err(e) => {
                            warn!(path = %rel_path, error = %e, "blob header unreadable");
                            c.skip(&rel_path, SkipReason::Unreadable);
                            continue;
                        }
                    };
                    let language = match c.precheck(&rel_path, size) {
                        Ok(l) => l,
                        Err(Flow::Continue) => continue,
                        Err(Flow::Stop) => break 'walk,
                    };
                    if c.charge(&rel_path, size) == Flow::Stop {
                        break 'walk;
                    }
                    match repo.try_find_object(oid) {
                        Ok(Some(obj)) => c.accept(rel_path, language, obj.detach().data),
                        Ok(None) => c.skip(&rel_path, SkipReason::MissingObject),
                        Err(e) => {
                            warn!(path = %rel_path, error = %e, "blob unreadable");
                            c.skip(&rel_path, SkipReason::Unreadable);
                        }
                    }
                }
            }
        }
        // Pushed in reverse so that the stack pops them in tree (name) order.
        stack.extend(subtrees.into_iter().rev());
    }
    let name = if path.file_name().is_some_and(|n| n == ".git") {
        path.parent().map(dir_name).unwrap_or_else(|| "repo".to_string())
    } else {
        let n = dir_name(path);
        n.strip_suffix(".git").filter(|s| !s.is_empty()).map(str::to_string).unwrap_or(n)
    };
    Ok(c.finish(name))
}
