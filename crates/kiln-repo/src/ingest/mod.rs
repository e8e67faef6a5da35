//! Ingestion: read a repository's text source files into a [`Repo`], from a directory, a git
//! repository's HEAD tree, or a `.tar` / `.tar.gz` / `.tgz` / `.zip` archive, and count every file
//! left out, by reason, in an [`IngestSummary`].
//!
//! In: a path ([`ingest_path`] picks the reader) and [`IngestOptions`]. Out: a [`Repo`] whose files
//! are sorted by repository-relative `/`-separated path, plus the summary.
//!
//! Decisions:
//! * **A directory with a `.git` inside is read as its working tree** (what the user has on disk,
//!   uncommitted edits included), walking with `.gitignore` and `.git/info/exclude` honoured, as
//!   `git ls-files --others --cached --exclude-standard` would. `.gitignore` is honoured in plain
//!   directories too (an unpacked repository keeps its ignore rules). The user's global git
//!   excludes, ripgrep's `.ignore` files and `.gitignore` files above the root are NOT read, so the
//!   result does not depend on the machine. Ignored files are left out silently (not counted).
//! * **A bare repository (or any path ending in `.git`) is read at HEAD** with gix, without a
//!   checkout; [`ingest_git`] reads HEAD for a non-bare repository as well. A blob or tree missing
//!   from the object database is a [`SkipReason::MissingObject`], not an error.
//! * **Archives are read in memory, never extracted.** Entry names are checked before anything
//!   else: absolute names, `..` components, backslashes (tar) and non-UTF-8 names are
//!   [`SkipReason::UnsafePath`]. When every entry sits under one top-level folder (GitHub's
//!   `repo-sha/` tarballs) that folder is stripped. A tar is read twice for this (the first pass
//!   only looks at headers and stops as soon as two top-level names differ); a zip's names come
//!   from its central directory. When an archive holds one path twice, the later entry wins (as
//!   when unpacking) and the earlier one is a [`SkipReason::DuplicatePath`].
//! * **Nothing is followed**: symlinks are counted ([`SkipReason::Symlink`], or
//!   [`SkipReason::SymlinkOutside`] when the target leaves the repository), never read.
//! * **Sizes are checked before reading** (metadata, git object header, archive header), and every
//!   read is capped at `max_file_bytes + 1` bytes in case a header lies.
//! * **Budgets stop ingestion**: when the expanded bytes would pass `max_total_bytes`, or a file
//!   would be kept beyond `max_files`, that entry is counted ([`SkipReason::BudgetExceeded`] /
//!   [`SkipReason::TooManyFiles`]) and nothing after it is read: the result holds the files read
//!   so far. For tar archives every entry's size is charged, read or not, because the stream must
//!   be inflated through it; that is what stops a gzip bomb. Walking also stops after visiting
//!   `10 * max_files` entries of any kind (a guard against trees of millions of skipped files).
//! * Vendored and generated directories are pruned and counted once per directory, not per file.
//!   VCS metadata (`.git`, `.hg`, `.svn`) is left out silently.
//! * A leading UTF-8 byte order mark is removed from the text; nothing else is changed.
//!
//! **Files.** `rules.rs`: the skip rules on names and contents; `collector.rs`: the collector
//! every reader feeds (rules in one order, counts, budgets); `directory.rs`, `git.rs` and
//! `archive.rs`: the readers. This file: the options, the summary and the entry points.

mod archive;
mod collector;
mod directory;
mod git;
mod rules;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tracing::{debug, warn};

use crate::error::{RepoError, Result};
use crate::Repo;

use archive::archive_kind;
pub use archive::{ingest_archive, ingest_entries};
pub use directory::ingest_dir;
pub use git::ingest_git;

/// What [`ingest_path`] accepts, for error messages.
const ACCEPTED: &str = "expected a directory, a git repository (bare, or a working tree with .git), \
                        or a .tar, .tar.gz, .tgz or .zip archive";

/// Limits and switches for ingestion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOptions {
    /// Files larger than this are skipped unread ([`SkipReason::TooLarge`]). Default 1 MiB:
    /// hand-written source files are almost never larger; bigger "source" files are generated
    /// code, data or bundles, and one of them would fill a model's whole context window (16K
    /// tokens ≈ 50-60 KB). BigCode's StarCoderData filters use the same order of magnitude.
    pub max_file_bytes: u64,
    /// Cap on the expanded bytes read from one repository or archive (default 1 GiB). Guards
    /// against zip/tar bombs and pathological repositories; hitting it stops ingestion
    /// ([`SkipReason::BudgetExceeded`]).
    pub max_total_bytes: u64,
    /// Cap on the number of files kept from one repository (default 200,000); hitting it stops
    /// ingestion ([`SkipReason::TooManyFiles`]).
    pub max_files: usize,
    /// Keep text files whose language [`lang::detect`](crate::lang::detect) does not know, with `language: None`
    /// (default false: they are skipped as [`SkipReason::UnknownLanguage`]).
    pub keep_unknown_languages: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions { max_file_bytes: 1 << 20, max_total_bytes: 1 << 30, max_files: 200_000, keep_unknown_languages: false }
    }
}

