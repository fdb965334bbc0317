//! The durable implementation of [`ZabStorage`]: a write-ahead log of checksummed records in
//! preallocated segment files, snapshots, and the two epoch files.
//!
//! ```no_run
//! use std::path::Path;
//! use zab_components::protocol::{Entry, Epoch, EpochKind, Zxid};
//! use zab_components::storage::ZabStorage;
//! use zab_components::wal::{FileStorage, WalOptions};
//!
//! let mut storage = FileStorage::open(Path::new("/var/lib/zab/group-1"), WalOptions::default())?;
//! let recovered = storage.recover()?; // hand this to ZabNode::new
//! storage.write_epoch(EpochKind::Accepted, Epoch(1))?;
//! storage.append(&[Entry::new(Zxid::new(1, 1), b"x".to_vec())])?;
//! storage.sync()?; // one fdatasync for everything written since the last sync
//! # Ok::<(), zab_components::storage::StorageError>(())
//! ```
//!
//! # Layout of the directory
//!
//! ```text
//! <dir>/acceptedEpoch        "<decimal>\n", replaced atomically (tmp, fsync, rename, fsync dir)
//! <dir>/currentEpoch         idem
//! <dir>/MANIFEST             "zab-wal manifest v1\ngeneration <n>\n": the current generation
//! <dir>/gen.<n: 16 hex>/     the snapshot and the log of generation n
//!     snapshot.<epoch>-<counter>   at most one (older ones are deleted), zxid in 16 hex digits each
//!     log.<epoch>-<counter>        segments, named by their first record's zxid
//! ```
//!
//! A segment is the magic `b"ZABWAL01"` followed by records, all integers **little endian**:
//! `[len u32][crc32c u32][zxid epoch u64][zxid counter u64][payload: len bytes]`, the CRC-32C
//! covering the length, the zxid and the payload (see `record.rs`). The rest of a segment is
//! zeros: segments are preallocated to [`WalOptions::segment_bytes`] and rolled when the next
//! record does not fit (a record bigger than a segment gets a segment of its own size).
//!
//! # Durability
//!
//! - [`append`](ZabStorage::append) encodes records into a write buffer that goes to the file
//!   when it fills or at the next [`sync`](ZabStorage::sync); `sync` writes it out and issues
//!   **one** fdatasync (plus one directory fsync if a segment was created or deleted): group
//!   commit. A roll seals (cuts to its records) and syncs the previous segment first.
//! - [`truncate`](ZabStorage::truncate), [`write_epoch`](ZabStorage::write_epoch),
//!   [`save_snapshot`](ZabStorage::save_snapshot) and [`install`](ZabStorage::install) are
//!   rare; each first makes every earlier write durable (the storage contract: an effect is
//!   durable only once the earlier ones are) and is itself durable when it returns.
//! - `truncate` deletes later segments from the last backwards, syncs the directory, then
//!   zero-fills the segment holding the cut from the cut on and syncs it: after a crash no
//!   record above the cut, and no stale record behind newer ones, can reappear.
//! - `save_snapshot` writes `snapshot.<zxid>.tmp`, fsyncs, renames, fsyncs the directory, then
//!   deletes the older snapshot and the sealed segments the snapshot covers wholly.
//! - `install` (state transfer) builds generation n+1 (snapshot, then log, synced) and commits
//!   it by renaming the manifest; only then is generation n removed. A crash at any point
//!   leaves the old snapshot and log or the new ones, never a mix (ZOOKEEPER-3642).
//!   [`FileStorage::install_interrupted`] stops after any of its [`INSTALL_STEPS`] steps, for
//!   crash tests.
//! - Dropping a `FileStorage` without `sync` is a crash: buffered records are lost.
//!
//! # Recovery
//!
//! [`FileStorage::open`] (and [`recover`](ZabStorage::recover)) read the manifest, remove
//! leftovers (temporaries, other generations, older snapshots, covered segments), load the
//! snapshot, then scan every segment. A torn tail (a bad record at the end of the last segment,
//! followed only by zeros and by no valid record) is zero-filled away and logged. Anything
//! else is an error naming the file and byte offset and saying what the operator can do: a
//! corrupt record elsewhere, zxids that do not strictly increase or leave a gap (a history's
//! next zxid is the next counter of its epoch, or counter 1 of a later epoch), a log whose
//! first record does not follow the snapshot (the snapshot it needs is missing,
//! ZOOKEEPER-2325), acceptedEpoch below currentEpoch, or a record of an epoch above
//! acceptedEpoch.

