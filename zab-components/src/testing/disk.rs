//! The simulated disk of a [`Sim`] node: storage actions become writes that are durable one by
//! one, in order, when the scheduler completes them; a crash keeps a prefix of those not yet
//! completed.

use std::collections::VecDeque;

use super::Sim;
use crate::protocol::{Entry, Epoch, EpochKind, Snapshot, ZabNode, Zxid};

/// The completion call a durable write makes on its node.
pub(super) type Completion = Box<dyn FnOnce(&mut ZabNode)>;

/// A storage write waiting to become durable (the node's storage actions, as the disk sees them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageOp {
    /// Append entries to the log.
    Append(Vec<Entry>),
    /// Write the accepted or the current epoch.
    Epoch(EpochKind, Epoch),
    /// Drop the log entries after this zxid.
    Truncate(Zxid),
    /// Replace snapshot and log with a transferred state (a SNAP or a TRUNC+DIFF).
    Install {
        /// The zxid the state ends at.
        zxid: Zxid,
        /// The snapshot, if the transfer carried one.
        state: Option<Vec<u8>>,
        /// The log after it.
        entries: Vec<Entry>,
    },
    /// Store a snapshot taken at `zxid` and drop the log it covers.
    Snapshot {
        /// The last transaction the snapshot holds.
        zxid: Zxid,
        /// The encoded application state ([`encode_state`](super::encode_state)).
        state: Vec<u8>,
    },
}

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    /// The durable accepted epoch.
    pub accepted_epoch: Epoch,
    /// The durable current epoch.
    pub current_epoch: Epoch,
    /// The durable snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// The durable log after the snapshot.
    pub log: Vec<Entry>,
    pub(super) pending: VecDeque<StorageOp>,
}

impl Disk {
    /// A prepared disk: what a node finds when it (re)starts, nothing pending.
    pub fn new(accepted: u64, current: u64, snapshot: Option<Snapshot>, log: Vec<Entry>) -> Disk {
        Disk {
            accepted_epoch: Epoch(accepted),
            current_epoch: Epoch(current),
            snapshot,
            log,
            pending: VecDeque::new(),
        }
    }

    /// The writes issued but not yet durable, oldest first.
    pub fn pending(&self) -> &VecDeque<StorageOp> {
        &self.pending
    }

    /// The zxids of the durable log (after the snapshot).
    pub fn log_zxids(&self) -> Vec<Zxid> {
        self.log.iter().map(|entry| entry.zxid).collect()
    }
}

impl Sim {
    /// Queues a storage write on node `i`'s disk.
    pub(super) fn issue(&mut self, i: usize, op: StorageOp) {
        if self.record_sent {
            self.writes.push((i, op.clone()));
        }
        self.nodes[i].disk.pending.push_back(op);
    }

    pub(super) fn storage_pending(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| {
                self.is_up(*i)
                    && !self.nodes[*i].disk_stalled
                    && !self.nodes[*i].disk.pending.is_empty()
            })
            .collect()
    }

    /// Makes node `i`'s oldest pending write durable and reports it.
    pub fn complete_storage(&mut self, i: usize) -> bool {
        let Some(op) = self.nodes[i].disk.pending.pop_front() else { return false };
        self.events += 1;
        let report = self.apply_storage(i, op);
        if let Some(report) = report {
            self.with_node(i, report);
        }
        true
    }

    /// Applies a write to the disk; returns the completion call for the node.
    pub(super) fn apply_storage(&mut self, i: usize, op: StorageOp) -> Option<Completion> {
        let disk = &mut self.nodes[i].disk;
        match op {
            StorageOp::Append(entries) => {
                let last =
                    disk.log.last().map(|e| e.zxid).or(disk.snapshot.as_ref().map(|s| s.zxid));
                if let (Some(last), Some(first)) = (last, entries.first()) {
                    if first.zxid <= last {
                        let why = format!("n{}: append {} after {last} on disk", i + 1, first.zxid);
                        self.fail(why);
                    }
                }
                let up_to = entries.last().expect("non-empty persist").zxid;
                self.nodes[i].disk.log.extend(entries);
                Some(Box::new(move |node: &mut ZabNode| node.persisted(up_to)))
            }
            StorageOp::Epoch(kind, epoch) => {
                let (old, other_ok) = match kind {
                    EpochKind::Accepted => (disk.accepted_epoch, true),
                    EpochKind::Current => (disk.current_epoch, epoch <= disk.accepted_epoch),
                };
                if epoch < old || !other_ok {
                    self.fail(format!("P11: n{} epoch {kind:?} {old} -> {epoch}", i + 1));
                }
                let disk = &mut self.nodes[i].disk;
                match kind {
                    EpochKind::Accepted => disk.accepted_epoch = epoch,
                    EpochKind::Current => disk.current_epoch = epoch,
                }
                Some(Box::new(move |node: &mut ZabNode| node.epoch_persisted(kind, epoch)))
            }
            StorageOp::Truncate(to) => {
                disk.log.retain(|entry| entry.zxid <= to);
                None
            }
            StorageOp::Install { zxid, state, entries } => {
                let up_to = entries.last().map_or(zxid, |entry| entry.zxid);
                disk.snapshot = state.map(|state| Snapshot { zxid, state });
                disk.log = entries;
                Some(Box::new(move |node: &mut ZabNode| node.persisted(up_to)))
            }
            StorageOp::Snapshot { zxid, state } => {
                disk.snapshot = Some(Snapshot { zxid, state: state.clone() });
                disk.log.retain(|entry| entry.zxid > zxid);
                let len = state.len() as u64;
                Some(Box::new(move |node: &mut ZabNode| node.snapshot_taken(zxid, len)))
            }
        }
    }

    /// Completes every pending write everywhere (a quiet disk).
    pub fn flush_storage(&mut self) {
        while let Some(&i) = self.storage_pending().first() {
            self.complete_storage(i);
        }
    }

    /// The writes node `i` issued that are not durable yet, oldest first.
    pub fn pending_writes(&self, i: usize) -> &VecDeque<StorageOp> {
        self.nodes[i].disk.pending()
    }
}
