//! The log of one generation: segment files `log.<epoch>-<counter>` (the zxid of the first
//! record, 16 hex digits each), written in order, rolled when full.
//!
//! A segment starts with the 8-byte magic `b"ZABWAL01"`, then records ([`super::record`]) back
//! to back. A new segment is preallocated to [`WalOptions::segment_bytes`] (its length set once,
//! zero-filled, so fdatasync rarely has to update the file size); a segment that is rolled is
//! first sealed (cut to the end of its records) and synced, so that no later segment ever holds
//! data while an earlier one may still lose some.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::files;
use super::record::{self, Parsed};
use super::WalOptions;
use crate::protocol::{Entry, Zxid};
use crate::storage::StorageError;

/// The bytes every segment starts with.
pub(crate) const MAGIC: &[u8; 8] = b"ZABWAL01";
/// File name prefix of segments.
pub(crate) const PREFIX: &str = "log.";

/// The path of the segment whose first record has `first`.
pub(crate) fn path(dir: &Path, first: Zxid) -> PathBuf {
    dir.join(format!("{PREFIX}{}", files::zxid_suffix(first)))
}

/// The zxid a segment file name carries, if `name` is one.
pub(crate) fn parse_name(name: &str) -> Option<Zxid> {
    files::parse_zxid_name(PREFIX, name)
}

/// What the log knows about one segment (all of them hold at least one record).
#[derive(Clone, Debug)]
pub(crate) struct SegmentMeta {
    /// The segment file.
    pub(crate) path: PathBuf,
    /// Its first record's zxid (also in its name).
    pub(crate) first: Zxid,
    /// Its last record's zxid.
    pub(crate) last: Zxid,
    /// The offset just past its last record (including records still in the write buffer).
    pub(crate) end: u64,
}

/// The last segment, open for appending.
#[derive(Debug)]
struct Active {
    file: File,
    /// Bytes of the file up to which records have been written (the buffer follows).
    written: u64,
    /// The file's preallocated length.
    capacity: u64,
}

/// The segments of one generation directory and the writer of the last one.
#[derive(Debug)]
pub(crate) struct Log {
    dir: PathBuf,
    options: WalOptions,
    /// In zxid order; the last one is the active one.
    segments: Vec<SegmentMeta>,
    /// Open iff `segments` is not empty.
    active: Option<Active>,
    /// Encoded records not yet written to the active file.
    buffer: Vec<u8>,
    /// Data written to the active file since its last sync.
    file_dirty: bool,
    /// Files created or removed in `dir` since its last sync.
    dir_dirty: bool,
}

impl Log {
    /// The log of `dir` whose segments (checked by recovery) are `segments`.
    pub(crate) fn open(
        dir: &Path,
        options: &WalOptions,
        segments: Vec<SegmentMeta>,
    ) -> Result<Log, StorageError> {
        let active = match segments.last() {
            Some(meta) => Some(open_active(&meta.path, meta.end)?),
            None => None,
        };
        Ok(Log {
            dir: dir.to_path_buf(),
            options: options.clone(),
            segments,
            active,
            buffer: Vec::new(),
            file_dirty: false,
            dir_dirty: false,
        })
    }

    /// The last record's zxid.
    pub(crate) fn last(&self) -> Option<Zxid> {
        self.segments.last().map(|s| s.last)
    }

