//! Where a Zab node keeps what must survive a crash: the log, the two epochs and the snapshot.
//!
//! The Zab component executes the protocol's storage actions through the [`ZabStorage`] trait,
//! in the order the protocol emits them, then calls [`ZabStorage::sync`] once for the whole
//! batch (group commit) and only then reports the completions to the protocol, so that an ACK
//! never leaves before the write it acknowledges is durable.
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
