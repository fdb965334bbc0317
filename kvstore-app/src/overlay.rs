//! The Overlay component: routes each client operation to the group of its key's partition.
//!
//! A node's front ends send every operation to its overlay on [`KvPort`], whatever the key. The
//! overlay finds the key's partition in the lookup table and
//!
//! - serves it **locally** when this node is a member of the partition's group: the operation
//!   goes to the local [`Replica`](crate::replica::Replica), whose Zab instance orders it (a
//!   follower's instance forwards it to the leader);
//! - **forwards** it otherwise, over the network, to a member: the group's leader when a hint
//!   names one, else the members in table order, skipping any the failure detector suspects.
//!   The member's overlay serves it locally and sends the result back, with a hint naming the
//!   group's current leader, so that the next forward goes straight there.
//!
//! Forwarded writes of one partition keep their order. Writes of a connection go out together
//! (see [`frontend`](crate::frontend)), and a member serves what it receives in order, but two
//! routes to the leader are not ordered with each other: a write sent to a follower (which the
//! follower's Zab instance passes on to the leader) can be overtaken by a later one sent straight
//! to the leader once a hint names it, and `SET k 1` then `SET k 2` would leave `k` at 1. So the
//! overlay sends the writes of a partition to one member at a time: while writes are in flight
//! at one member, later writes for another wait in the partition's queue until those are
//! answered (or, if that member stays suspected for [`OverlayConfig::abandon_after`], given up
//! on as [`KvError::OutcomeUnknown`]). Route changes are rare, and the wait is one round trip.
//! The grace matters because a suspicion can be false: a member busy with a burst of large
//! writes, whose heartbeats queue behind them, is suspected for a moment and then restored; its
//! writes are answered normally instead of being reported unknown.
//!
//! Nothing is dropped silently: every request gets exactly one reply, a result or a
//! [`KvError`]. The error tells what is known:
//!
//! - [`KvError::TryAgain`]: nothing happened — no member could be reached, or the group had no
//!   leader for the whole wait;
//! - [`KvError::OutcomeUnknown`]: a write was handed to a member that then became unreachable,
//!   or no answer came in time: it may have happened. Reads are never left unknown: a read has
//!   no effect, so one whose member is lost is simply sent to another member.
//!
//! The overlay receives the table from its node (see [`OverlayRequest::Install`]); until then
//! requests wait, like requests to a group without a leader.
//!
//! Request ids start again from 1 in every process, so a forwarded request carries the
//! node's [`Incarnation`] and its reply echoes it: a reply meant for a previous process of
//! this node (still in flight when it restarted) is dropped instead of answering the new
//! request that happens to have its id.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use kompics_core::{
    ComponentDefinition, Context, Provide, ProvidedPort, Require, RequiredPort, Setup, Time,
};
use kompics_net::{NetEvent, NetMessage, Network, NodeAddr, Route};
use serde::{Deserialize, Serialize};
use zab_components::component::ZabStatus;
use zab_components::failure_detector::{FailureDetectorPort, FdEvent, FdRequest};

use crate::incarnation::Incarnation;
use crate::partition::{LookupTable, PartitionId};
use crate::ports::{KvError, KvPort, KvReply, KvRequest, ReplicaStatus, ReplicaStatusPort};
use crate::store::{Op, OpResult};

/// The network service number of overlay messages (instance 0).
pub const OVERLAY_SERVICE: u32 = 0x0E7;

/// The network route of overlay messages.
pub const OVERLAY_ROUTE: Route = Route::new(OVERLAY_SERVICE, 0);

/// Settings of an overlay.
#[derive(Clone, Debug)]
pub struct OverlayConfig {
    /// This node's peer address.
    pub me: NodeAddr,
    /// How long a request may take in all before it is answered with an error. Longer than a
    /// replica's leader wait, so that a member's own `TryAgain` arrives first.
    pub request_timeout: Duration,
    /// How long to wait before routing again a request that found no reachable member.
    pub retry_interval: Duration,
    /// This process start of the node (see [`crate::incarnation`]); replies to requests of
    /// other incarnations are dropped. Default 0 (a node that keeps none, e.g. simulated).
    pub incarnation: Incarnation,
    /// How long a member must stay suspected (its session still up) before the writes in
    /// flight at it are given up as possibly done, so that the writes queued behind them can go
    /// to another member. Default 1 s: longer than a false suspicion lasts (the failure
    /// detector restores a member as soon as it is heard again), about what a group takes to
    /// elect a new leader when the suspicion is true. A member whose session ends is given up
    /// at once.
    pub abandon_after: Duration,
}

impl OverlayConfig {
    /// Defaults for node `me`: requests time out after 5 s, routing is retried every 50 ms,
    /// writes at a suspected member are given up after 1 s.
    pub fn new(me: NodeAddr) -> OverlayConfig {
        OverlayConfig {
            me,
            request_timeout: Duration::from_secs(5),
            retry_interval: Duration::from_millis(50),
            incarnation: Incarnation::default(),
            abandon_after: Duration::from_secs(1),
        }
    }
}

