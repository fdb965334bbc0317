//! [`ZabNode`]: the Zab state machine. Events in (`tick`, `step`, `propose`, storage
//! completions, session events), [`Action`]s out.

use std::collections::BTreeMap;
use std::fmt;

use super::action::{Action, EpochKind, ProposalFailure, Status};
use super::config::{Config, ConfigError};
use super::entry::{Entry, Snapshot};
use super::ids::{Epoch, PeerId, ProposalId, Zxid};
use super::log::Log;
use super::message::{Message, PeerState, Vote};
use super::quorum::Quorum;
use super::read::LocalReads;
use super::rng::SplitMix64;
use super::role::{FollowerStage, LeaderStage, Role, SnapshotMeta};

/// What a node found on its disk when it (re)started: the input of [`ZabNode::new`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The stored acceptedEpoch (0 if none).
    pub accepted_epoch: Epoch,
    /// The stored currentEpoch (0 if none).
    pub current_epoch: Epoch,
    /// The newest complete snapshot, if any. The application's state must have been restored
    /// from it (or be the initial state if there is none).
    pub snapshot: Option<Snapshot>,
    /// The log entries after the snapshot, in zxid order. A torn tail must already be cut off.
    pub log: Vec<Entry>,
}

/// Why [`ZabNode::new`] refused to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// acceptedEpoch is below currentEpoch: the epoch files are inconsistent (zab.md §6).
    EpochsInverted {
        /// The stored acceptedEpoch.
        accepted: Epoch,
        /// The stored currentEpoch.
        current: Epoch,
    },
    /// The log's zxids do not strictly increase after the snapshot.
    LogNotIncreasing {
        /// The previous zxid (or the snapshot's).
        previous: Zxid,
        /// The offending zxid.
        next: Zxid,
    },
    /// The log skips transactions: `next` cannot follow `previous` (or the snapshot) in a
    /// history. A record was lost, or the snapshot the log continues is missing; starting would
    /// deliver a state with a hole and could pass the hole on (ZOOKEEPER-2325, -4925).
    LogGap {
        /// The previous zxid (or the snapshot's).
        previous: Zxid,
        /// The first zxid after the hole.
        next: Zxid,
    },
    /// The log holds an entry of an epoch this node never accepted: the disk is inconsistent.
    LogAheadOfAcceptedEpoch {
        /// The entry's zxid.
        zxid: Zxid,
        /// The stored acceptedEpoch.
        accepted: Epoch,
    },
}

/// Why [`ZabNode::propose`] refused a proposal. On error nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// No established leader is reachable through this node now (it is electing or
    /// synchronizing). Retry after a `StatusChanged` to `Following` or `Leading`.
    NoLeader,
    /// Too many proposals are in flight through this node. Retry after some commit.
    TooManyOutstanding {
        /// The configured bound.
        outstanding_max: usize,
    },
    /// This leader used the last zxid counter of its epoch; it steps down once its proposals
    /// commit, and the next leader starts a new epoch.
    EpochExhausted,
    /// The payload is larger than [`Config::payload_bytes_max`]: it could never be replicated.
    TooLarge {
        /// The payload's size.
        len: usize,
        /// The configured bound.
        max: usize,
    },
}

/// Which protocol phase the node is in (finer than [`Status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Phase 0: leader election.
    Election,
    /// Phase 1: discovery (epoch agreement).
    Discovery,
    /// Phase 2: synchronization.
    Synchronization,
    /// Phase 3: broadcast.
    Broadcast,
}

