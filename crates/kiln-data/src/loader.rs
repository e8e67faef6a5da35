//! The trainer's view of packed windows: batches in a seeded order, resumable exactly.
//!
//! Each epoch visits every window once, in a permutation of the window indices drawn by
//! Fisher-Yates from a SplitMix64 stream keyed by `(seed, epoch)`. The permutation depends on
//! nothing else (not the thread count, not the batch size), so the order is a pure function of
//! the dataset, the seed and the epoch.
//!
//! A [`Cursor`] `{ epoch, position }` says which window comes next: the `position`-th entry of
//! epoch `epoch`'s permutation. [`WindowLoader::next_batch`] advances it, wrapping into the next
//! epoch (a batch may span the boundary). A trainer saves the cursor with its checkpoint; a
//! loader restored with it ([`WindowLoader::set_cursor`]) returns exactly the batches the
//! uninterrupted run would have returned next.
//!
//! [`SftLoader`] does the same for instruction-tuning conversations (`kiln data sft`): samples in
//! a seeded order per epoch, cut to the model's positions and padded into batches with their
//! loss masks.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::megatron::MegatronReader;
use crate::rng::SplitMix64;
use crate::sft::SftReader;

/// Where a loader is: the next window is entry `position` of epoch `epoch`'s order. Always
/// `position < windows`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// Epoch number, from 0.
    pub epoch: u64,
    /// Index into the epoch's order.
    pub position: u64,
}

/// Batches of packed windows (see the module docs).
#[derive(Debug)]
pub struct WindowLoader {
    reader: MegatronReader,
    /// `None`: windows in file order every epoch (e.g. for validation).
    seed: Option<u64>,
    window: usize,
    cursor: Cursor,
    /// The order of `order_epoch`, computed when the cursor enters that epoch.
    order: Vec<u32>,
    order_epoch: u64,
}

impl WindowLoader {
    /// Opens the packed dataset `PREFIX.bin/.idx` (e.g. `OUT/train`), cursor at the start.
    /// `shuffle_seed: None` keeps the file order.
    pub fn open(prefix: &Path, shuffle_seed: Option<u64>) -> Result<Self> {
        Self::from_reader(MegatronReader::open(prefix)?, shuffle_seed)
    }

    /// A loader over an open dataset; every sequence must have the same length (a packed
    /// window).
    pub fn from_reader(reader: MegatronReader, shuffle_seed: Option<u64>) -> Result<Self> {
        if reader.is_empty() {
            return Err(DataError::EmptyDataset { path: reader.idx_path().to_path_buf() });
        }
        if reader.len() > u32::MAX as usize {
            return Err(DataError::BadDataset {
                path: reader.idx_path().to_path_buf(),
                message: format!("{} windows; the loader supports at most 2^32 (split the dataset)", reader.len()),
            });
        }
        let window = reader.sequence_len(0)?;
        for i in 1..reader.len() {
            let len = reader.sequence_len(i)?;
            if len != window {
                return Err(DataError::BadDataset {
                    path: reader.idx_path().to_path_buf(),
                    message: format!("sequence {i} has {len} tokens but sequence 0 has {window}; not a packed dataset of equal windows"),
                });
            }
        }
        let mut loader = Self { reader, seed: shuffle_seed, window, cursor: Cursor::default(), order: Vec::new(), order_epoch: 0 };
        loader.order = loader.epoch_order(0);
        Ok(loader)
    }

    /// Number of windows (per epoch).
    pub fn windows(&self) -> usize {
        self.reader.len()
    }

    /// Tokens per window (`seq_len + 1`).
    pub fn window_tokens(&self) -> usize {
        self.window
    }

    /// The cursor to save with a checkpoint.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Moves to a saved cursor.
    pub fn set_cursor(&mut self, cursor: Cursor) -> Result<()> {
        if cursor.position >= self.windows() as u64 {
            return Err(DataError::BadCursor {
                path: self.reader.idx_path().to_path_buf(),
                position: cursor.position,
                windows: self.windows(),
            });
        }
        self.cursor = cursor;
        if self.order_epoch != cursor.epoch {
            self.order = self.epoch_order(cursor.epoch);
            self.order_epoch = cursor.epoch;
        }
        Ok(())
    }

