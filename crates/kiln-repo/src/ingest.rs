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

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tracing::{debug, info, warn};

use crate::error::{RepoError, Result};
use crate::lang::{self, Language};
use crate::{Repo, SourceFile};

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
    /// Keep text files whose language [`lang::detect`] does not know, with `language: None`
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
    /// A language [`lang::detect`] does not know (unless `keep_unknown_languages`).
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
// Rules on names and contents (shared by every reader).

/// Directory names whose whole subtree is third-party code.
#[rustfmt::skip]
const VENDORED_DIRS: &[&str] = &[
    "node_modules", "bower_components", "jspm_packages", "vendor", "vendors", "third_party",
    "third-party", "thirdparty", "3rdparty", ".venv", "venv", "site-packages", "Pods", "Carthage",
    ".bundle", ".yarn",
];

/// Directory names whose whole subtree is build output or caches.
#[rustfmt::skip]
const GENERATED_DIRS: &[&str] = &[
    "dist", "build", "target", "__pycache__", ".tox", ".nox", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".gradle", ".next", ".nuxt", ".svelte-kit", ".parcel-cache", ".eggs",
    "DerivedData", "htmlcov",
];

/// Version-control metadata, left out silently.
#[rustfmt::skip]
const VCS_DIRS: &[&str] = &[
    ".git", ".hg", ".svn",
];

/// Dependency lock files (exact names).
#[rustfmt::skip]
const LOCK_FILES: &[&str] = &[
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb",
    "deno.lock", "Cargo.lock", "poetry.lock", "Pipfile.lock", "pdm.lock", "uv.lock", "Gemfile.lock",
    "composer.lock", "go.sum", "mix.lock", "pubspec.lock", "Podfile.lock", "packages.lock.json",
    "flake.lock", "gradle.lockfile", "Package.resolved", "paket.lock", "conda-lock.yml",
    "cabal.project.freeze", "Manifest.toml",
];

/// File name endings of generated code (compared case-insensitively).
#[rustfmt::skip]
const GENERATED_SUFFIXES: &[&str] = &[
    "_pb2.py", "_pb2.pyi", "_pb2_grpc.py", ".pb.go", ".pb.cc", ".pb.h", ".pb.swift", ".g.dart",
    ".freezed.dart", ".designer.cs", ".bundle.js",
];

/// File name endings of minified code (compared case-insensitively).
#[rustfmt::skip]
const MINIFIED_SUFFIXES: &[&str] = &[
    ".min.js", ".min.mjs", ".min.cjs", ".min.css", "-min.js",
];

/// The binary test looks for a NUL byte in this many leading bytes (git uses 8000).
const BINARY_PREFIX: usize = 8192;
/// Generated-code markers are looked for in this many leading bytes.
const MARKER_PREFIX: usize = 1024;
/// A file of at least `MINIFIED_MIN_BYTES` with a longer average line is minified.
const MINIFIED_AVG_LINE: usize = 500;
const MINIFIED_MIN_BYTES: usize = 1024;
/// Symlink targets longer than this are not read (they are still counted).
const MAX_LINK_TARGET: u64 = 4096;

/// Why a directory with this name is pruned: `Some(None)` = silently (VCS), `Some(Some(r))` =
/// counted as `r`, `None` = walked.
fn dir_rule(name: &str) -> Option<Option<SkipReason>> {
    if VCS_DIRS.contains(&name) {
        Some(None)
    } else if VENDORED_DIRS.contains(&name) {
        Some(Some(SkipReason::Vendored))
    } else if GENERATED_DIRS.contains(&name) || name.ends_with(".egg-info") {
        Some(Some(SkipReason::Generated))
    } else {
        None
    }
}

