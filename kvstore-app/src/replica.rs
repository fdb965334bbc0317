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
//! While the group has no leader, a request is retried every `retry_interval` until
//! `leader_wait` has passed, then answered [`KvError::TryAgain`]. An error reply means the
//! operation did not happen, except [`KvError::OutcomeUnknown`], which says so.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use kompics_core::{
    ComponentDefinition, Context, Port, Provide, ProvidedPort, Require, RequiredPort, Setup, Time,
    TimerId,
};
use serde::{Deserialize, Serialize};
use zab_components::component::{AbEvent, AbRequest, AtomicBroadcast, ProposeFailure, ZabStatus};
use zab_components::protocol::Zxid;

use crate::partition::PartitionId;
use crate::store::{Op, OpResult, Store};

/// The port a replica provides to the components that serve clients.
pub struct KvPort;

/// A client operation; `id` is the caller's and comes back in the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvRequest {
    /// The caller's identifier for this request.
    pub id: u64,
    /// The operation.
    pub op: Op,
}

/// The answer to one [`KvRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvReply {
    /// The request's `id`.
    pub id: u64,
    /// The result, or why there is none.
    pub result: Result<OpResult, KvError>,
}

impl Port for KvPort {
    type Request = KvRequest;
    type Indication = KvReply;
}

/// What a replica reports about itself: its role in its group and how far it has applied.
pub struct ReplicaStatusPort;

/// The state of one replica, sent when its role changes and, while it applies operations, at
/// most every [`ReplicaConfig::status_interval`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The partition.
    pub partition: PartitionId,
    /// The role of its Zab instance.
    pub status: ZabStatus,
    /// The last operation applied.
    pub last_applied: Option<Zxid>,
}

impl Port for ReplicaStatusPort {
    /// A request for a report now.
    type Request = ();
    type Indication = ReplicaStatus;
}

/// Why an operation has no result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvError {
    /// The operation did not happen: the partition had no leader for the whole wait.
    TryAgain {
        /// The partition.
        partition: PartitionId,
    },
    /// The operation did not happen: too many operations are in flight in the partition.
    Busy {
        /// The partition.
        partition: PartitionId,
    },
    /// The operation may or may not have happened (the leader changed while it was in flight,
    /// or the node serving it became unreachable).
    OutcomeUnknown {
        /// The partition.
        partition: PartitionId,
    },
    /// The operation did not happen and never will: its log entry would exceed the Zab
    /// group's `payload_bytes_max` (`max`).
    TooLarge {
        /// The partition.
        partition: PartitionId,
        /// The bound, in bytes.
        max: usize,
    },
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::TryAgain { partition } => {
                write!(f, "partition {partition} has no leader; the operation did not happen")
            }
            KvError::Busy { partition } => write!(
                f,
                "partition {partition} has too many operations in flight; the operation did not happen"
            ),
            KvError::OutcomeUnknown { partition } => write!(
                f,
                "partition {partition}: the outcome is unknown (the operation may or may not have happened)"
            ),
            KvError::TooLarge { partition, max } => write!(
                f,
                "partition {partition}: the operation exceeds the log's entry limit of {max} bytes; it did not happen"
            ),
        }
    }
}

impl std::error::Error for KvError {}

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
}

impl ReplicaConfig {
    /// Defaults for `partition`: wait up to 2 s for a leader, retrying every 20 ms.
    pub fn new(partition: PartitionId) -> ReplicaConfig {
        ReplicaConfig {
            partition,
            leader_wait: Duration::from_secs(2),
            retry_interval: Duration::from_millis(20),
            status_interval: Duration::from_millis(100),
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
                // Only `GET`s go through a barrier (`propose`).
                if let Some(InFlight { op: Op::Get { key }, .. }) = self.in_flight.get(&tag) {
                    let value = self.store.get(key).map(<[u8]>::to_vec);
                    self.answer(tag, Ok(OpResult::Value(value)));
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
            AbEvent::TakeSnapshot { zxid } => {
                self.ab.trigger(AbRequest::SnapshotTaken { zxid, state: self.store.snapshot() });
            }
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
                self.last_applied = Some(zxid);
                self.recent.clear();
            }
        }
    }
}