/// One Zab participant as a deterministic state machine: no I/O, no clock, no threads.
///
/// Drive it by calling the input methods and then executing [`ZabNode::drain_actions`] in
/// order. The crate-level docs of [`crate::protocol`] describe the contract.
pub struct ZabNode {
    pub(super) config: Config,
    pub(super) quorum: Quorum,
    pub(super) rng: SplitMix64,
    /// Ticks since start.
    pub(super) now: u64,
    /// acceptedEpoch as last written (possibly not yet durable).
    pub(super) accepted_epoch: Epoch,
    /// currentEpoch as last written (possibly not yet durable).
    pub(super) current_epoch: Epoch,
    pub(super) accepted_epoch_durable: Epoch,
    pub(super) current_epoch_durable: Epoch,
    pub(super) log: Log,
    /// Highest zxid known committed.
    pub(super) committed: Zxid,
    /// Last zxid delivered to the application (or restored from the snapshot).
    pub(super) delivered: Zxid,
    /// Which the newest snapshot is and its size; its zxid is the log's base. A SNAP reads
    /// its state back from storage (`Action::ReadSnapshot`).
    pub(super) snapshot: Option<SnapshotMeta>,
    /// A `TakeSnapshot` whose completion has not arrived.
    pub(super) snapshot_pending: Option<Zxid>,
    pub(super) delivered_since_snapshot: u64,
    pub(super) snapshot_threshold: u64,
    /// Payload bytes delivered since the last snapshot was asked for, and the byte threshold.
    pub(super) delivered_bytes_since_snapshot: u64,
    pub(super) snapshot_bytes_threshold: u64,
    /// FLE's logical clock.
    pub(super) round: u64,
    /// The vote this node holds (while looking) or decided on (otherwise).
    pub(super) vote: Vote,
    pub(super) role: Role,
    pub(super) status: Status,
    pub(super) proposals: ProposalTracker,
    /// This node's read barriers, until they pass or fail.
    pub(super) reads: LocalReads,
    /// FOLLOWERINFO (acceptedEpoch, attempt) received while looking, replayed if this node
    /// becomes leader.
    pub(super) early_followers: BTreeMap<PeerId, (Epoch, u64)>,
    /// The highest acceptedEpoch heard of from any peer (a liveness hint for the next epoch).
    pub(super) epoch_hint: Epoch,
    /// Registrations made as a follower (the `attempt` of FOLLOWERINFO).
    pub(super) attempts: u64,
    /// The highest epoch this node established as leader (one leader role per epoch).
    pub(super) led_epoch_max: Option<Epoch>,
    pub(super) violations: u64,
    pub(super) last_violation: Option<String>,
    pub(super) actions: Vec<Action>,
}

/// Local proposals waiting for an outcome.
#[derive(Debug, Default)]
pub(super) struct ProposalTracker {
    next: u64,
    /// id → zxid once assigned.
    waiting: BTreeMap<ProposalId, Option<Zxid>>,
    by_zxid: BTreeMap<Zxid, ProposalId>,
}

impl ProposalTracker {
    pub(super) fn open(&mut self) -> ProposalId {
        self.next += 1;
        let id = ProposalId(self.next);
        self.waiting.insert(id, None);
        id
    }

    pub(super) fn assign(&mut self, id: ProposalId, zxid: Zxid) -> bool {
        match self.waiting.get_mut(&id) {
            Some(slot) => {
                *slot = Some(zxid);
                self.by_zxid.insert(zxid, id);
                true
            }
            None => false,
        }
    }

    pub(super) fn close(&mut self, id: ProposalId) -> bool {
        match self.waiting.remove(&id) {
            Some(zxid) => {
                if let Some(zxid) = zxid {
                    self.by_zxid.remove(&zxid);
                }
                true
            }
            None => false,
        }
    }

    pub(super) fn take_committed(&mut self, zxid: Zxid) -> Option<ProposalId> {
        let id = self.by_zxid.remove(&zxid)?;
        self.waiting.remove(&id);
        Some(id)
    }

    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    pub(super) fn drain(&mut self) -> Vec<ProposalId> {
        self.by_zxid.clear();
        std::mem::take(&mut self.waiting).into_keys().collect()
    }
}

impl ZabNode {
    /// A node from its configuration and what it recovered from disk. It starts looking and
    /// has its first election notifications ready in [`ZabNode::drain_actions`].
    pub fn new(config: Config, recovered: Recovered) -> Result<ZabNode, InitError> {
        ZabNode::recover(config, recovered).map(|(node, _)| node)
    }

