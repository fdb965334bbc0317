//! Read barriers: linearizable reads without writing to the log.
//!
//! A read through the log costs a proposal, a write and a sync on a quorum, and a delivery on
//! every replica. A read barrier costs one round trip from the leader to a quorum, and nothing
//! on disk:
//!
//! 1. The barrier reaches the leader (from its own application, or from a follower in a
//!    READREQUEST). The leader notes its commit point `c` at that moment: every transaction
//!    whose commit anyone could have observed before the read was requested is at or below
//!    `c`, if this node is still the leader.
//! 2. The leader confirms that it is: it starts a round of READPINGs in its epoch after the
//!    barrier arrived (one round serves every barrier that arrived before it started), and
//!    waits for READPONGs from a quorum, itself included. A follower answers only while it
//!    follows this leader in this epoch. A newer epoch needs a quorum that left this one, and
//!    that quorum intersects the one that answered; so no transaction was committed in a newer
//!    epoch before the barrier arrived, and `c` covers every committed transaction.
//! 3. The reader serves the read once it has delivered through `c` (the leader at once, or
//!    once its own log is durable that far; a follower once the COMMITs, which the session
//!    carries before the READRESULT, are delivered).
//!
//! The state read may be newer than `c`: every transaction in it committed before the read
//! returns, so the read still falls between its request and its answer. A barrier fails
//! (`ReadFailed`, nothing read, retry) when the node leaves its role before it passes; a round
//! that lost its messages with a broken session is sent again with the next heartbeat.

use std::collections::{BTreeMap, BTreeSet};

use super::action::{Action, ProposalFailure};
use super::ids::{Epoch, PeerId, ReadId, Zxid};
use super::message::Message;
use super::node::{ProposeError, ZabNode};
use super::role::{FollowerStage, LeaderStage, LearnerStage, ReadRound, ReadWaiter, Reader, Role};

/// This node's own read barriers, until they pass or fail.
#[derive(Debug, Default)]
pub(super) struct LocalReads {
    next: u64,
    /// id → the read point, once the leader confirmed it.
    waiting: BTreeMap<ReadId, Option<Zxid>>,
}

impl LocalReads {
    fn open(&mut self) -> ReadId {
        self.next += 1;
        let id = ReadId(self.next);
        self.waiting.insert(id, None);
        id
    }

    /// How many barriers are waiting.
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }
}

impl ZabNode {
    /// Asks for a read barrier. The outcome is [`Action::ReadReady`]: the application's state
    /// at that point of the action sequence may be read, linearizably; or
    /// [`Action::ReadFailed`]: nothing happened, retry later. Nothing is written to any log.
    ///
    /// Errors, at once and with nothing changed: `NoLeader` when this node is not in the
    /// broadcast phase; `TooManyOutstanding` when `outstanding_proposals_max` barriers are
    /// already waiting here.
    pub fn read(&mut self) -> Result<ReadId, ProposeError> {
        self.flush_batch();
        let outstanding_max = self.config.outstanding_proposals_max;
        let result = match &self.role {
            Role::Leading(leader) if leader.stage == LeaderStage::Broadcast => Ok(None),
            Role::Following(follower) if follower.stage == FollowerStage::Broadcast => {
                Ok(Some(follower.leader))
            }
            _ => Err(ProposeError::NoLeader),
        }
        .and_then(|leader| {
            if self.reads.len() >= outstanding_max {
                return Err(ProposeError::TooManyOutstanding { outstanding_max });
            }
            let id = self.reads.open();
            match leader {
                // The leader confirms its own reads; a follower asks its leader.
                None => self.queue_read(Reader::Local(id), self.committed),
                Some(leader) => self.send(leader, Message::ReadRequest { id }),
            }
            Ok(id)
        });
        self.check_invariants();
        result
    }

    /// Adds a barrier to the next round (started at the next flush).
    fn queue_read(&mut self, reader: Reader, point: Zxid) {
        let Role::Leading(leader) = &mut self.role else { return };
        leader.reads.waiting.push(ReadWaiter { reader, point });
    }

    /// Starts a round for the barriers waiting, unless one is in flight (they wait for it to
    /// end: its pings left before they arrived, so its answers cannot confirm them).
    pub(super) fn start_read_round(&mut self) {
        let me = self.id();
        let Role::Leading(leader) = &mut self.role else { return };
        if leader.stage != LeaderStage::Broadcast
            || leader.reads.in_flight.is_some()
            || leader.reads.waiting.is_empty()
        {
            return;
        }
        leader.reads.round += 1;
        let round = leader.reads.round;
        let epoch = leader.epoch;
        let waiters = std::mem::take(&mut leader.reads.waiting);
        leader.reads.in_flight = Some(ReadRound { round, answered: BTreeSet::from([me]), waiters });
        for peer in leader.synced() {
            self.send(peer, Message::ReadPing { epoch, round });
        }
        // A group of one confirms at once.
        self.check_read_round();
    }

