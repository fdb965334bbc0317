//! Phase 0: fast leader election (FLE, zab.md §5).
//!
//! A looking node votes for the best server it has heard of, ordered by `(currentEpoch, last
//! zxid, id)`, and tells every peer. Within a round, once a quorum holds the same vote, it waits
//! `finalize_wait_ticks` for a better one and then decides. Notifications are resent with
//! exponential backoff while the election lasts, and a looking node answers a worse vote of
//! its round with its own at once (the sender may have missed ours: started later, or lost it
//! with a session), so a better candidate is not passed over for want of a resend. A node that restarts while an ensemble runs
//! learns of it from the FOLLOWING/LEADING peers that answer its notifications, and joins
//! their leader without a new election (ZOOKEEPER-1732).

use std::collections::BTreeMap;

use super::ids::PeerId;
use super::message::{Message, Notification, PeerState, Vote};
use super::node::ZabNode;
use super::role::Role;

/// The state of an election in progress.
#[derive(Debug)]
pub(crate) struct Election {
    /// Votes received in the current round (this node's own included).
    received: BTreeMap<PeerId, Vote>,
    /// Votes of peers that are FOLLOWING or LEADING, whatever their round.
    out_of_election: BTreeMap<PeerId, (Vote, PeerState)>,
    /// When the finalize wait ends, if a quorum agrees with our vote.
    finalize_at: Option<u64>,
    /// When to resend our notification.
    resend_at: u64,
    /// The current resend interval.
    backoff: u64,
}

impl Election {
    pub(crate) fn new(now: u64, backoff: u64) -> Election {
        Election {
            received: BTreeMap::new(),
            out_of_election: BTreeMap::new(),
            finalize_at: None,
            resend_at: now + backoff,
            backoff,
        }
    }
}

/// Whether vote `a` beats vote `b` (FLE's `totalOrderPredicate`): the more recent history
/// (epoch, then zxid) wins; on a tie the `preferred` leader, then the higher id.
fn beats(preferred: Option<PeerId>, a: Vote, b: Vote) -> bool {
    let rank = |v: Vote| (v.epoch, v.zxid, Some(v.leader) == preferred, v.leader);
    rank(a) > rank(b)
}

impl ZabNode {
    /// This node's own candidacy: itself with its history.
    pub(super) fn own_vote(&self) -> Vote {
        Vote { leader: self.id(), zxid: self.log.last(), epoch: self.current_epoch }
    }

    /// Starts a new election round, voting for itself.
    pub(super) fn enter_looking(&mut self) {
        self.round += 1;
        self.vote = self.own_vote();
        self.early_followers.clear();
        let mut election = Election::new(self.now, self.config.notification_backoff_min_ticks);
        election.received.insert(self.id(), self.vote);
        self.role = Role::Looking(election);
        self.broadcast_notification();
        self.check_election_quorum();
    }

    /// Our notification as peers should see it now.
    pub(super) fn notification(&self) -> Notification {
        Notification {
            vote: self.vote,
            round: self.round,
            state: self.peer_state(),
            accepted_epoch: self.accepted_epoch,
        }
    }

    fn broadcast_notification(&mut self) {
        let notification = self.notification();
        let peers: Vec<PeerId> = self.quorum.voters().filter(|peer| *peer != self.id()).collect();
        for peer in peers {
            self.send(peer, Message::Notification(notification));
        }
    }

    /// An election notification arrived.
    pub(super) fn on_notification(&mut self, from: PeerId, n: Notification) {
        self.epoch_hint = self.epoch_hint.max(n.accepted_epoch);
        if n.state == PeerState::Looking {
            match &mut self.role {
                // Our leader started a new election (a later round than the one we decided
                // in): it no longer leads us. A notification of our round is one it sent
                // before it decided, overtaken by our decision; leaving on it would restart an
                // election that just ended (a crashed leader ends the session instead).
                Role::Following(follower) if follower.leader == from && n.round > self.round => {
                    self.become_looking("leader is looking");
                }
                // That follower left us.
                Role::Leading(leader) => {
                    leader.learners.remove(&from);
                }
                _ => {}
            }
        }
        if !matches!(self.role, Role::Looking(_)) {
            // A looking peer learns of the running ensemble from our answer (zab.md §5 step 5).
            if n.state == PeerState::Looking {
                let ours = self.notification();
                self.send(from, Message::Notification(ours));
            }
            return;
        }
        if n.state == PeerState::Looking {
            self.on_looking_notification(from, n);
        } else {
            self.on_decided_notification(from, n);
        }
    }

    fn on_looking_notification(&mut self, from: PeerId, n: Notification) {
        self.early_followers.remove(&from);
        if n.round < self.round {
            // The sender is behind: our answer moves it to our round.
            let ours = self.notification();
            self.send(from, Message::Notification(ours));
            return;
        }
        let own = self.own_vote();
        let preferred = self.config.preferred_leader;
        let Role::Looking(election) = &mut self.role else { return };
        election.out_of_election.remove(&from);
        let changed = if n.round > self.round {
            self.round = n.round;
            election.received.clear();
            election.finalize_at = None;
            self.vote = if beats(preferred, n.vote, own) { n.vote } else { own };
            true
        } else if beats(preferred, n.vote, self.vote) {
            self.vote = n.vote;
            election.finalize_at = None;
            true
        } else {
            false
        };
        election.received.insert(from, n.vote);
        election.received.insert(self.config.id, self.vote);
        if changed {
            self.broadcast_notification();
        } else if n.vote != self.vote {
            // The sender holds a worse vote: it may never have heard ours (sent before it was
            // listening, or lost with a session). Tell it now rather than at our next resend,
            // which may come after it decided without us.
            let ours = self.notification();
            self.send(from, Message::Notification(ours));
        }
        self.check_election_quorum();
    }