    /// [`ZabNode::new`], handing the recovered snapshot back to the caller: the node keeps
    /// only which snapshot it is and its size (it reads the state back from storage when a
    /// learner needs it), so the driver can give the state to the application without a copy.
    pub fn recover(
        config: Config,
        mut recovered: Recovered,
    ) -> Result<(ZabNode, Option<Snapshot>), InitError> {
        let config = config.validate().map_err(InitError::Config)?;
        check_recovered(&recovered)?;
        let snapshot = recovered.snapshot.take();
        let meta = snapshot.as_ref().map(|snapshot| SnapshotMeta {
            zxid: snapshot.zxid,
            state_bytes: snapshot.state.len() as u64,
        });
        let base = meta.map_or(Zxid::ZERO, |meta| meta.zxid);
        let mut rng = SplitMix64::new(config.seed);
        let snapshot_threshold = next_snapshot_threshold(&mut rng, config.snapshot_entries_trigger);
        let snapshot_bytes_threshold =
            next_snapshot_threshold(&mut rng, config.snapshot_bytes_trigger);
        let id = config.id;
        let incarnation = config.incarnation;
        let mut node = ZabNode {
            quorum: Quorum::new(config.peers.iter().copied()),
            config,
            rng,
            now: 0,
            accepted_epoch: recovered.accepted_epoch,
            current_epoch: recovered.current_epoch,
            accepted_epoch_durable: recovered.accepted_epoch,
            current_epoch_durable: recovered.current_epoch,
            log: Log::recovered(base, recovered.log),
            committed: base,
            delivered: base,
            snapshot: meta,
            snapshot_pending: None,
            delivered_since_snapshot: 0,
            snapshot_threshold,
            delivered_bytes_since_snapshot: 0,
            snapshot_bytes_threshold,
            round: 0,
            vote: Vote { leader: id, zxid: Zxid::ZERO, epoch: Epoch(0) },
            role: Role::Looking(super::election::Election::new(0, 1)),
            status: Status::Looking,
            proposals: ProposalTracker::default(),
            reads: LocalReads::default(),
            early_followers: BTreeMap::new(),
            epoch_hint: Epoch(0),
            attempts: incarnation,
            led_epoch_max: None,
            violations: 0,
            last_violation: None,
            actions: Vec::new(),
        };
        node.enter_looking();
        node.check_invariants();
        Ok((node, snapshot))
    }

    // ----- inputs -------------------------------------------------------------------------

    /// One tick of logical time: timeouts, heartbeats, notification resends.
    pub fn tick(&mut self) {
        self.flush_batch();
        self.now += 1;
        match &self.role {
            Role::Looking(_) => self.election_tick(),
            Role::Following(_) => self.follower_tick(),
            Role::Leading(_) => self.leader_tick(),
        }
        self.check_invariants();
    }

    /// A message `msg` from peer `from` arrived over their session.
    pub fn step(&mut self, from: PeerId, msg: Message) {
        self.flush_batch();
        if from == self.id() || !self.quorum.is_voter(from) {
            log::warn!("{}: ignoring {} from non-peer {from}", self.id(), msg.kind());
            return;
        }
        if self.is_stale_for_registration(from, &msg) {
            log::debug!("{}: ignoring {} from an older registration", self.id(), msg.kind());
            return;
        }
        if !matches!(msg, Message::Notification(_)) {
            // Election traffic says nothing about the health of a session.
            self.heard_from(from);
        }
        match msg {
            Message::Notification(n) => self.on_notification(from, n),
            Message::FollowerInfo { accepted_epoch, attempt } => {
                self.on_follower_info(from, accepted_epoch, attempt)
            }
            Message::LeaderInfo { epoch, attempt } => self.on_leader_info(from, epoch, attempt),
            Message::AckEpoch { epoch, current_epoch, last_zxid, fresh } => {
                self.on_ack_epoch(from, epoch, current_epoch, last_zxid, fresh)
            }
            Message::SyncStart(mode) => self.on_sync_start(from, mode),
            Message::SnapChunk { bytes } => self.on_snap_chunk(from, bytes),
            Message::SyncEntries { entries } => self.on_sync_entries(from, entries),
            Message::NewLeader { epoch } => self.on_new_leader(from, epoch),
            Message::AckNewLeader { epoch } => self.on_ack_new_leader(from, epoch),
            Message::UpToDate { committed } => self.on_up_to_date(from, committed),
            Message::Proposal { entries } => self.on_proposal(from, entries),
            Message::Ack { zxid } => self.on_ack(from, zxid),
            Message::Commit { zxid } => self.on_commit(from, zxid),
            Message::Forward { id, payload } => self.on_forward(from, id, payload),
            Message::ForwardResult { id, result } => self.on_forward_result(from, id, result),
            Message::ReadRequest { id } => self.on_read_request(from, id),
            Message::ReadResult { id, result } => self.on_read_result(from, id, result),
            Message::ReadPing { epoch, round } => self.on_read_ping(from, epoch, round),
            Message::ReadPong { epoch, round } => self.on_read_pong(from, epoch, round),
            Message::SyncAck { received } => self.on_sync_ack(from, received),
            Message::Ping => self.on_ping(from),
            Message::Pong => {}
        }
        self.check_invariants();
    }

