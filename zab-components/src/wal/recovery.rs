//! Recovery: from the files of a storage directory to [`Recovered`] and an open [`Log`].
//!
//! Every inconsistency is an error naming the file (and the byte offset for a record), with
//! what the operator can do; nothing is skipped silently. The one thing repaired is a torn
//! tail: a bad record at the end of the last segment, followed by nothing but zeros and by no
//! valid record, is the trace of a write that a crash interrupted before its sync; it is
//! zero-filled away and logged.

use std::fs;
use std::path::{Path, PathBuf};

use super::record::{self, Parsed};
use super::segment::{self, Log, SegmentMeta};
use super::{epochs, files, manifest, snapshot, WalOptions};
use crate::protocol::{Entry, EpochKind, Recovered, Snapshot, Zxid};
use crate::storage::StorageError;

/// What recovery found and opened.
pub(crate) struct Opened {
    /// The generation the manifest names.
    pub(crate) generation: u64,
    /// The log of that generation, ready for appends.
    pub(crate) log: Log,
    /// What a restarted node finds.
    pub(crate) recovered: Recovered,
}

/// Whether `next` can directly follow `prev` in a history: the next counter of the same epoch,
/// or the first (counter 1) of a later epoch.
pub(crate) fn follows(prev: Zxid, next: Zxid) -> bool {
    (next.epoch == prev.epoch && Some(next.counter) == prev.counter.checked_add(1))
        || (next.epoch > prev.epoch && next.counter == 1)
}

/// Recovers the storage in `dir` (creating an empty one if `dir` holds none).
pub(crate) fn open(dir: &Path, options: &WalOptions) -> Result<Opened, StorageError> {
    fs::create_dir_all(dir).map_err(|e| files::io_error(dir, "create the directory", e))?;
    remove_temps(dir)?;
    let generation = current_generation(dir, options)?;
    let gen_dir = manifest::generation_dir(dir, generation);
    let mut names = Vec::new();
    for name in files::list(&gen_dir)? {
        if files::is_temp(&name) {
            // An interrupted snapshot write: the rename never happened, so it never counted.
            log::info!(
                "wal: removing {}, left by an interrupted write",
                gen_dir.join(&name).display()
            );
            files::remove_file(&gen_dir.join(&name))?;
        } else {
            names.push(name);
        }
    }
    let snapshot = newest_snapshot(&gen_dir, &names, options)?;
    let accepted = epochs::read(dir, EpochKind::Accepted)?;
    let current = epochs::read(dir, EpochKind::Current)?;
    if accepted < current {
        return Err(files::corrupt(
            &epochs::path(dir, EpochKind::Accepted),
            format_args!(
                "acceptedEpoch {} is below currentEpoch {} ({}): the epoch files are \
                 inconsistent and the node must not start; rebuild this node from its peers",
                accepted.0,
                current.0,
                epochs::path(dir, EpochKind::Current).display()
            ),
        ));
    }
    let mut scan = Scan::new(snapshot.as_ref().map(|s| s.zxid), accepted);
    let segment_paths: Vec<(Zxid, PathBuf)> = names
        .iter()
        .filter_map(|name| segment::parse_name(name).map(|zxid| (zxid, gen_dir.join(name))))
        .collect();
    for name in &names {
        if segment::parse_name(name).is_none() && snapshot::parse_name(name).is_none() {
            log::warn!("wal: ignoring unknown file {}", gen_dir.join(name).display());
        }
    }
    let count = segment_paths.len();
    for (i, (zxid, path)) in segment_paths.into_iter().enumerate() {
        scan.segment(&path, zxid, i + 1 == count, options)?;
    }
    let mut segments = scan.segments;
    if let Some(snapshot) = &snapshot {
        // Sealed segments the snapshot covers, left by a crash before their deletion.
        let covered = segments[..segments.len().saturating_sub(1)]
            .iter()
            .take_while(|s| s.last <= snapshot.zxid)
            .count();
        for meta in segments.drain(..covered) {
            log::info!("wal: removing {}, covered by the snapshot", meta.path.display());
            files::remove_file(&meta.path)?;
        }
        files::fsync_dir(&gen_dir, options.fsync && covered > 0)?;
    }
    let log = Log::open(&gen_dir, options, segments)?;
    let recovered =
        Recovered { accepted_epoch: accepted, current_epoch: current, snapshot, log: scan.entries };
    Ok(Opened { generation, log, recovered })
}

