//! The Zab component: one replication group's Zab instance on one node.
//!
//! It translates between ports and the [`ZabNode`] state machine and holds no protocol logic
//! of its own:
//!
//! - ticks from a periodic timer, peer messages and session ends from the [`Network`] port,
//!   and suspicions from the [`FailureDetectorPort`] go into the node;
//! - the node's actions come out, **in order**: messages to peers, writes to [`ZabStorage`],
//!   and, on the [`AtomicBroadcast`] port, deliveries, status changes, proposal and read
//!   barrier outcomes and the state-transfer requests to the application.
//!
//! # Snapshots off the hot path
//!
//! A `TakeSnapshot` action becomes [`AbEvent::TakeSnapshot`], triggered in order with the
//! deliveries: events on one channel are FIFO, so the application's handler sees it after
//! exactly the deliveries up to its zxid. The component does **not** wait for the answer: it
//! goes on executing actions — heartbeats, proposals, commits, further deliveries — so a
//! snapshot of a large state never stalls the group (a stall longer than the session timeout
//! would depose the leader). The application captures its state at that moment (cheaply: a
//! persistent map, a copy-on-write view) and answers [`AbRequest::SnapshotTaken`] whenever it
//! has serialized it, after any number of further deliveries.
//!
//! The answer is written as the snapshot and reported to the node (which then drops its log up
//! to the zxid) only once that write is durable, behind the writes made before it. An answer
//! for a request an [`Action::InstallSnapshot`] superseded in the meantime (a new leader sent
//! its state), or for a zxid the component no longer waits for, is dropped unwritten: storing
//! it would put an older snapshot behind the installed one.
//!
//! Several instances (one per group) share a node's network and failure detector:
//! [`ZabComponent::create`] builds one and connects it, with a route selector so that it
//! receives only its group's messages.
//!
//! # Group commit
//!
//! Handlers feed the node but do not execute its actions at once: the first event of a burst
//! queues a flush (an event the component sends itself), which runs after the events already
//! waiting. The flush executes every action the burst produced — proposals made meanwhile form
//! one batch, one PROPOSAL, one write — and makes the writes durable with a single `sync`
//! before their completions reach the node, so an ACK (or ACKEPOCH, or a delivery) never
//! leaves before its write is on disk.
//!
//! A storage whose sync blocks on a device ([`ZabStorage::log_thread`]) runs on a log thread:
//! the flush hands it the batch and returns; the thread syncs once for everything handed over
//! while it was busy and reports back through a mailbox, and only then do the completions reach
//! the node. Other storages are called inline, after the flush's writes or, with a
//! [`ZabConfig::sync_delay`], from a timer; both keep simulations deterministic.
//!
//! # Storage failures
//!
//! A storage error (recovering, writing, syncing, inline or on the log thread) leaves the
//! node unable to go on safely. The component stops executing actions at the failed one (an
//! ACK must not follow a write that did not happen), stops its log thread, and fails through
//! [`Context::fail`] with a [`ZabFault`]: its supervisor's `Fault` carries the typed error
//! (`fault.error::<ZabFault>()`), and may restart the instance, which reopens its storage.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kompics_core::rand::Rng;
use kompics_core::{
    connect, connect_with, Component, ComponentDefinition, Context, Mailbox, Port, Provide,
    ProvidedPort, ProvidedRef, Receive, Require, RequiredPort, Setup, System,
};
use kompics_net::{route_selector, NetEvent, NetMessage, Network, NodeAddr, Route};
use parking_lot::Mutex;

use crate::failure_detector::{FailureDetectorPort, FdEvent, FdRequest};
use crate::protocol::{
    Action, Config, ConfigError, Entry, Epoch, EpochKind, InitError, Message, PeerId,
    ProposalFailure, ProposalId, ProposeError, ReadId, Snapshot, Status, ZabNode, Zxid,
};
use crate::storage::{LogOp, LogReader, LogThread, StorageError, ZabStorage};

/// The network service number of Zab messages; the instance is the group.
pub const ZAB_SERVICE: u32 = 0x2AB;

