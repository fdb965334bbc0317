//! [`SimDisk`], the storage of the simulator: an in-memory disk whose unsynced writes are lost
//! when the node crashes, shared by the successive incarnations of one node.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::protocol::{Entry, Epoch, EpochKind, Recovered, Snapshot, Zxid};

use super::{LogOp, LogReader, StorageError, ZabStorage};

#[derive(Clone, Debug, Default)]
struct Image {
    accepted: Epoch,
    current: Epoch,
    snapshot: Option<Snapshot>,
    log: Vec<Entry>,
}

impl Image {
    fn apply(&mut self, write: &LogOp) {
        match write {
            LogOp::Append(entries) => self.log.extend(entries.iter().cloned()),
            LogOp::Truncate(to) => self.log.retain(|e| e.zxid <= *to),
            LogOp::Epoch(EpochKind::Accepted, e) => self.accepted = *e,
            LogOp::Epoch(EpochKind::Current, e) => self.current = *e,
            LogOp::Snapshot(s) => {
                self.log.retain(|e| e.zxid > s.zxid);
                self.snapshot = Some(s.clone());
            }
            // Never written: a simulated disk stages no snapshots (it has no stager).
            LogOp::CommitSnapshot(_) => {}
            LogOp::Install(s, entries) => {
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
    unsynced: Vec<LogOp>,
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
        Ok(snapshot.state_piece(offset, bytes_max).to_vec())
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

    fn write(&self, w: LogOp) -> Result<(), StorageError> {
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
        self.write(LogOp::Append(entries.to_vec()))
    }

    fn truncate(&mut self, to: Zxid) -> Result<(), StorageError> {
        self.write(LogOp::Truncate(to))
    }

    fn write_epoch(&mut self, kind: EpochKind, epoch: Epoch) -> Result<(), StorageError> {
        self.write(LogOp::Epoch(kind, epoch))
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.write(LogOp::Snapshot(snapshot.clone()))
    }

    fn install(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        self.write(LogOp::Install(snapshot.cloned(), entries.to_vec()))
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