    /// The window indices of `epoch`, in the order they are served.
    pub fn epoch_order(&self, epoch: u64) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.windows() as u32).collect();
        if let Some(seed) = self.seed {
            SplitMix64::keyed(seed, &epoch.to_le_bytes()).shuffle(&mut order);
        }
        order
    }

    /// The next `batch_size` windows (each `window_tokens()` long), advancing the cursor and
    /// wrapping into the next epoch when this one ends.
    pub fn next_batch(&mut self, batch_size: usize) -> Result<Vec<Vec<u32>>> {
        let mut batch = Vec::with_capacity(batch_size);
        for _ in 0..batch_size {
            let index = self.order[self.cursor.position as usize] as usize;
            batch.push(self.reader.sequence(index)?);
            self.cursor.position += 1;
            if self.cursor.position == self.windows() as u64 {
                self.set_cursor(Cursor { epoch: self.cursor.epoch + 1, position: 0 })?;
            }
        }
        Ok(batch)
    }
}
/// Serves SFT samples in a seeded order per epoch, padded into batches.
pub struct SftLoader {
    reader: SftReader,
    seed: Option<u64>,
    order: Vec<u32>,
    order_epoch: u64,
    cursor: Cursor,
    /// Longest sequence kept (the model's positions + 1); longer samples are cut.
    max_len: usize,
    pad: u32,
}

/// A padded batch: `ids[i]` and `mask[i]` have the same length; mask 1 marks tokens to learn.
pub struct MaskedBatch {
    /// Token ids, padded with the pad id.
    pub ids: Vec<Vec<u32>>,
    /// 1 on response tokens and their `<|EOT|>`, 0 elsewhere (padding included).
    pub mask: Vec<Vec<u8>>,
}

impl SftLoader {
    /// Opens `PREFIX.bin/.idx/.mask`.
    pub fn open(prefix: &Path, seed: Option<u64>, max_len: usize, pad: u32) -> Result<Self> {
        let reader = SftReader::open(prefix)?;
        if reader.is_empty() {
            return Err(DataError::EmptySft { path: prefix.to_path_buf() });
        }
        let mut l =
            SftLoader { reader, seed, order: Vec::new(), order_epoch: u64::MAX, cursor: Cursor { epoch: 0, position: 0 }, max_len, pad };
        l.set_cursor(Cursor { epoch: 0, position: 0 })?;
        Ok(l)
    }

    /// Samples.
    pub fn len(&self) -> usize {
        self.reader.len()
    }

    /// Whether there are none (never: `open` refuses an empty set).
    pub fn is_empty(&self) -> bool {
        self.reader.is_empty()
    }

    /// Where the loader stands.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Moves to `cursor` (from a checkpoint).
    pub fn set_cursor(&mut self, cursor: Cursor) -> Result<()> {
        if cursor.position >= self.len() as u64 {
            return Err(DataError::SftCursor { position: cursor.position, samples: self.len() });
        }
        if self.order_epoch != cursor.epoch {
            let mut order: Vec<u32> = (0..self.len() as u32).collect();
            if let Some(seed) = self.seed {
                SplitMix64::keyed(seed, &cursor.epoch.to_le_bytes()).shuffle(&mut order);
            }
            self.order = order;
            self.order_epoch = cursor.epoch;
        }
        self.cursor = cursor;
        Ok(())
    }

    /// The next `n` samples, cut to `max_len` and padded to the longest of them.
    pub fn next_batch(&mut self, n: usize) -> Result<MaskedBatch> {
        let mut ids = Vec::with_capacity(n);
        let mut mask = Vec::with_capacity(n);
        for _ in 0..n {
            let s = self.reader.sample(self.order[self.cursor.position as usize] as usize)?;
            let keep = s.ids.len().min(self.max_len);
            ids.push(s.ids[..keep].to_vec());
            mask.push(s.mask[..keep].to_vec());
            let next = self.cursor.position + 1;
            let c = if next == self.len() as u64 {
                Cursor { epoch: self.cursor.epoch + 1, position: 0 }
            } else {
                Cursor { epoch: self.cursor.epoch, position: next }
            };
            self.set_cursor(c)?;
        }
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0).max(2);
        for (i, m) in ids.iter_mut().zip(mask.iter_mut()) {
            i.resize(longest, self.pad);
            m.resize(longest, 0);
        }
        Ok(MaskedBatch { ids, mask })
    }
}