/// Why a file (or a directory of files) was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A vendored dependency directory (`node_modules`, `vendor`, `third_party`, ...), counted
    /// once per directory.
    Vendored,
    /// Build output or generated code: a directory (`dist`, `build`, `target`, `__pycache__`, ...;
    /// counted once per directory), a generated file name (`*_pb2.py`, `*.pb.go`, ...) or a
    /// marker (`@generated`, `DO NOT EDIT`, `<auto-generated`) in the first 1 KB.
    Generated,
    /// Minified code: `*.min.js` / `*.min.css`, or an average line longer than 500 bytes.
    Minified,
    /// A dependency lock file (`Cargo.lock`, `package-lock.json`, `go.sum`, ...).
    LockFile,
    /// A NUL byte in the first 8 KB.
    Binary,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Larger than [`IngestOptions::max_file_bytes`] (not read).
    TooLarge,
    /// A language [`lang::detect`](crate::lang::detect) does not know (unless `keep_unknown_languages`).
    UnknownLanguage,
    /// A symbolic (or tar hard) link inside the repository; links are never followed.
    Symlink,
    /// A symbolic link whose target is absolute or leaves the repository.
    SymlinkOutside,
    /// A git submodule (a commit inside a tree).
    Submodule,
    /// Not a regular file (device, FIFO, socket).
    NotRegularFile,
    /// Could not be read (permission denied, a damaged entry, an encrypted zip entry, ...).
    Unreadable,
    /// An archive entry or tree entry with an absolute path, a `..` component, a backslash, or a
    /// name that is not UTF-8 (also non-UTF-8 file names on disk).
    UnsafePath,
    /// An archive entry whose path a later entry of the same archive replaces.
    DuplicatePath,
    /// Reading it would pass [`IngestOptions::max_total_bytes`]; ingestion stopped here.
    BudgetExceeded,
    /// Keeping it would pass [`IngestOptions::max_files`]; ingestion stopped here.
    TooManyFiles,
    /// A git object missing from the repository's object database.
    MissingObject,
}

impl SkipReason {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Vendored => "vendored",
            SkipReason::Generated => "generated",
            SkipReason::Minified => "minified",
            SkipReason::LockFile => "lock_file",
            SkipReason::Binary => "binary",
            SkipReason::InvalidUtf8 => "invalid_utf8",
            SkipReason::TooLarge => "too_large",
            SkipReason::UnknownLanguage => "unknown_language",
            SkipReason::Symlink => "symlink",
            SkipReason::SymlinkOutside => "symlink_outside",
            SkipReason::Submodule => "submodule",
            SkipReason::NotRegularFile => "not_regular_file",
            SkipReason::Unreadable => "unreadable",
            SkipReason::UnsafePath => "unsafe_path",
            SkipReason::DuplicatePath => "duplicate_path",
            SkipReason::BudgetExceeded => "budget_exceeded",
            SkipReason::TooManyFiles => "too_many_files",
            SkipReason::MissingObject => "missing_object",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many skipped paths an [`IngestSummary`] keeps as examples.
pub const MAX_EXAMPLES: usize = 20;

/// What ingestion kept and what it left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestSummary {
    /// Files kept.
    pub files: usize,
    /// Bytes of text kept.
    pub bytes: u64,
    /// Files (or pruned directories) left out, by reason.
    pub skipped: BTreeMap<SkipReason, usize>,
    /// The first [`MAX_EXAMPLES`] paths left out, with their reason (directories end in `/`).
    pub examples: Vec<(String, SkipReason)>,
}

impl IngestSummary {
    /// Adds another summary's counts (e.g. to total several repositories); examples are appended
    /// up to [`MAX_EXAMPLES`].
    pub fn merge(&mut self, other: &IngestSummary) {
        self.files += other.files;
        self.bytes += other.bytes;
        for (reason, n) in &other.skipped {
            *self.skipped.entry(*reason).or_insert(0) += n;
        }
        let room = MAX_EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.iter().take(room).cloned());
    }

    /// How many were left out for `reason`.
    pub fn count(&self, reason: SkipReason) -> usize {
        self.skipped.get(&reason).copied().unwrap_or(0)
    }

    /// How many were left out in all.
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points.