mod epochs;
pub mod files;
mod manifest;
mod reader;
mod record;
mod recovery;
mod segment;
mod snapshot;

pub use reader::FileLogReader;

use std::path::{Path, PathBuf};

use crate::protocol::{Entry, Epoch, EpochKind, Recovered, Snapshot, Zxid};
use crate::storage::{StorageError, ZabStorage};
use segment::Log;

/// How a [`FileStorage`] writes. Validated by [`FileStorage::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// The preallocated size of a segment file. Default 64 MiB (ZooKeeper's `preAllocSize`);
    /// at least [`WalOptions::SEGMENT_BYTES_MIN`].
    pub segment_bytes: u64,
    /// Whether `sync` (and the other durable steps) really fsync. Default `true`. `false` is
    /// for benchmarks and tests that want speed: an OS crash or power loss can then lose
    /// acknowledged writes (the last ones before the crash). The epoch files are fsynced
    /// either way, so Zab's guarantees about epochs hold in both modes.
    pub fsync: bool,
    /// The largest payload one entry may have; `append` refuses bigger ones. Default 16 MiB.
    pub payload_bytes_max: u32,
    /// Buffered record bytes that trigger a write to the file before the next `sync`.
    /// Default 1 MiB.
    pub write_buffer_bytes: usize,
}

impl WalOptions {
    /// The smallest allowed [`WalOptions::segment_bytes`].
    pub const SEGMENT_BYTES_MIN: u64 = 256;

    /// Small segments (4 KiB, so tests cross segment boundaries with few records) and no
    /// fsync: for tests only.
    pub fn for_tests() -> WalOptions {
        WalOptions { segment_bytes: 4096, fsync: false, ..WalOptions::default() }
    }

    fn validate(&self) -> Result<(), StorageError> {
        if self.segment_bytes < Self::SEGMENT_BYTES_MIN {
            return Err(StorageError::Refused {
                problem: format!(
                    "wal: segment_bytes {} is below the minimum {}; raise it",
                    self.segment_bytes,
                    Self::SEGMENT_BYTES_MIN
                ),
            });
        }
        Ok(())
    }
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_bytes: 64 << 20,
            fsync: true,
            payload_bytes_max: 16 << 20,
            write_buffer_bytes: 1 << 20,
        }
    }
}

/// The number of steps of an install, for [`FileStorage::install_interrupted`]: (1) create the
/// new generation directory, (2) write the snapshot's temporary, (3) rename it, (4) write and
/// sync the new log, (5) write the manifest's temporary, (6) rename it — the commit point —,
/// (7) remove the old generation.
pub const INSTALL_STEPS: usize = 7;

/// The step of an install whose completion commits it.
pub const INSTALL_COMMIT_STEP: usize = 6;

/// The durable [`ZabStorage`]: see the [module docs](self) for the format and guarantees.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    options: WalOptions,
    generation: u64,
    log: Log,
    /// The stored snapshot's zxid.
    snapshot: Option<Zxid>,
    /// The zxid the next appended entry must follow: the last record's, or the snapshot's if
    /// the log holds nothing after it.
    last: Zxid,
    /// What `open` recovered, until the first write changes it.
    recovered: Option<Recovered>,
    /// Set when an install was interrupted (deliberately or by an error): the instance no
    /// longer knows what is on disk and must be reopened.
    broken: bool,
    /// Deletes the files a snapshot made garbage, off the log thread (with fsync on).
    janitor: Option<Janitor>,
}