fn ends_with_ignore_case(name: &str, suffix: &str) -> bool {
    name.len() >= suffix.len() && name.as_bytes()[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// Rules that look at a file's name only.
fn name_rule(file_name: &str) -> Option<SkipReason> {
    if LOCK_FILES.contains(&file_name) {
        Some(SkipReason::LockFile)
    } else if MINIFIED_SUFFIXES.iter().any(|s| ends_with_ignore_case(file_name, s)) {
        Some(SkipReason::Minified)
    } else if GENERATED_SUFFIXES.iter().any(|s| ends_with_ignore_case(file_name, s)) {
        Some(SkipReason::Generated)
    } else {
        None
    }
}

/// Rules that look at a file's bytes. `Ok(text)` when kept.
fn content_rule(bytes: Vec<u8>, language: Option<Language>) -> std::result::Result<String, SkipReason> {
    if bytes[..bytes.len().min(BINARY_PREFIX)].contains(&0) {
        return Err(SkipReason::Binary);
    }
    let mut text = String::from_utf8(bytes).map_err(|_| SkipReason::InvalidUtf8)?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    let head = &text.as_bytes()[..text.len().min(MARKER_PREFIX)];
    let contains = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    if contains(b"@generated") || contains(b"DO NOT EDIT") || contains(b"<auto-generated") {
        return Err(SkipReason::Generated);
    }
    // Notebooks carry long base64 image lines by design; that is not minification.
    let notebook = language.is_some_and(|l| l.name() == "Jupyter Notebook");
    if !notebook && text.len() >= MINIFIED_MIN_BYTES {
        // `str::lines` counted the same lines a char search at a time (4 % of a corpus build);
        // a byte count vectorises. A last line without `\n` counts too, as it does there.
        let newlines = text.bytes().filter(|&b| b == b'\n').count();
        let lines = (newlines + usize::from(!text.ends_with('\n'))).max(1);
        if text.len() / lines > MINIFIED_AVG_LINE {
            return Err(SkipReason::Minified);
        }
    }
    Ok(text)
}

/// Splits an archive or tree path into safe components: drops empty and `.` components, rejects
/// absolute paths, `..`, backslashes, NUL and non-UTF-8. `Ok(vec![])` for the root itself.
fn safe_components(raw: &[u8]) -> Option<Vec<&str>> {
    let s = std::str::from_utf8(raw).ok()?;
    if s.starts_with('/') || s.contains('\\') || s.contains('\0') {
        return None;
    }
    let parts: Vec<&str> = s.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    // `C:` style drive prefixes are absolute on Windows.
    let drive = parts.first().is_some_and(|p| p.len() == 2 && p.ends_with(':'));
    if drive || parts.contains(&"..") {
        return None;
    }
    Some(parts)
}

/// Whether a link at `link_path` (repository-relative, `/`-separated) pointing at `target` stays
/// inside the repository, resolving `..` lexically. Absolute targets are outside.
fn link_stays_inside(link_path: &str, target: &[u8]) -> bool {
    let Ok(target) = std::str::from_utf8(target) else {
        return false;
    };
    if target.is_empty() || target.starts_with('/') || target.contains('\\') {
        return false;
    }
    let mut stack: Vec<&str> = link_path.split('/').collect();
    stack.pop(); // the link's own name
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return false;
                }
            }
            p => stack.push(p),
        }
    }
    true
}

/// Reads at most `limit` bytes; `expected` is the size the entry's metadata gives.
///
/// Why the hint: `read_to_end` into an empty `Vec` grows it by doubling, probing with small
/// reads, so every file was copied about twice and its pages faulted in twice; reading the
/// python3 stdlib took a quarter of a corpus build without the quality screen. One read into a
/// buffer of the right size (plus a byte, to see end of file) is all it needs.
fn read_capped(reader: impl Read, expected: u64, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(expected.min(limit).saturating_add(1) as usize);
    reader.take(limit).read_to_end(&mut buf)?;
    Ok(buf)
}

// ---------------------------------------------------------------------------------------------
// The collector: every reader feeds entries through it, so all readers apply the same rules in
// the same order.

/// Whether the walk goes on after an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

struct Collector<'o> {
    opts: &'o IngestOptions,
    files: Vec<SourceFile>,
    summary: IngestSummary,
    /// Expanded bytes read (or, for tar, inflated) so far.
    spent: u64,
    /// Entries visited so far, of any kind.
    visited: usize,
    /// Pruned directory prefixes already counted (archives list their files one by one).
    pruned: BTreeSet<String>,
}

impl<'o> Collector<'o> {
    fn new(opts: &'o IngestOptions) -> Self {
        Collector { opts, files: Vec::new(), summary: IngestSummary::default(), spent: 0, visited: 0, pruned: BTreeSet::new() }
    }

    fn skip(&mut self, path: &str, reason: SkipReason) {
        debug!(path, %reason, "skipped");
        *self.summary.skipped.entry(reason).or_insert(0) += 1;
        if self.summary.examples.len() < MAX_EXAMPLES {
            self.summary.examples.push((path.to_string(), reason));
        }
    }

