//! How the component carries out its node's actions: messages out, writes to the storage
//! (inline or on the log thread) with their completions reported once durable, read-backs for
//! synchronizations, and the application's events; and how it stops when the storage fails.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use kompics_core::rand::Rng;
use kompics_core::{Context, Mailbox};
use kompics_net::NetMessage;
use parking_lot::Mutex;

use crate::protocol::{
    Action, Entry, Epoch, EpochKind, Message, PeerId, ProposalFailure, ProposeError, Snapshot,
    Status, Zxid,
};
use crate::storage::{LogOp, LogThread, SnapshotStager, StorageError};

use super::{AbEvent, ProposeFailure, ZabComponent, ZabFault, ZabStatus};

/// A storage write whose completion waits for the next sync.
pub(super) enum Completion {
    Persisted(Zxid),
    Epoch(EpochKind, Epoch),
    /// A snapshot saved through the log thread (inline, it completes at once), with its
    /// state's length.
    Snapshot(Zxid, u64),
}

/// What the storage's reader read back for a synchronization, for the node.
pub(super) enum ReadBack {
    Log { peer: PeerId, after: Zxid, entries: Vec<Entry> },
    Snapshot { peer: PeerId, zxid: Zxid, offset: u64, bytes: Vec<u8> },
}

/// Sent by the component to itself: execute the node's actions now that the events waiting
/// before it have been handled.
#[derive(Clone, Debug)]
pub(super) struct Flush;

/// From the log thread: the batches up to `through` are durable (or the storage failed).
#[derive(Clone, Debug)]
pub(super) struct LogDone {
    /// Which log thread (a restarted instance ignores its predecessor's reports).
    pub(super) log: u64,
    pub(super) through: Result<u64, StorageError>,
}

/// Numbers log threads, process-wide.
pub(super) static LOG_THREADS: AtomicU64 = AtomicU64::new(1);

/// The log thread of an instance, its number, and the batches handed to it not yet durable.
pub(super) struct LogDriver {
    pub(super) id: u64,
    /// Shared with [`PanicGuard`]s, so that a panicking handler can stop the thread before a
    /// restarted instance reopens the storage.
    pub(super) thread: Arc<Mutex<Option<LogThread>>>,
    pub(super) next_batch: u64,
    pub(super) ops: Vec<LogOp>,
    pub(super) in_flight: VecDeque<(u64, Vec<Completion>)>,
    /// Writes snapshots beside the log thread, if the storage can (`snapshot_stager`).
    pub(super) stager: Option<StagingThread>,
    /// `InstallSnapshot`s executed so far: a snapshot staged before the latest one is void.
    pub(super) installs: u64,
}

/// From the staging thread: the snapshot at `zxid` (`bytes` of state) was written through the
/// storage's stager (or failed), as asked when `installs` installs had been executed.
#[derive(Clone, Debug)]
pub(super) struct SnapshotStaged {
    /// Which log thread's instance asked (a restarted instance ignores its predecessor's).
    pub(super) log: u64,
    pub(super) installs: u64,
    pub(super) zxid: Zxid,
    pub(super) bytes: u64,
    pub(super) result: Result<(), StorageError>,
}

/// A thread that writes snapshots through the storage's [`SnapshotStager`], one at a time, so
/// that writing a large state never holds up the log thread (and the appends behind it).
/// Dropping it lets the thread finish the snapshot at hand and end.
pub(super) struct StagingThread {
    jobs: crossbeam_channel::Sender<(u64, Snapshot)>,
}

impl StagingThread {
    /// Starts the thread; `done` gets each snapshot's outcome as a [`SnapshotStaged`].
    pub(super) fn spawn(
        name: String,
        log: u64,
        mut stager: Box<dyn SnapshotStager>,
        done: Mailbox<SnapshotStaged>,
    ) -> std::io::Result<StagingThread> {
        let (jobs, incoming) = crossbeam_channel::unbounded::<(u64, Snapshot)>();
        std::thread::Builder::new().name(name).spawn(move || {
            while let Ok((installs, snapshot)) = incoming.recv() {
                let result = stager.stage(&snapshot);
                let (zxid, bytes) = (snapshot.zxid, snapshot.state.len() as u64);
                drop(snapshot);
                done.tell(SnapshotStaged { log, installs, zxid, bytes, result });
            }
        })?;
        Ok(StagingThread { jobs })
    }

