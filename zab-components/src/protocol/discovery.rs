//! Phase 1: discovery. The leader agrees a new epoch with a quorum (zab.md §3 Phase 1, §4.1).
//!
//! Follower → leader FOLLOWERINFO(acceptedEpoch). Once a quorum (the leader included) has
//! registered, the leader picks `e = max(acceptedEpoch) + 1`, makes it its own acceptedEpoch
//! durably, and sends LEADERINFO(e). A follower accepts a higher epoch durably **before** it
//! answers ACKEPOCH(currentEpoch, last zxid); a lower one sends it back to election. The leader
//! aborts if a fresh ACKEPOCH shows a follower ahead of it, because FLE must have elected the
//! most recent history of the quorum. After a quorum of fresh acks the leader makes its own
//! history durable, then its currentEpoch, and starts synchronization (`sync.rs`).

use std::collections::BTreeSet;

use super::ids::{Epoch, PeerId, Zxid};
use super::message::Message;
use super::node::ZabNode;
use super::role::{Follower, FollowerStage, Leader, LeaderStage, Learner, LearnerStage, Role};

impl ZabNode {
    /// The election chose this node: start leading (not yet established).
    pub(super) fn become_leader(&mut self) {
        let leader = Leader {
            stage: LeaderStage::CollectingFollowers,
            epoch: Epoch(0),
            summary: (self.current_epoch, self.log.last()),
            learners: Default::default(),
            deadline: self.now + self.config.sync_timeout_ticks,
            epoch_acks: BTreeSet::new(),
            newleader_acks: BTreeSet::new(),
            history_write: 0,
            next_ping: self.now,
            counter: 0,
            rollover: false,
            reads: Default::default(),
        };
        self.role = Role::Leading(leader);
        let early = std::mem::take(&mut self.early_followers);
        for (peer, (accepted_epoch, attempt)) in early {
            self.on_follower_info(peer, accepted_epoch, attempt);
        }
        self.check_followers_quorum();
    }

    /// The election chose `leader`: register with it.
    pub(super) fn become_follower(&mut self, leader: PeerId) {
        self.early_followers.clear();
        self.attempts += 1;
        let attempt = self.attempts;
        self.role = Role::Following(Follower {
            leader,
            stage: FollowerStage::AwaitingLeaderInfo,
            attempt,
            epoch: Epoch(0),
            last_heard: self.now,
            leader_suspected: false,
            snap: None,
            sync_write: 0,
            newleader_last: Zxid::ZERO,
            acked: Zxid::ZERO,
            sync_received: 0,
        });
        let accepted_epoch = self.accepted_epoch;
        self.send(leader, Message::FollowerInfo { accepted_epoch, attempt });
    }

    /// FOLLOWERINFO: a follower registers (again: a new registration restarts its session).
    pub(super) fn on_follower_info(&mut self, from: PeerId, accepted_epoch: Epoch, attempt: u64) {
        let now = self.now;
        let deadline = now + self.config.sync_timeout_ticks;
        self.epoch_hint = self.epoch_hint.max(accepted_epoch);
        let Role::Leading(leader) = &mut self.role else {
            if matches!(self.role, Role::Looking(_)) {
                // We may be about to lead: keep it for then.
                self.early_followers.insert(from, (accepted_epoch, attempt));
            }
            return;
        };
        if leader.stage == LeaderStage::Broadcast && accepted_epoch > leader.epoch {
            // It promised a later epoch to a leader that failed and can never follow ours:
            // make way for an election that picks an epoch above that promise.
            self.become_looking("a follower accepted a later epoch");
            return;
        }
        leader.learners.insert(from, Learner::new(accepted_epoch, attempt, now, deadline));
        match leader.stage {
            LeaderStage::CollectingFollowers => self.check_followers_quorum(),
            LeaderStage::PersistingAcceptedEpoch => {}
            _ => self.send_leader_info(from),
        }
    }

    /// With FOLLOWERINFO from a quorum, choose the new epoch and accept it ourselves.
    fn check_followers_quorum(&mut self) {
        let me = self.id();
        let Role::Leading(leader) = &mut self.role else { return };
        if leader.stage != LeaderStage::CollectingFollowers {
            return;
        }
        let registered: Vec<PeerId> =
            leader.learners.keys().copied().chain(std::iter::once(me)).collect();
        if !self.quorum.is_quorum(&registered) {
            return;
        }
        let highest = leader
            .learners
            .values()
            .map(|learner| learner.accepted_epoch)
            .chain([self.accepted_epoch, self.epoch_hint])
            .max()
            .unwrap_or_default();
        // Any epoch above every acceptedEpoch of the quorum is safe; above the hint, it also
        // admits every server we heard of.
        let epoch = Epoch(highest.0 + 1);
        leader.epoch = epoch;
        leader.stage = LeaderStage::PersistingAcceptedEpoch;
        self.write_accepted_epoch(epoch);
        if self.accepted_epoch_durable >= epoch {
            self.leader_epoch_persisted();
        }
    }

    fn send_leader_info(&mut self, to: PeerId) {
        let Role::Leading(leader) = &mut self.role else { return };
        let epoch = leader.epoch;
        if let Some(learner) = leader.learners.get_mut(&to) {
            if learner.stage == LearnerStage::Connected {
                learner.stage = LearnerStage::EpochSent;
                let attempt = learner.attempt;
                self.send(to, Message::LeaderInfo { epoch, attempt });
            }
        }
    }