// The control port and what travels on it live in `crate::ports`, with the store's other
// ports; re-exported here, next to the component that provides it.
pub use crate::ports::{
    GroupView, InfoQuery, OverlayControl, OverlayInfo, OverlayRequest, OverlayStats,
};

/// Messages between overlays.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum OverlayMsg {
    /// Serve `op` and answer with a `Reply` carrying `id` and `incarnation` (the sender's).
    Forward { id: u64, incarnation: Incarnation, op: Op },
    /// The answer to a `Forward`, with the group's leader as the server knows it.
    Reply {
        id: u64,
        incarnation: Incarnation,
        result: Result<OpResult, KvError>,
        leader: Option<NodeAddr>,
    },
}

/// Who is waiting for a request.
#[derive(Clone, Copy, Debug)]
enum Origin {
    /// A client of this node, with the id it chose.
    Client(u64),
    /// Another node's overlay, with the id it chose in its incarnation.
    Remote(NodeAddr, u64, Incarnation),
}

/// Where a request is being served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// Not sent anywhere yet (waiting for a table or a reachable member).
    Nowhere,
    /// A write in its partition's queue (see [`ForwardedWrites`]): not sent yet.
    Queued,
    /// The local replica.
    Local,
    /// Forwarded to this member.
    Remote(NodeAddr),
}

struct Pending {
    origin: Origin,
    op: Op,
    partition: PartitionId,
    /// When it is answered with an error at the latest.
    deadline: Time,
    target: Target,
    /// How many times it was routed; rotates the members tried.
    attempts: u32,
    /// Members that failed this request (their sessions ended while it was there).
    failed: BTreeSet<NodeAddr>,
}

/// The writes of one partition that this node forwards (it is not a member): sent to one
/// member at a time, in arrival order (see the module docs).
#[derive(Debug, Default)]
struct ForwardedWrites {
    /// Writes not sent yet, in arrival order (an id no longer pending was answered: skipped).
    queue: VecDeque<u64>,
    /// The member the writes in flight were sent to, and how many are in flight.
    in_flight: Option<(NodeAddr, usize)>,
    /// A new try of the queue is scheduled (no member was reachable).
    retry_scheduled: bool,
}

/// The routing component of a node.
pub struct Overlay {
    clients: ProvidedPort<KvPort>,
    /// The control port: requests are handled in `Provide<OverlayControl>`, and the only
    /// answers go to their requesters through `Request::reply`, so nothing is triggered here.
    _control: ProvidedPort<OverlayControl>,
    replicas: RequiredPort<KvPort>,
    /// Reports of the local replicas (handled in `Require<ReplicaStatusPort>`).
    _replica_status: RequiredPort<ReplicaStatusPort>,
    net: RequiredPort<Network>,
    fd: RequiredPort<FailureDetectorPort>,
    config: OverlayConfig,
    table: Option<Arc<LookupTable<NodeAddr>>>,
    cluster: Option<(String, u64)>,
    next_id: u64,
    /// Requests in flight, by id. Ids and deadlines grow together (one timeout for all), so
    /// the first entry is always the next to expire.
    pending: BTreeMap<u64, Pending>,
    /// A deadline check is scheduled (see [`Overlay::expire_due`]).
    expiry_scheduled: bool,
    leaders: HashMap<PartitionId, NodeAddr>,
    /// Forwarded writes, by partition (only partitions this node is not a member of).
    writes: HashMap<PartitionId, ForwardedWrites>,
    local_status: BTreeMap<PartitionId, ReplicaStatus>,
    /// Suspected members, with when each suspicion began.
    suspected: BTreeMap<NodeAddr, Time>,
    stats: OverlayStats,
}

impl Overlay {
    /// An overlay without a table (see [`OverlayRequest::Install`]).
    pub fn new(setup: &mut Setup<Self>, config: OverlayConfig) -> Self {
        Overlay {
            clients: setup.provided(),
            _control: setup.provided(),
            replicas: setup.required(),
            _replica_status: setup.required(),
            net: setup.required(),
            fd: setup.required(),
            config,
            table: None,
            cluster: None,
            next_id: 0,
            pending: BTreeMap::new(),
            expiry_scheduled: false,
            leaders: HashMap::new(),
            writes: HashMap::new(),
            local_status: BTreeMap::new(),
            suspected: BTreeMap::new(),
            stats: OverlayStats::default(),
        }
    }

