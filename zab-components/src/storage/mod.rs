//! Where a Zab node keeps what must survive a crash: the log, the two epochs and the snapshot.
//!
//! The Zab component executes the protocol's storage actions through the [`ZabStorage`] trait,
//! in the order the protocol emits them, then calls [`ZabStorage::sync`] once for the whole
//! batch (group commit) and only then reports the completions to the protocol, so that an ACK
//! never leaves before the write it acknowledges is durable.
//!
//! A storage whose `sync` blocks on a device ([`ZabStorage::log_thread`], e.g. the file log
//! with fsync) is driven from a dedicated log thread instead: the component hands it each batch
//! of writes and keeps handling events while the thread writes and syncs; the thread takes
//! every batch that arrived during its last sync and covers them all with one more sync, then
//! reports back. Other storages (the simulator's [`SimDisk`]) are called inline, which keeps
//! simulations deterministic.
//!
//! [`SimDisk`] is the implementation for the simulator: an in-memory disk whose unsynced writes
//! are lost when the node crashes, shared by the successive incarnations of one node. The
//! durable file log is another implementation of the same trait.
//!
//! # Contract
//!
//! - Writes take effect in call order. After `sync` returns `Ok`, everything written before it
//!   survives a crash; what was written after the last successful `sync` may survive, in part
//!   (a prefix of it) or not at all.
//! - `recover` returns exactly what a restarted node would find: the newest snapshot, the log
//!   entries after it in zxid order, and both epochs.
//! - An `Err` from any method means the node must stop: the disk is no longer trusted.

mod log_thread;
mod sim_disk;

pub mod conformance;

pub(crate) use log_thread::LogThread;
pub use sim_disk::SimDisk;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::protocol::{Entry, Epoch, EpochKind, Recovered, Snapshot, Zxid};

/// A storage failure: the node cannot go on safely. The variant says what the operator can do
/// about it; `Display` says it in words, with the file and where in it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageError {
    /// The operating system refused an operation on a file (a failing disk, no free space,
    /// permissions): fix the cause and restart the node. Nothing on disk is known to be wrong.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("append to", "sync the directory", …).
        operation: String,
        /// The operating system's error kind.
        kind: io::ErrorKind,
        /// The operating system's error, in words.
        detail: String,
    },
    /// A file does not hold what the storage wrote or expects there (a bad checksum, a record
    /// out of order, a missing or misnamed file): restore it from a backup or rebuild the node
    /// from its peers. Starting anyway could lose acknowledged writes.
    Corrupt {
        /// The file (or the directory a file is missing from).
        path: PathBuf,
        /// Where in the file, when the problem is at one place.
        offset: Option<u64>,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A request the storage refused, having changed nothing: a history with a gap, a payload
    /// above its limit, an option out of range. A bug in the caller or a setting to fix.
    Refused {
        /// What was refused and why.
        problem: String,
    },
    /// The storage no longer knows what is on disk (an install was interrupted, its log thread
    /// stopped): reopen it, which recovers from the files.
    Unusable {
        /// Why.
        problem: String,
    },
    /// `error` happened while doing `operation` (an append, a sync, …), as the driver that
    /// called the storage reports it.
    During {
        /// The storage operation.
        operation: &'static str,
        /// What went wrong.
        error: Box<StorageError>,
    },
}

impl StorageError {
    /// An I/O error while doing `operation` on `path`.
    pub fn io(path: &Path, operation: &str, error: &io::Error) -> StorageError {
        StorageError::Io {
            path: path.to_path_buf(),
            operation: operation.to_string(),
            kind: error.kind(),
            detail: error.to_string(),
        }
    }

    /// `self`, as it happened while doing `operation`.
    pub fn during(self, operation: &'static str) -> StorageError {
        StorageError::During { operation, error: Box::new(self) }
    }

    /// The error at the root of `During` contexts.
    pub fn root(&self) -> &StorageError {
        match self {
            StorageError::During { error, .. } => error.root(),
            other => other,
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { path, operation, detail, .. } => write!(
                f,
                "wal: {}: cannot {operation}: {detail} (check the disk, free space and \
                 permissions; the node must stop)",
                path.display()
            ),
            StorageError::Corrupt { path, problem, .. } => {
                write!(f, "wal: {}: {problem}", path.display())
            }
            StorageError::Refused { problem } | StorageError::Unusable { problem } => {
                f.write_str(problem)
            }
            StorageError::During { operation, error } => write!(f, "{operation}: {error}"),
        }
    }
}

impl std::error::Error for StorageError {}

