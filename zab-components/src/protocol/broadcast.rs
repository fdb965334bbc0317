//! Phase 3: broadcast (zab.md §3 Phase 3, §4.3).
//!
//! The leader gives each proposal the next zxid of its epoch, appends it to its log and sends
//! it to every forwarding follower; proposals made between two inputs travel as one batch (one
//! `Persist`, one PROPOSAL per follower). Followers append in order (checking contiguity,
//! ZOOKEEPER-4925) and acknowledge cumulatively once the write is durable. The leader commits
//! the highest zxid a quorum (itself included, once its own write is durable) has acknowledged;
//! since acks are cumulative, commits advance strictly in zxid order. Everyone delivers what is
//! both committed and locally durable. Followers forward their proposals to the leader. At most
//! `outstanding_proposals_max` proposals are uncommitted at once.
//!
//! Leaving broadcast: a leader steps down when the synchronized followers it heard from within
//! `session_timeout_ticks` (plus itself) no longer form a quorum, and once its zxid counter is
//! exhausted and everything it proposed is committed; a follower leaves when its leader falls
//! silent, is suspected or its session ends. Proposals in flight then fail as `OutcomeUnknown`.

use super::action::{Action, ProposalFailure};
use super::entry::Entry;
use super::ids::{PeerId, ProposalId, Zxid};
use super::message::Message;
use super::node::{ProposeError, ZabNode};
use super::role::{FollowerStage, LeaderStage, LearnerStage, Role};

impl ZabNode {
    pub(super) fn propose_inner(&mut self, payload: Vec<u8>) -> Result<ProposalId, ProposeError> {
        let outstanding_max = self.config.outstanding_proposals_max;
        let max = self.config.payload_bytes_max;
        if payload.len() > max {
            return Err(ProposeError::TooLarge { len: payload.len(), max });
        }
        match &self.role {
            Role::Leading(leader) if leader.stage == LeaderStage::Broadcast => {
                if leader.rollover {
                    return Err(ProposeError::EpochExhausted);
                }
                if self.log.count_after(self.committed) >= outstanding_max {
                    return Err(ProposeError::TooManyOutstanding { outstanding_max });
                }
                let id = self.proposals.open();
                let zxid = self.leader_append(payload);
                self.proposals.assign(id, zxid);
                self.emit(Action::ProposalAssigned { id, zxid });
                Ok(id)
            }
            Role::Following(follower) if follower.stage == FollowerStage::Broadcast => {
                if self.proposals.len() >= outstanding_max {
                    return Err(ProposeError::TooManyOutstanding { outstanding_max });
                }
                let leader = follower.leader;
                let id = self.proposals.open();
                self.send(leader, Message::Forward { id, payload });
                Ok(id)
            }
            _ => Err(ProposeError::NoLeader),
        }
    }

    /// Gives `payload` the next zxid and appends it to the batch being formed.
    fn leader_append(&mut self, payload: Vec<u8>) -> Zxid {
        let counter_max = self.config.counter_max;
        let Role::Leading(leader) = &mut self.role else {
            unreachable!("only a leader assigns zxids")
        };
        assert!(leader.counter < counter_max && !leader.rollover, "zxid counter overflow");
        leader.counter += 1;
        if leader.counter == counter_max {
            leader.rollover = true;
        }
        let zxid = Zxid { epoch: leader.epoch, counter: leader.counter };
        let entry = Entry { zxid, payload };
        // A batch travels as one PROPOSAL: close it before this entry would overflow it.
        if self.log.unwritten_bytes() + entry.encoded_len_max() + Message::OVERHEAD_BYTES_MAX
            > self.config.message_bytes_max
        {
            self.flush_batch();
        }
        self.log.append_unwritten(entry);
        if self.log.unwritten_len() >= self.config.batch_entries_max {
            self.flush_batch();
        }
        zxid
    }

    /// Sends the batch of proposals formed since the last input: one write, one PROPOSAL per
    /// forwarding follower.
    pub(super) fn flush_batch(&mut self) {
        // Read barriers queued since the last input share one round of READPINGs.
        self.start_read_round();
        if !self.log.has_unwritten() {
            return;
        }
        let Some(entries) = self.log.write_unwritten() else { return };
        let Role::Leading(leader) = &self.role else {
            unreachable!("only a leader batches proposals")
        };
        let followers: Vec<PeerId> = leader
            .learners
            .iter()
            .filter(|(_, learner)| learner.stage.is_forwarding())
            .map(|(peer, _)| *peer)
            .collect();
        for peer in followers {
            self.send(peer, Message::Proposal { entries: entries.clone() });
        }
        self.emit(Action::Persist { entries });
    }