/// Removes the temporaries of interrupted epoch or manifest writes.
fn remove_temps(dir: &Path) -> Result<(), StorageError> {
    for name in files::list(dir)? {
        if files::is_temp(&name) {
            log::info!("wal: removing {}, left by an interrupted write", dir.join(&name).display());
            files::remove_file(&dir.join(name))?;
        }
    }
    Ok(())
}

/// The generation the manifest names, after removing every other generation (left by an
/// interrupted install: an uncommitted new one or an old one not yet deleted). Creates the
/// first generation of an empty directory.
fn current_generation(dir: &Path, options: &WalOptions) -> Result<u64, StorageError> {
    let generations: Vec<u64> =
        files::list(dir)?.iter().filter_map(|n| manifest::parse_generation_dir(n)).collect();
    let Some(current) = manifest::read(dir)? else {
        for &g in &generations {
            let gen_dir = manifest::generation_dir(dir, g);
            if files::list(&gen_dir)?.iter().any(|n| !files::is_temp(n)) {
                return Err(files::corrupt(
                    &manifest::path(dir),
                    format_args!(
                        "is missing but {} holds data: without the manifest it is unknown \
                         whether that data is current; restore the manifest (a file with the \
                         lines `{}` and `generation {g}`) if it is, or move the directory away",
                        gen_dir.display(),
                        manifest::HEADER
                    ),
                ));
            }
            remove_generation(&gen_dir)?;
        }
        let first = 1;
        let gen_dir = manifest::generation_dir(dir, first);
        fs::create_dir(&gen_dir).map_err(|e| files::io_error(&gen_dir, "create", e))?;
        files::fsync_dir(dir, options.fsync)?;
        manifest::write(dir, first, options.fsync)?;
        return Ok(first);
    };
    let gen_dir = manifest::generation_dir(dir, current);
    if !gen_dir.is_dir() {
        return Err(files::corrupt(
            &manifest::path(dir),
            format_args!(
                "names generation {current} but {} does not exist; restore it from a backup or \
                 rebuild this node from its peers",
                gen_dir.display()
            ),
        ));
    }
    let stale: Vec<u64> = generations.into_iter().filter(|&g| g != current).collect();
    for &g in &stale {
        let what =
            if g > current { "an install that did not commit" } else { "a finished install" };
        let gen_dir = manifest::generation_dir(dir, g);
        log::info!("wal: removing {}, left by {what}", gen_dir.display());
        remove_generation(&gen_dir)?;
    }
    files::fsync_dir(dir, options.fsync && !stale.is_empty())?;
    Ok(current)
}

fn remove_generation(gen_dir: &Path) -> Result<(), StorageError> {
    fs::remove_dir_all(gen_dir).map_err(|e| files::io_error(gen_dir, "remove", e))
}

/// Reads the newest snapshot of a generation and deletes older ones (left by a crash between
/// a snapshot's rename and their deletion).
fn newest_snapshot(
    gen_dir: &Path,
    names: &[String],
    options: &WalOptions,
) -> Result<Option<Snapshot>, StorageError> {
    let mut zxids: Vec<Zxid> = names.iter().filter_map(|n| snapshot::parse_name(n)).collect();
    zxids.sort();
    let Some(&newest) = zxids.last() else { return Ok(None) };
    let found = snapshot::read(&snapshot::path(gen_dir, newest), newest)?;
    for &old in &zxids[..zxids.len() - 1] {
        log::info!("wal: removing older snapshot {}", snapshot::path(gen_dir, old).display());
        files::remove_file(&snapshot::path(gen_dir, old))?;
    }
    files::fsync_dir(gen_dir, options.fsync && zxids.len() > 1)?;
    Ok(Some(found))
}