    /// Sends the round in flight again to synced learners that did not answer it (their
    /// session may have broken and been re-established since). Called with each heartbeat.
    pub(super) fn resend_read_round(&mut self) {
        let Role::Leading(leader) = &self.role else { return };
        let Some(round) = &leader.reads.in_flight else { return };
        let epoch = leader.epoch;
        let number = round.round;
        let silent: Vec<PeerId> =
            leader.synced().into_iter().filter(|peer| !round.answered.contains(peer)).collect();
        for peer in silent {
            self.send(peer, Message::ReadPing { epoch, round: number });
        }
    }

    /// If a quorum answered the round in flight, passes its barriers and starts the next round.
    fn check_read_round(&mut self) {
        let Role::Leading(leader) = &mut self.role else { return };
        let Some(round) = &leader.reads.in_flight else { return };
        let answered: Vec<PeerId> = round.answered.iter().copied().collect();
        if !self.quorum.is_quorum(&answered) {
            return;
        }
        let Role::Leading(leader) = &mut self.role else { return };
        let round = leader.reads.in_flight.take().expect("checked above");
        for waiter in round.waiters {
            match waiter.reader {
                Reader::Local(id) => {
                    if let Some(point) = self.reads.waiting.get_mut(&id) {
                        *point = Some(waiter.point);
                    }
                }
                Reader::Remote(peer, id) => {
                    self.send(peer, Message::ReadResult { id, result: Ok(waiter.point) })
                }
            }
        }
        self.release_reads();
        self.start_read_round();
    }

    /// Passes every local barrier whose read point is delivered.
    pub(super) fn release_reads(&mut self) {
        if self.reads.waiting.is_empty() {
            return; // the common case, on every delivery
        }
        let delivered = self.delivered;
        let ready: Vec<ReadId> = self
            .reads
            .waiting
            .iter()
            .filter(|(_, point)| point.is_some_and(|p| p <= delivered))
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            self.reads.waiting.remove(&id);
            self.emit(Action::ReadReady { id });
        }
    }

    /// Fails every local barrier (the node leaves its role).
    pub(super) fn fail_reads(&mut self) {
        let ids: Vec<ReadId> = self.reads.waiting.keys().copied().collect();
        self.reads.waiting.clear();
        for id in ids {
            self.emit(Action::ReadFailed {
                id,
                reason: ProposalFailure::NotLeader { leader: None },
            });
        }
    }

    /// READREQUEST from a follower.
    pub(super) fn on_read_request(&mut self, from: PeerId, id: ReadId) {
        let serving = match &self.role {
            Role::Leading(leader) => {
                leader.stage == LeaderStage::Broadcast
                    && leader
                        .learners
                        .get(&from)
                        .is_some_and(|learner| learner.stage == LearnerStage::Synced)
            }
            _ => false,
        };
        if serving {
            let point = self.committed;
            self.queue_read(Reader::Remote(from, id), point);
        } else {
            let leader = self.leader().filter(|leader| *leader != self.id());
            let result = Err(ProposalFailure::NotLeader { leader });
            self.send(from, Message::ReadResult { id, result });
        }
    }

    /// READRESULT from our leader.
    pub(super) fn on_read_result(
        &mut self,
        from: PeerId,
        id: ReadId,
        result: Result<Zxid, ProposalFailure>,
    ) {
        if self.leader() != Some(from) || !matches!(self.role, Role::Following(_)) {
            return;
        }
        if !self.reads.waiting.contains_key(&id) {
            return; // failed meanwhile
        }
        match result {
            Ok(point) => {
                if point > self.log.last() {
                    self.violation(from, "READRESULT beyond our log");
                    return;
                }
                self.reads.waiting.insert(id, Some(point));
                self.release_reads();
            }
            Err(reason) => {
                self.reads.waiting.remove(&id);
                self.emit(Action::ReadFailed { id, reason });
            }
        }
    }

    /// READPING from a leader: answered only while following it in that epoch, synchronized.
    pub(super) fn on_read_ping(&mut self, from: PeerId, epoch: Epoch, round: u64) {
        let Role::Following(follower) = &self.role else { return };
        let synced =
            matches!(follower.stage, FollowerStage::AwaitingUpToDate | FollowerStage::Broadcast);
        if follower.leader == from && follower.epoch == epoch && synced {
            self.send(from, Message::ReadPong { epoch, round });
        }
    }

    /// READPONG from a follower.
    pub(super) fn on_read_pong(&mut self, from: PeerId, epoch: Epoch, round: u64) {
        let Role::Leading(leader) = &mut self.role else { return };
        let synced =
            leader.learners.get(&from).is_some_and(|learner| learner.stage == LearnerStage::Synced);
        if leader.epoch != epoch || !synced {
            return;
        }
        let Some(in_flight) = &mut leader.reads.in_flight else { return };
        if in_flight.round != round {
            return; // an earlier round, already confirmed
        }
        in_flight.answered.insert(from);
        self.check_read_round();
    }
}