    /// Hands `snapshot` over, or gives it back if the thread is gone (it panicked).
    pub(super) fn stage(&self, installs: u64, snapshot: Snapshot) -> Result<(), Snapshot> {
        self.jobs.send((installs, snapshot)).map_err(|e| e.into_inner().1)
    }
}

/// Stops the log thread (waiting for what it was given) if a handler panics, before a
/// supervisor's restart can open the same storage again.
pub(super) struct PanicGuard(pub(super) Option<Arc<Mutex<Option<LogThread>>>>);

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if let Some(slot) = &self.0 {
            if std::thread::panicking() {
                let thread = slot.lock().take();
                drop(thread);
            }
        }
    }
}

impl ZabComponent {
    /// Asks for a flush after the events already waiting (once per burst).
    pub(super) fn kick(&mut self) {
        if !self.flush_pending {
            self.flush_pending = true;
            self.flush.tell(Flush);
        }
    }

    /// A guard for a handler: if it panics, the log thread stops first.
    pub(super) fn panic_guard(&self) -> PanicGuard {
        PanicGuard(self.log.as_ref().map(|log| log.thread.clone()))
    }

    /// Stops the instance with `fault`: the log thread first (waiting for what it was given),
    /// so that a supervisor's restart never opens the storage while it still writes, then the
    /// component, whose supervisor gets the fault. The caller returns right after.
    pub(super) fn fail(&mut self, ctx: &mut Context<Self>, fault: ZabFault) {
        log::error!("{fault}");
        if let Some(log) = &self.log {
            let thread = log.thread.lock().take();
            drop(thread);
        }
        ctx.fail(fault);
    }

    /// Takes the node's new actions and executes them all, in order; fails the instance if
    /// the storage does.
    pub(super) fn drive(&mut self, ctx: &mut Context<Self>) {
        if let Err(fault) = self.try_drive(ctx) {
            self.fail(ctx, fault);
        }
    }

    /// [`drive`](Self::drive), stopping at the first storage error: the actions after a failed
    /// write (an ACK, say) must not be carried out.
    pub(super) fn try_drive(&mut self, ctx: &mut Context<Self>) -> Result<(), ZabFault> {
        loop {
            for action in self.node_mut().drain_actions() {
                self.execute(action)?;
            }
            if !self.reads.is_empty() {
                // Entries read back for synchronizations: the node sends them and may ask
                // for more.
                for read in std::mem::take(&mut self.reads) {
                    match read {
                        ReadBack::Log { peer, after, entries } => {
                            self.node_mut().log_read(peer, after, entries)
                        }
                        ReadBack::Snapshot { peer, zxid, offset, bytes } => {
                            self.node_mut().snapshot_read(peer, zxid, offset, bytes)
                        }
                    }
                }
                continue;
            }
            if let Some(log) = &mut self.log {
                // The log thread syncs; its report comes back as a `LogDone`.
                if !log.ops.is_empty() {
                    log.next_batch += 1;
                    let n = log.next_batch;
                    let ops = std::mem::take(&mut log.ops);
                    log.in_flight.push_back((n, std::mem::take(&mut self.unsynced)));
                    if let Some(thread) = log.thread.lock().as_ref() {
                        thread.submit(n, ops);
                    }
                }
                return Ok(());
            }
            if self.unsynced.is_empty() || self.sync_scheduled {
                return Ok(());
            }
            let (lo, hi) = self.config.sync_delay;
            if hi.is_zero() {
                self.sync_now()?;
                // The completions produced new actions: go round again.
                continue;
            }
            let delay = if hi > lo {
                lo + Duration::from_nanos(ctx.rng().random_range(0..=(hi - lo).as_nanos() as u64))
            } else {
                lo
            };
            self.sync_scheduled = true;
            ctx.schedule_once(delay, |z: &mut ZabComponent, ctx| {
                let _guard = z.panic_guard();
                z.sync_scheduled = false;
                match z.sync_now() {
                    Ok(()) => z.drive(ctx),
                    Err(fault) => z.fail(ctx, fault),
                }
            });
            return Ok(());
        }
    }