    /// Proposes a transaction. On a leader it gets a zxid at once (`ProposalAssigned`); on a
    /// follower it is forwarded to the leader. The outcome arrives as `ProposalCommitted` or
    /// `ProposalFailed`. Proposals made before the next `drain_actions` (or other input) go
    /// out as one batch.
    pub fn propose(&mut self, payload: Vec<u8>) -> Result<ProposalId, ProposeError> {
        let result = self.propose_inner(payload);
        self.check_invariants();
        result
    }

    /// The driver made every log write up to the one ending with `up_to` durable.
    pub fn persisted(&mut self, up_to: Zxid) {
        self.flush_batch();
        if !self.log.completed(up_to) {
            log::debug!("{}: completion for {up_to} matches no pending write", self.id());
            return;
        }
        match &self.role {
            Role::Looking(_) => {}
            Role::Following(_) => self.follower_persisted(),
            Role::Leading(_) => self.leader_persisted(),
        }
        self.deliver_committed();
        self.check_invariants();
    }

    /// The driver made `PersistEpoch { kind, epoch }` durable.
    pub fn epoch_persisted(&mut self, kind: EpochKind, epoch: Epoch) {
        self.flush_batch();
        match kind {
            EpochKind::Accepted => {
                self.accepted_epoch_durable = self.accepted_epoch_durable.max(epoch)
            }
            EpochKind::Current => {
                self.current_epoch_durable = self.current_epoch_durable.max(epoch)
            }
        }
        match &self.role {
            Role::Looking(_) => {}
            Role::Following(_) => self.follower_epoch_persisted(),
            Role::Leading(_) => self.leader_epoch_persisted(),
        }
        self.check_invariants();
    }

    /// The driver stored durably the snapshot asked for by `TakeSnapshot { zxid }`, whose state
    /// is `state_bytes` long. The node forgets its log up to `zxid`; it synchronizes
    /// far-behind followers from this snapshot, reading it back from storage
    /// (`Action::ReadSnapshot`).
    ///
    /// The answer may come late, after any number of further inputs and deliveries (the
    /// application captures its state at the `TakeSnapshot` and serializes it in the
    /// background). An answer that is no longer wanted is ignored and changes nothing: one for a
    /// zxid the node does not wait for (an `InstallSnapshot` from a leader cancelled the
    /// request, or a newer request replaced it), or one whose zxid is not ahead of the log's
    /// base any more (a snapshot at or after it is already in place). Trimming only an
    /// answer for the pending zxid keeps the in-memory log and the one on disk in step: the
    /// driver writes the snapshot only while it is pending, and reports it once it is durable.
    pub fn snapshot_taken(&mut self, zxid: Zxid, state_bytes: u64) {
        self.flush_batch();
        if self.snapshot_pending != Some(zxid) {
            log::debug!("{}: ignoring stale snapshot completion at {zxid}", self.id());
            return;
        }
        self.snapshot_pending = None;
        if zxid <= self.log.base() || zxid > self.log.durable_last() {
            // Superseded (or, defensively, not backed by the durable log): a later request will
            // come once enough is delivered again.
            log::debug!(
                "{}: ignoring snapshot at {zxid}: log base {}, durable {}",
                self.id(),
                self.log.base(),
                self.log.durable_last()
            );
            return;
        }
        self.log.trim(zxid);
        self.snapshot = Some(SnapshotMeta { zxid, state_bytes });
        self.check_invariants();
    }

