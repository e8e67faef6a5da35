//! Atomic file writes: a file appears under its final name complete, or not at all.
//!
//! Every write goes the same way: the bytes go to a temporary file in the destination's own
//! directory (`.NAME.tmp-PID`, hidden, so a directory listing never takes it for the real file,
//! and on the same file system, so the rename is atomic), the file is `fsync`ed, renamed over the
//! destination, and the directory is `fsync`ed so the rename itself survives a crash. A crash or
//! an I/O error (disk full) at any point leaves the old state or the complete new file, never a
//! half-written one. A temporary file abandoned by an error is removed ([`AtomicFile`] on drop);
//! one left by a killed process is never read, and is not deleted automatically, since another
//! process may still be writing it.
//!
//! Three forms of the one mechanism:
//! * [`write_atomic`]: a whole buffer;
//! * [`AtomicFile`]: streamed (it is a [`Write`]), then [`AtomicFile::commit`];
//! * [`tmp_path`] + [`persist`]: for a file another library writes by path.
//!
//! Errors are [`WriteError`]s: the [`io::Error`] and the file it concerns (the temporary file
//! for creating, writing and syncing it, the destination for the rename), so each caller can
//! word its own error as it needs.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An I/O error of an atomic write, with the file it concerns: the temporary file for creating,
/// writing and syncing it, the destination for the rename.
#[derive(Debug)]
pub struct WriteError {
    /// The file the failed operation was on.
    pub path: PathBuf,
    /// What went wrong.
    pub source: io::Error,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<WriteError> for io::Error {
    fn from(e: WriteError) -> io::Error {
        io::Error::new(e.source.kind(), e)
    }
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| WriteError { path: path.to_path_buf(), source }
}

/// The temporary name an atomic write of `dest` uses: `.NAME.tmp-PID` in the same directory.
pub fn tmp_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `dest` atomically (see the module docs).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes).map_err(at(&f.tmp))?;
    f.commit()
}

/// Moves a complete temporary file, written by path (e.g. by a serialisation library), to
/// `dest`: fsync, rename, directory fsync. `tmp` should come from [`tmp_path`]`(dest)`. On an
/// error the temporary file is removed.
pub fn persist(tmp: &Path, dest: &Path) -> Result<(), WriteError> {
    let persisted = File::open(tmp).and_then(|f| f.sync_all()).map_err(at(tmp)).and_then(|()| rename_into_place(tmp, dest));
    if persisted.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    persisted
}

/// Renames a synced temporary file over `dest`, then fsyncs the directory.
fn rename_into_place(tmp: &Path, dest: &Path) -> Result<(), WriteError> {
    std::fs::rename(tmp, dest).map_err(at(dest))?;
    if let Some(dir) = dest.parent() {
        // Directory fsync is not supported everywhere (e.g. some network file systems); the
        // rename has happened either way, so a failure here is only logged.
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
            tracing::debug!(dir = %dir.display(), error = %e, "directory fsync failed");
        }
    }
    Ok(())
}

/// A file that appears under its final name only when [`AtomicFile::commit`] succeeds; dropped
/// uncommitted (an error, a panic), it removes its temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Creates [`tmp_path`]`(dest)`, to be written and then committed to `dest`.
    pub fn create(dest: &Path) -> Result<AtomicFile, WriteError> {
        let tmp = tmp_path(dest);
        let file = File::create(&tmp).map_err(at(&tmp))?;
        Ok(AtomicFile { tmp, dest: dest.to_path_buf(), file: Some(file) })
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The temporary file being written.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes, fsyncs and renames to the final name, then fsyncs the directory so the rename
    /// itself survives a crash.
    pub fn commit(mut self) -> Result<(), WriteError> {
        // An error before the rename drops `self` with its file: the temporary goes with it.
        self.file.as_ref().expect("committed once").sync_all().map_err(at(&self.tmp))?;
        drop(self.file.take());
        let renamed = rename_into_place(&self.tmp, &self.dest);
        if renamed.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        renamed
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("not committed").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Not committed: an error happened (or a panic); leave nothing behind.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.json");
        write_atomic(&dest, b"one").unwrap();
        write_atomic(&dest, b"two").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        assert_eq!(names(dir.path()), ["a.json"]);
    }

    #[test]
    fn the_temporary_is_hidden_beside_the_destination() {
        let t = tmp_path(Path::new("out/tasks/task-1.done"));
        assert_eq!(t, Path::new("out/tasks").join(format!(".task-1.done.tmp-{}", std::process::id())));
    }

    #[test]
    fn uncommitted_files_leave_nothing_and_the_old_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("shard.parquet");
        std::fs::write(&dest, "old").unwrap();
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write_all(b"half").unwrap();
            assert!(f.tmp_path().exists());
            assert_eq!(f.dest(), dest);
        }
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["shard.parquet"]);
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
    }

    #[test]
    fn persist_moves_a_file_written_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model.safetensors");
        let tmp = tmp_path(&dest);
        std::fs::write(&tmp, "weights").unwrap();
        persist(&tmp, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"weights");
        assert_eq!(names(dir.path()), ["model.safetensors"]);
    }

    #[test]
    fn errors_name_the_file_they_concern() {
        let dir = tempfile::tempdir().unwrap();
        // Creating the temporary file fails: the error names it.
        let dest = dir.path().join("missing").join("x.json");
        let e = write_atomic(&dest, b"x").unwrap_err();
        assert_eq!(e.path, tmp_path(&dest));
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
        // The rename fails (the destination is a non-empty directory): the error names it.
        let dest = dir.path().join("occupied");
        std::fs::create_dir_all(dest.join("inside")).unwrap();
        let e = write_atomic(&dest, b"x").unwrap_err();
        assert_eq!(e.path, dest);
        assert_eq!(names(dir.path()), ["occupied"], "the temporary file is removed");
        let io: io::Error = e.into();
        assert!(io.to_string().contains("occupied"), "{io}");
    }
}