    /// The fault of a storage error.
    pub(super) fn storage_fault(&self, error: StorageError) -> ZabFault {
        ZabFault::Storage { group: self.config.group, error }
    }

    /// Makes every write so far durable (inline), then reports their completions, in order.
    /// On an error nothing is reported: those writes may be lost.
    pub(super) fn sync_now(&mut self) -> Result<(), ZabFault> {
        let r = match &mut self.storage {
            Some(storage) => storage.sync(),
            None => Ok(()),
        };
        r.map_err(|e| self.storage_fault(e))?;
        let done = std::mem::take(&mut self.unsynced);
        self.complete(done);
        Ok(())
    }

    /// Reports durable writes to the node, in order.
    pub(super) fn complete(&mut self, done: Vec<Completion>) {
        let group = self.config.group;
        let node = self.node_mut();
        for c in done {
            match c {
                Completion::Persisted(zxid) => node.persisted(zxid),
                Completion::Epoch(kind, epoch) => node.epoch_persisted(kind, epoch),
                Completion::Snapshot(zxid, bytes) => {
                    log::info!("zab group {group}: snapshot at {zxid} durable ({bytes} bytes)");
                    node.snapshot_taken(zxid, bytes)
                }
            }
        }
    }

    /// Carries out a storage write: inline now, or queued for the log thread's next batch.
    pub(super) fn write(&mut self, op: LogOp) -> Result<(), ZabFault> {
        if let Some(log) = &mut self.log {
            log.ops.push(op);
            return Ok(());
        }
        let Some(storage) = self.storage.as_deref_mut() else {
            return Err(ZabFault::NoStorage { group: self.config.group });
        };
        op.apply(storage).map_err(|e| self.storage_fault(e))
    }

