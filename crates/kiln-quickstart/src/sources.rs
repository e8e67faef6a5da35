//! Where quickstart's code comes from: real repositories already on the machine, read in place.
//!
//! Defaults: every crate under the cargo registry's `src` folder (each crate one repository;
//! any machine that built kiln has a few hundred) and the python3 standard library's top-level
//! packages (each package directory one repository). The standard library's loose top-level
//! modules (`os.py`, `typing.py`, ... about 15% of its code) are not packages and are left out:
//! a repository in kiln is a directory, and the whole library as one repository would hold every
//! package twice.
//!
//! `--sources` replaces the defaults with any folders, git repositories or archives: each is one
//! repository, except a plain folder (no `.git`) that holds no code at its top level but has
//! sub-folders, which is read as a folder of repositories (`~/code` with a project per folder).

use std::path::{Path, PathBuf};

use kiln_base::rng::seeded_hash;
use serde::{Deserialize, Serialize};

use crate::error::{setup, Result};

/// What kind of source a repository came from (for the report and the budget split).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A crate in the cargo registry.
    CargoRegistry,
    /// A package of the python3 standard library.
    PythonStdlib,
    /// Given with `--sources`.
    User,
}

impl SourceKind {
    pub fn describe(self) -> &'static str {
        match self {
            SourceKind::CargoRegistry => "cargo registry crates",
            SourceKind::PythonStdlib => "python3 standard library packages",
            SourceKind::User => "--sources",
        }
    }
}

/// One repository that may go into the corpus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub path: PathBuf,
    pub kind: SourceKind,
    /// Bytes of files in a language kiln knows (archives: the archive's size).
    pub code_bytes: u64,
}

/// The candidates found, and what was looked for but missing.
#[derive(Debug, Default)]
pub struct Found {
    pub candidates: Vec<Candidate>,
    pub missing: Vec<String>,
}

/// The default sources: cargo registry crates and python3 standard library packages. Either may
/// be missing (said in `missing`); both missing is an error.
pub fn default_sources() -> Result<Found> {
    let mut found = Found::default();
    match cargo_registry_crates() {
        Ok(crates) => found.candidates.extend(measure(crates, SourceKind::CargoRegistry)),
        Err(why) => found.missing.push(why),
    }
    match python_stdlib_packages() {
        Ok(pkgs) => found.candidates.extend(measure(pkgs, SourceKind::PythonStdlib)),
        Err(why) => found.missing.push(why),
    }
    found.candidates.retain(|c| c.code_bytes > 0);
    if found.candidates.is_empty() {
        setup!("no default sources found: {}. Give repositories with --sources DIR_OR_ARCHIVE ...", found.missing.join("; "));
    }
    Ok(found)
}

/// The repositories of `--sources`. A source that does not exist or holds no code kiln
/// recognises is an error naming it.
pub fn user_sources(paths: &[PathBuf]) -> Result<Found> {
    let mut found = Found::default();
    for p in paths {
        if !p.exists() {
            setup!("--sources {}: does not exist", p.display());
        }
        let repos = if p.is_dir() && is_folder_of_repositories(p) { subdirectories(p) } else { vec![p.clone()] };
        let measured = measure(repos, SourceKind::User);
        let code: u64 = measured.iter().map(|c| c.code_bytes).sum();
        if code == 0 {
            setup!(
                "--sources {}: no source code found (kiln reads files of 89 languages by extension, e.g. .py .rs .js .c; vendored and build folders are skipped)",
                p.display()
            );
        }
        found.candidates.extend(measured.into_iter().filter(|c| c.code_bytes > 0));
    }
    Ok(found)
}

/// Picks repositories until `budget` bytes of code: each kind gets an equal share (a share a
/// kind cannot fill goes to the others), and within a kind the repositories are taken in an
/// order drawn from `seed`, skipping any that would overflow the share. Sorted by path.
pub fn select(candidates: &[Candidate], budget: u64, seed: u64) -> Vec<Candidate> {
    let mut kinds: Vec<SourceKind> = candidates.iter().map(|c| c.kind).collect();
    kinds.sort();
    kinds.dedup();
    let mut by_kind: Vec<Vec<&Candidate>> = kinds
        .iter()
        .map(|k| {
            let mut v: Vec<&Candidate> = candidates.iter().filter(|c| c.kind == *k).collect();
            v.sort_by_key(|c| (seeded_hash(seed, c.path.as_os_str().as_encoded_bytes()), c.path.clone()));
            v
        })
        .collect();
    // Smallest kinds first, so what they leave unused is shared among the rest.
    by_kind.sort_by_key(|v| v.iter().map(|c| c.code_bytes).sum::<u64>());
    let mut chosen = Vec::new();
    let mut left = budget;
    let n = by_kind.len();
    for (i, repos) in by_kind.into_iter().enumerate() {
        let mut share = left / (n - i) as u64;
        let mut used = 0;
        for c in repos {
            if c.code_bytes <= share {
                share -= c.code_bytes;
                used += c.code_bytes;
                chosen.push(c.clone());
            }
        }
        left -= used;
    }
    chosen.sort_by(|a, b| a.path.cmp(&b.path));
    chosen
}

/// Repositories and bytes of code per kind of source, for the log and the report.
pub fn totals_by_kind(chosen: &[Candidate]) -> std::collections::BTreeMap<&'static str, (usize, u64)> {
    let mut kinds = std::collections::BTreeMap::new();
    for c in chosen {
        let e: &mut (usize, u64) = kinds.entry(c.kind.describe()).or_default();
        e.0 += 1;
        e.1 += c.code_bytes;
    }
    kinds
}

