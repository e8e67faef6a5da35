//! The archive readers: `.tar`, `.tar.gz`/`.tgz` and `.zip` read in memory (never extracted),
//! with the single top folder stripped and the expansion budget charged entry by entry; and
//! in-memory `(path, bytes)` entries read by the same rules.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use tracing::{debug, warn};

use super::collector::{Collector, Flow};
use super::rules::{read_capped, safe_components, MAX_LINK_TARGET};
use super::{IngestOptions, IngestSummary, SkipReason, ACCEPTED};
use crate::error::{RepoError, Result};
use crate::Repo;

/// Archive formats [`ingest_archive`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArchiveKind {
    Tar,
    TarGz,
    Zip,
}

/// The archive kind of a file, from its first bytes (gzip / zip signatures), else its name.
pub(super) fn archive_kind(path: &Path) -> Result<Option<ArchiveKind>> {
    let mut magic = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| {
            let mut n = 0;
            while n < magic.len() {
                match f.read(&mut magic[n..])? {
                    0 => break,
                    k => n += k,
                }
            }
            Ok(n)
        })
        .map_err(|e| RepoError::Io { path: path.to_path_buf(), source: e })?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let by_name = if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(ArchiveKind::TarGz)
    } else if name.ends_with(".tar") {
        Some(ArchiveKind::Tar)
    } else if name.ends_with(".zip") {
        Some(ArchiveKind::Zip)
    } else {
        None
    };
    let magic = &magic[..n];
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Some(ArchiveKind::TarGz)
    } else if magic.starts_with(b"PK\x03\x04") || magic.starts_with(b"PK\x05\x06") {
        Some(ArchiveKind::Zip)
    } else {
        by_name
    })
}

/// The archive's name without its archive extension (`proj.tar.gz` → `proj`).
fn archive_stem(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    for ext in [".tar.gz", ".tgz", ".tar", ".zip"] {
        if lower.ends_with(ext) && name.len() > ext.len() {
            return name[..name.len() - ext.len()].to_string();
        }
    }
    if name.is_empty() {
        "repo".to_string()
    } else {
        name
    }
}

/// Decides whether all entries sit under one top-level folder.
#[derive(Default)]
struct TopFolder {
    top: Option<String>,
    single: bool,
    seen: bool,
}

impl TopFolder {
    /// Feeds one entry's raw name; `false` once it is known there is no single top folder.
    fn add(&mut self, raw: &[u8], is_dir: bool) -> bool {
        let Some(parts) = safe_components(raw) else {
            return true;
        }; // unsafe: skipped anyway
        let Some(first) = parts.first() else {
            return true;
        };
        if !self.seen {
            self.seen = true;
            self.single = true;
        }
        if parts.len() == 1 && !is_dir {
            self.single = false; // a file at the top level
        }
        match &self.top {
            None => self.top = Some(first.to_string()),
            Some(t) if t != first => self.single = false,
            Some(_) => {}
        }
        self.single
    }

    fn result(self) -> Option<String> {
        if self.seen && self.single {
            self.top
        } else {
            None
        }
    }
}

/// Reads a `.tar`, `.tar.gz`/`.tgz` or `.zip` archive in memory (nothing is written to disk).
/// The format is recognised from the file's first bytes, then its name.
pub fn ingest_archive(path: &Path, opts: &IngestOptions) -> Result<(Repo, IngestSummary)> {
    let kind = archive_kind(path)?
        .ok_or_else(|| RepoError::NotARepository { path: path.to_path_buf(), message: format!("not a recognised archive; {ACCEPTED}") })?;
    let open = || File::open(path).map(BufReader::new).map_err(|e| RepoError::Io { path: path.to_path_buf(), source: e });
    let name = archive_stem(path);
    match kind {
        ArchiveKind::Tar => ingest_tar(path, open, opts, name),
        ArchiveKind::TarGz => ingest_tar(path, || Ok(flate2::read::MultiGzDecoder::new(open()?)), opts, name),
        ArchiveKind::Zip => ingest_zip(path, open()?, opts, name),
    }
}