    /// Counts one visited entry; stops the walk past `10 * max_files` entries.
    fn visit(&mut self, path: &str) -> Flow {
        self.visited += 1;
        if self.visited > self.opts.max_files.saturating_mul(10).max(1) {
            warn!(path, visited = self.visited, "too many entries; ingestion stopped");
            self.skip(path, SkipReason::TooManyFiles);
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// Charges `bytes` of expansion against the budget; `Stop` (and counted) when it would pass.
    fn charge(&mut self, path: &str, bytes: u64) -> Flow {
        match self.spent.checked_add(bytes) {
            Some(total) if total <= self.opts.max_total_bytes => {
                self.spent = total;
                Flow::Continue
            }
            _ => {
                warn!(path, spent = self.spent, max = self.opts.max_total_bytes, "byte budget exceeded; ingestion stopped");
                self.skip(path, SkipReason::BudgetExceeded);
                Flow::Stop
            }
        }
    }

    /// For flat entry lists (archives): whether a directory component of `parts` is pruned.
    /// Counts each pruned directory once. `true` when the entry must be left out.
    fn pruned_by_dir(&mut self, parts: &[&str]) -> bool {
        for (i, dir) in parts[..parts.len().saturating_sub(1)].iter().enumerate() {
            if let Some(rule) = dir_rule(dir) {
                if let Some(reason) = rule {
                    let prefix = format!("{}/", parts[..=i].join("/"));
                    if !self.pruned.contains(&prefix) {
                        self.skip(&prefix, reason);
                        self.pruned.insert(prefix);
                    }
                }
                return true;
            }
        }
        false
    }

    /// Name and size checks for a regular file, before reading it. `Ok(language)` when it should
    /// be read; `Err(flow)` when it was skipped (counted).
    fn precheck(&mut self, path: &str, size: u64) -> std::result::Result<Option<Language>, Flow> {
        let file_name = path.rsplit('/').next().unwrap_or(path);
        if let Some(reason) = name_rule(file_name) {
            self.skip(path, reason);
            return Err(Flow::Continue);
        }
        let language = lang::detect(path);
        if language.is_none() && !self.opts.keep_unknown_languages {
            self.skip(path, SkipReason::UnknownLanguage);
            return Err(Flow::Continue);
        }
        if size > self.opts.max_file_bytes {
            self.skip(path, SkipReason::TooLarge);
            return Err(Flow::Continue);
        }
        if self.files.len() >= self.opts.max_files {
            warn!(path, max = self.opts.max_files, "file limit reached; ingestion stopped");
            self.skip(path, SkipReason::TooManyFiles);
            return Err(Flow::Stop);
        }
        Ok(language)
    }

    /// Content checks, then keeps the file.
    fn accept(&mut self, path: String, language: Option<Language>, bytes: Vec<u8>) {
        if bytes.len() as u64 > self.opts.max_file_bytes {
            // The header or metadata said less than the content holds.
            self.skip(&path, SkipReason::TooLarge);
            return;
        }
        match content_rule(bytes, language) {
            Ok(text) => {
                self.summary.files += 1;
                self.summary.bytes += text.len() as u64;
                self.files.push(SourceFile { path, language, text });
            }
            Err(reason) => self.skip(&path, reason),
        }
    }

    /// A symlink at `path` with `target` (None: target unreadable).
    fn link(&mut self, path: &str, target: Option<&[u8]>) {
        let inside = target.is_some_and(|t| link_stays_inside(path, t));
        self.skip(path, if inside { SkipReason::Symlink } else { SkipReason::SymlinkOutside });
    }

    /// Sorts by path; when a path occurs twice (archives), the later entry wins.
    fn finish(mut self, name: String) -> (Repo, IngestSummary) {
        // Stable sort keeps entry order among equal paths, so the last of a run is the latest.
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut files: Vec<SourceFile> = Vec::with_capacity(self.files.len());
        let mut dropped = Vec::new();
        for f in std::mem::take(&mut self.files) {
            if files.last().is_some_and(|l| l.path == f.path) {
                if let Some(old) = files.pop() {
                    dropped.push(old);
                }
            }
            files.push(f);
        }
        for old in dropped {
            self.summary.files -= 1;
            self.summary.bytes -= old.text.len() as u64;
            self.skip(&old.path, SkipReason::DuplicatePath);
        }
        info!(repo = %name, files = self.summary.files, bytes = self.summary.bytes, skipped = self.summary.skipped_total(), "ingested");
        (Repo { name, files }, self.summary)
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

// ----- directories

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

// ----- git

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

// ----- archives

/// Archive formats [`ingest_archive`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchiveKind {
    Tar,
    TarGz,
    Zip,
}

/// The archive kind of a file, from its first bytes (gzip / zip signatures), else its name.
fn archive_kind(path: &Path) -> Result<Option<ArchiveKind>> {
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
    fn safe_components_rejects_escapes() {
        assert_eq!(safe_components(b"a/b.py"), Some(vec!["a", "b.py"]));
        assert_eq!(safe_components(b"./a//b.py"), Some(vec!["a", "b.py"]));
        assert_eq!(safe_components(b"./"), Some(vec![]));
        assert_eq!(safe_components(b"../x"), None);
        assert_eq!(safe_components(b"a/../../x"), None);
        assert_eq!(safe_components(b"a/../b"), None, "any `..` is refused, even one that stays inside");
        assert_eq!(safe_components(b"/etc/passwd"), None);
        assert_eq!(safe_components(b"C:/x"), None);
        assert_eq!(safe_components(b"a\\..\\x"), None);
        assert_eq!(safe_components(b"\xff.py"), None);
    }

    #[test]
    fn link_targets_resolve_lexically() {
        assert!(link_stays_inside("a/link", b"b.py"));
        assert!(link_stays_inside("a/link", b"../b.py"));
        assert!(link_stays_inside("a/b/link", b"./../../c"));
        assert!(!link_stays_inside("a/link", b"../../b.py"));
        assert!(!link_stays_inside("link", b"/etc/passwd"));
        assert!(!link_stays_inside("link", b""));
    }

    #[test]
    fn content_rules() {
        let py = lang::detect("x.py");
        assert_eq!(content_rule(b"print(1)\n".to_vec(), py), Ok("print(1)\n".to_string()));
        assert_eq!(content_rule(b"\xef\xbb\xbfx = 1\n".to_vec(), py), Ok("x = 1\n".to_string()));
        assert_eq!(content_rule(b"a\0b".to_vec(), py), Err(SkipReason::Binary));
        assert_eq!(content_rule(b"caf\xe9".to_vec(), py), Err(SkipReason::InvalidUtf8));
        assert_eq!(content_rule(b"// Code generated by protoc. DO NOT EDIT.\n".to_vec(), py), Err(SkipReason::Generated));
        let long = "x".repeat(3000);
        assert_eq!(content_rule(long.clone().into_bytes(), lang::detect("a.js")), Err(SkipReason::Minified));
        assert!(content_rule(long.into_bytes(), lang::detect("a.ipynb")).is_ok());
        // Average line length at the 500-byte bound, with and without a final newline (a last
        // line without one counts as a line).
        let line = |n: usize| "x".repeat(n);
        let at_bound = format!("{}\n{}\n{}", line(499), line(499), line(500));
        assert!(content_rule(at_bound.into_bytes(), lang::detect("a.js")).is_ok());
        let at_bound_nl = format!("{0}\n{0}\n{0}\n", line(499));
        assert!(content_rule(at_bound_nl.into_bytes(), lang::detect("a.js")).is_ok());
        let past = format!("{0}\n{0}\n{0}\n", line(500));
        assert_eq!(content_rule(past.into_bytes(), lang::detect("a.js")), Err(SkipReason::Minified));
        assert_eq!(content_rule(Vec::new(), py), Ok(String::new()), "empty files are kept (e.g. __init__.py)");
    }

    #[test]
    fn name_rules() {
        assert_eq!(name_rule("Cargo.lock"), Some(SkipReason::LockFile));
        assert_eq!(name_rule("go.sum"), Some(SkipReason::LockFile));
        assert_eq!(name_rule("jquery.MIN.js"), Some(SkipReason::Minified));
        assert_eq!(name_rule("api_pb2.py"), Some(SkipReason::Generated));
        assert_eq!(name_rule("main.py"), None);
        assert_eq!(dir_rule("node_modules"), Some(Some(SkipReason::Vendored)));
        assert_eq!(dir_rule("foo.egg-info"), Some(Some(SkipReason::Generated)));
        assert_eq!(dir_rule(".git"), Some(None));
        assert_eq!(dir_rule("src"), None);
    }

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