/// Why a Zab instance stopped: the error it fails with through [`Context::fail`], so that its
/// supervisor's [`Fault`](kompics_core::Fault) carries it (`fault.error::<ZabFault>()`).
///
/// Each one means the instance cannot go on safely on this storage; a supervisor may restart
/// it (the restart reopens the storage) or escalate.
#[derive(Debug)]
pub enum ZabFault {
    /// The storage failed: recovering, writing, syncing (inline or on the log thread).
    Storage {
        /// The replication group of the instance.
        group: u32,
        /// The storage's error.
        error: StorageError,
    },
    /// The recovered state is inconsistent, so the protocol refused to start on it.
    Refused {
        /// The replication group of the instance.
        group: u32,
        /// Why the protocol refused.
        error: InitError,
    },
    /// The log thread could not be started.
    LogThread {
        /// The replication group of the instance.
        group: u32,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The component was built without a storage.
    NoStorage {
        /// The replication group of the instance.
        group: u32,
    },
}

impl ZabFault {
    /// The storage error, if the storage is what failed.
    pub fn storage_error(&self) -> Option<&StorageError> {
        match self {
            ZabFault::Storage { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl std::fmt::Display for ZabFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The same texts as the panics these replace, so that operators' logs read the same.
        match self {
            ZabFault::Storage { group, error } => write!(f, "zab group {group}: storage {error}"),
            ZabFault::Refused { group, error } => {
                write!(f, "zab group {group}: refusing to start: {error:?}")
            }
            ZabFault::LogThread { group, error } => {
                write!(f, "zab group {group}: cannot start the log thread: {error}")
            }
            ZabFault::NoStorage { group } => write!(f, "zab group {group}: no storage"),
        }
    }
}

impl std::error::Error for ZabFault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ZabFault::Storage { error, .. } => Some(error),
            ZabFault::Refused { error, .. } => Some(error),
            ZabFault::LogThread { error, .. } => Some(error),
            ZabFault::NoStorage { .. } => None,
        }
    }
}

/// The atomic-broadcast port a Zab instance provides to its application.
pub struct AtomicBroadcast;

/// Requests from the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AbRequest {
    /// Broadcast `payload`. `tag` is the caller's, echoed in the outcome events.
    Propose {
        /// The caller's identifier for this proposal.
        tag: u64,
        /// The transaction.
        payload: Vec<u8>,
    },
    /// A linearizable read barrier: [`AbEvent::ReadReady`] says when the application's state
    /// reflects every transaction committed before this request (read it then, in that
    /// handler); [`AbEvent::Failed`] (`NotLeader`, `TooManyOutstanding`) that nothing was read.
    /// Nothing is written to any log: the leader confirms with a quorum that it still leads.
    Read {
        /// The caller's identifier for this read (not shared with a pending proposal).
        tag: u64,
    },
    /// The answer to [`AbEvent::TakeSnapshot`]: the application's state after every delivery up
    /// to `zxid`.
    SnapshotTaken {
        /// The zxid of the request.
        zxid: Zxid,
        /// The serialized state.
        state: Vec<u8>,
    },
}

/// What a Zab instance tells its application, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AbEvent {
    /// A committed transaction, in zxid order, each once (until an `InstallState`).
    Deliver {
        /// Its zxid.
        zxid: Zxid,
        /// The transaction.
        payload: Vec<u8>,
    },
    /// This instance's role changed.
    Status(ZabStatus),
    /// A proposal of this node got its zxid.
    Assigned {
        /// The caller's tag.
        tag: u64,
        /// The zxid.
        zxid: Zxid,
    },
    /// A proposal of this node committed (its `Deliver` came just before).
    Committed {
        /// The caller's tag.
        tag: u64,
        /// The zxid.
        zxid: Zxid,
    },
    /// A read barrier passed ([`AbRequest::Read`]): every delivery it needs came before this
    /// event, so the application's state now may be read.
    ReadReady {
        /// The caller's tag.
        tag: u64,
    },
    /// A proposal or read barrier of this node will not be reported further.
    Failed {
        /// The caller's tag.
        tag: u64,
        /// Why, and what the caller can do.
        reason: ProposeFailure,
    },
    /// Answer with [`AbRequest::SnapshotTaken`]: the state after every delivery so far (which
    /// is up to `zxid`).
    TakeSnapshot {
        /// The last delivered zxid.
        zxid: Zxid,
    },
    /// Replace the whole state with this snapshot (`None`: the empty initial state); deliveries
    /// continue after `zxid`.
    InstallState {
        /// The snapshot's last transaction.
        zxid: Zxid,
        /// The state.
        state: Option<Vec<u8>>,
    },
}

