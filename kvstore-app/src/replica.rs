//! The Replica component: one partition's state machine, replicated by its Zab group.
//!
//! Every write (`SET`, `DEL`, `CAS`) is proposed through Zab and applied when delivered, in zxid
//! order, by every replica of the group; the replica that proposed it answers its client with
//! the result of that application. So each write takes effect at one point of one total order,
//! between its request and its reply.
//!
//! A `GET` goes through a read barrier instead ([`AbRequest::Read`]): the group's leader
//! confirms with a quorum of its epoch that it still leads, and names its commit point at the
//! time the barrier reached it; the replica answers from its store once it has applied through
//! that point. The read sees every write acknowledged before it was requested and nothing
//! uncommitted, so it is linearizable too, without writing to any log or waking the other
//! replicas' stores. It is never a local read of possibly stale data.
//!
//! # Snapshots
//!
//! When Zab asks for a snapshot ([`AbEvent::TakeSnapshot`]), the replica clones its store —
//! O(1), a frozen view of a persistent map (see [`crate::store`]) — and goes on applying.
//! The view is serialized off the hot path as [`ReplicaConfig::snapshots`] says: on a thread of
//! its own (the threaded runtime), whose result comes back through the replica's [`Mailbox`]
//! and is handed to Zab then; or, in the deterministic simulator, where a thread's timing would
//! not be the simulation's, in the replica itself after a (virtual) delay. Either way Zab goes
//! on meanwhile, and the answer arrives after further deliveries.
//!
//! # Memory limit
//!
//! [`ReplicaConfig::memory`] bounds the data bytes (keys and values) of all the replicas of a
//! node, like Redis' `maxmemory`. A write that would grow the data beyond it is refused with
//! [`KvError::OutOfMemory`] by the replica that would propose it, **before** it is proposed:
//! whatever passes is applied by every replica alike, so replicas with different limits (or a
//! lagging view of the usage) never diverge. `DEL`, and writes that free bytes, always pass.
//! The check uses this node's applied state, so concurrent writes in flight can overshoot the
//! limit by what they add, as Redis overshoots by the command that crosses it.
//!
//! While the group has no leader, a request is retried every `retry_interval` until
//! `leader_wait` has passed, then answered [`KvError::TryAgain`]. An error reply means the
//! operation did not happen, except [`KvError::OutcomeUnknown`], which says so.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kompics_core::{
    ComponentDefinition, Context, Mailbox, Provide, ProvidedPort, Receive, Require, RequiredPort,
    Setup, Time, TimerId,
};
use zab_components::component::{AbEvent, AbRequest, AtomicBroadcast, ProposeFailure, ZabStatus};
use zab_components::protocol::Zxid;

use crate::partition::PartitionId;
use crate::store::{Op, OpResult, Store};

// The ports live in `crate::ports`, next to the other ports of the store; re-exported here
// because they are the replica's interface.
pub use crate::ports::{
    KvError, KvPort, KvReply, KvRequest, ReplicaStatus, ReplicaStatusPort, OOM_MESSAGE,
};

/// The memory limit of a node's data and its current use, shared by the node's replicas
/// (clones share the count).
#[derive(Clone, Debug, Default)]
pub struct MemoryLimit {
    /// The limit in bytes of keys and values; 0 is no limit.
    pub max_bytes: u64,
    used: Arc<AtomicU64>,
}

impl MemoryLimit {
    /// A limit of `max_bytes` (0: none), with nothing used yet.
    pub fn new(max_bytes: u64) -> MemoryLimit {
        MemoryLimit { max_bytes, used: Arc::new(AtomicU64::new(0)) }
    }

    /// The bytes of keys and values the node's replicas hold now.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether a write adding `growth` bytes may be proposed: always if it adds nothing (or
    /// there is no limit), else if the data stays within the limit.
    pub fn allows(&self, growth: i64) -> bool {
        let Ok(growth) = u64::try_from(growth) else { return true };
        self.max_bytes == 0
            || growth == 0
            || self.used_bytes().saturating_add(growth) <= self.max_bytes
    }