    /// The answer to `Action::ReadLog { peer, after, .. }`: the entries read back from the
    /// durable log (none if they could not be read). They continue `peer`'s synchronization.
    pub fn log_read(&mut self, peer: PeerId, after: Zxid, entries: Vec<Entry>) {
        self.flush_batch();
        self.continue_sync_with(peer, after, entries);
        self.check_invariants();
    }

    /// The answer to `Action::ReadSnapshot { peer, zxid, offset, .. }`: the snapshot's bytes
    /// from `offset` on (none if they could not be read). They continue `peer`'s SNAP.
    pub fn snapshot_read(&mut self, peer: PeerId, zxid: Zxid, offset: u64, bytes: Vec<u8>) {
        self.flush_batch();
        self.continue_snap_with(peer, zxid, offset, bytes);
        self.check_invariants();
    }

    /// Payload bytes of delivered entries held in memory (bounded by `log_cache_bytes`).
    pub fn cached_log_bytes(&self) -> usize {
        self.log.cached_delivered_bytes()
    }

    /// The failure detector suspects `peer`. A follower abandons a suspected leader once it
    /// has also heard nothing from it for half the session timeout (at once if that is already
    /// so, else at the tick that finds it so, unless the detector restores the leader first):
    /// sooner than a silent leader that is not suspected, later than the detector alone.
    ///
    /// The detector's heartbeats share the session with everything else, so a leader streaming
    /// a large transfer to us is suspected while its proposals keep arriving: those prove it is
    /// alive, and leaving it would fail every write in flight for nothing. Half the session
    /// timeout leaves room for a busy follower that handles a burst of ticks before the
    /// messages queued behind them.
    pub fn peer_suspected(&mut self, peer: PeerId) {
        self.flush_batch();
        if let Role::Following(follower) = &mut self.role {
            if follower.leader == peer {
                follower.leader_suspected = true;
                self.follower_tick();
            }
        }
        self.check_invariants();
    }

    /// The failure detector trusts `peer` again. A looking node tells it its vote.
    pub fn peer_restored(&mut self, peer: PeerId) {
        self.flush_batch();
        if let Role::Following(follower) = &mut self.role {
            if follower.leader == peer {
                follower.leader_suspected = false;
            }
        }
        if peer != self.id() && self.quorum.is_voter(peer) && matches!(self.role, Role::Looking(_))
        {
            let notification = self.notification();
            self.send(peer, Message::Notification(notification));
        }
        self.check_invariants();
    }

    /// The session with `peer` broke: messages in flight on it may be lost. A follower of
    /// `peer` returns to election; a leader forgets `peer` until it registers again.
    pub fn session_ended(&mut self, peer: PeerId) {
        self.flush_batch();
        match &mut self.role {
            Role::Looking(_) => {
                self.early_followers.remove(&peer);
            }
            Role::Following(follower) => {
                if follower.leader == peer {
                    self.become_looking("session with leader ended");
                }
            }
            Role::Leading(leader) => {
                leader.learners.remove(&peer);
            }
        }
        self.check_invariants();
    }

    /// Takes the actions produced so far, oldest first. Execute them in order.
    pub fn drain_actions(&mut self) -> Vec<Action> {
        self.flush_batch();
        std::mem::take(&mut self.actions)
    }

    // ----- queries ------------------------------------------------------------------------

    /// This node's id.
    pub fn id(&self) -> PeerId {
        self.config.id
    }

    /// The node's role as the application sees it.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The protocol phase.
    pub fn phase(&self) -> Phase {
        match &self.role {
            Role::Looking(_) => Phase::Election,
            Role::Following(follower) => match follower.stage {
                FollowerStage::AwaitingLeaderInfo
                | FollowerStage::PersistingAcceptedEpoch { .. }
                | FollowerStage::AwaitingSync => Phase::Discovery,
                FollowerStage::Broadcast => Phase::Broadcast,
                _ => Phase::Synchronization,
            },
            Role::Leading(leader) => match leader.stage {
                LeaderStage::CollectingFollowers
                | LeaderStage::PersistingAcceptedEpoch
                | LeaderStage::CollectingEpochAcks => Phase::Discovery,
                LeaderStage::Broadcast => Phase::Broadcast,
                _ => Phase::Synchronization,
            },
        }
    }