impl Port for AtomicBroadcast {
    type Request = AbRequest;
    type Indication = AbEvent;
}

/// The role of an instance, with nodes named by address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZabStatus {
    /// Electing or synchronizing: proposals are refused.
    Looking,
    /// Following an established leader; proposals are forwarded to it.
    Following {
        /// The leader.
        leader: NodeAddr,
        /// Its epoch.
        epoch: Epoch,
    },
    /// Leading `epoch`.
    Leading {
        /// The epoch.
        epoch: Epoch,
    },
}

/// Why a proposal failed, and what the caller can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeFailure {
    /// Nothing happened: no leader is established (retry later), or the leader is elsewhere.
    NotLeader {
        /// The leader to retry with, if known.
        leader: Option<NodeAddr>,
    },
    /// Nothing happened: too many proposals are in flight; retry later.
    TooManyOutstanding,
    /// Nothing happened, and retrying will not help: the payload is larger than
    /// `payload_bytes_max` (`max`: this node's bound; a leader configured with a smaller one
    /// refuses too).
    TooLarge {
        /// This node's `payload_bytes_max`.
        max: usize,
    },
    /// The proposal may or may not commit: watch the deliveries.
    OutcomeUnknown,
}

/// Settings of one Zab instance.
#[derive(Clone, Debug)]
pub struct ZabConfig {
    /// The replication group (the instance number of the network route).
    pub group: u32,
    /// This node.
    pub me: NodeAddr,
    /// Every voting member, this node included. All members must list the same set.
    pub members: Vec<NodeAddr>,
    /// The tick period: the protocol's timeouts are counted in ticks.
    pub tick: Duration,
    /// How long a disk sync takes, drawn per sync from this range (zero: syncs complete at
    /// once). Lets the simulator model slow disks; real storage takes the time it takes (and a
    /// storage on a log thread, see [`ZabStorage::log_thread`], ignores it).
    pub sync_delay: (Duration, Duration),
    /// The protocol's settings; `id` and `peers` are derived from `me` and `members`.
    pub protocol: Config,
    /// The largest message payload the network carries in one frame
    /// ([`kompics_net::payload_bytes_max`] of its frame limit; by default, of the TCP
    /// transport's default frame). The instance refuses to start when the protocol's
    /// `message_bytes_max` exceeds it: such messages could never be sent.
    pub transport_payload_bytes_max: usize,
}

impl ZabConfig {
    /// Settings for group `group` with these members, ticking every 10 ms (so a session times
    /// out after 50 silent ticks, 500 ms).
    ///
    /// # Panics
    /// If `me` is not among `members`.
    pub fn new(group: u32, me: NodeAddr, members: &[NodeAddr]) -> ZabConfig {
        let mut members = members.to_vec();
        members.sort();
        members.dedup();
        let id = peer_of(&members, me).expect("this node is one of the members");
        let n = members.len() as u64;
        let peers = (1..=n).map(PeerId).collect();
        let mut protocol = Config::new(id, peers);
        // Groups sharing nodes spread their leaders: on equal histories group g prefers the
        // member at position g - 1 (mod n) of the sorted list, so group 0 the highest, as
        // without a preference.
        protocol.preferred_leader = Some(PeerId((u64::from(group) + n - 1) % n + 1));
        ZabConfig {
            group,
            me,
            members,
            tick: Duration::from_millis(10),
            sync_delay: (Duration::ZERO, Duration::ZERO),
            protocol,
            transport_payload_bytes_max: kompics_net::payload_bytes_max(
                kompics_net::FRAME_BYTES_MAX_DEFAULT,
            ),
        }
    }

    /// Checks the protocol's settings, and its byte bounds against the transport's
    /// (`transport_payload_bytes_max`), before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.protocol.clone().validate()?;
        self.protocol.check_transport(self.transport_payload_bytes_max)
    }

    /// The network route of this instance.
    pub fn route(&self) -> Route {
        Route::new(ZAB_SERVICE, self.group)
    }
}

/// Members are numbered by their position in the sorted member list, from 1.
fn peer_of(members: &[NodeAddr], addr: NodeAddr) -> Option<PeerId> {
    members.iter().position(|m| *m == addr).map(|i| PeerId(i as u64 + 1))
}