    /// Moves the count from `old` to `new` bytes (one replica's share).
    fn account(&self, old: u64, new: u64) {
        if new >= old {
            self.used.fetch_add(new - old, Ordering::Relaxed);
        } else {
            self.used.fetch_sub(old - new, Ordering::Relaxed);
        }
    }
}

/// Where a replica serializes the store view it captured for a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotWriter {
    /// On a thread spawned per snapshot; the bytes come back through the replica's mailbox.
    /// For the threaded runtime (a thread's timing would break a simulation's determinism).
    Thread,
    /// In the replica's own handler, `delay` after the request (virtual time in the simulator;
    /// zero: at once). Deterministic; a delay lets tests model a slow serialization.
    Inline {
        /// How long after the request the answer goes to Zab.
        delay: Duration,
    },
}

/// Settings of a replica.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// The partition this replica holds.
    pub partition: PartitionId,
    /// How long a request waits for a leader before `TryAgain`.
    pub leader_wait: Duration,
    /// How often a request waiting for a leader is retried.
    pub retry_interval: Duration,
    /// How often, at most, the replica reports its progress on [`ReplicaStatusPort`].
    pub status_interval: Duration,
    /// Where snapshots are serialized.
    pub snapshots: SnapshotWriter,
    /// The node's memory limit (clones share the usage count: give a node's replicas clones of
    /// one limit).
    pub memory: MemoryLimit,
}

impl ReplicaConfig {
    /// Defaults for `partition`: wait up to 2 s for a leader, retrying every 20 ms; snapshots
    /// serialized inline at once (what the simulator needs: a node on the threaded runtime
    /// sets [`SnapshotWriter::Thread`]); no memory limit.
    pub fn new(partition: PartitionId) -> ReplicaConfig {
        ReplicaConfig {
            partition,
            leader_wait: Duration::from_secs(2),
            retry_interval: Duration::from_millis(20),
            status_interval: Duration::from_millis(100),
            snapshots: SnapshotWriter::Inline { delay: Duration::ZERO },
            memory: MemoryLimit::default(),
        }
    }
}

/// A request proposed and not yet answered.
struct InFlight {
    id: u64,
    op: Op,
    deadline: Time,
}

/// How many results of recent deliveries are kept, to answer a commit notice that arrives
/// after its delivery.
const RECENT_RESULTS_MAX: usize = 1024;

/// A snapshot serialized on a snapshot thread, for Zab.
#[derive(Clone, Debug)]
struct SnapshotReady {
    zxid: Zxid,
    state: Vec<u8>,
}

/// One replica of one partition.
pub struct Replica {
    kv: ProvidedPort<KvPort>,
    status_port: ProvidedPort<ReplicaStatusPort>,
    ab: RequiredPort<AtomicBroadcast>,
    config: ReplicaConfig,
    store: Store,
    next_tag: u64,
    in_flight: BTreeMap<u64, InFlight>,
    /// Our proposals by the zxid the leader assigned them.
    assigned: BTreeMap<Zxid, u64>,
    recent: VecDeque<(Zxid, OpResult)>,
    status: ZabStatus,
    last_applied: Option<Zxid>,
    /// The last applied zxid reported on the status port.
    reported: Option<Zxid>,
    status_timer: Option<TimerId>,
    /// Where snapshot threads send their result.
    snapshot_ready: Mailbox<SnapshotReady>,
    /// This replica's share of [`ReplicaConfig::memory`]'s count.
    counted_bytes: u64,
}

impl Replica {
    /// A replica with an empty store (Zab installs the state it has).
    pub fn new(setup: &mut Setup<Self>, config: ReplicaConfig) -> Self {
        Replica {
            kv: setup.provided(),
            status_port: setup.provided(),
            ab: setup.required(),
            config,
            store: Store::new(),
            next_tag: 0,
            in_flight: BTreeMap::new(),
            assigned: BTreeMap::new(),
            recent: VecDeque::new(),
            status: ZabStatus::Looking,
            last_applied: None,
            reported: None,
            status_timer: None,
            snapshot_ready: setup.mailbox(),
            counted_bytes: 0,
        }
    }