    /// The leader this node follows or is, once the election decided.
    pub fn leader(&self) -> Option<PeerId> {
        match &self.role {
            Role::Looking(_) => None,
            Role::Following(follower) => Some(follower.leader),
            Role::Leading(_) => Some(self.id()),
        }
    }

    /// The last zxid in the log (durable or not).
    pub fn last_zxid(&self) -> Zxid {
        self.log.last()
    }

    /// The last zxid known to be durable.
    pub fn durable_zxid(&self) -> Zxid {
        self.log.durable_last()
    }

    /// The highest zxid known committed.
    pub fn committed_zxid(&self) -> Zxid {
        self.committed
    }

    /// The last zxid delivered (or restored from a snapshot).
    pub fn delivered_zxid(&self) -> Zxid {
        self.delivered
    }

    /// acceptedEpoch (as last written).
    pub fn accepted_epoch(&self) -> Epoch {
        self.accepted_epoch
    }

    /// currentEpoch (as last written).
    pub fn current_epoch(&self) -> Epoch {
        self.current_epoch
    }

    /// The vote held or decided on.
    pub fn vote(&self) -> Vote {
        self.vote
    }

    /// The election round (FLE's logical clock).
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Ticks since start.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Messages that broke the protocol (a peer or session bug); each made the node re-elect.
    /// Always 0 between correct peers over FIFO sessions: tests assert it.
    pub fn protocol_violations(&self) -> u64 {
        self.violations
    }

    // ----- shared helpers -------------------------------------------------------------------

    pub(super) fn send(&mut self, to: PeerId, msg: Message) {
        self.actions.push(Action::Send { to, msg });
    }

    pub(super) fn emit(&mut self, action: Action) {
        self.actions.push(action);
    }

    pub(super) fn peer_state(&self) -> PeerState {
        match &self.role {
            Role::Looking(_) => PeerState::Looking,
            Role::Following(_) => PeerState::Following,
            Role::Leading(_) => PeerState::Leading,
        }
    }

    pub(super) fn set_status(&mut self, status: Status) {
        if self.status != status {
            self.status = status;
            self.emit(Action::StatusChanged(status));
        }
    }

    /// Writes acceptedEpoch (in memory now, durable once `epoch_persisted` says so).
    pub(super) fn write_accepted_epoch(&mut self, epoch: Epoch) {
        assert!(epoch >= self.accepted_epoch, "acceptedEpoch would decrease");
        self.accepted_epoch = epoch;
        self.emit(Action::PersistEpoch { kind: EpochKind::Accepted, epoch });
    }

    /// Writes currentEpoch (in memory now, durable once `epoch_persisted` says so).
    pub(super) fn write_current_epoch(&mut self, epoch: Epoch) {
        assert!(epoch >= self.current_epoch, "currentEpoch would decrease");
        assert!(epoch <= self.accepted_epoch, "currentEpoch above acceptedEpoch");
        self.current_epoch = epoch;
        self.emit(Action::PersistEpoch { kind: EpochKind::Current, epoch });
    }

    /// Leaves the current role (failing in-flight proposals) and starts an election.
    pub(super) fn become_looking(&mut self, reason: &str) {
        log::debug!("{}: back to election: {reason}", self.id());
        self.log.discard_unwritten();
        for id in self.proposals.drain() {
            self.emit(Action::ProposalFailed { id, reason: ProposalFailure::OutcomeUnknown });
        }
        self.fail_reads();
        self.set_status(Status::Looking);
        self.enter_looking();
    }

    /// A message broke the protocol (zab.md §2 "ShouldNotBeTriggered"): count it. A leader
    /// drops the learner that sent it (which registers again after its timeout) and keeps
    /// leading: one misbehaving peer must not depose it. Anyone else re-elects.
    pub(super) fn violation(&mut self, from: PeerId, what: &str) {
        log::warn!("{}: protocol violation from {from}: {what}", self.id());
        self.violations += 1;
        self.last_violation = Some(format!("{what} (from {from})"));
        match &mut self.role {
            Role::Leading(leader) => {
                leader.learners.remove(&from);
                leader.newleader_acks.remove(&from);
            }
            _ => self.become_looking("protocol violation"),
        }
    }