/// The checks that run along the whole log, across segments.
struct Scan {
    snapshot: Option<Zxid>,
    accepted: crate::protocol::Epoch,
    /// The previous record and where it was.
    prev: Option<Zxid>,
    entries: Vec<Entry>,
    segments: Vec<SegmentMeta>,
}

impl Scan {
    fn new(snapshot: Option<Zxid>, accepted: crate::protocol::Epoch) -> Scan {
        Scan { snapshot, accepted, prev: None, entries: Vec::new(), segments: Vec::new() }
    }

    /// Scans one segment file named for `named`; `last` if no segment follows it.
    fn segment(
        &mut self,
        path: &Path,
        named: Zxid,
        last: bool,
        options: &WalOptions,
    ) -> Result<(), StorageError> {
        let bytes = files::read(path)?;
        let magic = segment::MAGIC.len();
        if bytes.len() < magic || &bytes[..magic] != segment::MAGIC {
            if bytes.iter().all(|&b| b == 0) && last {
                // Created by a roll whose first record never became durable.
                log::warn!("wal: removing {}: an empty segment left by a crash", path.display());
                return files::remove_file(path);
            }
            return Err(files::corrupt(
                path,
                "is not a log segment (bad magic at byte offset 0); move it out of the storage \
                 directory if it is not ours, else restore it or rebuild this node from its peers",
            ));
        }
        let mut at = magic;
        let mut first = None;
        loop {
            match record::parse(&bytes, at) {
                Parsed::Record { zxid, payload, next } => {
                    self.record(path, at, zxid, first.is_none(), named)?;
                    first.get_or_insert(zxid);
                    if self.snapshot.is_none_or(|s| zxid > s) {
                        self.entries.push(Entry::new(zxid, payload));
                    }
                    at = next;
                }
                Parsed::End => {
                    if let Some(k) = nonzero_from(&bytes, at) {
                        return Err(corrupt(
                            path,
                            at,
                            "a zero header ends the records",
                            &format!("but non-zero bytes follow at byte offset {k}"),
                        ));
                    }
                    break;
                }
                Parsed::Bad(bad) => {
                    if !last {
                        return Err(corrupt(
                            path,
                            at,
                            &bad.to_string(),
                            "in a segment that later segments follow",
                        ));
                    }
                    let after = self.prev.unwrap_or(Zxid::ZERO);
                    if let Some(q) = later_record(&bytes, at + 1, after) {
                        return Err(corrupt(
                            path,
                            at,
                            &bad.to_string(),
                            &format!("and a valid record follows at byte offset {q}"),
                        ));
                    }
                    let end = record::claimed_end(&bytes, at);
                    if let Some(k) = nonzero_from(&bytes, end) {
                        return Err(corrupt(
                            path,
                            at,
                            &bad.to_string(),
                            &format!("and non-zero bytes follow at byte offset {k}"),
                        ));
                    }
                    log::warn!(
                        "wal: {}: torn tail at byte offset {at} ({bad}): an interrupted, \
                         unsynced write; cutting it off",
                        path.display()
                    );
                    zero_from(path, at as u64, bytes.len() as u64, options.fsync)?;
                    break;
                }
            }
        }
        match (first, self.prev) {
            (Some(first), Some(last_zxid)) => {
                self.segments.push(SegmentMeta {
                    path: path.to_path_buf(),
                    first,
                    last: last_zxid,
                    end: at as u64,
                });
                Ok(())
            }
            _ if last => {
                log::warn!("wal: removing {}: a segment without records", path.display());
                files::remove_file(path)
            }
            _ => Err(files::corrupt(
                path,
                "holds no record but later segments follow: restore it or rebuild this node from \
                 its peers",
            )),
        }
    }