    /// Brings this replica's share of the node's memory count up to date with its store.
    fn account_memory(&mut self) {
        let now = self.store.data_bytes();
        self.config.memory.account(self.counted_bytes, now);
        self.counted_bytes = now;
    }

    /// Captures the store (O(1)) and has the capture serialized off the hot path; the answer
    /// reaches Zab later, after whatever is delivered meanwhile.
    fn take_snapshot(&mut self, ctx: &mut Context<Self>, zxid: Zxid) {
        log::info!(
            "p{}: snapshot at {zxid}: {} keys, {} bytes of data",
            self.config.partition.0,
            self.store.len(),
            self.store.data_bytes()
        );
        let view = self.store.clone();
        match self.config.snapshots {
            SnapshotWriter::Inline { delay } if delay.is_zero() => {
                self.ab.trigger(AbRequest::SnapshotTaken { zxid, state: view.snapshot() });
            }
            SnapshotWriter::Inline { delay } => {
                ctx.schedule_once(delay, move |r: &mut Replica, _ctx| {
                    r.ab.trigger(AbRequest::SnapshotTaken { zxid, state: view.snapshot() });
                });
            }
            SnapshotWriter::Thread => {
                let mailbox = self.snapshot_ready.clone();
                let name = format!("kv-snapshot-{}", self.config.partition.0);
                let spawned = std::thread::Builder::new().name(name).spawn(move || {
                    mailbox.tell(SnapshotReady { zxid, state: view.snapshot() });
                });
                if let Err(e) = spawned {
                    // No thread: serialize here rather than never answer (Zab would take no
                    // other snapshot).
                    log::warn!("cannot start a snapshot thread ({e}); serializing inline");
                    let state = self.store.snapshot();
                    self.ab.trigger(AbRequest::SnapshotTaken { zxid, state });
                }
            }
        }
    }

    /// The partition's data as this replica has applied it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The role of this replica's Zab instance.
    pub fn status(&self) -> ZabStatus {
        self.status
    }

    /// The last transaction applied.
    pub fn last_applied(&self) -> Option<Zxid> {
        self.last_applied
    }

    /// Hands `flight` to Zab: a read barrier for a `GET`, a proposal for a write.
    fn propose(&mut self, flight: InFlight) {
        if !self.config.memory.allows(self.store.growth(&flight.op)) {
            self.kv.trigger(KvReply { id: flight.id, result: Err(KvError::OutOfMemory) });
            return;
        }
        self.next_tag += 1;
        let tag = self.next_tag;
        let request = if flight.op.is_read_only() {
            AbRequest::Read { tag }
        } else {
            AbRequest::Propose { tag, payload: flight.op.to_bytes() }
        };
        self.in_flight.insert(tag, flight);
        self.ab.trigger(request);
    }

    fn answer(&mut self, tag: u64, result: Result<OpResult, KvError>) {
        if let Some(f) = self.in_flight.remove(&tag) {
            self.kv.trigger(KvReply { id: f.id, result });
        }
    }

    fn apply(&mut self, zxid: Zxid, payload: &[u8]) {
        let op = match Op::from_bytes(payload) {
            Ok(op) => op,
            // Every replica sees the same bytes: skipping it keeps them identical.
            Err(e) => {
                log::error!(
                    "partition {:?}: undecodable operation at {zxid:?}: {e}",
                    self.config.partition
                );
                return;
            }
        };
        let result = self.store.apply(&op);
        self.account_memory();
        self.last_applied = Some(zxid);
        if let Some(tag) = self.assigned.remove(&zxid) {
            self.answer(tag, Ok(result.clone()));
        }
        self.recent.push_back((zxid, result));
        if self.recent.len() > RECENT_RESULTS_MAX {
            self.recent.pop_front();
        }
    }

    fn report(&mut self) {
        self.reported = self.last_applied;
        self.status_port.trigger(ReplicaStatus {
            partition: self.config.partition,
            status: self.status,
            last_applied: self.last_applied,
        });
    }
}