    /// Commits the highest zxid acknowledged by a quorum, if it moved.
    pub(super) fn advance_commit(&mut self) {
        let me = self.id();
        let Role::Leading(leader) = &self.role else { return };
        if leader.stage != LeaderStage::Broadcast {
            return;
        }
        let own = self.log.durable_last();
        let acks = leader
            .learners
            .iter()
            .filter(|(_, learner)| learner.stage == LearnerStage::Synced)
            .map(|(peer, learner)| (peer, &learner.acked))
            .chain(std::iter::once((&me, &own)));
        let Some(acknowledged) = self.quorum.acknowledged(acks) else { return };
        if acknowledged <= self.committed {
            return;
        }
        let followers: Vec<PeerId> = leader
            .learners
            .iter()
            .filter(|(_, learner)| learner.stage.is_forwarding())
            .map(|(peer, _)| *peer)
            .collect();
        for peer in followers {
            self.send(peer, Message::Commit { zxid: acknowledged });
        }
        self.commit_to(acknowledged);
    }

    /// ACK from a follower.
    pub(super) fn on_ack(&mut self, from: PeerId, zxid: Zxid) {
        let last = self.log.last();
        let Role::Leading(leader) = &mut self.role else { return };
        let Some(learner) = leader.learners.get_mut(&from) else { return };
        if learner.stage != LearnerStage::Synced || zxid > last {
            // ZOOKEEPER-4685: a proposal ack must never precede the NEWLEADER ack.
            self.violation(from, "ACK before the NEWLEADER ack or beyond our log");
            return;
        }
        learner.acked = learner.acked.max(zxid);
        self.advance_commit();
    }