/// Durable storage of one Zab node (see the [module docs](self) for the contract).
pub trait ZabStorage: Send + 'static {
    /// What is on the disk now, as a restarted node would find it.
    fn recover(&mut self) -> Result<Recovered, StorageError>;
    /// Appends entries after the last one.
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError>;
    /// Removes every entry with a zxid above `to`.
    fn truncate(&mut self, to: Zxid) -> Result<(), StorageError>;
    /// Replaces one of the two epochs (atomically: the old value or the new, never a mix).
    fn write_epoch(&mut self, kind: EpochKind, epoch: Epoch) -> Result<(), StorageError>;
    /// Stores a snapshot of the delivered state at `zxid`; log entries up to `zxid` may go.
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError>;
    /// Replaces, atomically, the snapshot and the whole log with `snapshot` followed by
    /// `entries` (a state transfer from the leader).
    fn install(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
    ) -> Result<(), StorageError>;
    /// Makes every earlier write durable.
    fn sync(&mut self) -> Result<(), StorageError>;

    /// A writer of snapshot files usable beside this storage, from another thread. The
    /// component of a storage on a log thread has a snapshot's state written through it (a
    /// large state takes seconds), then asks the log thread only to
    /// [`commit_snapshot`](Self::commit_snapshot), so the appends queued behind it do not
    /// wait for the whole state to be written. `None` (the default): `save_snapshot` does it
    /// all.
    fn snapshot_stager(&self) -> Option<Box<dyn SnapshotStager>> {
        None
    }

    /// Makes the snapshot at `zxid` that [`snapshot_stager`](Self::snapshot_stager) wrote this
    /// storage's snapshot, as `save_snapshot` would have once the state was written; log
    /// entries up to `zxid` may go. A storage without a stager refuses.
    fn commit_snapshot(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        Err(StorageError::Refused {
            problem: format!("this storage stages no snapshots (asked to commit {zxid})"),
        })
    }
    /// Whether the Zab component should drive this storage from a dedicated log thread, so that
    /// a slow `sync` (a real device) overlaps with handling the next events instead of blocking
    /// a worker of the runtime, and one sync covers every write that arrived meanwhile.
    ///
    /// Default `false`: the component calls the storage inline, as the deterministic simulator
    /// needs (a thread's timing is not the simulation's). [`FileStorage`](crate::wal::FileStorage)
    /// says `true` when it fsyncs. Wrappers should forward it.
    fn log_thread(&self) -> bool {
        false
    }

    /// A reader of this storage's durable log entries, usable beside the storage (which may
    /// be on its log thread). A leader reads back, through it, the entries whose payloads it
    /// no longer keeps in memory when it catches up a follower.
    fn reader(&self) -> Box<dyn LogReader>;
}

/// Writes snapshot files beside a storage (see [`ZabStorage::snapshot_stager`]).
pub trait SnapshotStager: Send + 'static {
    /// Writes `snapshot` durably where `commit_snapshot(snapshot.zxid)` takes it from. It is
    /// not the storage's snapshot until then, and a crash before forgets it.
    fn stage(&mut self, snapshot: &Snapshot) -> Result<(), StorageError>;
}

/// Reads durable log entries back (see [`ZabStorage::reader`]).
pub trait LogReader: Send + 'static {
    /// The durable entries after `after` through `through`, in order, stopping before their
    /// [`Entry::encoded_len_max`] sizes add up to more than `bytes_max` (at least one, if
    /// any). Entries no longer stored (a snapshot covered them) are simply not returned.
    fn read(
        &mut self,
        after: Zxid,
        through: Zxid,
        bytes_max: usize,
    ) -> Result<Vec<Entry>, StorageError>;

    /// Up to `bytes_max` bytes of the state of the stored snapshot at `zxid`, from `offset`
    /// on (at least one if any is left). A snapshot no longer stored (a newer one replaced
    /// it) reads as no bytes; so does an offset at or past its end.
    ///
    /// A leader streams a SNAP to a learner with consecutive calls from offset 0 to the end,
    /// and sends each piece as soon as it has it: a reader that checks the snapshot's
    /// integrity must therefore fail the call that would complete a stream whose bytes do not
    /// check out, so that the learner never receives the whole of a corrupt snapshot.
    fn read_snapshot(
        &mut self,
        zxid: Zxid,
        offset: u64,
        bytes_max: usize,
    ) -> Result<Vec<u8>, StorageError>;
}

/// One storage write, as the component hands it to the storage (inline or on the log thread).
#[derive(Clone, Debug)]
pub(crate) enum LogOp {
    Append(Vec<Entry>),
    Truncate(Zxid),
    Epoch(EpochKind, Epoch),
    Snapshot(Snapshot),
    /// A snapshot written through the storage's stager, to commit.
    CommitSnapshot(Zxid),
    Install(Option<Snapshot>, Vec<Entry>),
}

