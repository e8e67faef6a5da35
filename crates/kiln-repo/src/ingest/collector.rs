//! The collector: every reader feeds its entries through it, so all readers apply the same rules
//! in the same order and count what they leave out the same way.

use std::collections::BTreeSet;

use tracing::{debug, info, warn};

use super::rules::{content_rule, dir_rule, link_stays_inside, name_rule};
use super::{IngestOptions, IngestSummary, SkipReason, MAX_EXAMPLES};
use crate::lang::{self, Language};
use crate::{Repo, SourceFile};

/// Whether the walk goes on after an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Stop,
}

pub(super) struct Collector<'o> {
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
    pub(super) fn new(opts: &'o IngestOptions) -> Self {
        Collector { opts, files: Vec::new(), summary: IngestSummary::default(), spent: 0, visited: 0, pruned: BTreeSet::new() }
    }

    pub(super) fn skip(&mut self, path: &str, reason: SkipReason) {
        debug!(path, %reason, "skipped");
        *self.summary.skipped.entry(reason).or_insert(0) += 1;
        if self.summary.examples.len() < MAX_EXAMPLES {
            self.summary.examples.push((path.to_string(), reason));
        }
    }

    /// Counts one visited entry; stops the walk past `10 * max_files` entries.
    pub(super) fn visit(&mut self, path: &str) -> Flow {
        self.visited += 1;
        if self.visited > self.opts.max_files.saturating_mul(10).max(1) {
            warn!(path, visited = self.visited, "too many entries; ingestion stopped");
            self.skip(path, SkipReason::TooManyFiles);
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// Charges `bytes` of expansion against the budget; `Stop` (and counted) when it would pass.
    pub(super) fn charge(&mut self, path: &str, bytes: u64) -> Flow {
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
    pub(super) fn pruned_by_dir(&mut self, parts: &[&str]) -> bool {
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
    pub(super) fn precheck(&mut self, path: &str, size: u64) -> std::result::Result<Option<Language>, Flow> {
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
    pub(super) fn accept(&mut self, path: String, language: Option<Language>, bytes: Vec<u8>) {
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
    pub(super) fn link(&mut self, path: &str, target: Option<&[u8]>) {
        let inside = target.is_some_and(|t| link_stays_inside(path, t));
        self.skip(path, if inside { SkipReason::Symlink } else { SkipReason::SymlinkOutside });
    }

    /// Sorts by path; when a path occurs twice (archives), the later entry wins.
    pub(super) fn finish(mut self, name: String) -> (Repo, IngestSummary) {
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