    /// An epoch write completed on the leader: continue discovery or synchronization.
    pub(super) fn leader_epoch_persisted(&mut self) {
        let me = self.id();
        let Role::Leading(leader) = &mut self.role else { return };
        match leader.stage {
            LeaderStage::PersistingAcceptedEpoch if self.accepted_epoch_durable >= leader.epoch => {
                leader.stage = LeaderStage::CollectingEpochAcks;
                leader.epoch_acks.insert(me);
                let learners: Vec<PeerId> = leader.learners.keys().copied().collect();
                for peer in learners {
                    self.send_leader_info(peer);
                }
                self.check_epoch_acks_quorum();
            }
            LeaderStage::PersistingCurrentEpoch if self.current_epoch_durable >= leader.epoch => {
                self.start_synchronization();
            }
            _ => {}
        }
    }

    /// ACKEPOCH from a follower.
    pub(super) fn on_ack_epoch(
        &mut self,
        from: PeerId,
        epoch: Epoch,
        current_epoch: Epoch,
        last_zxid: Zxid,
        fresh: bool,
    ) {
        let Role::Leading(leader) = &mut self.role else { return };
        let Some(learner) = leader.learners.get_mut(&from) else { return };
        if learner.stage != LearnerStage::EpochSent || epoch != leader.epoch {
            self.violation(from, "ACKEPOCH without LEADERINFO");
            return;
        }
        learner.stage = LearnerStage::EpochAcked { last_zxid };
        match leader.stage {
            LeaderStage::CollectingEpochAcks => {
                if fresh {
                    if (current_epoch, last_zxid) > leader.summary {
                        // FLE should have elected that follower; our history may miss
                        // committed transactions (zab.md §4.1 step 5).
                        self.become_looking("follower is ahead of the leader");
                        return;
                    }
                    leader.epoch_acks.insert(from);
                }
                self.check_epoch_acks_quorum();
            }
            LeaderStage::CollectingNewLeaderAcks | LeaderStage::Broadcast => {
                self.sync_learner(from);
            }
            // Synchronized once our currentEpoch is durable.
            _ => {}
        }
    }

    /// With fresh ACKEPOCHs from a quorum, make the history durable, then currentEpoch.
    fn check_epoch_acks_quorum(&mut self) {
        let Role::Leading(leader) = &mut self.role else { return };
        if leader.stage != LeaderStage::CollectingEpochAcks
            || !self.quorum.is_quorum(&leader.epoch_acks)
        {
            return;
        }
        leader.stage = LeaderStage::PersistingHistory;
        leader.history_write = self.log.write_mark();
        self.leader_persisted();
    }

    /// A log write completed on the leader.
    pub(super) fn leader_persisted(&mut self) {
        let Role::Leading(leader) = &mut self.role else { return };
        match leader.stage {
            // currentEpoch is written only once the history it vouches for is durable, or a
            // crash could leave a new epoch over a shorter history (ZOOKEEPER-4643).
            LeaderStage::PersistingHistory if self.log.is_durable_through(leader.history_write) => {
                leader.stage = LeaderStage::PersistingCurrentEpoch;
                let epoch = leader.epoch;
                if self.current_epoch_durable >= epoch {
                    self.start_synchronization();
                } else {
                    self.write_current_epoch(epoch);
                }
            }
            LeaderStage::Broadcast => self.advance_commit(),
            _ => {}
        }
    }

    /// LEADERINFO: the leader proposes an epoch.
    pub(super) fn on_leader_info(&mut self, from: PeerId, epoch: Epoch, attempt: u64) {
        let Role::Following(follower) = &mut self.role else { return };
        if follower.leader != from || follower.attempt != attempt {
            return;
        }
        if follower.stage != FollowerStage::AwaitingLeaderInfo {
            self.violation(from, "LEADERINFO out of discovery");
            return;
        }
        if epoch < self.accepted_epoch {
            // We promised a later epoch to someone else (zab.md §3 step 1.3).
            self.become_looking("leader proposes an epoch below acceptedEpoch");
            return;
        }
        let fresh = epoch > self.accepted_epoch;
        follower.epoch = epoch;
        follower.stage = FollowerStage::PersistingAcceptedEpoch { fresh };
        if fresh {
            self.write_accepted_epoch(epoch);
        }
        self.follower_epoch_persisted();
    }

    /// An epoch write completed on a follower: send the ack it was waiting for.
    pub(super) fn follower_epoch_persisted(&mut self) {
        let Role::Following(follower) = &mut self.role else { return };
        match follower.stage {
            FollowerStage::PersistingAcceptedEpoch { fresh }
                if self.accepted_epoch_durable >= follower.epoch =>
            {
                follower.stage = FollowerStage::AwaitingSync;
                let leader = follower.leader;
                let message = Message::AckEpoch {
                    epoch: follower.epoch,
                    current_epoch: self.current_epoch,
                    last_zxid: self.log.last(),
                    fresh,
                };
                self.send(leader, message);
            }
            FollowerStage::PersistingCurrentEpoch
                if self.current_epoch_durable >= follower.epoch =>
            {
                self.ack_new_leader();
            }
            _ => {}
        }
    }

    /// Persistence completion on a follower.
    pub(super) fn follower_persisted(&mut self) {
        let Role::Following(follower) = &self.role else { return };
        match follower.stage {
            FollowerStage::PersistingHistory => self.persist_current_epoch_after_history(),
            FollowerStage::AwaitingUpToDate | FollowerStage::Broadcast => self.send_ack(),
            _ => {}
        }
    }
}