    /// Raises the commit point and delivers what became deliverable.
    pub(super) fn commit_to(&mut self, zxid: Zxid) {
        if zxid > self.committed {
            self.committed = zxid;
        }
        self.deliver_committed();
    }

    /// Delivers, in zxid order, every entry that is both committed and durable here.
    pub(super) fn deliver_committed(&mut self) {
        let limit = self.committed.min(self.log.durable_last());
        while self.delivered < limit {
            let entry = self
                .log
                .first_after(self.delivered)
                .cloned()
                .expect("a committed durable entry is in the log");
            self.delivered = entry.zxid;
            self.delivered_since_snapshot += 1;
            self.delivered_bytes_since_snapshot += entry.payload.len() as u64;
            let zxid = entry.zxid;
            self.emit(Action::Deliver { zxid, payload: entry.payload });
            if let Some(id) = self.proposals.take_committed(zxid) {
                self.emit(Action::ProposalCommitted { id, zxid });
            }
        }
        self.log.delivered_through(self.delivered, self.config.log_cache_bytes);
        self.release_reads();
        self.maybe_take_snapshot();
    }

    /// Asks for a snapshot once enough entries, or enough payload bytes, were delivered since
    /// the last one (whichever comes first; each trigger 0 is off).
    fn maybe_take_snapshot(&mut self) {
        let by_entries = self.config.snapshot_entries_trigger != 0
            && self.delivered_since_snapshot >= self.snapshot_threshold;
        let by_bytes = self.config.snapshot_bytes_trigger != 0
            && self.delivered_bytes_since_snapshot >= self.snapshot_bytes_threshold;
        if !(by_entries || by_bytes)
            || self.snapshot_pending.is_some()
            || self.delivered <= self.log.base()
        {
            return;
        }
        self.snapshot_pending = Some(self.delivered);
        self.delivered_since_snapshot = 0;
        self.delivered_bytes_since_snapshot = 0;
        self.snapshot_threshold =
            next_snapshot_threshold(&mut self.rng, self.config.snapshot_entries_trigger);
        self.snapshot_bytes_threshold =
            next_snapshot_threshold(&mut self.rng, self.config.snapshot_bytes_trigger);
        self.emit(Action::TakeSnapshot { zxid: self.delivered });
    }

    /// Until LEADERINFO answers our current registration, whatever our leader sends belongs to
    /// an older one (FIFO: everything for this registration comes after that LEADERINFO).
    fn is_stale_for_registration(&self, from: PeerId, msg: &Message) -> bool {
        let Role::Following(follower) = &self.role else { return false };
        if follower.leader != from || follower.stage != FollowerStage::AwaitingLeaderInfo {
            return false;
        }
        match msg {
            Message::LeaderInfo { attempt, .. } => *attempt != follower.attempt,
            Message::Notification(_) | Message::Ping => false,
            _ => true,
        }
    }

    fn heard_from(&mut self, from: PeerId) {
        let now = self.now;
        match &mut self.role {
            Role::Following(follower) if follower.leader == from => follower.last_heard = now,
            Role::Leading(leader) => {
                if let Some(learner) = leader.learners.get_mut(&from) {
                    learner.last_heard = now;
                }
            }
            _ => {}
        }
    }