impl LogOp {
    /// Carries the write out on `storage` (not durably: a `sync` follows).
    pub(crate) fn apply(&self, storage: &mut dyn ZabStorage) -> Result<(), StorageError> {
        let (what, r) = match self {
            LogOp::Append(entries) => ("append", storage.append(entries)),
            LogOp::Truncate(to) => ("truncate", storage.truncate(*to)),
            LogOp::Epoch(kind, epoch) => ("epoch write", storage.write_epoch(*kind, *epoch)),
            LogOp::Snapshot(snapshot) => ("snapshot save", storage.save_snapshot(snapshot)),
            LogOp::CommitSnapshot(zxid) => ("snapshot commit", storage.commit_snapshot(*zxid)),
            LogOp::Install(snapshot, entries) => {
                ("snapshot install", storage.install(snapshot.as_ref(), entries))
            }
        };
        r.map_err(|e| e.during(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: u64, counter: u64) -> Entry {
        Entry::new(Zxid::new(epoch, counter), vec![counter as u8])
    }

    #[test]
    fn synced_writes_survive_a_crash_and_unsynced_ones_may_not() {
        let mut disk = SimDisk::new();
        disk.write_epoch(EpochKind::Accepted, Epoch(1)).unwrap();
        disk.append(&[e(1, 1), e(1, 2)]).unwrap();
        disk.sync().unwrap();
        disk.append(&[e(1, 3)]).unwrap();
        disk.append(&[e(1, 4)]).unwrap();
        assert_eq!(disk.contents().log.len(), 4, "visible before a crash");
        disk.crash(1);
        let r = disk.recover().unwrap();
        assert_eq!(r.accepted_epoch, Epoch(1));
        assert_eq!(r.log, vec![e(1, 1), e(1, 2), e(1, 3)], "a prefix of the unsynced writes");
        disk.append(&[e(1, 4)]).unwrap();
        disk.crash(0);
        assert_eq!(disk.recover().unwrap().log.len(), 3);
    }

    /// A SimDisk whose sync fails (or panics) from the `fail_at`-th sync on.
    struct Failing {
        disk: SimDisk,
        syncs: u64,
        fail_at: u64,
        panic: bool,
    }

    impl ZabStorage for Failing {
        fn recover(&mut self) -> Result<Recovered, StorageError> {
            self.disk.recover()
        }
        fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
            self.disk.append(entries)
        }
        fn truncate(&mut self, to: Zxid) -> Result<(), StorageError> {
            self.disk.truncate(to)
        }
        fn write_epoch(&mut self, kind: EpochKind, epoch: Epoch) -> Result<(), StorageError> {
            self.disk.write_epoch(kind, epoch)
        }
        fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
            self.disk.save_snapshot(snapshot)
        }
        fn install(
            &mut self,
            snapshot: Option<&Snapshot>,
            entries: &[Entry],
        ) -> Result<(), StorageError> {
            self.disk.install(snapshot, entries)
        }
        fn reader(&self) -> Box<dyn LogReader> {
            self.disk.reader()
        }
        fn sync(&mut self) -> Result<(), StorageError> {
            self.syncs += 1;
            if self.syncs >= self.fail_at {
                assert!(!self.panic, "the disk is on fire");
                let eio = io::Error::other("EIO");
                return Err(StorageError::io(Path::new("flaky-disk"), "sync", &eio));
            }
            self.disk.sync()
        }
    }

    #[test]
    fn the_log_thread_applies_in_order_syncs_and_reports_the_last_batch() {
        for (fail_at, panic) in [(u64::MAX, false), (2, false), (2, true)] {
            let disk = SimDisk::new();
            let storage = Failing { disk: disk.clone(), syncs: 0, fail_at, panic };
            let (tx, rx) = crossbeam_channel::unbounded();
            let thread = LogThread::spawn("test-log".into(), Box::new(storage), move |r| {
                let _ = tx.send(r);
            })
            .unwrap();
            thread.submit(1, vec![LogOp::Epoch(EpochKind::Accepted, Epoch(1))]);
            assert_eq!(rx.recv().unwrap(), Ok(1), "the first batch is durable");
            assert_eq!(disk.contents().accepted_epoch, Epoch(1));
            thread.submit(2, vec![LogOp::Append(vec![e(1, 1), e(1, 2)])]);
            thread.submit(3, vec![LogOp::Append(vec![e(1, 3)]), LogOp::Truncate(Zxid::new(1, 2))]);
            let mut last = rx.recv().unwrap();
            if fail_at == u64::MAX {
                while last != Ok(3) {
                    last = rx.recv().unwrap();
                }
                assert_eq!(disk.unsynced_writes(), 0, "synced before the report");
                assert_eq!(disk.contents().log, vec![e(1, 1), e(1, 2)]);
            } else {
                let message = last.expect_err("the failed sync is reported").to_string();
                assert!(message.contains(if panic { "panicked" } else { "EIO" }), "{message}");
                drop(thread);
                assert!(rx.recv().is_err(), "nothing is reported after a failure");
            }
        }
    }

    #[test]
    fn truncate_snapshot_and_install() {
        let mut disk = SimDisk::new();
        disk.append(&[e(1, 1), e(1, 2), e(1, 3)]).unwrap();
        disk.truncate(Zxid::new(1, 2)).unwrap();
        disk.save_snapshot(&Snapshot { zxid: Zxid::new(1, 1), state: vec![9] }).unwrap();
        disk.sync().unwrap();
        let r = disk.recover().unwrap();
        assert_eq!(r.snapshot.unwrap().zxid, Zxid::new(1, 1));
        assert_eq!(r.log, vec![e(1, 2)]);
        let snap = Snapshot { zxid: Zxid::new(2, 5), state: vec![1] };
        disk.install(Some(&snap), &[e(2, 6)]).unwrap();
        disk.sync().unwrap();
        let r = disk.recover().unwrap();
        assert_eq!(r.snapshot, Some(snap));
        assert_eq!(r.log, vec![e(2, 6)]);
    }
}
