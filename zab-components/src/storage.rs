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

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use crate::protocol::{Entry, Epoch, EpochKind, Recovered, Snapshot, Zxid};

/// A storage failure: the node cannot go on safely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageError {
    /// What failed, for the operator (file names and offsets where they apply).
    pub message: String,
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
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
#[derive(Debug)]
pub(crate) enum LogOp {
    Append(Vec<Entry>),
    Truncate(Zxid),
    Epoch(EpochKind, Epoch),
    Snapshot(Snapshot),
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
            LogOp::Install(snapshot, entries) => {
                ("snapshot install", storage.install(snapshot.as_ref(), entries))
            }
        };
        r.map_err(|e| StorageError { message: format!("{what}: {}", e.message) })
    }
}

/// A storage driven from its own thread: batches of writes go in, in order; after each round
/// (everything that was waiting when the thread looked) it syncs once and reports the last
/// batch it made durable. Dropping it waits for the batches already handed over.
pub(crate) struct LogThread {
    batches: Option<Sender<(u64, Vec<LogOp>)>>,
    thread: Option<JoinHandle<()>>,
}

impl LogThread {
    /// Starts the thread on `storage`. `done` receives, after each sync, the number of the
    /// last batch it covers, or the error that stopped the thread (nothing is written after
    /// an error: the node must stop).
    pub(crate) fn spawn(
        name: String,
        mut storage: Box<dyn ZabStorage>,
        done: impl Fn(Result<u64, StorageError>) + Send + 'static,
    ) -> std::io::Result<LogThread> {
        let (batches, incoming) = crossbeam_channel::unbounded::<(u64, Vec<LogOp>)>();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            while let Ok((first, ops)) = incoming.recv() {
                let round = || {
                    let mut last = first;
                    let mut r = ops.iter().try_for_each(|op| op.apply(&mut *storage));
                    // Group commit: everything that arrived meanwhile rides on the same sync.
                    while r.is_ok() {
                        let Ok((n, ops)) = incoming.try_recv() else { break };
                        last = n;
                        r = ops.iter().try_for_each(|op| op.apply(&mut *storage));
                    }
                    r.and_then(|()| {
                        storage
                            .sync()
                            .map_err(|e| StorageError { message: format!("sync: {}", e.message) })
                    })
                    .map(|()| last)
                };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(round))
                    .unwrap_or_else(|_| {
                        Err(StorageError { message: "the log thread panicked".to_string() })
                    });
                let failed = r.is_err();
                done(r);
                if failed {
                    return;
                }
            }
        })?;
        Ok(LogThread { batches: Some(batches), thread: Some(thread) })
    }

    /// Hands over batch `n` (numbers increase); a sync follows it.
    pub(crate) fn submit(&self, n: u64, ops: Vec<LogOp>) {
        if let Some(batches) = &self.batches {
            // After a storage error the thread is gone; the error report stops the node.
            let _ = batches.send((n, ops));
        }
    }
}

impl Drop for LogThread {
    fn drop(&mut self) {
        self.batches = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for LogThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogThread").finish_non_exhaustive()
    }
}

/// One write not yet made durable.
#[derive(Clone, Debug)]
enum Write {
    Append(Vec<Entry>),
    Truncate(Zxid),
    Epoch(EpochKind, Epoch),
    Snapshot(Snapshot),
    Install(Option<Snapshot>, Vec<Entry>),
}

#[derive(Clone, Debug, Default)]
struct Image {
    accepted: Epoch,
    current: Epoch,
    snapshot: Option<Snapshot>,
    log: Vec<Entry>,
}

impl Image {
    fn apply(&mut self, write: &Write) {
        match write {
            Write::Append(entries) => self.log.extend(entries.iter().cloned()),
            Write::Truncate(to) => self.log.retain(|e| e.zxid <= *to),
            Write::Epoch(EpochKind::Accepted, e) => self.accepted = *e,
            Write::Epoch(EpochKind::Current, e) => self.current = *e,
            Write::Snapshot(s) => {
                self.log.retain(|e| e.zxid > s.zxid);
                self.snapshot = Some(s.clone());
            }
            Write::Install(s, entries) => {
                self.snapshot = s.clone();
                self.log = entries.clone();
            }
        }
    }