/// A thread that deletes files a committed snapshot made garbage (the previous snapshot, the
/// segments it covers). Unlinking a file of hundreds of MB can take a file system a good part
/// of a second, and the log thread, which every append waits for, must not. A crash before a
/// deletion leaves the file to recovery, which removes older snapshots and covered segments.
#[derive(Debug)]
struct Janitor {
    garbage: crossbeam_channel::Sender<PathBuf>,
}

impl Janitor {
    fn spawn() -> Option<Janitor> {
        let (garbage, incoming) = crossbeam_channel::unbounded::<PathBuf>();
        let spawned = std::thread::Builder::new().name("zab-wal-janitor".into()).spawn(move || {
            while let Ok(path) = incoming.recv() {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    // Garbage only: recovery removes it if it is still there.
                    Err(e) => log::warn!("wal: cannot remove {}: {e}", path.display()),
                }
            }
        });
        spawned.ok().map(|_| Janitor { garbage })
    }
}

/// Writes snapshots beside a [`FileStorage`] (see
/// [`ZabStorage::snapshot_stager`]): to a
/// temporary file in the storage directory, which `commit_snapshot` renames into the current
/// generation.
#[derive(Debug)]
pub struct FileSnapshotStager {
    dir: PathBuf,
    fsync: bool,
}

impl crate::storage::SnapshotStager for FileSnapshotStager {
    fn stage(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        snapshot::stage(&self.dir, snapshot, self.fsync)
    }
}

impl FileStorage {
    /// Opens (creating if needed) the storage in `dir` and recovers it; fails on any
    /// inconsistency (see the [module docs](self#recovery)).
    pub fn open(dir: &Path, options: WalOptions) -> Result<FileStorage, StorageError> {
        options.validate()?;
        let opened = recovery::open(dir, &options)?;
        let mut storage = FileStorage {
            dir: dir.to_path_buf(),
            options,
            generation: opened.generation,
            log: opened.log,
            snapshot: None,
            last: Zxid::ZERO,
            recovered: None,
            broken: false,
            janitor: None,
        };
        storage.adopt(opened.recovered);
        Ok(storage)
    }