/// A storage write whose completion waits for the next sync.
enum Completion {
    Persisted(Zxid),
    Epoch(EpochKind, Epoch),
    /// A snapshot saved through the log thread (inline, it completes at once), with its
    /// state's length.
    Snapshot(Zxid, u64),
}

/// What the storage's reader read back for a synchronization, for the node.
enum ReadBack {
    Log { peer: PeerId, after: Zxid, entries: Vec<Entry> },
    Snapshot { peer: PeerId, zxid: Zxid, offset: u64, bytes: Vec<u8> },
}

/// Sent by the component to itself: execute the node's actions now that the events waiting
/// before it have been handled.
#[derive(Clone, Debug)]
struct Flush;

/// From the log thread: the batches up to `through` are durable (or the storage failed).
#[derive(Clone, Debug)]
struct LogDone {
    /// Which log thread (a restarted instance ignores its predecessor's reports).
    log: u64,
    through: Result<u64, StorageError>,
}

/// Numbers log threads, process-wide.
static LOG_THREADS: AtomicU64 = AtomicU64::new(1);

/// The log thread of an instance, its number, and the batches handed to it not yet durable.
struct LogDriver {
    id: u64,
    /// Shared with [`PanicGuard`]s, so that a panicking handler can stop the thread before a
    /// restarted instance reopens the storage.
    thread: Arc<Mutex<Option<LogThread>>>,
    next_batch: u64,
    ops: Vec<LogOp>,
    in_flight: VecDeque<(u64, Vec<Completion>)>,
}

/// Stops the log thread (waiting for what it was given) if a handler panics, before a
/// supervisor's restart can open the same storage again.
struct PanicGuard(Option<Arc<Mutex<Option<LogThread>>>>);

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

/// One Zab instance.
pub struct ZabComponent {
    ab: ProvidedPort<AtomicBroadcast>,
    net: RequiredPort<Network>,
    fd: RequiredPort<FailureDetectorPort>,
    config: ZabConfig,
    /// The storage while it is called inline (and until `on_init` decides).
    storage: Option<Box<dyn ZabStorage>>,
    /// The log thread, when the storage runs on one.
    log: Option<LogDriver>,
    log_done: Mailbox<LogDone>,
    flush: Mailbox<Flush>,
    flush_pending: bool,
    node: Option<ZabNode>,
    /// The snapshot recovered at creation, for the application's first start.
    initial_snapshot: Option<Snapshot>,
    /// The `TakeSnapshot` the application has been asked to answer and has not; cleared by
    /// an `InstallSnapshot`, which voids it.
    awaiting_snapshot: Option<Zxid>,
    /// Completions of writes made since the last sync (inline) or the last batch handed to the
    /// log thread.
    unsynced: Vec<Completion>,
    sync_scheduled: bool,
    /// Reads back log entries whose payloads the node no longer keeps (see `Action::ReadLog`).
    reader: Option<Box<dyn LogReader>>,
    /// Entries and snapshot chunks read back, for the node once the current actions are
    /// executed.
    reads: Vec<ReadBack>,
    tags: BTreeMap<ProposalId, u64>,
    read_tags: BTreeMap<ReadId, u64>,
    started_once: bool,
}

impl ZabComponent {
    /// An instance using `storage`. Its state is recovered from the storage when it is created
    /// (and rebuilt the same way on a restart).
    pub fn new(setup: &mut Setup<Self>, config: ZabConfig, storage: Box<dyn ZabStorage>) -> Self {
        ZabComponent {
            ab: setup.provided(),
            net: setup.required(),
            fd: setup.required(),
            config,
            storage: Some(storage),
            log: None,
            log_done: setup.mailbox(),
            flush: setup.mailbox(),
            flush_pending: false,
            node: None,
            initial_snapshot: None,
            awaiting_snapshot: None,
            unsynced: Vec::new(),
            sync_scheduled: false,
            reader: None,
            reads: Vec::new(),
            tags: BTreeMap::new(),
            read_tags: BTreeMap::new(),
            started_once: false,
        }
    }