    /// The segment files, in order.
    pub(crate) fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// Appends entries the caller has validated (increasing zxids, payloads within bounds).
    pub(crate) fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        for entry in entries {
            let need = record::encoded_len(entry);
            let fits = match (self.active.as_ref(), self.segments.last()) {
                (Some(active), Some(meta)) => meta.end + need <= active.capacity,
                _ => false,
            };
            if !fits {
                self.roll(entry.zxid, need)?;
            }
            record::encode(entry, &mut self.buffer);
            if let Some(meta) = self.segments.last_mut() {
                meta.last = entry.zxid;
                meta.end += need;
            }
            if self.buffer.len() >= self.options.write_buffer_bytes {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Writes the buffered records to the active file (not durably).
    pub(crate) fn flush(&mut self) -> Result<(), StorageError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let (Some(active), Some(meta)) = (self.active.as_mut(), self.segments.last()) else {
            return Err(files::unusable(&self.dir, "internal: buffered records without a segment"));
        };
        let path = &meta.path;
        active
            .file
            .seek(SeekFrom::Start(active.written))
            .map_err(|e| files::io_error(path, "seek", e))?;
        active.file.write_all(&self.buffer).map_err(|e| files::io_error(path, "write", e))?;
        active.written += self.buffer.len() as u64;
        self.buffer.clear();
        self.file_dirty = true;
        Ok(())
    }

    /// Makes everything written so far durable: one fdatasync of the active segment (and one
    /// fsync of the directory if files were created or removed). Without `options.fsync` it
    /// only hands the buffered records to the OS.
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        if !self.options.fsync {
            self.file_dirty = false;
            self.dir_dirty = false;
            return Ok(());
        }
        if self.file_dirty {
            if let (Some(active), Some(meta)) = (self.active.as_ref(), self.segments.last()) {
                active.file.sync_data().map_err(|e| files::io_error(&meta.path, "sync", e))?;
            }
            self.file_dirty = false;
        }
        if self.dir_dirty {
            files::fsync_dir(&self.dir, true)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one for a record of `need` bytes at `first`.
    fn roll(&mut self, first: Zxid, need: u64) -> Result<(), StorageError> {
        self.flush()?;
        if let (Some(active), Some(meta)) = (self.active.take(), self.segments.last()) {
            // Sealed and durable before the next segment gets data: recovery then never finds
            // a torn record followed by a later segment.
            active.file.set_len(meta.end).map_err(|e| files::io_error(&meta.path, "seal", e))?;
            if self.options.fsync {
                active.file.sync_all().map_err(|e| files::io_error(&meta.path, "sync", e))?;
            }
            self.file_dirty = false;
        }
        let path = path(&self.dir, first);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| files::io_error(&path, "create the segment", e))?;
        let capacity = self.options.segment_bytes.max(MAGIC.len() as u64 + need);
        file.write_all(MAGIC).map_err(|e| files::io_error(&path, "write", e))?;
        file.set_len(capacity).map_err(|e| files::io_error(&path, "preallocate", e))?;
        let written = MAGIC.len() as u64;
        self.active = Some(Active { file, written, capacity });
        self.segments.push(SegmentMeta { path, first, last: first, end: written });
        self.file_dirty = true;
        self.dir_dirty = true;
        Ok(())
    }

    /// Removes every record above `to`, durably (when `options.fsync`) before returning: later
    /// segments are deleted from the last one backwards and the directory synced, then the
    /// segment holding the cut is zero-filled from the cut on and synced. Zero-filling matters:
    /// stale records left past the cut could otherwise reappear behind newer appends.
    pub(crate) fn truncate(&mut self, to: Zxid) -> Result<(), StorageError> {
        self.flush()?;
        let mut removed = false;
        while self.segments.last().is_some_and(|s| s.first > to) {
            self.active = None;
            if let Some(meta) = self.segments.pop() {
                files::remove_file(&meta.path)?;
                removed = true;
            }
        }
        if removed {
            files::fsync_dir(&self.dir, self.options.fsync)?;
        }
        let Some(meta) = self.segments.last_mut() else {
            self.file_dirty = false;
            return Ok(());
        };
        if meta.last <= to && self.active.is_some() {
            return Ok(());
        }
        let bytes = files::read(&meta.path)?;
        let (cut, last) = cut_point(&meta.path, &bytes, to)?;
        let file_len = bytes.len() as u64;
        drop(bytes);
        let mut active = match self.active.take() {
            Some(active) => active,
            None => open_active(&meta.path, meta.end)?,
        };
        if cut < file_len {
            let f = &active.file;
            f.set_len(cut).map_err(|e| files::io_error(&meta.path, "truncate", e))?;
            f.set_len(file_len).map_err(|e| files::io_error(&meta.path, "zero-fill", e))?;
            if self.options.fsync {
                f.sync_all().map_err(|e| files::io_error(&meta.path, "sync", e))?;
            }
        }
        active.written = cut;
        active.capacity = active.capacity.max(file_len);
        meta.end = cut;
        meta.last = last;
        self.active = Some(active);
        self.file_dirty = false;
        Ok(())
    }

    /// Deletes the sealed segments whose records are all at or below `upto` (a snapshot covers
    /// them). Durable at the next sync; recovery deletes any that a crash brings back.
    pub(crate) fn remove_covered(&mut self, upto: Zxid) -> Result<(), StorageError> {
        for path in self.forget_covered(upto) {
            files::remove_file(&path)?;
            self.dir_dirty = true;
        }
        Ok(())
    }

    /// Forgets the sealed segments whose records `upto` covers and returns their paths, for
    /// the caller to delete (a crash before then leaves them to recovery, which removes
    /// segments a snapshot covers).
    pub(crate) fn forget_covered(&mut self, upto: Zxid) -> Vec<PathBuf> {
        let covered = self.segments[..self.segments.len().saturating_sub(1)]
            .iter()
            .take_while(|s| s.last <= upto)
            .count();
        self.segments.drain(..covered).map(|meta| meta.path).collect()
    }
}

/// Opens an existing segment for appending at `end`.
fn open_active(path: &Path, end: u64) -> Result<Active, StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| files::io_error(path, "open the segment", e))?;
    let capacity = file.metadata().map_err(|e| files::io_error(path, "stat", e))?.len();
    Ok(Active { file, written: end, capacity: capacity.max(end) })
}

/// Where to cut `bytes` (a segment whose first record is at or below `to`) to drop every record
/// above `to`, and the last record kept.
fn cut_point(path: &Path, bytes: &[u8], to: Zxid) -> Result<(u64, Zxid), StorageError> {
    let mut at = MAGIC.len();
    let mut last = None;
    loop {
        match record::parse(bytes, at) {
            Parsed::Record { zxid, next, .. } if zxid <= to => {
                last = Some(zxid);
                at = next;
            }
            Parsed::Record { .. } | Parsed::End => break,
            Parsed::Bad(bad) => {
                return Err(files::corrupt_at(
                    path,
                    at,
                    format_args!("corrupt record at byte offset {at} while truncating: {bad}"),
                ))
            }
        }
    }
    match last {
        Some(last) => Ok((at as u64, last)),
        None => Err(files::unusable(path, "internal: truncating a segment that keeps no record")),
    }
}