    /// Checks the invariants that must hold after every input; a failure is a bug here.
    pub(super) fn check_invariants(&self) {
        assert!(
            self.accepted_epoch >= self.current_epoch,
            "{}: acceptedEpoch {} < currentEpoch {}",
            self.id(),
            self.accepted_epoch,
            self.current_epoch
        );
        assert!(self.accepted_epoch_durable <= self.accepted_epoch);
        assert!(self.current_epoch_durable <= self.current_epoch);
        assert!(self.delivered <= self.committed, "{}: delivered beyond committed", self.id());
        assert!(
            self.committed <= self.log.last(),
            "{}: committed {} beyond logged {}",
            self.id(),
            self.committed,
            self.log.last()
        );
        assert!(self.delivered >= self.log.base(), "{}: delivered below the snapshot", self.id());
        // This one (a binary search) and the log's scan of its tail run after every event:
        // checked in debug builds (every test) but not in release, where they cost a few
        // percent of a busy node's CPU.
        debug_assert!(
            self.delivered <= self.log.durable_last(),
            "{}: delivered {} beyond durable {}",
            self.id(),
            self.delivered,
            self.log.durable_last()
        );
        assert_eq!(
            self.snapshot.map_or(Zxid::ZERO, |snapshot| snapshot.zxid),
            self.log.base(),
            "{}: snapshot and log base disagree",
            self.id()
        );
        assert!(
            self.log.last().epoch <= self.accepted_epoch,
            "{}: logged an epoch never accepted",
            self.id()
        );
        if let Role::Leading(leader) = &self.role {
            if leader.stage == LeaderStage::Broadcast {
                assert_eq!(leader.epoch, self.current_epoch, "{}: leads a stale epoch", self.id());
                assert_eq!(
                    self.led_epoch_max,
                    Some(leader.epoch),
                    "{}: two leader roles",
                    self.id()
                );
                assert_eq!(self.status, Status::Leading { epoch: leader.epoch });
            }
        }
        if matches!(self.role, Role::Looking(_)) {
            assert_eq!(self.reads.len(), 0, "{}: read barriers outlive the role", self.id());
        }
        if cfg!(debug_assertions) {
            self.log.check();
        }
    }
}

fn check_recovered(recovered: &Recovered) -> Result<(), InitError> {
    if recovered.accepted_epoch < recovered.current_epoch {
        return Err(InitError::EpochsInverted {
            accepted: recovered.accepted_epoch,
            current: recovered.current_epoch,
        });
    }
    let mut previous = recovered.snapshot.as_ref().map_or(Zxid::ZERO, |snapshot| snapshot.zxid);
    for entry in &recovered.log {
        if entry.zxid <= previous {
            return Err(InitError::LogNotIncreasing { previous, next: entry.zxid });
        }
        if !entry.zxid.follows(previous) {
            return Err(InitError::LogGap { previous, next: entry.zxid });
        }
        if entry.zxid.epoch > recovered.accepted_epoch {
            return Err(InitError::LogAheadOfAcceptedEpoch {
                zxid: entry.zxid,
                accepted: recovered.accepted_epoch,
            });
        }
        previous = entry.zxid;
    }
    Ok(())
}

/// Between half and all of the trigger, so that replicas do not snapshot in step.
fn next_snapshot_threshold(rng: &mut SplitMix64, trigger: u64) -> u64 {
    if trigger == 0 {
        return u64::MAX;
    }
    let half = trigger / 2;
    (trigger - half + rng.below_or_equal(half)).max(1)
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Config(error) => write!(f, "invalid config: {error}"),
            InitError::EpochsInverted { accepted, current } => {
                write!(f, "acceptedEpoch {accepted} is below currentEpoch {current}")
            }
            InitError::LogNotIncreasing { previous, next } => {
                write!(f, "log zxid {next} does not follow {previous}")
            }
            InitError::LogGap { previous, next } => {
                write!(f, "log skips from {previous} to {next}: transactions are missing")
            }
            InitError::LogAheadOfAcceptedEpoch { zxid, accepted } => {
                write!(f, "log entry {zxid} is from an epoch above acceptedEpoch {accepted}")
            }
        }
    }
}

impl std::error::Error for InitError {}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::NoLeader => write!(f, "no established leader is reachable"),
            ProposeError::TooManyOutstanding { outstanding_max } => {
                write!(f, "{outstanding_max} proposals already in flight")
            }
            ProposeError::EpochExhausted => write!(f, "the epoch's zxid counter is exhausted"),
            ProposeError::TooLarge { len, max } => {
                write!(f, "a payload of {len} bytes exceeds payload_bytes_max ({max})")
            }
        }
    }
}

impl std::error::Error for ProposeError {}

impl fmt::Debug for ZabNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZabNode")
            .field("id", &self.id())
            .field("phase", &self.phase())
            .field("status", &self.status)
            .field("accepted_epoch", &self.accepted_epoch)
            .field("current_epoch", &self.current_epoch)
            .field("last", &self.log.last())
            .field("durable", &self.log.durable_last())
            .field("committed", &self.committed)
            .field("delivered", &self.delivered)
            .field("round", &self.round)
            .field("vote", &self.vote)
            .field("violations", &self.violations)
            .field("last_violation", &self.last_violation)
            .finish()
    }
}