impl ComponentDefinition for Replica {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        self.report();
        self.status_timer = Some(ctx.schedule_periodic(
            self.config.status_interval,
            self.config.status_interval,
            |r: &mut Replica, _ctx| {
                if r.reported != r.last_applied {
                    r.report();
                }
            },
        ));
    }

    fn on_stop(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.status_timer.take() {
            ctx.cancel_timer(timer);
        }
    }
}

impl Provide<KvPort> for Replica {
    fn handle(&mut self, ctx: &mut Context<Self>, request: KvRequest) {
        let deadline = ctx.now() + self.config.leader_wait;
        self.propose(InFlight { id: request.id, op: request.op, deadline });
    }
}

impl Provide<ReplicaStatusPort> for Replica {
    fn handle(&mut self, _ctx: &mut Context<Self>, _request: ()) {
        self.report();
    }
}

impl Require<AtomicBroadcast> for Replica {
    fn handle(&mut self, ctx: &mut Context<Self>, event: AbEvent) {
        match event {
            AbEvent::Deliver { zxid, payload } => self.apply(zxid, &payload),
            AbEvent::Status(s) => {
                self.status = s;
                self.report();
            }
            AbEvent::Assigned { tag, zxid } => {
                self.assigned.insert(zxid, tag);
            }
            AbEvent::ReadReady { tag } => {
                // Every write the read must see is applied: answer from the store as it is.
                // Only read-only ops go through a barrier (`propose`).
                if let Some(result) = self.in_flight.get(&tag).and_then(|f| self.store.read(&f.op))
                {
                    self.answer(tag, Ok(result));
                }
            }
            AbEvent::Committed { tag, zxid } => {
                // Normally answered at delivery; this covers a commit notice for a delivery
                // whose assignment this replica never heard.
                if self.in_flight.contains_key(&tag) {
                    let result =
                        self.recent.iter().find(|(z, _)| *z == zxid).map(|(_, r)| r.clone());
                    let partition = self.config.partition;
                    self.answer(tag, result.ok_or(KvError::OutcomeUnknown { partition }));
                }
            }
            AbEvent::Failed { tag, reason } => {
                let partition = self.config.partition;
                self.assigned.retain(|_, t| *t != tag);
                match reason {
                    ProposeFailure::OutcomeUnknown => {
                        self.answer(tag, Err(KvError::OutcomeUnknown { partition }))
                    }
                    ProposeFailure::TooLarge { max } => {
                        self.answer(tag, Err(KvError::TooLarge { partition, max }))
                    }
                    ProposeFailure::NotLeader { .. } | ProposeFailure::TooManyOutstanding => {
                        let Some(flight) = self.in_flight.remove(&tag) else { return };
                        if ctx.now() >= flight.deadline {
                            let error = match reason {
                                ProposeFailure::TooManyOutstanding => KvError::Busy { partition },
                                _ => KvError::TryAgain { partition },
                            };
                            self.kv.trigger(KvReply { id: flight.id, result: Err(error) });
                        } else {
                            // Nothing happened: try again shortly.
                            let interval = self.config.retry_interval;
                            ctx.schedule_once(interval, move |r: &mut Replica, _ctx| {
                                r.propose(flight)
                            });
                        }
                    }
                }
            }
            AbEvent::TakeSnapshot { zxid } => self.take_snapshot(ctx, zxid),
            AbEvent::InstallState { zxid, state } => {
                self.store = match state {
                    None => Store::new(),
                    Some(bytes) => match Store::restore(&bytes) {
                        Ok(s) => s,
                        // A snapshot that passed Zab's transfer but not our checksum: stop
                        // rather than serve wrong data (the supervisor sees the fault).
                        Err(e) => panic!(
                            "partition {:?}: corrupt snapshot at {zxid:?}: {e}",
                            self.config.partition
                        ),
                    },
                };
                self.account_memory();
                self.last_applied = Some(zxid);
                self.recent.clear();
            }
        }
    }
}