    /// The storage directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> &WalOptions {
        &self.options
    }

    /// The directory of the current generation (snapshot and segments).
    pub fn generation_dir(&self) -> PathBuf {
        manifest::generation_dir(&self.dir, self.generation)
    }

    /// The current segment files, in zxid order.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.log.segment_paths()
    }

    /// Fault injection for crash tests (zab.md §8: a fault-injection point per persistence
    /// step): performs only the first `steps` steps of [`ZabStorage::install`] (see
    /// [`INSTALL_STEPS`]) and stops as if the process had crashed there. Unless `steps` is at
    /// least [`INSTALL_STEPS`], the instance then refuses every call: drop it and reopen the
    /// directory.
    pub fn install_interrupted(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        steps: usize,
    ) -> Result<(), StorageError> {
        self.usable()?;
        self.check_chain(snapshot.map_or(Zxid::ZERO, |s| s.zxid), entries)?;
        self.broken = true;
        self.log.sync()?;
        self.recovered = None;
        let fsync = self.options.fsync;
        let next = self.generation + 1;
        let new_dir = manifest::generation_dir(&self.dir, next);
        let old_dir = manifest::generation_dir(&self.dir, self.generation);
        let io = |path: &Path, doing: &str| {
            let path = path.to_path_buf();
            let doing = doing.to_string();
            move |e| files::io_error(&path, &doing, e)
        };
        if steps < 1 {
            return Ok(());
        }
        // 1: the new generation directory (replacing one a failed install left).
        if new_dir.exists() {
            std::fs::remove_dir_all(&new_dir).map_err(io(&new_dir, "remove"))?;
        }
        std::fs::create_dir(&new_dir).map_err(io(&new_dir, "create"))?;
        files::fsync_dir(&self.dir, fsync)?;
        if steps <= 1 {
            return Ok(());
        }
        // 2, 3: the snapshot.
        let snapshot_tmp = match snapshot {
            Some(s) => Some(snapshot::write_temp(&new_dir, s, fsync)?),
            None => None,
        };
        if steps <= 2 {
            return Ok(());
        }
        if let (Some(s), Some(tmp)) = (snapshot, snapshot_tmp) {
            snapshot::commit(&new_dir, &tmp, s, fsync)?;
        }
        if steps <= 3 {
            return Ok(());
        }
        // 4: the log.
        let mut log = Log::open(&new_dir, &self.options, Vec::new())?;
        log.append(entries)?;
        log.sync()?;
        files::fsync_dir(&new_dir, fsync)?;
        if steps <= 4 {
            return Ok(());
        }
        // 5, 6: the manifest; its rename commits the install.
        let manifest_tmp = manifest::write_temp(&self.dir, next, fsync)?;
        if steps <= 5 {
            return Ok(());
        }
        manifest::commit(&self.dir, &manifest_tmp, fsync)?;
        if steps <= 6 {
            return Ok(());
        }
        // 7: the old generation.
        std::fs::remove_dir_all(&old_dir).map_err(io(&old_dir, "remove the old generation"))?;
        files::fsync_dir(&self.dir, fsync)?;
        self.generation = next;
        self.log = log;
        self.snapshot = snapshot.map(|s| s.zxid);
        self.last = entries.last().map_or(snapshot.map_or(Zxid::ZERO, |s| s.zxid), |e| e.zxid);
        self.broken = false;
        Ok(())
    }

    /// Takes over what recovery found.
    fn adopt(&mut self, recovered: Recovered) {
        self.snapshot = recovered.snapshot.as_ref().map(|s| s.zxid);
        let base = self.snapshot.unwrap_or(Zxid::ZERO);
        self.last = self.log.last().map_or(base, |last| last.max(base));
        self.recovered = Some(recovered);
    }

    /// After the snapshot at `zxid` was put in place: the previous one and the log it covers
    /// go.
    ///
    /// With fsync on (a real device, the storage on a log thread) the files go to the janitor
    /// thread; otherwise they are deleted here.
    fn snapshot_in_place(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        let dir = self.generation_dir();
        let old = self.snapshot.filter(|&old| old != zxid);
        self.snapshot = Some(zxid);
        self.last = self.last.max(zxid);
        if self.options.fsync && self.janitor.is_none() {
            self.janitor = Janitor::spawn();
        }
        let Some(janitor) = &self.janitor else {
            if let Some(old) = old {
                files::remove_file(&snapshot::path(&dir, old))?;
                files::fsync_dir(&dir, self.options.fsync)?;
            }
            return self.log.remove_covered(zxid);
        };
        let garbage = old.map(|old| snapshot::path(&dir, old)).into_iter();
        for path in garbage.chain(self.log.forget_covered(zxid)) {
            // A janitor that is gone (it panicked) leaves the file to recovery.
            let _ = janitor.garbage.send(path);
        }
        Ok(())
    }

    fn usable(&self) -> Result<(), StorageError> {
        if self.broken {
            return Err(StorageError::Unusable {
                problem: format!(
                    "wal: {}: an install was interrupted, so this instance no longer knows what \
                     is on disk; reopen the directory",
                    self.dir.display()
                ),
            });
        }
        Ok(())
    }

    /// Checks that `entries` may follow `prev`: each zxid the successor of the one before,
    /// each payload within bounds.
    fn check_chain(&self, mut prev: Zxid, entries: &[Entry]) -> Result<(), StorageError> {
        for entry in entries {
            if !recovery::follows(prev, entry.zxid) {
                return Err(StorageError::Refused {
                    problem: format!(
                        "wal: refusing to append {} after {prev}: a history's next zxid is the \
                         next counter of its epoch or counter 1 of a later epoch (nothing was \
                         written)",
                        entry.zxid
                    ),
                });
            }
            if entry.payload.len() as u64 > u64::from(self.options.payload_bytes_max) {
                return Err(StorageError::Refused {
                    problem: format!(
                        "wal: refusing to append {}: its payload has {} bytes, above \
                         payload_bytes_max {} (nothing was written)",
                        entry.zxid,
                        entry.payload.len(),
                        self.options.payload_bytes_max
                    ),
                });
            }
            prev = entry.zxid;
        }
        Ok(())
    }
}