    /// The node at a glance.
    pub fn info(&self) -> OverlayInfo {
        let groups = match &self.table {
            None => Vec::new(),
            Some(table) => table
                .iter()
                .map(|(partition, members)| GroupView {
                    partition,
                    members: members.to_vec(),
                    local: self.local_status.get(&partition).cloned(),
                    leader: self.leader_of(partition),
                })
                .collect(),
        };
        OverlayInfo {
            me: self.config.me,
            cluster: self.cluster.clone(),
            replication: self.table.as_ref().map_or(0, |t| t.replication()),
            groups,
            suspected: self.suspected.keys().copied().collect(),
            stats: self.stats,
        }
    }

    /// Requests in flight.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    fn accept(&mut self, ctx: &mut Context<Self>, origin: Origin, op: Op) {
        self.next_id += 1;
        let id = self.next_id;
        let partition = match &self.table {
            Some(t) => op.partition(t.partition_count()),
            None => PartitionId(0),
        };
        let pending = Pending {
            origin,
            op,
            partition,
            deadline: ctx.now() + self.config.request_timeout,
            target: Target::Nowhere,
            attempts: 0,
            failed: BTreeSet::new(),
        };
        self.pending.insert(id, pending);
        self.route(ctx, id);
        self.schedule_expiry(ctx);
    }

    /// The safety net: every request is answered by its deadline at the latest. One timer at
    /// a time, set for the oldest request's deadline, rather than one per request: under load
    /// the oldest is answered long before, and the timer costs one firing per timeout period
    /// instead of one per request.
    fn schedule_expiry(&mut self, ctx: &mut Context<Self>) {
        if self.expiry_scheduled {
            return;
        }
        let Some((_, first)) = self.pending.first_key_value() else { return };
        self.expiry_scheduled = true;
        let wait = first.deadline.saturating_since(ctx.now());
        ctx.schedule_once(wait, |o: &mut Overlay, ctx| {
            o.expiry_scheduled = false;
            o.expire_due(ctx);
            o.schedule_expiry(ctx);
        });
    }

    /// Answers with an error every request whose deadline has come.
    fn expire_due(&mut self, ctx: &mut Context<Self>) {
        let now = ctx.now();
        let mut released = BTreeSet::new();
        while let Some((&id, p)) = self.pending.first_key_value() {
            if p.deadline > now {
                break;
            }
            released.extend(self.expire(id));
        }
        for partition in released {
            self.pump(ctx, partition);
        }
    }

    /// Sends request `id` to where it can be served, or schedules another try.
    fn route(&mut self, ctx: &mut Context<Self>, id: u64) {
        let me = self.config.me;
        let Some(p) = self.pending.get_mut(&id) else { return };
        let Some(table) = &self.table else {
            p.target = Target::Nowhere;
            return self.retry_later(ctx, id);
        };
        // The partition is only known once there is a table.
        p.partition = p.op.partition(table.partition_count());
        let members = table.group(p.partition);
        p.attempts += 1;
        if members.contains(&me) {
            p.target = Target::Local;
            let op = p.op.clone();
            self.replicas.trigger(KvRequest { id, op });
            return;
        }
        if !p.op.is_read_only() {
            p.target = Target::Queued;
            let partition = p.partition;
            self.writes.entry(partition).or_default().queue.push_back(id);
            return self.pump(ctx, partition);
        }
        let choice = self.choose(id, None);
        let Some(p) = self.pending.get_mut(&id) else { return };
        match choice {
            Some(member) => {
                p.target = Target::Remote(member);
                let incarnation = self.config.incarnation;
                let msg = OverlayMsg::Forward { id, incarnation, op: p.op.clone() };
                self.stats.forwarded += 1;
                self.send(member, &msg);
            }
            None => {
                // Every member is suspected or failed: nothing was sent; wait for one to come
                // back (or for the deadline).
                p.target = Target::Nowhere;
                p.failed.clear();
                self.retry_later(ctx, id);
            }
        }
    }

    /// The member to send request `id` to: the group's leader if a hint names one, else
    /// `preferred`, else the members in turn (rotated by the request's attempts); never one
    /// that is suspected or failed the request. `None` if every member is.
    fn choose(&self, id: u64, preferred: Option<NodeAddr>) -> Option<NodeAddr> {
        let p = self.pending.get(&id)?;
        let members = self.table.as_ref()?.group(p.partition);
        let start = p.attempts as usize;
        let leader = self.leaders.get(&p.partition).copied();
        leader
            .into_iter()
            .chain(preferred)
            .chain((0..members.len()).map(|i| members[(start + i) % members.len()]))
            .find(|m| !self.suspected.contains_key(m) && !p.failed.contains(m))
    }

    /// Sends the queued writes of `partition` in order, as far as the rule of one member at a
    /// time allows (see the module docs). Called whenever that may have changed: a write
    /// queued or answered, a hint, a suspicion.
    fn pump(&mut self, ctx: &mut Context<Self>, partition: PartitionId) {
        loop {
            let Some(writes) = self.writes.get_mut(&partition) else { return };
            let Some(&id) = writes.queue.front() else { return };
            if self.pending.get(&id).is_none_or(|p| p.target != Target::Queued) {
                writes.queue.pop_front(); // answered (expired) while queued
                continue;
            }
            let in_flight = writes.in_flight;
            let Some(member) = self.choose(id, in_flight.map(|(m, _)| m)) else {
                // Every member is suspected: nothing was sent; try again later (or let the
                // deadline answer).
                let writes = self.writes.get_mut(&partition).expect("looked up above");
                if !writes.retry_scheduled {
                    writes.retry_scheduled = true;
                    ctx.schedule_once(self.config.retry_interval, move |o: &mut Overlay, ctx| {
                        if let Some(w) = o.writes.get_mut(&partition) {
                            w.retry_scheduled = false;
                        }
                        o.pump(ctx, partition);
                    });
                }
                return;
            };
            if let Some((at, _)) = in_flight.filter(|(at, _)| *at != member) {
                if !self.given_up(ctx.now(), at) {
                    // Wait for the writes at `at` to be answered (or for its suspicion to last:
                    // the timer set when it began pumps again).
                    return;
                }
                // Their member has been suspected for a while and may never answer: give them
                // up, so that the writes behind them can go elsewhere. They may still take
                // effect.
                self.abandon_writes_at(partition, at);
                continue;
            }
            let writes = self.writes.get_mut(&partition).expect("looked up above");
            writes.queue.pop_front();
            writes.in_flight = Some((member, in_flight.map_or(0, |(_, n)| n) + 1));
            let p = self.pending.get_mut(&id).expect("checked above");
            p.target = Target::Remote(member);
            let incarnation = self.config.incarnation;
            let msg = OverlayMsg::Forward { id, incarnation, op: p.op.clone() };
            self.stats.forwarded += 1;
            self.send(member, &msg);
        }
    }

    /// Whether `member` has been suspected for [`OverlayConfig::abandon_after`] by `now`.
    fn given_up(&self, now: Time, member: NodeAddr) -> bool {
        self.suspected
            .get(&member)
            .is_some_and(|since| now.saturating_since(*since) >= self.config.abandon_after)
    }

    /// Answers the writes of `partition` in flight at `member` as possibly done.
    fn abandon_writes_at(&mut self, partition: PartitionId, member: NodeAddr) {
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                p.partition == partition
                    && p.target == Target::Remote(member)
                    && !p.op.is_read_only()
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.finish(id, Err(KvError::OutcomeUnknown { partition }));
        }
    }

    fn retry_later(&mut self, ctx: &mut Context<Self>, id: u64) {
        let interval = self.config.retry_interval;
        ctx.schedule_once(interval, move |o: &mut Overlay, ctx| {
            if o.pending.get(&id).is_some_and(|p| p.target == Target::Nowhere) {
                o.route(ctx, id);
            }
        });
    }

    /// Answers request `id` with the error its deadline calls for. Returns the partition whose
    /// forwarded writes may now go on, as [`finish`](Self::finish) does.
    fn expire(&mut self, id: u64) -> Option<PartitionId> {
        let p = self.pending.get(&id)?;
        let partition = p.partition;
        let error = match p.target {
            // Never handed to anyone, or a read: certainly without effect.
            Target::Nowhere | Target::Queued => KvError::TryAgain { partition },
            _ if p.op.is_read_only() => KvError::TryAgain { partition },
            _ => KvError::OutcomeUnknown { partition },
        };
        self.finish(id, Err(error))
    }

    /// Answers request `id` (once: later answers for it are ignored). If it was the last
    /// forwarded write in flight of its partition, returns the partition: the caller
    /// [`pump`](Self::pump)s its queue.
    fn finish(&mut self, id: u64, result: Result<OpResult, KvError>) -> Option<PartitionId> {
        let p = self.pending.remove(&id)?;
        if result.is_err() {
            self.stats.errors += 1;
        }
        let mut released = None;
        if let (Target::Remote(member), false) = (p.target, p.op.is_read_only()) {
            if let Some(w) = self.writes.get_mut(&p.partition) {
                if let Some((at, n)) = w.in_flight {
                    debug_assert_eq!(at, member, "forwarded writes go to one member at a time");
                    w.in_flight = (n > 1).then_some((at, n - 1));
                    if n == 1 {
                        released = Some(p.partition);
                    }
                }
            }
        }
        match p.origin {
            Origin::Client(client_id) => {
                self.clients.trigger(KvReply { id: client_id, result });
            }
            Origin::Remote(from, id, incarnation) => {
                let leader = self.leader_of(p.partition);
                self.send(from, &OverlayMsg::Reply { id, incarnation, result, leader });
            }
        }
        released
    }

    fn leader_of(&self, partition: PartitionId) -> Option<NodeAddr> {
        match self.local_status.get(&partition).map(|s| s.status) {
            Some(ZabStatus::Leading { .. }) => Some(self.config.me),
            Some(ZabStatus::Following { leader, .. }) => Some(leader),
            _ => self.leaders.get(&partition).copied(),
        }
    }

    fn send(&mut self, to: NodeAddr, msg: &OverlayMsg) {
        match NetMessage::encode(self.config.me, to, OVERLAY_ROUTE, msg) {
            Ok(m) => self.net.trigger(m),
            Err(e) => log::error!("overlay: cannot encode a message to {to}: {e}"),
        }
    }

    /// Member `node` is gone (its session ended) or suspected: what was sent there may be lost.
    fn member_lost(&mut self, ctx: &mut Context<Self>, node: NodeAddr, session_ended: bool) {
        let affected: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.target == Target::Remote(node))
            .map(|(id, _)| *id)
            .collect();
        for id in affected {
            let Some(p) = self.pending.get_mut(&id) else { continue };
            if self.leaders.get(&p.partition) == Some(&node) {
                self.leaders.remove(&p.partition);
            }
            if p.op.is_read_only() {
                // A read has no effect: ask another member.
                p.failed.insert(node);
                self.route(ctx, id);
            } else if session_ended {
                // The write may have reached the member and committed, or not.
                let partition = p.partition;
                self.finish(id, Err(KvError::OutcomeUnknown { partition }));
            }
            // A suspected member whose session still stands may yet answer: the deadline
            // bounds the wait (unless writes queue behind it: see `pump`).
        }
        // Queued writes may now go to another member.
        let partitions: Vec<PartitionId> = self.writes.keys().copied().collect();
        for partition in partitions {
            self.pump(ctx, partition);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<Self>, from: NodeAddr, msg: OverlayMsg) {
        match msg {
            OverlayMsg::Forward { id, incarnation, op } => {
                let serves = self.table.as_ref().is_some_and(|t| {
                    t.group(op.partition(t.partition_count())).contains(&self.config.me)
                });
                if serves {
                    self.stats.served_for_others += 1;
                    self.accept(ctx, Origin::Remote(from, id, incarnation), op);
                } else {
                    // Not ready yet, or not a member (the tables differ): nothing happened.
                    let partition = self
                        .table
                        .as_ref()
                        .map_or(PartitionId(0), |t| op.partition(t.partition_count()));
                    let reply = OverlayMsg::Reply {
                        id,
                        incarnation,
                        result: Err(KvError::TryAgain { partition }),
                        leader: None,
                    };
                    self.send(from, &reply);
                }
            }
            OverlayMsg::Reply { id, incarnation, result, leader } => {
                if incarnation != self.config.incarnation {
                    // Sent to an earlier process of this node: its id may now name another
                    // request.
                    log::debug!(
                        "overlay: dropped a reply from {from} to request {id} of {incarnation} \
                         (this is {})",
                        self.config.incarnation
                    );
                    return;
                }
                let Some(p) = self.pending.get(&id) else { return };
                if p.target != Target::Remote(from) {
                    return; // an answer from a member given up on
                }
                let partition = p.partition;
                match leader {
                    Some(l) => {
                        self.leaders.insert(partition, l);
                    }
                    None => {
                        self.leaders.remove(&partition);
                    }
                }
                if let Some(partition) = self.finish(id, result) {
                    self.pump(ctx, partition);
                }
            }
        }
    }
}