/// A repository given as in-memory `(path, bytes)` entries, e.g. the rows of a dataset file
/// (The Stack style: one row per file with its repository and path). Applies the same rules as
/// the archive reader: unsafe paths (`..`, absolute) skipped, vendored/generated directories and
/// lock files pruned, language detection, size cap, binary and UTF-8 checks, the file cap and the
/// byte budget, duplicate paths (the later wins). Entries need not be sorted.
pub fn ingest_entries(name: &str, entries: impl IntoIterator<Item = (String, Vec<u8>)>, opts: &IngestOptions) -> (Repo, IngestSummary) {
    let mut c = Collector::new(opts);
    for (raw_path, bytes) in entries {
        let Some(parts) = safe_components(raw_path.as_bytes()) else {
            c.skip(&raw_path, SkipReason::UnsafePath);
            continue;
        };
        let rel_path = parts.join("/");
        if c.charge(&rel_path, bytes.len() as u64) == Flow::Stop || c.visit(&rel_path) == Flow::Stop {
            break;
        }
        if c.pruned_by_dir(&parts) {
            continue;
        }
        let language = match c.precheck(&rel_path, bytes.len() as u64) {
            Ok(l) => l,
            Err(Flow::Continue) => continue,
            Err(Flow::Stop) => break,
        };
        c.accept(rel_path, language, bytes);
    }
    c.finish(name.to_string())
}

fn archive_err(path: &Path, e: impl std::fmt::Display) -> RepoError {
    RepoError::Archive { path: path.to_path_buf(), message: format!("{e} (expected an uncorrupted .tar, .tar.gz, .tgz or .zip)") }
}

/// Strips the top folder (if any) from safe components; `None` for the top folder itself.
fn strip_top<'a>(parts: Vec<&'a str>, top: Option<&str>) -> Option<Vec<&'a str>> {
    let parts = match top {
        Some(t) if parts.first() == Some(&t) => parts[1..].to_vec(),
        _ => parts,
    };
    if parts.is_empty() {
        None
    } else {
        Some(parts)
    }
}