    /// A FOLLOWING or LEADING peer answered: an ensemble may already exist.
    fn on_decided_notification(&mut self, from: PeerId, n: Notification) {
        let me = self.id();
        let Role::Looking(election) = &mut self.role else { return };
        election.out_of_election.insert(from, (n.vote, n.state));
        let leader_says_leading = |election: &Election| {
            election.out_of_election.get(&n.vote.leader).is_some_and(|(vote, state)| {
                *state == PeerState::Leading && vote.epoch == n.vote.epoch
            })
        };
        // Peers decided in our round: follow the quorum they formed (zab.md §5 step 4).
        if n.round == self.round {
            election.received.insert(from, n.vote);
            let agreeing: Vec<PeerId> = election
                .received
                .iter()
                .filter(|(_, vote)| **vote == n.vote)
                .map(|(peer, _)| *peer)
                .collect();
            if self.quorum.is_quorum(&agreeing)
                && (n.vote.leader == me || leader_says_leading(election))
            {
                self.vote = n.vote;
                self.decide();
                return;
            }
        }
        // Whatever the round: a quorum following an established leader that confirms it leads.
        let agreeing: Vec<PeerId> = election
            .out_of_election
            .iter()
            .filter(|(_, (vote, _))| vote.leader == n.vote.leader && vote.epoch == n.vote.epoch)
            .map(|(peer, _)| *peer)
            .collect();
        if n.vote.leader != me && self.quorum.is_quorum(&agreeing) && leader_says_leading(election)
        {
            self.round = n.round;
            self.vote = n.vote;
            self.decide();
        }
    }

    /// Starts (or keeps) the finalize wait if a quorum of this round agrees with our vote.
    fn check_election_quorum(&mut self) {
        let finalize_wait = self.config.finalize_wait_ticks;
        let now = self.now;
        let Role::Looking(election) = &mut self.role else { return };
        let agreeing: Vec<PeerId> = election
            .received
            .iter()
            .filter(|(_, vote)| **vote == self.vote)
            .map(|(peer, _)| *peer)
            .collect();
        if !self.quorum.is_quorum(&agreeing) {
            election.finalize_at = None;
            return;
        }
        if finalize_wait == 0 {
            self.decide();
        } else if election.finalize_at.is_none() {
            election.finalize_at = Some(now + finalize_wait);
        }
    }

    /// Election timers: the end of the finalize wait and notification resends.
    pub(super) fn election_tick(&mut self) {
        let now = self.now;
        let Role::Looking(election) = &mut self.role else { return };
        if election.finalize_at.is_some_and(|at| now >= at) {
            // No better vote arrived during the wait (it would have cleared `finalize_at`).
            self.decide();
            return;
        }
        if now >= election.resend_at {
            election.backoff =
                (election.backoff * 2).min(self.config.notification_backoff_max_ticks);
            let jitter = self.rng.below_or_equal(election.backoff / 4);
            election.resend_at = now + election.backoff + jitter;
            self.broadcast_notification();
        }
    }

    /// Ends the election on our vote.
    fn decide(&mut self) {
        log::debug!("{}: elected {} in round {}", self.id(), self.vote.leader, self.round);
        if self.vote.leader == self.id() {
            self.become_leader();
        } else {
            self.become_follower(self.vote.leader);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Epoch, Zxid};

    fn vote(leader: u64, epoch: u64, counter: u64) -> Vote {
        Vote { leader: PeerId(leader), zxid: Zxid::new(epoch, counter), epoch: Epoch(epoch) }
    }

    #[test]
    fn history_first_then_the_preferred_peer_then_the_highest_id() {
        // No preference: the highest id wins ties.
        assert!(beats(None, vote(3, 1, 5), vote(1, 1, 5)));
        // A preference wins ties, whatever the ids.
        assert!(beats(Some(PeerId(1)), vote(1, 1, 5), vote(3, 1, 5)));
        assert!(!beats(Some(PeerId(1)), vote(3, 1, 5), vote(1, 1, 5)));
        // Among the others, the highest id still wins.
        assert!(beats(Some(PeerId(1)), vote(3, 1, 5), vote(2, 1, 5)));
        // History always comes first: a longer log or a later epoch beats the preferred peer.
        assert!(beats(Some(PeerId(1)), vote(2, 1, 6), vote(1, 1, 5)));
        assert!(beats(Some(PeerId(1)), vote(2, 2, 1), vote(1, 1, 9)));
        assert!(
            !beats(Some(PeerId(1)), vote(1, 1, 5), vote(1, 1, 5)),
            "a vote does not beat itself"
        );
    }
}