impl ComponentDefinition for Overlay {}

impl Provide<KvPort> for Overlay {
    fn handle(&mut self, ctx: &mut Context<Self>, request: KvRequest) {
        match &request.op {
            Op::Get { .. } => self.stats.gets += 1,
            Op::Set { .. } => self.stats.sets += 1,
            Op::Del { .. } => self.stats.dels += 1,
            Op::Cas { .. } => self.stats.cases += 1,
            // The string and keyspace commands are not counted apart (yet).
            _ => {}
        }
        self.accept(ctx, Origin::Client(request.id), request.op);
    }
}

impl Provide<OverlayControl> for Overlay {
    fn handle(&mut self, ctx: &mut Context<Self>, request: OverlayRequest) {
        match request {
            OverlayRequest::Install { table, cluster_name, cluster_id } => {
                if self.table.is_some() {
                    return;
                }
                for node in table.nodes() {
                    if node != self.config.me {
                        self.fd.trigger(FdRequest::Monitor(node));
                    }
                }
                self.table = Some(table);
                self.cluster = Some((cluster_name, cluster_id));
                let waiting: Vec<u64> = self
                    .pending
                    .iter()
                    .filter(|(_, p)| p.target == Target::Nowhere)
                    .map(|(id, _)| *id)
                    .collect();
                for id in waiting {
                    self.route(ctx, id);
                }
            }
            OverlayRequest::Info(request) => {
                // A requester killed meanwhile simply gets nothing.
                request.reply(self.info());
            }
        }
    }
}

