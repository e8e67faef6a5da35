//! TensorBoard scalars: the event files `tensorboard --logdir RUN` reads, written by a small
//! writer of the documented layout instead of a TensorFlow dependency.
//!
//! An event file is a sequence of TFRecords (`u64` length, masked CRC-32C of the length, the
//! bytes, masked CRC-32C of the bytes; all little-endian), each holding one `tensorflow.Event`
//! protobuf. The first event carries `file_version = "brain.Event:2"`; the rest carry a step, a
//! wall time and a `Summary` of `(tag, simple_value)` pairs. Only the handful of protobuf fields
//! needed here are encoded (field numbers from tensorflow/core/util/event.proto and
//! tensorflow/core/framework/summary.proto: Event.summary is 5, Event.session_log 7; 6 is the
//! deprecated log_message).
//!
//! A run writes one file per process (`events.out.tfevents.<secs>.<host>.<pid>.<n>.kiln`). A resumed
//! run starts its new file with a `SessionLog START` at the resumed step: TensorBoard then drops
//! the points the first process wrote after its last checkpoint (the steps the resume replays),
//! so the chart shows each step once. Event files that no kiln run in the directory wrote are
//! refused (see [`EventWriter::create`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, TrainError};

/// The file name fragment TensorBoard looks for.
const MARKER: &str = "tfevents";

/// Appends scalar events to one event file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Opens a new event file in `dir`. `resumed_at`: the step of the checkpoint a resumed run
    /// continues from; a `SessionLog START` at the next step makes TensorBoard drop what the
    /// earlier process wrote from that step on (it purges points at or after a START's step).
    /// `None` for a new run, which refuses a directory that already holds event files (another
    /// run's curves would be mixed into this one's).
    pub fn create(dir: &Path, resumed_at: Option<usize>) -> Result<Self> {
        let existing = event_files(dir)?;
        if resumed_at.is_none() {
            if let Some(first) = existing.first() {
                return Err(TrainError::Checkpoint {
                    path: dir.to_path_buf(),
                    message: format!(
                        "holds TensorBoard event files of another run ({}); a new run needs a directory of its own (or resume the run that wrote them)",
                        first.file_name().unwrap_or_default().to_string_lossy()
                    ),
                });
            }
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let host: String = hostname().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        // A counter as well as the pid: one process may open several (a run, then its resume).
        static OPENED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("events.out.{MARKER}.{now}.{host}.{}.{n}.kiln", std::process::id()));
        let file =
            File::options().create_new(true).write(true).open(&path).map_err(|e| TrainError::Io { path: path.clone(), source: e })?;
        let mut w = EventWriter { path, out: BufWriter::new(file) };
        let mut version = Vec::new();
        put_double(&mut version, 1, wall_time());
        put_bytes(&mut version, 3, b"brain.Event:2");
        w.record(&version)?;
        if let Some(step) = resumed_at {
            // SessionLog { status: START (1) }.
            let mut log = Vec::new();
            put_varint_field(&mut log, 1, 1);
            let mut event = Vec::new();
            put_double(&mut event, 1, wall_time());
            put_varint_field(&mut event, 2, step as u64 + 1);
            put_bytes(&mut event, 7, &log);
            w.record(&event)?;
        }
        w.flush()?;
        Ok(w)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One event at `step` with these `(tag, value)` scalars (e.g. `("train/loss", 2.5)`).
    /// Buffered: [`flush`](Self::flush) makes them visible to a running TensorBoard.
    pub fn scalars(&mut self, step: usize, values: &[(&str, f64)]) -> Result<()> {
        let mut summary = Vec::new();
        for (tag, value) in values {
            let mut v = Vec::new();
            put_bytes(&mut v, 1, tag.as_bytes());
            // simple_value: float, field 2, fixed 32-bit.
            v.push((2 << 3) | 5);
            v.extend_from_slice(&(*value as f32).to_le_bytes());
            put_bytes(&mut summary, 1, &v);
        }
        let mut event = Vec::new();
        put_double(&mut event, 1, wall_time());
        put_varint_field(&mut event, 2, step as u64);
        put_bytes(&mut event, 5, &summary);
        self.record(&event)
    }

    /// Writes buffered events to the file.
    pub fn flush(&mut self) -> Result<()> {
        let path = &self.path;
        self.out.flush().map_err(|e| TrainError::Io { path: path.clone(), source: e })
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let path = &self.path;
        let len = (data.len() as u64).to_le_bytes();
        let mut framed = Vec::with_capacity(data.len() + 16);
        framed.extend_from_slice(&len);
        framed.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        framed.extend_from_slice(data);
        framed.extend_from_slice(&masked_crc32c(data).to_le_bytes());
        self.out.write_all(&framed).map_err(|e| TrainError::Io { path: path.clone(), source: e })
    }
}

/// The TensorBoard event files directly in `dir`, sorted by name.
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TrainError::Io { path: dir.to_path_buf(), source: e }),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n.to_string_lossy().contains(MARKER)))
        .collect();
    files.sort();
    Ok(files)
}

fn wall_time() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(out, field << 3);
    put_varint(out, v);
}

fn put_double(out: &mut Vec<u8>, field: u64, v: f64) {
    put_varint(out, (field << 3) | 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bytewise with a table.
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, entry) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0x82F6_3B78 ^ (c >> 1) } else { c >> 1 };
            }
            *entry = c;
        }
        t
    });
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// TFRecord's masked CRC (so that a CRC of data holding CRCs is not degenerate).
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_values() {
        // The check value of CRC-32C (RFC 3720, B.4) and iSCSI's 32 zero bytes.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
    }

    #[test]
    fn varints_and_records_are_framed_as_documented() {
        let mut v = Vec::new();
        put_varint(&mut v, 300);
        assert_eq!(v, [0xAC, 0x02]);
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path(), None).unwrap();
        w.scalars(7, &[("train/loss", 2.5)]).unwrap();
        w.flush().unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        // Walk the records: each length and payload checks against its masked CRC.
        let mut at = 0;
        let mut payloads = Vec::new();
        while at < bytes.len() {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            assert_eq!(u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()), masked_crc32c(&bytes[at..at + 8]));
            let data = &bytes[at + 12..at + 12 + len];
            assert_eq!(u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap()), masked_crc32c(data));
            payloads.push(data.to_vec());
            at += 16 + len;
        }
        assert_eq!(payloads.len(), 2);
        assert!(payloads[0].windows(13).any(|w| w == b"brain.Event:2"));
        assert!(payloads[1].windows(10).any(|w| w == b"train/loss") && payloads[1].windows(4).any(|w| w == 2.5f32.to_le_bytes()));
        // A new run in the same directory is refused; a resume opens a second file.
        let err = EventWriter::create(dir.path(), None).err().unwrap().to_string();
        assert!(err.contains("event files of another run"), "{err}");
        let resumed = EventWriter::create(dir.path(), Some(5)).unwrap();
        assert_ne!(resumed.path(), w.path());
        assert_eq!(event_files(dir.path()).unwrap().len(), 2);
    }
}