    /// Carries out one action; an error is the storage's, and the remaining actions must not
    /// be carried out.
    pub(super) fn execute(&mut self, action: Action) -> Result<(), ZabFault> {
        match action {
            Action::Send { to, msg } => self.send(to, &msg),
            Action::Persist { entries } => {
                if let Some(last) = entries.last() {
                    let last = last.zxid;
                    self.write(LogOp::Append(entries))?;
                    self.unsynced.push(Completion::Persisted(last));
                }
            }
            Action::PersistEpoch { kind, epoch } => {
                self.write(LogOp::Epoch(kind, epoch))?;
                self.unsynced.push(Completion::Epoch(kind, epoch));
            }
            Action::Truncate { to } => self.write(LogOp::Truncate(to))?,
            Action::InstallSnapshot { zxid, state, entries } => {
                let snapshot = state.as_ref().map(|s| Snapshot { zxid, state: s.clone() });
                let last = entries.last().map_or(zxid, |e| e.zxid);
                self.write(LogOp::Install(snapshot, entries))?;
                // An outstanding snapshot request is void: its state is older than this one,
                // and so is a snapshot being staged.
                self.awaiting_snapshot = None;
                if let Some(log) = &mut self.log {
                    log.installs += 1;
                }
                self.ab.trigger(AbEvent::InstallState { zxid, state });
                self.unsynced.push(Completion::Persisted(last));
            }
            Action::TakeSnapshot { zxid } => {
                // Ask, and go on: the answer comes whenever the application has it.
                self.awaiting_snapshot = Some(zxid);
                self.ab.trigger(AbEvent::TakeSnapshot { zxid });
            }
            Action::ReadLog { peer, after, through, bytes_max } => {
                // Inline: at most `bytes_max` (one message) of durable entries, usually from
                // the page cache. A failed read drops that learner (it registers again).
                let entries = match self.reader.as_mut() {
                    Some(reader) => reader.read(after, through, bytes_max).unwrap_or_else(|e| {
                        log::error!("zab group {}: reading the log back: {e}", self.config.group);
                        Vec::new()
                    }),
                    None => Vec::new(),
                };
                self.reads.push(ReadBack::Log { peer, after, entries });
            }
            Action::ReadSnapshot { peer, zxid, offset, bytes_max } => {
                // Inline, like `ReadLog`: one chunk (`snapshot_chunk_bytes_max`). A failed
                // read drops that learner (it registers again).
                let bytes = match self.reader.as_mut() {
                    Some(reader) => {
                        reader.read_snapshot(zxid, offset, bytes_max).unwrap_or_else(|e| {
                            log::error!(
                                "zab group {}: reading the snapshot back: {e}",
                                self.config.group
                            );
                            Vec::new()
                        })
                    }
                    None => Vec::new(),
                };
                self.reads.push(ReadBack::Snapshot { peer, zxid, offset, bytes });
            }
            Action::Deliver { zxid, payload } => {
                self.ab.trigger(AbEvent::Deliver { zxid, payload })
            }
            Action::StatusChanged(status) => {
                let status = match status {
                    Status::Looking => ZabStatus::Looking,
                    Status::Following { leader, epoch } => match self.addr_of(leader) {
                        Some(leader) => ZabStatus::Following { leader, epoch },
                        None => ZabStatus::Looking,
                    },
                    Status::Leading { epoch } => ZabStatus::Leading { epoch },
                };
                self.ab.trigger(AbEvent::Status(status));
            }
            Action::ProposalAssigned { id, zxid } => {
                if let Some(&tag) = self.tags.get(&id) {
                    self.ab.trigger(AbEvent::Assigned { tag, zxid });
                }
            }
            Action::ProposalCommitted { id, zxid } => {
                if let Some(tag) = self.tags.remove(&id) {
                    self.ab.trigger(AbEvent::Committed { tag, zxid });
                }
            }
            Action::ProposalFailed { id, reason } => {
                if let Some(tag) = self.tags.remove(&id) {
                    let reason = self.failure(reason);
                    self.ab.trigger(AbEvent::Failed { tag, reason });
                }
            }
            Action::ReadReady { id } => {
                if let Some(tag) = self.read_tags.remove(&id) {
                    self.ab.trigger(AbEvent::ReadReady { tag });
                }
            }
            Action::ReadFailed { id, reason } => {
                if let Some(tag) = self.read_tags.remove(&id) {
                    let reason = self.failure(reason);
                    self.ab.trigger(AbEvent::Failed { tag, reason });
                }
            }
        }
        Ok(())
    }

    /// Answers a proposal or read the node refused at once.
    pub(super) fn refuse(&mut self, tag: u64, error: ProposeError) {
        let reason = match error {
            ProposeError::TooManyOutstanding { .. } => ProposeFailure::TooManyOutstanding,
            ProposeError::TooLarge { max, .. } => ProposeFailure::TooLarge { max },
            _ => {
                let leader = self.node_mut().leader();
                ProposeFailure::NotLeader { leader: leader.and_then(|l| self.addr_of(l)) }
            }
        };
        self.ab.trigger(AbEvent::Failed { tag, reason });
    }

    /// The application's view of a failure the node reported.
    pub(super) fn failure(&self, reason: ProposalFailure) -> ProposeFailure {
        match reason {
            ProposalFailure::NotLeader { leader } => {
                ProposeFailure::NotLeader { leader: leader.and_then(|l| self.addr_of(l)) }
            }
            ProposalFailure::TooManyOutstanding => ProposeFailure::TooManyOutstanding,
            ProposalFailure::TooLarge => {
                ProposeFailure::TooLarge { max: self.config.protocol.payload_bytes_max }
            }
            ProposalFailure::OutcomeUnknown => ProposeFailure::OutcomeUnknown,
        }
    }

    pub(super) fn send(&mut self, to: PeerId, msg: &Message) {
        let Some(dst) = self.addr_of(to) else {
            log::error!("zab group {}: no address for {to:?}", self.config.group);
            return;
        };
        match NetMessage::encode(self.config.me, dst, self.config.route(), msg) {
            Ok(m) => self.net.trigger(m),
            Err(e) => log::error!("zab group {}: cannot encode a message: {e}", self.config.group),
        }
    }
}