impl Require<KvPort> for Overlay {
    fn handle(&mut self, _ctx: &mut Context<Self>, reply: KvReply) {
        if self.pending.get(&reply.id).is_some_and(|p| p.target == Target::Local) {
            self.finish(reply.id, reply.result);
        }
    }
}

impl Require<ReplicaStatusPort> for Overlay {
    fn handle(&mut self, _ctx: &mut Context<Self>, status: ReplicaStatus) {
        let partition = status.partition;
        match status.status {
            ZabStatus::Leading { .. } => {
                self.leaders.insert(partition, self.config.me);
            }
            ZabStatus::Following { leader, .. } => {
                self.leaders.insert(partition, leader);
            }
            ZabStatus::Looking => {
                self.leaders.remove(&partition);
            }
        }
        self.local_status.insert(partition, status);
    }
}

impl Require<Network> for Overlay {
    fn handle(&mut self, ctx: &mut Context<Self>, event: NetEvent) {
        match event {
            NetEvent::Deliver(m) => match m.decode::<OverlayMsg>() {
                Ok(msg) => self.on_message(ctx, m.src, msg),
                Err(e) => log::warn!("overlay: undecodable message from {}: {e}", m.src),
            },
            NetEvent::SessionDown(node) => self.member_lost(ctx, node, true),
            NetEvent::SessionUp(_) => {}
            // Only that message was lost (e.g. a value too large for a frame), and the event
            // does not say which request it carried: the request waits for its deadline.
            NetEvent::SendFailed { to, error, .. } => {
                log::error!("overlay: message to {to} not sent: {error}")
            }
        }
    }
}