fn cargo_registry_crates() -> std::result::Result<Vec<PathBuf>, String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("no cargo registry: neither CARGO_HOME nor HOME is set")?;
    let src = home.join("registry").join("src");
    let indexes = subdirectories(&src);
    let crates: Vec<PathBuf> = indexes.iter().flat_map(|i| subdirectories(i)).collect();
    if crates.is_empty() {
        return Err(format!("no cargo registry crates under {}", src.display()));
    }
    Ok(crates)
}

fn python_stdlib_packages() -> std::result::Result<Vec<PathBuf>, String> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"])
        .output()
        .map_err(|e| format!("no python3 standard library: python3 could not be run ({e})"))?;
    if !out.status.success() {
        return Err("no python3 standard library: python3 did not print its stdlib path".into());
    }
    let stdlib = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let skip = ["site-packages", "dist-packages", "__pycache__", "lib-dynload"];
    let pkgs: Vec<PathBuf> = subdirectories(&stdlib)
        .into_iter()
        .filter(|d| d.join("__init__.py").is_file())
        .filter(|d| d.file_name().and_then(|n| n.to_str()).is_some_and(|n| !skip.contains(&n) && !n.starts_with("config-")))
        .collect();
    if pkgs.is_empty() {
        return Err(format!("no python3 standard library packages under {}", stdlib.display()));
    }
    Ok(pkgs)
}

/// Sorted non-hidden sub-directories (not following symlinks); empty when `dir` is unreadable.
fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Files that sit at the top of a folder of projects without making it a project.
const DOCUMENT_LANGUAGES: [&str; 6] = ["Markdown", "JSON", "YAML", "TOML", "reStructuredText", "RMarkdown"];

fn is_folder_of_repositories(dir: &Path) -> bool {
    if dir.join(".git").exists() {
        return false;
    }
    let Ok(rd) = std::fs::read_dir(dir) else { return false };
    let mut subdirs = 0;
    for e in rd.flatten() {
        let Ok(t) = e.file_type() else { continue };
        let is_code = kiln_repo::lang::detect(&e.file_name().to_string_lossy()).is_some_and(|l| !DOCUMENT_LANGUAGES.contains(&l.name()));
        if t.is_file() && is_code {
            return false;
        }
        subdirs += usize::from(t.is_dir() && !e.file_name().to_string_lossy().starts_with('.'));
    }
    subdirs >= 2
}

fn measure(repos: Vec<PathBuf>, kind: SourceKind) -> Vec<Candidate> {
    repos.into_iter().map(|path| Candidate { code_bytes: code_bytes(&path), path, kind }).collect()
}

/// Folders kiln's ingest skips (vendored or generated); only used to size repositories.
const SKIPPED_DIRS: [&str; 8] = ["node_modules", "vendor", "third_party", "target", "build", "dist", "__pycache__", ".git"];

/// Bytes of files (≤ 1 MiB) in a language kiln recognises, under `path`; an archive's size.
fn code_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if meta.is_file() {
        return meta.len();
    }
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let name = e.file_name();
            let name = name.to_string_lossy();
            if t.is_dir() {
                if !name.starts_with('.') && !SKIPPED_DIRS.contains(&name.as_ref()) {
                    stack.push(e.path());
                }
            } else if t.is_file() && kiln_repo::lang::detect(&name).is_some() {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                if len <= 1 << 20 {
                    total += len;
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(name: &str, kind: SourceKind, bytes: u64) -> Candidate {
        Candidate { path: PathBuf::from(name), kind, code_bytes: bytes }
    }

    #[test]
    fn selection_splits_the_budget_and_depends_only_on_the_seed() {
        let mut all = Vec::new();
        for i in 0..50 {
            all.push(cand(&format!("/reg/crate{i:02}"), SourceKind::CargoRegistry, 1000 + i));
        }
        for i in 0..5 {
            all.push(cand(&format!("/py/pkg{i}"), SourceKind::PythonStdlib, 500));
        }
        let a = select(&all, 20_000, 7);
        assert_eq!(a, select(&all, 20_000, 7));
        assert_ne!(a, select(&all, 20_000, 8), "another seed picks other crates");
        let total: u64 = a.iter().map(|c| c.code_bytes).sum();
        assert!(total <= 20_000 && total > 18_000, "{total}");
        // The python share (10,000) holds all 5 packages; the 7,500 it leaves go to the crates.
        assert_eq!(a.iter().filter(|c| c.kind == SourceKind::PythonStdlib).count(), 5);
        assert!(a.windows(2).all(|w| w[0].path < w[1].path));
    }

    #[test]
    fn a_folder_of_projects_is_read_as_repositories() {
        let d = tempfile::tempdir().unwrap();
        for p in ["alpha", "beta"] {
            std::fs::create_dir_all(d.path().join(p)).unwrap();
            std::fs::write(d.path().join(p).join("main.py"), "print(1)\n").unwrap();
        }
        std::fs::write(d.path().join("README.md"), "notes\n").unwrap();
        let f = user_sources(&[d.path().to_path_buf()]).unwrap();
        assert_eq!(f.candidates.len(), 2);
        // With code at its top level it is one repository.
        std::fs::write(d.path().join("setup.py"), "x = 1\n").unwrap();
        assert_eq!(user_sources(&[d.path().to_path_buf()]).unwrap().candidates.len(), 1);
        // No code at all: named in the error.
        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join("notes.txt"), "hello").unwrap();
        let e = user_sources(&[empty.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains(&empty.path().display().to_string()) && e.contains("no source code"), "{e}");
        let e = user_sources(&[PathBuf::from("/no/such/dir")]).unwrap_err().to_string();
        assert!(e.contains("/no/such/dir") && e.contains("does not exist"), "{e}");
    }
}