impl ZabStorage for FileStorage {
    fn recover(&mut self) -> Result<Recovered, StorageError> {
        self.usable()?;
        if let Some(recovered) = &self.recovered {
            return Ok(recovered.clone());
        }
        // What a restarted node would find: everything written so far (synced first, since
        // the reopened log forgets what it had not synced yet), read back.
        self.log.sync()?;
        let opened = recovery::open(&self.dir, &self.options)?;
        self.generation = opened.generation;
        self.log = opened.log;
        self.adopt(opened.recovered.clone());
        Ok(opened.recovered)
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.usable()?;
        self.check_chain(self.last, entries)?;
        let Some(last) = entries.last() else { return Ok(()) };
        self.recovered = None;
        self.log.append(entries)?;
        self.last = last.zxid;
        Ok(())
    }

    fn truncate(&mut self, to: Zxid) -> Result<(), StorageError> {
        self.usable()?;
        if self.log.last().is_none_or(|last| last <= to) {
            return Ok(());
        }
        self.recovered = None;
        self.log.sync()?;
        self.log.truncate(to)?;
        let base = self.snapshot.unwrap_or(Zxid::ZERO);
        self.last = self.log.last().map_or(base, |last| last.max(base));
        Ok(())
    }

    fn write_epoch(&mut self, kind: EpochKind, epoch: Epoch) -> Result<(), StorageError> {
        self.usable()?;
        self.recovered = None;
        self.log.sync()?;
        // Always durable, even without fsync: see `epochs`.
        epochs::write(&self.dir, kind, epoch)
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.usable()?;
        self.recovered = None;
        self.log.sync()?;
        let fsync = self.options.fsync;
        let dir = self.generation_dir();
        let tmp = snapshot::write_temp(&dir, snapshot, fsync)?;
        snapshot::commit(&dir, &tmp, snapshot, fsync)?;
        self.snapshot_in_place(snapshot.zxid)
    }

    fn snapshot_stager(&self) -> Option<Box<dyn crate::storage::SnapshotStager>> {
        Some(Box::new(FileSnapshotStager { dir: self.dir.clone(), fsync: self.options.fsync }))
    }

    fn commit_snapshot(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        self.usable()?;
        self.recovered = None;
        self.log.sync()?;
        let staged = snapshot::staged_path(&self.dir, zxid);
        let dir = self.generation_dir();
        files::commit_temp(&staged, &snapshot::path(&dir, zxid), self.options.fsync)?;
        self.snapshot_in_place(zxid)?;
        // Stagings that were voided (an install came first) are not wanted any more.
        for name in files::list(&self.dir)? {
            if name.starts_with(snapshot::STAGED_PREFIX) && files::is_temp(&name) {
                files::remove_file(&self.dir.join(name))?;
            }
        }
        Ok(())
    }

    fn install(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        self.install_interrupted(snapshot, entries, INSTALL_STEPS)
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.usable()?;
        self.log.sync()
    }

    /// With fsync on, a sync waits for the device: the component then runs this storage on a
    /// log thread.
    fn reader(&self) -> Box<dyn crate::storage::LogReader> {
        Box::new(reader::FileLogReader::new(&self.dir))
    }

    fn log_thread(&self) -> bool {
        self.options.fsync
    }
}