impl Require<FailureDetectorPort> for Overlay {
    fn handle(&mut self, ctx: &mut Context<Self>, event: FdEvent) {
        match event {
            FdEvent::Suspect(node) => {
                let since = ctx.now();
                self.suspected.insert(node, since);
                self.member_lost(ctx, node, false);
                // If the suspicion lasts, the writes waiting behind those at `node` may go on.
                ctx.schedule_once(self.config.abandon_after, move |o: &mut Overlay, ctx| {
                    if o.suspected.get(&node) == Some(&since) {
                        let partitions: Vec<PartitionId> = o.writes.keys().copied().collect();
                        for partition in partitions {
                            o.pump(ctx, partition);
                        }
                    }
                });
            }
            FdEvent::Restore(node) => {
                self.suspected.remove(&node);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kompics_core::{connect, Simulation};

    use super::*;

    /// Asks the overlay for its info `asks` times when it starts; records the answers.
    struct Asker {
        control: RequiredPort<OverlayControl>,
        asks: usize,
        answers: Vec<OverlayInfo>,
    }

    impl ComponentDefinition for Asker {
        fn on_start(&mut self, _ctx: &mut Context<Self>) {
            for _ in 0..self.asks {
                self.control.request(InfoQuery);
            }
        }
    }

    impl Require<OverlayControl> for Asker {
        fn handle(&mut self, _ctx: &mut Context<Self>, info: OverlayInfo) {
            self.answers.push(info);
        }
    }

    fn addr(i: u8) -> NodeAddr {
        NodeAddr(([10, 0, 0, i], 5000).into())
    }

    /// Stands in for the network: keeps what the overlay sends; the test delivers messages.
    struct FakeNet {
        net: ProvidedPort<Network>,
        sent: Vec<NetMessage>,
    }

    impl ComponentDefinition for FakeNet {}

    impl Provide<Network> for FakeNet {
        fn handle(&mut self, _ctx: &mut Context<Self>, message: NetMessage) {
            self.sent.push(message);
        }
    }

    /// A front end: sends requests, keeps the replies.
    struct FakeClient {
        kv: RequiredPort<KvPort>,
        replies: Vec<KvReply>,
    }

    impl ComponentDefinition for FakeClient {}

    impl Require<KvPort> for FakeClient {
        fn handle(&mut self, _ctx: &mut Context<Self>, reply: KvReply) {
            self.replies.push(reply);
        }
    }

    /// Issue 13: request ids restart in every process, so a late reply meant for the node's
    /// previous incarnation must not answer the new request that reuses its id.
    #[test]
    fn a_reply_for_a_previous_incarnation_does_not_answer_a_new_request() {
        let sim = Simulation::new(7);
        let me = addr(1);
        let mut config = OverlayConfig::new(me);
        config.incarnation = Incarnation(2);
        let overlay = sim.create(move |s| Overlay::new(s, config.clone()));
        let net = sim.create(|s| FakeNet { net: s.provided(), sent: Vec::new() });
        let client = sim.create(|s| FakeClient { kv: s.required(), replies: Vec::new() });
        connect(&net.provided::<Network>(), &overlay.required::<Network>());
        connect(&overlay.provided::<KvPort>(), &client.required::<KvPort>());
        overlay.start();
        net.start();
        client.start();
        // A table in which this node is no member: every request is forwarded.
        let members = [addr(2), addr(3), addr(4)];
        let table = Arc::new(LookupTable::build(&members, 1, 3).unwrap());
        let install = OverlayRequest::Install { table, cluster_name: "c".into(), cluster_id: 1 };
        let node = sim.create(|s| Asker { control: s.required(), asks: 0, answers: Vec::new() });
        connect(&overlay.provided::<OverlayControl>(), &node.required::<OverlayControl>());
        node.start();
        node.on_definition(|n| n.control.trigger(install));
        let key = b"k".to_vec();
        client.on_definition(|c| c.kv.trigger(KvRequest { id: 70, op: Op::Get { key } }));
        sim.run_until_quiescent(Duration::from_secs(1));

        let sent = net.on_definition(|n| n.sent.clone()).unwrap();
        let [forward] = &sent[..] else { panic!("one forward expected: {sent:?}") };
        let OverlayMsg::Forward { id, incarnation, .. } = forward.decode().unwrap() else {
            panic!("not a forward")
        };
        assert_eq!(incarnation, Incarnation(2), "the request carries the incarnation");
        let reply = |incarnation, value: &[u8]| {
            let result = Ok(OpResult::Value(Some(value.to_vec())));
            let msg = OverlayMsg::Reply { id, incarnation, result, leader: None };
            NetEvent::Deliver(NetMessage::encode(forward.dst, me, OVERLAY_ROUTE, &msg).unwrap())
        };
        // The previous process's request `id` got this answer late: dropped.
        net.on_definition(|n| n.net.trigger(reply(Incarnation(1), b"stale")));
        sim.run_until_quiescent(Duration::from_secs(1));
        assert_eq!(client.on_definition(|c| c.replies.len()), Some(0));
        assert_eq!(overlay.on_definition(|o| o.pending_count()), Some(1));
        // The answer for this incarnation is the one the client gets.
        net.on_definition(|n| n.net.trigger(reply(Incarnation(2), b"fresh")));
        sim.run_until_quiescent(Duration::from_secs(1));
        let replies = client.on_definition(|c| c.replies.clone()).unwrap();
        let [KvReply { id: 70, result: Ok(OpResult::Value(Some(value))) }] = &replies[..] else {
            panic!("{replies:?}")
        };
        assert_eq!(value, b"fresh");
    }

    /// Stands in for the failure detector: the test triggers its verdicts.
    struct FakeFd {
        fd: ProvidedPort<FailureDetectorPort>,
    }

    impl ComponentDefinition for FakeFd {}

    impl Provide<FailureDetectorPort> for FakeFd {
        fn handle(&mut self, _ctx: &mut Context<Self>, _request: FdRequest) {}
    }

    /// What a write-forwarding overlay test drives: the overlay of `addr(1)`, which is no member
    /// of the one partition (members 2, 3, 4), its network, detector and client.
    struct Forwarding {
        sim: Simulation,
        net: kompics_core::Component<FakeNet>,
        fd: kompics_core::Component<FakeFd>,
        client: kompics_core::Component<FakeClient>,
    }

    impl Forwarding {
        fn new() -> Forwarding {
            let sim = Simulation::new(11);
            let overlay = sim.create(move |s| Overlay::new(s, OverlayConfig::new(addr(1))));
            let net = sim.create(|s| FakeNet { net: s.provided(), sent: Vec::new() });
            let fd = sim.create(|s| FakeFd { fd: s.provided() });
            let client = sim.create(|s| FakeClient { kv: s.required(), replies: Vec::new() });
            let node = sim.create(|s| Asker { control: s.required(), asks: 0, answers: vec![] });
            connect(&net.provided::<Network>(), &overlay.required::<Network>());
            connect(&fd.provided::<FailureDetectorPort>(), &overlay.required());
            connect(&overlay.provided::<KvPort>(), &client.required::<KvPort>());
            connect(&overlay.provided::<OverlayControl>(), &node.required::<OverlayControl>());
            kompics_core::start_all(&[&overlay, &net, &fd, &client, &node]);
            let members = [addr(2), addr(3), addr(4)];
            let table = Arc::new(LookupTable::build(&members, 1, 3).unwrap());
            let install =
                OverlayRequest::Install { table, cluster_name: "c".into(), cluster_id: 1 };
            node.on_definition(|n| n.control.trigger(install));
            sim.run_for(Duration::from_millis(10));
            Forwarding { sim, net, fd, client }
        }

        fn set(&self, id: u64, value: &[u8]) {
            let op = Op::Set { key: b"k".to_vec(), value: value.to_vec() };
            self.client.on_definition(|c| c.kv.trigger(KvRequest { id, op }));
        }

        /// The forwards sent so far: (member, overlay's request id).
        fn forwards(&self) -> Vec<(NodeAddr, u64)> {
            let sent = self.net.on_definition(|n| n.sent.clone()).unwrap();
            sent.iter()
                .map(|m| match m.decode().unwrap() {
                    OverlayMsg::Forward { id, .. } => (m.dst, id),
                    other => panic!("not a forward: {other:?}"),
                })
                .collect()
        }

        fn replies(&self) -> Vec<KvReply> {
            self.client.on_definition(|c| c.replies.clone()).unwrap()
        }

        fn verdict(&self, event: FdEvent) {
            self.fd.on_definition(|f| f.fd.trigger(event));
        }

        fn answer(&self, from: NodeAddr, id: u64) {
            let result = Ok(OpResult::Stored);
            let msg =
                OverlayMsg::Reply { id, incarnation: Incarnation::default(), result, leader: None };
            let message = NetMessage::encode(from, addr(1), OVERLAY_ROUTE, &msg).unwrap();
            self.net.on_definition(|n| n.net.trigger(NetEvent::Deliver(message)));
        }
    }

    /// A member suspected for a moment (a false suspicion: its heartbeats queued behind a
    /// large transfer) keeps the writes in flight at it: they are answered normally, and the
    /// writes queued behind them go on after, in order.
    #[test]
    fn a_brief_suspicion_does_not_give_up_the_writes_in_flight() {
        let f = Forwarding::new();
        f.set(1, b"a");
        f.sim.run_for(Duration::from_millis(10));
        let [(member, first)] = f.forwards()[..] else { panic!("{:?}", f.forwards()) };
        f.verdict(FdEvent::Suspect(member));
        f.set(2, b"b");
        f.sim.run_for(Duration::from_millis(500));
        assert!(f.replies().is_empty(), "nothing is given up within the grace");
        assert_eq!(f.forwards().len(), 1, "the second write waits behind the first");
        f.verdict(FdEvent::Restore(member));
        f.answer(member, first);
        f.sim.run_for(Duration::from_millis(10));
        let replies = f.replies();
        assert!(matches!(replies[..], [KvReply { id: 1, result: Ok(OpResult::Stored) }]));
        let forwards = f.forwards();
        assert_eq!(forwards.len(), 2, "the second write goes once the first is answered");
        // Past the grace, nothing more happens: the restored member was never given up.
        f.sim.run_for(Duration::from_secs(2));
        assert_eq!(f.replies().len(), 1);
    }

    /// A member that stays suspected for `abandon_after` is given up: its writes in flight are
    /// answered as possibly done, and the writes queued behind go to another member.
    #[test]
    fn a_lasting_suspicion_gives_up_the_writes_in_flight_after_the_grace() {
        let f = Forwarding::new();
        f.set(1, b"a");
        f.sim.run_for(Duration::from_millis(10));
        let [(member, _)] = f.forwards()[..] else { panic!("{:?}", f.forwards()) };
        f.verdict(FdEvent::Suspect(member));
        f.set(2, b"b");
        f.sim.run_for(Duration::from_millis(900));
        assert!(f.replies().is_empty());
        f.sim.run_for(Duration::from_millis(200));
        let replies = f.replies();
        let partition = PartitionId(0);
        assert!(
            matches!(
                replies[..],
                [KvReply { id: 1, result: Err(KvError::OutcomeUnknown { partition: p }) }]
                    if p == partition
            ),
            "{replies:?}"
        );
        let forwards = f.forwards();
        assert_eq!(forwards.len(), 2, "{forwards:?}");
        assert_ne!(forwards[1].0, member, "the second write goes to another member");
    }

    #[test]
    fn info_is_answered_to_its_asker_alone() {
        let sim = Simulation::new(7);
        let me = addr(1);
        let overlay = sim.create(move |s| Overlay::new(s, OverlayConfig::new(me)));
        // Like a front end and the node: both require the control port; only one asks.
        let asker = sim.create(|s| Asker { control: s.required(), asks: 2, answers: Vec::new() });
        let bystander =
            sim.create(|s| Asker { control: s.required(), asks: 0, answers: Vec::new() });
        for c in [&asker, &bystander] {
            connect(&overlay.provided::<OverlayControl>(), &c.required::<OverlayControl>());
        }
        overlay.start();
        asker.start();
        bystander.start();
        sim.run_until_quiescent(Duration::from_secs(10));
        let answers = asker.on_definition(|a| a.answers.clone()).unwrap();
        assert_eq!(answers.len(), 2, "one answer per question");
        assert!(answers.iter().all(|i| i.me == me && i.cluster.is_none()));
        assert_eq!(bystander.on_definition(|a| a.answers.len()), Some(0), "nothing broadcast");
        // Code outside the runtime asks the same way.
        let mut pending = overlay.provided::<OverlayControl>().ask(InfoQuery);
        let info = sim.run_until_answered(&mut pending, Duration::from_secs(10)).unwrap();
        assert_eq!(info.me, me);
    }
}
