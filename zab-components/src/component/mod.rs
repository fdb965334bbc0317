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
//! for a request an [`Action::InstallSnapshot`](crate::protocol::Action::InstallSnapshot) superseded in the meantime (a new leader sent
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

mod config;
mod driver;
mod fault;
mod port;

pub use config::{ZabConfig, ZAB_SERVICE};
pub use fault::ZabFault;
pub use port::{AbEvent, AbRequest, AtomicBroadcast, ProposeFailure, ZabStatus};

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use kompics_core::rand::Rng;
use kompics_core::{
    connect, connect_with, Component, ComponentDefinition, Context, Mailbox, Provide, ProvidedPort,
    ProvidedRef, Receive, Require, RequiredPort, Setup, System,
};
use kompics_net::{route_selector, NetEvent, Network, NodeAddr};
use parking_lot::Mutex;

use crate::failure_detector::{FailureDetectorPort, FdEvent, FdRequest};
use crate::protocol::{InitError, Message, PeerId, ProposalId, ReadId, Snapshot, ZabNode, Zxid};
use crate::storage::{LogOp, LogReader, LogThread, ZabStorage};

use config::peer_of;
use driver::{
    Completion, Flush, LogDone, LogDriver, ReadBack, SnapshotStaged, StagingThread, LOG_THREADS,
};

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
    snapshot_staged: Mailbox<SnapshotStaged>,
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
            snapshot_staged: setup.mailbox(),
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
            let group = self.config.group;
            let stager = storage.snapshot_stager().and_then(|stager| {
                let name = format!("zab-snapshot-{group}");
                let done = self.snapshot_staged.clone();
                StagingThread::spawn(name, id, stager, done)
                    .inspect_err(|e| {
                        // Not fatal: the log thread writes snapshots itself, as without one.
                        log::warn!("zab group {group}: no snapshot staging thread ({e})")
                    })
                    .ok()
            });
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
                        stager,
                        installs: 0,
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
                let snapshot = Snapshot { zxid, state };
                // With a log thread and a stager, the state is written beside the log thread,
                // which then only commits it (see `SnapshotStaged`).
                let snapshot = match &self.log {
                    Some(LogDriver { stager: Some(stager), installs, .. }) => {
                        match stager.stage(*installs, snapshot) {
                            Ok(()) => return,
                            // The staging thread is gone: the log thread writes it all.
                            Err(snapshot) => snapshot,
                        }
                    }
                    _ => snapshot,
                };
                // The node learns of it (and trims its log) once the write is durable: with the
                // next sync inline, or when the log thread reports the batch.
                self.unsynced.push(Completion::Snapshot(zxid, snapshot.state.len() as u64));
                if let Err(fault) = self.write(LogOp::Snapshot(snapshot)) {
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

impl Receive<SnapshotStaged> for ZabComponent {
    fn receive(&mut self, ctx: &mut Context<Self>, staged: SnapshotStaged) {
        let _guard = self.panic_guard();
        let Some(log) = &self.log else { return };
        if log.id != staged.log {
            return; // asked by an earlier incarnation
        }
        if let Err(error) = staged.result {
            let fault = self.storage_fault(error.during("snapshot staging"));
            self.fail(ctx, fault);
            return;
        }
        if log.installs != staged.installs {
            // An install came meanwhile: this state is older than the installed one.
            log::debug!(
                "zab group {}: dropping the snapshot at {} staged before an install",
                self.config.group,
                staged.zxid
            );
            return;
        }
        // Like a snapshot written by the log thread: the node learns of it once the commit
        // (behind the writes before it) is durable.
        self.unsynced.push(Completion::Snapshot(staged.zxid, staged.bytes));
        if let Err(fault) = self.write(LogOp::CommitSnapshot(staged.zxid)) {
            self.fail(ctx, fault);
            return;
        }
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