    fn recovered(&self) -> Recovered {
        Recovered {
            accepted_epoch: self.accepted,
            current_epoch: self.current,
            snapshot: self.snapshot.clone(),
            log: self.log.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct Disk {
    durable: Image,
    unsynced: Vec<Write>,
    syncs: u64,
}

impl Disk {
    fn current(&self) -> Image {
        let mut image = self.durable.clone();
        for w in &self.unsynced {
            image.apply(w);
        }
        image
    }
}

/// Reads the durable log (what a sync made durable), as a file reader would.
impl LogReader for SimDisk {
    fn read(
        &mut self,
        after: Zxid,
        through: Zxid,
        bytes_max: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let disk = self.disk.lock();
        let mut out = Vec::new();
        let mut bytes = 0;
        for entry in disk.durable.log.iter().filter(|e| e.zxid > after && e.zxid <= through) {
            let size = entry.encoded_len_max();
            if !out.is_empty() && bytes + size > bytes_max {
                break;
            }
            bytes += size;
            out.push(entry.clone());
        }
        Ok(out)
    }

    fn read_snapshot(
        &mut self,
        zxid: Zxid,
        offset: u64,
        bytes_max: usize,
    ) -> Result<Vec<u8>, StorageError> {
        let disk = self.disk.lock();
        let Some(snapshot) = disk.durable.snapshot.as_ref().filter(|s| s.zxid == zxid) else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(snapshot.state.len());
        let end = start.saturating_add(bytes_max).min(snapshot.state.len());
        Ok(snapshot.state[start..end].to_vec())
    }
}

/// A simulated disk: what was synced survives [`crash`](SimDisk::crash), the rest may not.
///
/// Clones share the disk, so a test keeps one handle across the crashes and restarts of the
/// node that uses it.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    disk: Arc<Mutex<Disk>>,
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// The node crashed: of the writes since the last sync, only the first `keep` survive (a
    /// crash can lose any unsynced suffix). `keep` beyond their number keeps them all.
    pub fn crash(&self, keep: usize) {
        let mut d = self.disk.lock();
        let unsynced = std::mem::take(&mut d.unsynced);
        for w in unsynced.iter().take(keep) {
            d.durable.apply(w);
        }
    }

    /// Writes made since the last sync (for a crash to choose how many survive).
    pub fn unsynced_writes(&self) -> usize {
        self.disk.lock().unsynced.len()
    }

    /// Completed syncs so far.
    pub fn syncs(&self) -> u64 {
        self.disk.lock().syncs
    }

    /// What a node restarted now would find (after a crash, only the durable part).
    pub fn contents(&self) -> Recovered {
        self.disk.lock().current().recovered()
    }

    fn write(&self, w: Write) -> Result<(), StorageError> {
        self.disk.lock().unsynced.push(w);
        Ok(())
    }
}

impl ZabStorage for SimDisk {
    fn recover(&mut self) -> Result<Recovered, StorageError> {
        Ok(self.contents())
    }

    fn reader(&self) -> Box<dyn LogReader> {
        Box::new(self.clone())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.write(Write::Append(entries.to_vec()))
    }

    fn truncate(&mut self, to: Zxid) -> Result<(), StorageError> {
        self.write(Write::Truncate(to))
    }

    fn write_epoch(&mut self, kind: EpochKind, epoch: Epoch) -> Result<(), StorageError> {
        self.write(Write::Epoch(kind, epoch))
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.write(Write::Snapshot(snapshot.clone()))
    }

    fn install(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        self.write(Write::Install(snapshot.cloned(), entries.to_vec()))
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        let mut d = self.disk.lock();
        let unsynced = std::mem::take(&mut d.unsynced);
        for w in &unsynced {
            d.durable.apply(w);
        }
        d.syncs += 1;
        Ok(())
    }
}

/// A conformance suite that every [`ZabStorage`] passes: [`SimDisk`] and
/// [`FileStorage`](crate::wal::FileStorage) run it from `tests/storage_conformance.rs`.
///
/// Compiled always (it is small and uses nothing but the trait) so that any crate can run it
/// against its own implementation. Each check takes `fresh`, which returns a new, empty
/// storage, and `crash`, which crashes a storage and returns what a restarted node opens on
/// the same disk: writes since the last `sync` may be lost, in part (a prefix survives) or
/// wholly. A check panics, with what went wrong, when the storage breaks the contract of the
/// [module docs](super). [`run_all`](conformance::run_all) runs every check.
///
/// The checks write only what the protocol can: zxids that form a history (the next counter of
/// an epoch, or counter 1 of a later epoch), acceptedEpoch written before entries of its epoch.
pub mod conformance {
    use super::ZabStorage;
    use crate::protocol::{Entry, Epoch, EpochKind, Recovered, Snapshot, Zxid};

    /// Runs every check of the suite.
    pub fn run_all<S: ZabStorage>(mut fresh: impl FnMut() -> S, mut crash: impl FnMut(S) -> S) {
        empty_storage_recovers_nothing(&mut fresh, &mut crash);
        appends_recover_in_order(&mut fresh, &mut crash);
        synced_writes_survive_a_crash_and_unsynced_ones_leave_a_prefix(&mut fresh, &mut crash);
        truncate_removes_every_later_entry(&mut fresh, &mut crash);
        epochs_round_trip(&mut fresh, &mut crash);
        snapshot_then_recover(&mut fresh, &mut crash);
        install_replaces_snapshot_and_log(&mut fresh, &mut crash);
        install_is_all_or_nothing_across_a_crash(&mut fresh, &mut crash);
        the_reader_streams_the_durable_snapshot(&mut fresh, &mut crash);
    }

    /// Entries `(epoch, from..=to)` with payloads of varied lengths (0 to 150 bytes), so that
    /// framing errors show.
    pub fn history(epoch: u64, from: u64, to: u64) -> Vec<Entry> {
        (from..=to)
            .map(|counter| {
                let len = ((epoch * 31 + counter * 7) % 151) as usize;
                let payload =
                    (0..len).map(|i| (i as u64 ^ counter ^ epoch) as u8).collect::<Vec<_>>();
                Entry::new(Zxid::new(epoch, counter), payload)
            })
            .collect()
    }

    fn ok<T>(what: &str, r: Result<T, super::StorageError>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("conformance: {what} failed: {e}"),
        }
    }

    fn recover<S: ZabStorage>(storage: &mut S, when: &str) -> Recovered {
        ok(&format!("recover ({when})"), storage.recover())
    }

    fn zxids(log: &[Entry]) -> Vec<Zxid> {
        log.iter().map(|e| e.zxid).collect()
    }

    /// A new storage holds nothing: epochs 0, no snapshot, an empty log.
    pub fn empty_storage_recovers_nothing<S: ZabStorage>(
        mut fresh: impl FnMut() -> S,
        mut crash: impl FnMut(S) -> S,
    ) {
        let mut s = fresh();
        assert_eq!(recover(&mut s, "fresh"), Recovered::default(), "a fresh storage");
        let mut s = crash(s);
        assert_eq!(recover(&mut s, "fresh, reopened"), Recovered::default());
    }

    /// Appended entries come back exactly, in order, across batches, epochs and a restart.
    pub fn appends_recover_in_order<S: ZabStorage>(
        mut fresh: impl FnMut() -> S,
        mut crash: impl FnMut(S) -> S,
    ) {
        let mut s = fresh();
        ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(2)));
        let mut all = history(1, 1, 120);
        all.extend(history(2, 1, 80));
        let mut at = 0;
        for (i, size) in [1usize, 7, 64, 0, 3, 125].iter().cycle().enumerate() {
            if at >= all.len() {
                break;
            }
            let end = (at + size).min(all.len());
            ok("append", s.append(&all[at..end]));
            at = end;
            if i % 3 == 2 {
                ok("sync", s.sync());
            }
        }
        ok("sync", s.sync());
        let r = recover(&mut s, "after appends");
        assert_eq!(r.log, all, "the log, read back without a restart");
        let mut s = crash(s);
        let r = recover(&mut s, "after a restart");
        assert_eq!(r.log, all, "the log, read back after a restart");
        assert_eq!((r.accepted_epoch, r.current_epoch, r.snapshot), (Epoch(2), Epoch(0), None));
    }

    /// What was synced survives a crash; of what was written after, at most a prefix does.
    pub fn synced_writes_survive_a_crash_and_unsynced_ones_leave_a_prefix<S: ZabStorage>(
        mut fresh: impl FnMut() -> S,
        mut crash: impl FnMut(S) -> S,
    ) {
        let mut s = fresh();
        ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(1)));
        let synced = history(1, 1, 50);
        ok("append", s.append(&synced));
        ok("sync", s.sync());
        let unsynced = history(1, 51, 90);
        for chunk in unsynced.chunks(8) {
            ok("append", s.append(chunk));
        }
        let mut s = crash(s);
        let r = recover(&mut s, "after a crash");
        assert!(r.log.len() >= synced.len(), "synced entries lost: {:?}", zxids(&r.log));
        let written: Vec<Entry> = synced.iter().chain(&unsynced).cloned().collect();
        assert_eq!(r.log, written[..r.log.len()], "not a prefix of what was written");
        // The node goes on from what it found.
        let next = r.log.last().map_or(1, |e| e.zxid.counter + 1);
        let more = history(1, next, next + 4);
        ok("append after recovery", s.append(&more));
        ok("sync", s.sync());
        let mut s = crash(s);
        let r2 = recover(&mut s, "after a second crash");
        let expected: Vec<Entry> = r.log.iter().chain(&more).cloned().collect();
        assert_eq!(r2.log, expected, "appends after a recovery");
    }

    /// `truncate(to)` removes every entry above `to` (many segments' worth for a file log),
    /// durably after a sync, and later appends never bring a removed entry back.
    pub fn truncate_removes_every_later_entry<S: ZabStorage>(
        mut fresh: impl FnMut() -> S,
        mut crash: impl FnMut(S) -> S,
    ) {
        let mut s = fresh();
        ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(1)));
        let all = history(1, 1, 300);
        ok("append", s.append(&all));
        ok("sync", s.sync());
        ok("truncate above the end", s.truncate(Zxid::new(1, 400)));
        // Two cuts, so that one falls inside a segment whatever the segment size.
        ok("truncate", s.truncate(Zxid::new(1, 100)));
        assert_eq!(recover(&mut s, "after truncate").log, all[..100], "before a sync");
        ok("truncate", s.truncate(Zxid::new(1, 37)));
        assert_eq!(recover(&mut s, "after truncate").log, all[..37], "before a sync");
        ok("sync", s.sync());
        let mut s = crash(s);
        assert_eq!(recover(&mut s, "after truncate and crash").log, all[..37]);
        ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(2)));
        let new = history(2, 1, 30);
        ok("append after truncate", s.append(&new));
        ok("sync", s.sync());
        let mut s = crash(s);
        let expected: Vec<Entry> = all[..37].iter().chain(&new).cloned().collect();
        assert_eq!(recover(&mut s, "append after truncate, crash").log, expected);
        ok("truncate to zero", s.truncate(Zxid::ZERO));
        ok("sync", s.sync());
        let mut s = crash(s);
        assert_eq!(recover(&mut s, "truncated to zero").log, Vec::<Entry>::new());
        ok("append to an emptied log", s.append(&history(2, 1, 3)));
        ok("sync", s.sync());
        let mut s = crash(s);
        assert_eq!(recover(&mut s, "refilled").log, history(2, 1, 3));
    }

    /// Both epochs are stored independently and survive a crash once synced.
    pub fn epochs_round_trip<S: ZabStorage>(
        mut fresh: impl FnMut() -> S,
        mut crash: impl FnMut(S) -> S,
    ) {
        let mut s = fresh();
        ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(3)));
        ok("write_epoch", s.write_epoch(EpochKind::Current, Epoch(2)));
        ok("sync", s.sync());
        let mut s = crash(s);
        let r = recover(&mut s, "epochs");
        assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(3), Epoch(2)));
        ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(7)));
        ok("sync", s.sync());
        let mut s = crash(s);
        let r = recover(&mut s, "accepted raised");
        assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(7), Epoch(2)));
        ok("write_epoch", s.write_epoch(EpochKind::Current, Epoch(7)));
        ok("sync", s.sync());
        let mut s = crash(s);
        let r = recover(&mut s, "current raised");
        assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(7), Epoch(7)));
    }

    /// After a snapshot, recovery returns it and exactly the entries after it.
    pub fn snapshot_then_recover<S: ZabStorage>(
        mut fresh: impl FnMut() -> S,
        mut crash: impl FnMut(S) -> S,
    ) {
        let mut s = fresh();
        ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(1)));
        let all = history(1, 1, 200);
        ok("append", s.append(&all[..150]));
        let first = Snapshot { zxid: Zxid::new(1, 120), state: b"state at 120".to_vec() };
        ok("save_snapshot", s.save_snapshot(&first));
        ok("append", s.append(&all[150..]));
        ok("sync", s.sync());
        let r = recover(&mut s, "after a snapshot");
        assert_eq!(r.snapshot.as_ref(), Some(&first));
        assert_eq!(r.log, all[120..], "the entries after the snapshot");
        let mut s = crash(s);
        let r = recover(&mut s, "after a snapshot and a crash");
        assert_eq!(r.snapshot.as_ref(), Some(&first));
        assert_eq!(r.log, all[120..]);
        let second = Snapshot { zxid: Zxid::new(1, 190), state: vec![0xAB; 5000] };
        ok("save_snapshot", s.save_snapshot(&second));
        ok("sync", s.sync());
        let mut s = crash(s);
        let r = recover(&mut s, "after a second snapshot");
        assert_eq!(r.snapshot.as_ref(), Some(&second), "the newest snapshot");
        assert_eq!(r.log, all[190..]);
        ok("append after the snapshot", s.append(&history(1, 201, 205)));
        ok("sync", s.sync());
        let mut s = crash(s);
        let r = recover(&mut s, "appends after the second snapshot");
        let expected: Vec<Entry> = all[190..].iter().cloned().chain(history(1, 201, 205)).collect();
        assert_eq!(r.log, expected);
    }

    /// The reader returns a durable snapshot's state in pieces of at most the size asked for,
    /// front to back, and nothing for a snapshot that is not stored.
    pub fn the_reader_streams_the_durable_snapshot<S: ZabStorage>(
        mut fresh: impl FnMut() -> S,
        _crash: impl FnMut(S) -> S,
    ) {
        let mut s = fresh();
        ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(1)));
        ok("append", s.append(&history(1, 1, 30)));
        let state: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
        let snapshot = Snapshot { zxid: Zxid::new(1, 30), state: state.clone() };
        ok("save_snapshot", s.save_snapshot(&snapshot));
        ok("sync", s.sync());
        let mut reader = s.reader();
        let mut read = Vec::new();
        loop {
            let piece =
                ok("read_snapshot", reader.read_snapshot(snapshot.zxid, read.len() as u64, 700));
            if piece.is_empty() {
                break;
            }
            assert!(piece.len() <= 700, "a piece of {} bytes, asked for 700", piece.len());
            read.extend(piece);
        }
        assert!(read == state, "the snapshot read back is not the one saved");
        let other = ok("read_snapshot", reader.read_snapshot(Zxid::new(1, 29), 0, 700));
        assert!(other.is_empty(), "a snapshot that is not stored reads as nothing");
    }

    /// `install` replaces the snapshot and the whole log (with or without a snapshot).
    pub fn install_replaces_snapshot_and_log<S: ZabStorage>(
        mut fresh: impl FnMut() -> S,
        mut crash: impl FnMut(S) -> S,
    ) {
        let mut s = fresh();
        ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(3)));
        ok("append", s.append(&history(1, 1, 100)));
        ok("save_snapshot", s.save_snapshot(&Snapshot { zxid: Zxid::new(1, 50), state: vec![1] }));
        ok("sync", s.sync());
        let snap = Snapshot { zxid: Zxid::new(3, 10), state: b"transferred".to_vec() };
        let entries = history(3, 11, 60);
        ok("install", s.install(Some(&snap), &entries));
        ok("sync", s.sync());
        let r = recover(&mut s, "after install");
        assert_eq!((r.snapshot.as_ref(), &r.log), (Some(&snap), &entries));
        let mut s = crash(s);
        let r = recover(&mut s, "after install and crash");
        assert_eq!((r.snapshot.as_ref(), &r.log), (Some(&snap), &entries));
        ok("append after install", s.append(&history(3, 61, 62)));
        ok("sync", s.sync());
        let mut s = crash(s);
        assert_eq!(recover(&mut s, "append after install").log, history(3, 11, 62));
        ok("install without snapshot", s.install(None, &history(2, 1, 5)));
        ok("sync", s.sync());
        let mut s = crash(s);
        let r = recover(&mut s, "install without snapshot");
        assert_eq!((r.snapshot, r.log), (None, history(2, 1, 5)));
        assert_eq!(r.accepted_epoch, Epoch(3), "install leaves the epochs alone");
    }

    /// A crash after an unsynced install leaves the old snapshot and log or the new ones, never
    /// a mix (ZOOKEEPER-3642).
    pub fn install_is_all_or_nothing_across_a_crash<S: ZabStorage>(
        mut fresh: impl FnMut() -> S,
        mut crash: impl FnMut(S) -> S,
    ) {
        let mut s = fresh();
        ok("write_epoch", s.write_epoch(EpochKind::Accepted, Epoch(4)));
        ok("append", s.append(&history(1, 1, 80)));
        let old_snap = Snapshot { zxid: Zxid::new(1, 40), state: b"old".to_vec() };
        ok("save_snapshot", s.save_snapshot(&old_snap));
        ok("sync", s.sync());
        let old = recover(&mut s, "before install");
        let snap = Snapshot { zxid: Zxid::new(4, 3), state: b"new".to_vec() };
        ok("install", s.install(Some(&snap), &history(4, 4, 30)));
        let mut s = crash(s);
        let r = recover(&mut s, "install, crash before sync");
        let new = Recovered { snapshot: Some(snap), log: history(4, 4, 30), ..old.clone() };
        assert!(r == old || r == new, "a mix of old and new: {r:?}");
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
                return Err(StorageError { message: "EIO".to_string() });
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
                let message = last.expect_err("the failed sync is reported").message;
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