/// Reads a repository, picking the reader from what `path` is:
/// * a directory containing `.git` (a directory or a gitfile): its working tree, [`ingest_dir`];
/// * a bare git repository (`HEAD`, `objects/`, `refs/`), or a directory whose name ends in
///   `.git`: its HEAD tree, [`ingest_git`];
/// * a file ending in `.tar`, `.tar.gz`, `.tgz` or `.zip`, or starting with a gzip or zip
///   signature: [`ingest_archive`];
/// * any other directory: [`ingest_dir`].
///
/// Anything else is [`RepoError::NotARepository`].
pub fn ingest_path(path: &Path, opts: &IngestOptions) -> Result<(Repo, IngestSummary)> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            RepoError::NotARepository { path: path.to_path_buf(), message: format!("does not exist; {ACCEPTED}") }
        } else {
            RepoError::Io { path: path.to_path_buf(), source: e }
        }
    })?;
    if meta.is_dir() {
        if path.join(".git").symlink_metadata().is_ok() {
            ingest_dir(path, opts)
        } else if is_bare_git_dir(path) || has_git_suffix(path) {
            ingest_git(path, opts)
        } else {
            ingest_dir(path, opts)
        }
    } else if meta.is_file() {
        if archive_kind(path)?.is_some() {
            ingest_archive(path, opts)
        } else {
            Err(RepoError::NotARepository {
                path: path.to_path_buf(),
                message: format!("is a file that is not a supported archive; {ACCEPTED}"),
            })
        }
    } else {
        Err(RepoError::NotARepository { path: path.to_path_buf(), message: ACCEPTED.to_string() })
    }
}

/// The repositories of a repos root, sorted: its sub-directories and archives (recognised by
/// their magic bytes or extension), hidden entries passed over. Lets a caller schedule the
/// repositories (one task each, in parallel) before reading any of them.
pub fn list_repos_root(root: &Path) -> Result<Vec<PathBuf>> {
    let read = std::fs::read_dir(root).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory {
            RepoError::NotARepository {
                path: root.to_path_buf(),
                message: "expected a directory whose sub-directories and archives are repositories".into(),
            }
        } else {
            RepoError::Io { path: root.to_path_buf(), source: e }
        }
    })?;
    let mut candidates = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| RepoError::Io { path: root.to_path_buf(), source: e })?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            debug!(path = %path.display(), "hidden; not a repository");
            continue;
        }
        let Ok(ft) = entry.file_type() else { continue };
        let is_repo = ft.is_dir() || (ft.is_file() && matches!(archive_kind(&path), Ok(Some(_))));
        if is_repo {
            candidates.push(path);
        } else {
            debug!(path = %path.display(), "not a directory or archive; passed over");
        }
    }
    candidates.sort();
    Ok(candidates)
}

/// Treats each entry of `root` as one repository: every sub-directory (working tree, bare
/// repository or plain directory) and every archive file, in name order. Hidden entries,
/// symlinks and other files are passed over. Each repository gets its own result, so one bad
/// repository does not stop the others; the outer error is only for an unreadable `root`.
#[allow(clippy::type_complexity)] // spelled out on purpose: one result per repository
pub fn ingest_repos_root(root: &Path, opts: &IngestOptions) -> Result<Vec<(PathBuf, Result<(Repo, IngestSummary)>)>> {
    let candidates = list_repos_root(root)?;
    Ok(candidates
        .into_iter()
        .map(|p| {
            let result = ingest_path(&p, opts);
            if let Err(e) = &result {
                warn!(error = %e, "repository not ingested");
            }
            (p, result)
        })
        .collect())
}

fn is_bare_git_dir(path: &Path) -> bool {
    path.join("HEAD").is_file() && path.join("objects").is_dir() && path.join("refs").is_dir()
}

fn has_git_suffix(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".git"))
}

/// A repository's name: the directory's name, or the current directory's when `path` has none.
fn dir_name(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.or_else(|| std::fs::canonicalize(path).ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())));
    name.unwrap_or_else(|| "repo".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_merge_and_json() {
        let mut a = IngestSummary { files: 1, bytes: 10, ..Default::default() };
        a.skipped.insert(SkipReason::Binary, 2);
        let mut b = IngestSummary { files: 2, bytes: 5, ..Default::default() };
        b.skipped.insert(SkipReason::Binary, 1);
        b.skipped.insert(SkipReason::TooLarge, 1);
        b.examples = (0..30).map(|i| (format!("f{i}"), SkipReason::Binary)).collect();
        a.merge(&b);
        assert_eq!((a.files, a.bytes), (3, 15));
        assert_eq!(a.count(SkipReason::Binary), 3);
        assert_eq!(a.count(SkipReason::TooLarge), 1);
        assert_eq!(a.skipped_total(), 4);
        assert_eq!(a.examples.len(), MAX_EXAMPLES);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["skipped"]["binary"], 3);
        assert_eq!(json["examples"][0], serde_json::json!(["f0", "binary"]));
        for r in [SkipReason::LockFile, SkipReason::SymlinkOutside, SkipReason::InvalidUtf8] {
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::json!(r.as_str()));
        }
    }
}