    /// Creates a Zab instance in `system`, connected to its node's network (receiving only
    /// this group's messages) and failure detector. It is passive: connect the application to
    /// its [`AtomicBroadcast`] port, then start it. `storage` is called once per build (the
    /// restart of a failed instance reopens its storage).
    pub fn create(
        system: &System,
        network: &ProvidedRef<Network>,
        fd: &ProvidedRef<FailureDetectorPort>,
        config: ZabConfig,
        storage: impl Fn() -> Box<dyn ZabStorage> + Send + Sync + 'static,
    ) -> Component<ZabComponent> {
        let route = config.route();
        let zab = system.create(move |s| ZabComponent::new(s, config.clone(), storage()));
        connect_with(network, &zab.required::<Network>(), route_selector(route));
        connect(fd, &zab.required::<FailureDetectorPort>());
        zab
    }

    /// The protocol state machine, for inspection (`None` before the component initialised).
    pub fn node(&self) -> Option<&ZabNode> {
        self.node.as_ref()
    }

    /// This instance's settings.
    pub fn config(&self) -> &ZabConfig {
        &self.config
    }

    fn node_mut(&mut self) -> &mut ZabNode {
        self.node.as_mut().expect("the node is created in on_init")
    }

    fn addr_of(&self, peer: PeerId) -> Option<NodeAddr> {
        let i = usize::try_from(peer.0).ok()?.checked_sub(1)?;
        self.config.members.get(i).copied()
    }

    fn peer_of(&self, addr: NodeAddr) -> Option<PeerId> {
        peer_of(&self.config.members, addr)
    }

    /// Asks for a flush after the events already waiting (once per burst).
    fn kick(&mut self) {
        if !self.flush_pending {
            self.flush_pending = true;
            self.flush.tell(Flush);
        }
    }

    /// A guard for a handler: if it panics, the log thread stops first.
    fn panic_guard(&self) -> PanicGuard {
        PanicGuard(self.log.as_ref().map(|log| log.thread.clone()))
    }

    /// Stops the instance with `fault`: the log thread first (waiting for what it was given),
    /// so that a supervisor's restart never opens the storage while it still writes, then the
    /// component, whose supervisor gets the fault. The caller returns right after.
    fn fail(&mut self, ctx: &mut Context<Self>, fault: ZabFault) {
        log::error!("{fault}");
        if let Some(log) = &self.log {
            let thread = log.thread.lock().take();
            drop(thread);
        }
        ctx.fail(fault);
    }