impl Receive<SnapshotReady> for Replica {
    fn receive(&mut self, _ctx: &mut Context<Self>, ready: SnapshotReady) {
        // Zab drops it if an InstallState (or a restart) voided the request meanwhile.
        log::info!(
            "p{}: snapshot at {} serialized: {} bytes",
            self.config.partition.0,
            ready.zxid,
            ready.state.len()
        );
        self.ab.trigger(AbRequest::SnapshotTaken { zxid: ready.zxid, state: ready.state });
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        // A replica that goes (a node stops, a fault rebuilds it) no longer holds its data.
        self.config.memory.account(self.counted_bytes, 0);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use kompics_core::{connect, Runtime, RuntimeConfig};
    use parking_lot::Mutex;

    use super::*;

    /// The snapshots answered, by zxid.
    type Answers = Arc<Mutex<Vec<(Zxid, Vec<u8>)>>>;

    /// Stands in for Zab: records the snapshots the replica answers.
    struct FakeZab {
        ab: ProvidedPort<AtomicBroadcast>,
        answers: Answers,
    }

    impl ComponentDefinition for FakeZab {}

    impl Provide<AtomicBroadcast> for FakeZab {
        fn handle(&mut self, _ctx: &mut Context<Self>, request: AbRequest) {
            if let AbRequest::SnapshotTaken { zxid, state } = request {
                self.answers.lock().push((zxid, state));
            }
        }
    }

    fn set(i: u64) -> Op {
        Op::Set { key: format!("key{}", i % 500).into_bytes(), value: i.to_le_bytes().to_vec() }
    }

    /// On the threaded runtime the replica answers from a thread, later, with the state as it
    /// was at the request — not with the writes delivered after it.
    #[test]
    fn a_threaded_snapshot_holds_exactly_the_deliveries_before_the_request() {
        let rt = Runtime::new(RuntimeConfig::default().workers(2));
        let answers: Answers = Arc::new(Mutex::new(Vec::new()));
        let recorded = answers.clone();
        let zab = rt.create(move |s| FakeZab { ab: s.provided(), answers: recorded.clone() });
        let mut config = ReplicaConfig::new(PartitionId(0));
        config.snapshots = SnapshotWriter::Thread;
        let memory = MemoryLimit::new(0);
        config.memory = memory.clone();
        let replica = rt.create(move |s| Replica::new(s, config.clone()));
        connect(&zab.provided::<AtomicBroadcast>(), &replica.required::<AtomicBroadcast>());
        zab.start();
        replica.start();

        let (before, after) = (2_000u64, 3_000u64);
        let at = Zxid::new(1, before);
        zab.on_definition(|z| {
            for i in 1..=before + after {
                let payload = set(i).to_bytes();
                z.ab.trigger(AbEvent::Deliver { zxid: Zxid::new(1, i), payload });
                if i == before {
                    z.ab.trigger(AbEvent::TakeSnapshot { zxid: at });
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while answers.lock().is_empty()
            || replica.on_definition(|r| r.last_applied()).flatten()
                != Some(Zxid::new(1, before + after))
        {
            assert!(Instant::now() < deadline, "no snapshot answer");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut expected = Store::new();
        for i in 1..=before {
            expected.apply(&set(i));
        }
        let answers = answers.lock().clone();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].0, at);
        assert!(answers[0].1 == expected.snapshot(), "the snapshot is the state at the request");
        let data = replica.on_definition(|r| r.store().data_bytes()).unwrap();
        assert_eq!(memory.used_bytes(), data, "the node's count follows the store");
        drop(replica);
        rt.shutdown();
    }

    #[test]
    fn the_memory_limit_refuses_only_growth_beyond_it() {
        let limit = MemoryLimit::new(100);
        limit.account(0, 90);
        assert!(limit.allows(10));
        assert!(!limit.allows(11));
        assert!(limit.allows(0) && limit.allows(-50), "DEL and shrinking writes always pass");
        assert!(MemoryLimit::new(0).allows(i64::MAX), "0 is no limit");
        let share = limit.clone();
        share.account(90, 20);
        assert_eq!(limit.used_bytes(), 20, "clones share the count");
    }
}