fn ingest_tar<R: Read>(path: &Path, open: impl Fn() -> Result<R>, opts: &IngestOptions, name: String) -> Result<(Repo, IngestSummary)> {
    // Pass 1: headers only, to find a single top folder. Stops at the first evidence against one,
    // and at the byte budget (the stream is inflated through every entry).
    let top = {
        let mut archive = tar::Archive::new(open()?);
        let mut finder = TopFolder::default();
        let mut spent: u64 = 0;
        for entry in archive.entries().map_err(|e| archive_err(path, e))? {
            let entry = entry.map_err(|e| archive_err(path, e))?;
            let ty = entry.header().entry_type();
            if ty.is_pax_global_extensions() {
                continue;
            }
            spent = spent.saturating_add(entry.size());
            if spent > opts.max_total_bytes || !finder.add(&entry.path_bytes(), ty.is_dir()) {
                break;
            }
        }
        finder.result()
    };

    // Pass 2: the entries.
    let mut c = Collector::new(opts);
    let mut archive = tar::Archive::new(open()?);
    for entry in archive.entries().map_err(|e| archive_err(path, e))? {
        let mut entry = entry.map_err(|e| archive_err(path, e))?;
        let ty = entry.header().entry_type();
        if ty.is_pax_global_extensions() {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let Some(parts) = safe_components(&raw) else {
            let shown = String::from_utf8_lossy(&raw).into_owned();
            if c.charge(&shown, entry.size()) == Flow::Stop {
                break;
            }
            c.skip(&shown, SkipReason::UnsafePath);
            continue;
        };
        let Some(parts) = strip_top(parts, top.as_deref()) else {
            continue;
        };
        let rel_path = parts.join("/");
        // Every entry's bytes are inflated to get past it, read or not.
        if c.charge(&rel_path, entry.size()) == Flow::Stop || c.visit(&rel_path) == Flow::Stop {
            break;
        }
        if ty.is_dir() {
            continue;
        }
        if c.pruned_by_dir(&parts) {
            continue;
        }
        if ty.is_symlink() {
            let target = entry.link_name_bytes().map(|t| t.into_owned());
            c.link(&rel_path, target.as_deref());
            continue;
        }
        if ty.is_hard_link() {
            c.skip(&rel_path, SkipReason::Symlink);
            continue;
        }
        if !(ty.is_file() || ty.is_gnu_sparse()) {
            c.skip(&rel_path, SkipReason::NotRegularFile);
            continue;
        }
        let size = entry.size();
        let language = match c.precheck(&rel_path, size) {
            Ok(l) => l,
            Err(Flow::Continue) => continue,
            Err(Flow::Stop) => break,
        };
        match read_capped(&mut entry, size, opts.max_file_bytes + 1) {
            Ok(bytes) => c.accept(rel_path, language, bytes),
            Err(e) => {
                // A damaged stream: later entries cannot be trusted either.
                return Err(archive_err(path, format!("{rel_path}: {e}")));
            }
        }
    }
    Ok(c.finish(name))
}

fn ingest_zip<R: Read + Seek>(path: &Path, reader: R, opts: &IngestOptions, name: String) -> Result<(Repo, IngestSummary)> {
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| archive_err(path, e))?;

    // Names and kinds come from the central directory, without decompressing anything.
    struct Meta {
        raw: Vec<u8>,
        is_dir: bool,
        is_symlink: bool,
        is_file: bool,
        size: u64,
    }
    let mut metas = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        match archive.by_index_raw(i) {
            Ok(f) => {
                // Old Windows tools wrote `\` separators; the zip format says `/`.
                let raw: Vec<u8> = f.name_raw().iter().map(|&b| if b == b'\\' { b'/' } else { b }).collect();
                metas.push(Some(Meta { raw, is_dir: f.is_dir(), is_symlink: f.is_symlink(), is_file: f.is_file(), size: f.size() }));
            }
            Err(e) => {
                warn!(index = i, error = %e, "zip entry unreadable");
                metas.push(None);
            }
        }
    }
    let top = {
        let mut finder = TopFolder::default();
        for m in metas.iter().flatten() {
            if !finder.add(&m.raw, m.is_dir) {
                break;
            }
        }
        finder.result()
    };

    let mut c = Collector::new(opts);
    for (i, meta) in metas.into_iter().enumerate() {
        let Some(meta) = meta else {
            c.skip(&format!("<zip entry {i}>"), SkipReason::Unreadable);
            continue;
        };
        let Some(parts) = safe_components(&meta.raw) else {
            c.skip(&String::from_utf8_lossy(&meta.raw), SkipReason::UnsafePath);
            continue;
        };
        let Some(parts) = strip_top(parts, top.as_deref()) else {
            continue;
        };
        let rel_path = parts.join("/");
        if c.visit(&rel_path) == Flow::Stop {
            break;
        }
        if meta.is_dir || c.pruned_by_dir(&parts) {
            continue;
        }
        if meta.is_symlink {
            let target = match archive.by_index(i) {
                Ok(f) => read_capped(f, 0, MAX_LINK_TARGET).ok(),
                Err(_) => None,
            };
            c.link(&rel_path, target.as_deref());
            continue;
        }
        if !meta.is_file {
            c.skip(&rel_path, SkipReason::NotRegularFile);
            continue;
        }
        let language = match c.precheck(&rel_path, meta.size) {
            Ok(l) => l,
            Err(Flow::Continue) => continue,
            Err(Flow::Stop) => break,
        };
        if c.charge(&rel_path, meta.size) == Flow::Stop {
            break;
        }
        // Encrypted entries, unsupported compression methods and CRC mismatches are errors here.
        let bytes = archive.by_index(i).map_err(io::Error::other).and_then(|f| read_capped(f, meta.size, opts.max_file_bytes + 1));
        match bytes {
            Ok(bytes) => {
                // The central directory may understate the size; charge what was really inflated.
                let extra = (bytes.len() as u64).saturating_sub(meta.size);
                if extra > 0 && c.charge(&rel_path, extra) == Flow::Stop {
                    break;
                }
                c.accept(rel_path, language, bytes);
            }
            Err(e) => {
                debug!(path = %rel_path, error = %e, "zip entry unreadable");
                c.skip(&rel_path, SkipReason::Unreadable);
            }
        }
    }
    Ok(c.finish(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_folder() {
        let mut t = TopFolder::default();
        assert!(t.add(b"repo-abc/", true));
        assert!(t.add(b"repo-abc/a.py", false));
        assert_eq!(t.result(), Some("repo-abc".to_string()));
        let mut t = TopFolder::default();
        t.add(b"a/x.py", false);
        assert!(!t.add(b"b/y.py", false));
        assert_eq!(t.result(), None);
        let mut t = TopFolder::default();
        assert!(!t.add(b"x.py", false));
        assert_eq!(t.result(), None);
        assert_eq!(TopFolder::default().result(), None);
    }
}