    /// PROPOSAL from our leader.
    pub(super) fn on_proposal(&mut self, from: PeerId, entries: Vec<Entry>) {
        let Role::Following(follower) = &self.role else { return };
        if follower.leader != from {
            return;
        }
        if follower.stage < FollowerStage::PersistingHistory {
            self.violation(from, "PROPOSAL before NEWLEADER");
            return;
        }
        let epoch = follower.epoch;
        let mut last = self.log.last();
        let mut fresh = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.zxid <= last {
                // Already in the synchronized history (TLA+ issue 2): ignore the duplicate.
                if entry.zxid > self.log.base() && !self.log.contains(entry.zxid) {
                    self.violation(from, "PROPOSAL conflicts with our history");
                    return;
                }
                continue;
            }
            let expected = if last.epoch == epoch { last.counter + 1 } else { 1 };
            if entry.zxid.epoch != epoch || entry.zxid.counter != expected {
                self.violation(from, "PROPOSAL leaves a gap");
                return;
            }
            last = entry.zxid;
            fresh.push(entry);
        }
        if !fresh.is_empty() {
            let written = self.log.append_written(fresh);
            self.emit(Action::Persist { entries: written });
        }
    }

    /// Acknowledges everything durable (after the NEWLEADER ack only).
    pub(super) fn send_ack(&mut self) {
        let durable = self.log.durable_last();
        let Role::Following(follower) = &mut self.role else { return };
        let acking =
            matches!(follower.stage, FollowerStage::AwaitingUpToDate | FollowerStage::Broadcast);
        if acking && durable > follower.acked {
            follower.acked = durable;
            let leader = follower.leader;
            self.send(leader, Message::Ack { zxid: durable });
        }
    }

    /// COMMIT from our leader.
    pub(super) fn on_commit(&mut self, from: PeerId, zxid: Zxid) {
        let Role::Following(follower) = &self.role else { return };
        if follower.leader != from {
            return;
        }
        if follower.stage < FollowerStage::PersistingHistory || zxid > self.log.last() {
            self.violation(from, "COMMIT before NEWLEADER or for an unknown zxid");
            return;
        }
        self.commit_to(zxid);
    }

    /// A follower forwards a proposal to us.
    pub(super) fn on_forward(&mut self, from: PeerId, id: ProposalId, payload: Vec<u8>) {
        let outstanding_max = self.config.outstanding_proposals_max;
        let result = match &self.role {
            Role::Leading(leader)
                if leader.stage == LeaderStage::Broadcast
                    && leader
                        .learners
                        .get(&from)
                        .is_some_and(|learner| learner.stage == LearnerStage::Synced) =>
            {
                if leader.rollover {
                    Err(ProposalFailure::NotLeader { leader: None })
                } else if payload.len() > self.config.payload_bytes_max {
                    Err(ProposalFailure::TooLarge)
                } else if self.log.count_after(self.committed) >= outstanding_max {
                    Err(ProposalFailure::TooManyOutstanding)
                } else {
                    Ok(self.leader_append(payload))
                }
            }
            _ => Err(ProposalFailure::NotLeader {
                leader: self.leader().filter(|leader| *leader != self.id()),
            }),
        };
        self.send(from, Message::ForwardResult { id, result });
    }

    /// The leader's answer to a forwarded proposal.
    pub(super) fn on_forward_result(
        &mut self,
        from: PeerId,
        id: ProposalId,
        result: Result<Zxid, ProposalFailure>,
    ) {
        if self.leader() != Some(from) || !matches!(self.role, Role::Following(_)) {
            return;
        }
        match result {
            Ok(zxid) => {
                if self.proposals.assign(id, zxid) {
                    self.emit(Action::ProposalAssigned { id, zxid });
                    if zxid <= self.delivered && self.proposals.take_committed(zxid).is_some() {
                        self.emit(Action::ProposalCommitted { id, zxid });
                    }
                }
            }
            Err(reason) => {
                if self.proposals.close(id) {
                    self.emit(Action::ProposalFailed { id, reason });
                }
            }
        }
    }

    /// PING from our leader.
    pub(super) fn on_ping(&mut self, from: PeerId) {
        if self.leader() == Some(from) && matches!(self.role, Role::Following(_)) {
            self.send(from, Message::Pong);
        }
    }

    /// Follower timers: a leader silent for the session timeout is abandoned, and a suspected
    /// one silent for half of it.
    pub(super) fn follower_tick(&mut self) {
        let Role::Following(follower) = &self.role else { return };
        let limit = if follower.stage == FollowerStage::Broadcast {
            self.config.session_timeout_ticks
        } else {
            self.config.sync_timeout_ticks
        };
        let silent = self.now - follower.last_heard;
        if silent > limit {
            self.become_looking("leader silent");
        } else if follower.leader_suspected && silent >= self.config.session_timeout_ticks / 2 {
            self.become_looking("leader suspected");
        }
    }

    /// Leader timers: establishment deadline, heartbeats, dropping silent followers, quorum
    /// loss and counter rollover.
    pub(super) fn leader_tick(&mut self) {
        let now = self.now;
        let me = self.id();
        let session = self.config.session_timeout_ticks;
        let Role::Leading(leader) = &mut self.role else { return };
        if leader.stage != LeaderStage::Broadcast && now > leader.deadline {
            self.become_looking("epoch not established in time");
            return;
        }
        // A learner being synchronized may be silent for up to `sync_timeout_ticks` (its
        // answers can queue behind a large transfer, and it persists what it received before
        // it acknowledges); a synchronized one for `session_timeout_ticks`.
        let sync_timeout = self.config.sync_timeout_ticks;
        leader.learners.retain(|_, learner| {
            let synced = learner.stage == LearnerStage::Synced;
            let silence = if synced { session } else { sync_timeout };
            now - learner.last_heard <= silence && (synced || now <= learner.deadline)
        });
        if leader.stage == LeaderStage::Broadcast {
            let live: Vec<PeerId> = leader
                .learners
                .iter()
                .filter(|(_, learner)| learner.stage == LearnerStage::Synced)
                .map(|(peer, _)| *peer)
                .chain(std::iter::once(me))
                .collect();
            if !self.quorum.is_quorum(&live) {
                self.become_looking("lost the quorum");
                return;
            }
            if leader.rollover && self.committed == self.log.last() {
                self.become_looking("zxid counter exhausted: a new epoch is needed");
                return;
            }
        }
        if now >= leader.next_ping {
            leader.next_ping = now + self.config.heartbeat_interval_ticks;
            let learners: Vec<PeerId> = leader.learners.keys().copied().collect();
            for peer in learners {
                self.send(peer, Message::Ping);
            }
            self.resend_read_round();
        }
    }
}
