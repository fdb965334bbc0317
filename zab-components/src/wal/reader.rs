//! Reading entries back from the segment files of a [`super::FileStorage`], for a leader that
//! catches up a follower with entries whose payloads it no longer holds in memory.
//!
//! The reader works on the files, beside the storage (which may be on its log thread): it
//! only asks for durable entries, which are complete records in the files of the current
//! generation. A file removed meanwhile (a snapshot covered it) reads as "nothing": the caller
//! then treats the entries as gone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::record::{self, Parsed};
use super::{files, manifest, segment, snapshot};
use crate::protocol::{Entry, Message, Zxid};
use crate::storage::{LogReader, StorageError};

/// A [`LogReader`] over the files of a storage directory.
///
/// Each call reads the segments it needs whole (a segment is `segment_bytes`, 64 MiB by
/// default, and served from the page cache when it was written recently); a stream of calls
/// reading forward therefore reads a segment about once per `bytes_max` it returns.
///
/// Snapshots are read front to back through open files, one per
/// stream in progress (a leader may stream its snapshot to several learners at once), their
/// checksums checked on the way.
#[derive(Debug)]
pub struct FileLogReader {
    dir: PathBuf,
    snapshots: Vec<snapshot::StateStream>,
}

/// The most snapshot streams kept open: a stream whose learner went away is never finished,
/// and the oldest such one is closed to make room.
const OPEN_SNAPSHOTS_MAX: usize = 8;

impl FileLogReader {
    /// A reader of the storage in `dir`.
    pub fn new(dir: &Path) -> FileLogReader {
        FileLogReader { dir: dir.to_path_buf(), snapshots: Vec::new() }
    }

    /// The current generation's directory, if there is one.
    fn generation_dir(&self) -> Result<Option<PathBuf>, StorageError> {
        let Some(generation) = manifest::read(&self.dir)? else { return Ok(None) };
        let gen_dir = manifest::generation_dir(&self.dir, generation);
        // Gone if the generation was replaced meanwhile (a state transfer).
        Ok(gen_dir.exists().then_some(gen_dir))
    }

    fn segments(&self) -> Result<Vec<(Zxid, PathBuf)>, StorageError> {
        let Some(gen_dir) = self.generation_dir()? else { return Ok(Vec::new()) };
        let mut segments: Vec<(Zxid, PathBuf)> = files::list(&gen_dir)?
            .iter()
            .filter(|name| !files::is_temp(name))
            .filter_map(|name| segment::parse_name(name).map(|z| (z, gen_dir.join(name))))
            .collect();
        segments.sort();
        Ok(segments)
    }
}

impl LogReader for FileLogReader {
    fn read(
        &mut self,
        after: Zxid,
        through: Zxid,
        bytes_max: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let segments = self.segments()?;
        // The segment that may hold the entry after `after`: the last one starting at or
        // before it (later ones start after it).
        let start = segments.partition_point(|(first, _)| *first <= after).saturating_sub(1);
        let mut out = Vec::new();
        let mut bytes = 0;
        for (_, path) in &segments[start.min(segments.len())..] {
            let buf = match fs::read(path) {
                Ok(b) => b,
                // Removed meanwhile: the entries are gone (a snapshot covers them).
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(files::io_error(path, "read", e)),
            };
            if !buf.starts_with(segment::MAGIC) {
                return Err(files::corrupt(path, "is not a log segment (bad magic)"));
            }
            let mut at = segment::MAGIC.len();
            while let Parsed::Record { zxid, payload, next } = record::parse(&buf, at) {
                if zxid > through {
                    return Ok(out);
                }
                if zxid > after {
                    let size = Message::ENTRY_OVERHEAD_BYTES_MAX + payload.len();
                    if !out.is_empty() && bytes + size > bytes_max {
                        return Ok(out);
                    }
                    bytes += size;
                    out.push(Entry::new(zxid, payload.to_vec()));
                }
                at = next;
            }
        }
        Ok(out)
    }

    fn read_snapshot(
        &mut self,
        zxid: Zxid,
        offset: u64,
        bytes_max: usize,
    ) -> Result<Vec<u8>, StorageError> {
        // A stream goes on where it stopped; one at offset 0 is a new stream.
        let at = self.snapshots.iter().position(|s| s.zxid() == zxid && s.next() == offset);
        let mut stream = match at {
            Some(at) => self.snapshots.remove(at),
            None if offset == 0 => {
                let Some(gen_dir) = self.generation_dir()? else { return Ok(Vec::new()) };
                match snapshot::StateStream::open(&gen_dir, zxid)? {
                    Some(stream) => stream,
                    None => return Ok(Vec::new()), // replaced by a newer snapshot
                }
            }
            // A stream this reader no longer has open (closed to make room): the caller
            // starts over.
            None => return Ok(Vec::new()),
        };
        let bytes = stream.read(bytes_max)?;
        if !stream.finished() {
            if self.snapshots.len() == OPEN_SNAPSHOTS_MAX {
                self.snapshots.remove(0);
            }
            self.snapshots.push(stream);
        }
        Ok(bytes)
    }
}