    /// Checks one record against the previous one, the snapshot, the segment's name and the
    /// acceptedEpoch.
    fn record(
        &mut self,
        path: &Path,
        at: usize,
        zxid: Zxid,
        first_of_segment: bool,
        named: Zxid,
    ) -> Result<(), StorageError> {
        let here = |what: String| {
            files::corrupt_at(path, at, format_args!("record {zxid} at byte offset {at}: {what}"))
        };
        if first_of_segment && zxid != named {
            return Err(here(format!(
                "the segment's name says its first record is {named}; was the file renamed? \
                 restore the original name or rebuild this node from its peers"
            )));
        }
        if let Some(prev) = self.prev.filter(|&prev| zxid <= prev) {
            return Err(here(format!(
                "zxids must strictly increase but it follows {prev}; the log is corrupt: \
                 rebuild this node from its peers"
            )));
        }
        // Records the snapshot covers need only increase; after it, each must follow the one
        // before, the first one the snapshot itself.
        let base = self.snapshot.unwrap_or(Zxid::ZERO);
        let prev = self.prev.filter(|&prev| prev > base);
        if zxid > base && !follows(prev.unwrap_or(base), zxid) {
            return Err(here(match prev {
                None => {
                    let have = match self.snapshot {
                        Some(s) => format!("the snapshot is at {s}"),
                        None => "there is no snapshot".to_string(),
                    };
                    format!(
                        "it is the first record after the snapshot but {have}, which it does \
                         not follow: the snapshot this log needs is missing; restore the \
                         snapshot file (snapshot.<epoch>-<counter> in this directory) or \
                         rebuild this node from its peers"
                    )
                }
                Some(prev) if first_of_segment => format!(
                    "the previous segment ends at {prev}, so the records between are missing \
                     (a segment file was lost?); restore it or rebuild this node from its peers"
                ),
                Some(prev) => format!(
                    "it does not follow {prev} (a gap in the history); the log is corrupt: \
                     rebuild this node from its peers"
                ),
            }));
        }
        if zxid.epoch > self.accepted {
            return Err(here(format!(
                "its epoch is above acceptedEpoch {}: the epoch file is older than the log; \
                 rebuild this node from its peers",
                self.accepted.0
            )));
        }
        self.prev = Some(zxid);
        Ok(())
    }
}

fn corrupt(path: &Path, at: usize, what: &str, context: &str) -> StorageError {
    files::corrupt_at(
        path,
        at,
        format_args!(
            "corrupt record at byte offset {at}: {what}, {context}. This is not a torn tail, so \
             data would be lost by skipping it: rebuild this node from its peers (move the \
             storage directory away), or, if you know the bytes from offset {at} on were never \
             synced, cut the file there (`truncate -s {at} <file>`) and restart"
        ),
    )
}

/// The first non-zero byte at or after `from`.
fn nonzero_from(bytes: &[u8], from: usize) -> Option<usize> {
    bytes.get(from..)?.iter().position(|&b| b != 0).map(|k| from + k)
}

/// The offset of a valid record with a zxid above `after` starting anywhere from `from` on.
fn later_record(bytes: &[u8], from: usize, after: Zxid) -> Option<usize> {
    let end = bytes.iter().rposition(|&b| b != 0)?;
    let u64_at = |at: usize| {
        let mut b = [0; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    (from..=end).find(|&q| {
        if q + record::HEADER_BYTES > bytes.len() {
            return false;
        }
        // A cheap filter first (a plausible zxid), so garbage costs no checksum.
        let zxid = Zxid::new(u64_at(q + 8), u64_at(q + 16));
        let plausible = zxid > after && zxid.epoch.0.wrapping_sub(after.epoch.0) < 1 << 32;
        plausible && matches!(record::parse(bytes, q), Parsed::Record { .. })
    })
}

/// Zero-fills `path` from `from` to `len` (cutting a torn tail) and syncs it.
fn zero_from(path: &Path, from: u64, len: u64, fsync: bool) -> Result<(), StorageError> {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| files::io_error(path, "open to cut the torn tail", e))?;
    file.set_len(from).map_err(|e| files::io_error(path, "cut the torn tail", e))?;
    file.set_len(len).map_err(|e| files::io_error(path, "zero-fill", e))?;
    if fsync {
        file.sync_all().map_err(|e| files::io_error(path, "sync", e))?;
    }
    Ok(())
}