    /// Takes the node's new actions and executes them all, in order; fails the instance if
    /// the storage does.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        if let Err(fault) = self.try_drive(ctx) {
            self.fail(ctx, fault);
        }
    }

    /// [`drive`](Self::drive), stopping at the first storage error: the actions after a failed
    /// write (an ACK, say) must not be carried out.
    fn try_drive(&mut self, ctx: &mut Context<Self>) -> Result<(), ZabFault> {
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
    fn storage_fault(&self, error: StorageError) -> ZabFault {
        ZabFault::Storage { group: self.config.group, error }
    }

    /// Makes every write so far durable (inline), then reports their completions, in order.
    /// On an error nothing is reported: those writes may be lost.
    fn sync_now(&mut self) -> Result<(), ZabFault> {
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
    fn complete(&mut self, done: Vec<Completion>) {
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
    fn write(&mut self, op: LogOp) -> Result<(), ZabFault> {
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
    fn execute(&mut self, action: Action) -> Result<(), ZabFault> {
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
                // An outstanding snapshot request is void: its state is older than this one.
                self.awaiting_snapshot = None;
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
    fn refuse(&mut self, tag: u64, error: ProposeError) {
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
    fn failure(&self, reason: ProposalFailure) -> ProposeFailure {
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

    fn send(&mut self, to: PeerId, msg: &Message) {
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

impl ComponentDefinition for ZabComponent {
    fn on_init(&mut self, ctx: &mut Context<Self>) {
        // A failure here leaves `node` unset: `on_start` then does nothing, as the fault is
        // handled right after.
        let group = self.config.group;
        let Some(storage) = self.storage.as_mut() else {
            self.fail(ctx, ZabFault::NoStorage { group });
            return;
        };
        let recovered = match storage.recover() {
            Ok(r) => r,
            Err(error) => {
                self.fail(ctx, ZabFault::Storage { group, error });
                return;
            }
        };
        // Byte bounds that the transport's frames cannot carry: refuse, naming the numbers.
        if let Err(error) = self.config.validate() {
            self.fail(ctx, ZabFault::Refused { group, error: InitError::Config(error) });
            return;
        }
        // Each start is a new incarnation: the leader's answers to an earlier one's
        // registrations (queued for us when we restarted) must not match ours.
        let mut protocol = self.config.protocol.clone();
        protocol.incarnation = ctx.rng().random::<u64>() >> 1;
        match ZabNode::recover(protocol, recovered) {
            Ok((node, snapshot)) => {
                self.node = Some(node);
                self.initial_snapshot = snapshot;
            }
            Err(error) => {
                self.fail(ctx, ZabFault::Refused { group, error });
                return;
            }
        }
        self.reader = self.storage.as_ref().map(|s| s.reader());
        if self.storage.as_ref().is_some_and(|s| s.log_thread()) {
            let Some(storage) = self.storage.take() else { return };
            let id = LOG_THREADS.fetch_add(1, Ordering::Relaxed);
            let mailbox = self.log_done.clone();
            let name = format!("zab-log-{}", self.config.group);
            let done = move |through| {
                mailbox.tell(LogDone { log: id, through });
            };
            match LogThread::spawn(name, storage, done) {
                Ok(thread) => {
                    self.log = Some(LogDriver {
                        id,
                        thread: Arc::new(Mutex::new(Some(thread))),
                        next_batch: 0,
                        ops: Vec::new(),
                        in_flight: VecDeque::new(),
                    })
                }
                Err(error) => {
                    // Keep the node unset: `on_start` must not run the protocol without a log.
                    self.node = None;
                    self.fail(ctx, ZabFault::LogThread { group, error });
                }
            }
        }
    }

    fn on_start(&mut self, ctx: &mut Context<Self>) {
        if self.node.is_none() {
            // `on_init` failed; the component stops as soon as this returns.
            return;
        }
        if !self.started_once {
            self.started_once = true;
            // The application starts from the newest snapshot (the core delivers the rest once
            // a leader confirms it committed).
            if let Some(s) = self.initial_snapshot.take() {
                self.ab.trigger(AbEvent::InstallState { zxid: s.zxid, state: Some(s.state) });
            }
            let me = self.config.me;
            for m in self.config.members.clone() {
                if m != me {
                    self.fd.trigger(FdRequest::Monitor(m));
                }
            }
        }
        let tick = self.config.tick;
        ctx.schedule_periodic(tick, tick, |z: &mut ZabComponent, _ctx| {
            let _guard = z.panic_guard();
            z.node_mut().tick();
            z.kick();
        });
        let _guard = self.panic_guard();
        self.drive(ctx);
    }

    fn on_kill(&mut self, _ctx: &mut Context<Self>) {
        // Wait for the writes handed to the log thread: the storage may be opened again.
        if let Some(log) = &self.log {
            let thread = log.thread.lock().take();
            drop(thread);
        }
        if self.started_once {
            let me = self.config.me;
            for m in self.config.members.clone() {
                if m != me {
                    self.fd.trigger(FdRequest::Unmonitor(m));
                }
            }
        }
    }
}

impl Provide<AtomicBroadcast> for ZabComponent {
    fn handle(&mut self, ctx: &mut Context<Self>, request: AbRequest) {
        let _guard = self.panic_guard();
        match request {
            AbRequest::Propose { tag, payload } => {
                let result = self.node_mut().propose(payload);
                match result {
                    Ok(id) => {
                        self.tags.insert(id, tag);
                    }
                    Err(e) => self.refuse(tag, e),
                }
            }
            AbRequest::Read { tag } => {
                let result = self.node_mut().read();
                match result {
                    Ok(id) => {
                        self.read_tags.insert(id, tag);
                    }
                    Err(e) => self.refuse(tag, e),
                }
            }
            AbRequest::SnapshotTaken { zxid, state } => {
                if self.awaiting_snapshot != Some(zxid) {
                    // Superseded by an InstallSnapshot, or from an earlier incarnation.
                    log::debug!(
                        "zab group {}: ignoring a stale snapshot at {zxid:?}",
                        self.config.group
                    );
                    return;
                }
                self.awaiting_snapshot = None;
                // The node learns of it (and trims its log) once the write is durable: with the
                // next sync inline, or when the log thread reports the batch.
                self.unsynced.push(Completion::Snapshot(zxid, state.len() as u64));
                if let Err(fault) = self.write(LogOp::Snapshot(Snapshot { zxid, state })) {
                    self.fail(ctx, fault);
                    return;
                }
            }
        }
        self.kick();
    }
}

impl Receive<Flush> for ZabComponent {
    fn receive(&mut self, ctx: &mut Context<Self>, _flush: Flush) {
        let _guard = self.panic_guard();
        self.flush_pending = false;
        self.drive(ctx);
    }
}

impl Receive<LogDone> for ZabComponent {
    fn receive(&mut self, ctx: &mut Context<Self>, done: LogDone) {
        let _guard = self.panic_guard();
        if self.log.as_ref().is_none_or(|log| log.id != done.log) {
            return; // from the log thread of an earlier incarnation
        }
        let through = match done.through {
            Ok(through) => through,
            Err(error) => {
                let fault = self.storage_fault(error);
                self.fail(ctx, fault);
                return;
            }
        };
        let Some(log) = &mut self.log else { return };
        let mut durable = Vec::new();
        while log.in_flight.front().is_some_and(|(n, _)| *n <= through) {
            if let Some((_, completions)) = log.in_flight.pop_front() {
                durable.extend(completions);
            }
        }
        self.complete(durable);
        self.kick();
    }
}

impl Require<Network> for ZabComponent {
    fn handle(&mut self, _ctx: &mut Context<Self>, event: NetEvent) {
        let _guard = self.panic_guard();
        match event {
            NetEvent::Deliver(m) => {
                let Some(from) = self.peer_of(m.src) else {
                    log::warn!(
                        "zab group {}: message from non-member {}",
                        self.config.group,
                        m.src
                    );
                    return;
                };
                match m.decode::<Message>() {
                    Ok(msg) => self.node_mut().step(from, msg),
                    Err(e) => {
                        log::warn!(
                            "zab group {}: undecodable message from {}: {e}",
                            self.config.group,
                            m.src
                        );
                        return;
                    }
                }
            }
            NetEvent::SessionDown(peer) => match self.peer_of(peer) {
                Some(p) => self.node_mut().session_ended(p),
                None => return,
            },
            NetEvent::SessionUp(_) => return,
            // The message was refused and not sent (e.g. too large for a frame): what the peer
            // gets from here on would have a gap, so this is the end of its session here.
            NetEvent::SendFailed { to, route, error } => match self.peer_of(to) {
                Some(p) => {
                    log::error!(
                        "zab group {}: message to {to} (route {route}) not sent: {error}",
                        self.config.group
                    );
                    self.node_mut().session_ended(p)
                }
                None => return,
            },
        }
        self.kick();
    }
}

impl Require<FailureDetectorPort> for ZabComponent {
    fn handle(&mut self, _ctx: &mut Context<Self>, event: FdEvent) {
        let _guard = self.panic_guard();
        let (FdEvent::Suspect(addr) | FdEvent::Restore(addr)) = &event;
        let Some(peer) = self.peer_of(*addr) else { return };
        match event {
            FdEvent::Suspect(_) => self.node_mut().peer_suspected(peer),
            FdEvent::Restore(_) => self.node_mut().peer_restored(peer),
        }
        self.kick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ZabConfig {
        let members: Vec<NodeAddr> =
            (1..=3).map(|i| NodeAddr(([127, 0, 0, 1], 7000 + i).into())).collect();
        ZabConfig::new(0, members[0], &members)
    }

    /// The defaults fit the TCP transport's default frame; messages larger than the
    /// transport's frame are refused before the instance starts, with both numbers.
    #[test]
    fn byte_bounds_are_checked_against_the_transport_frame() {
        assert_eq!(config().validate(), Ok(()));
        let mut too_big = config();
        too_big.protocol.message_bytes_max = 32 << 20;
        too_big.protocol.sync_window_bytes = 32 << 20;
        let error = too_big.validate().unwrap_err().to_string();
        assert!(error.contains("message_bytes_max (33554432)"), "{error}");
        assert!(error.contains(&too_big.transport_payload_bytes_max.to_string()), "{error}");
        let mut small_frames = config();
        small_frames.transport_payload_bytes_max = 1 << 20;
        assert!(small_frames.validate().is_err(), "8 MiB messages do not fit 1 MiB frames");
        small_frames.protocol.message_bytes_max = 1 << 20;
        small_frames.protocol.payload_bytes_max = (1 << 20) - 4096;
        small_frames.protocol.snapshot_chunk_bytes_max = 512 << 10;
        assert_eq!(small_frames.validate(), Ok(()));
    }
}
