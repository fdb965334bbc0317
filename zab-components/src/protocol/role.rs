//! The per-role state of a node: what a looking, following or leading node remembers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::election::Election;
use super::entry::Entry;
use super::ids::{Epoch, PeerId, ReadId, Zxid};

/// The node's role, with the state only that role needs.
#[derive(Debug)]
pub(crate) enum Role {
    /// Phase 0.
    Looking(Election),
    /// Phases 1–3 on a follower.
    Following(Follower),
    /// Phases 1–3 on a leader.
    Leading(Leader),
}

/// A follower's progress through discovery, synchronization and broadcast.
#[derive(Debug)]
pub(crate) struct Follower {
    /// The leader this node follows.
    pub(crate) leader: PeerId,
    /// Where the follower is.
    pub(crate) stage: FollowerStage,
    /// This registration's number, echoed by the leader's LEADERINFO.
    pub(crate) attempt: u64,
    /// The epoch from LEADERINFO (0 before it arrives).
    pub(crate) epoch: Epoch,
    /// Tick of the last message from the leader.
    pub(crate) last_heard: u64,
    /// The failure detector suspects the leader (and has not restored it since).
    pub(crate) leader_suspected: bool,
    /// A SNAP being received.
    pub(crate) snap: Option<SnapReceiver>,
    /// Last write that carries the synchronized history; NEWLEADER is acked once it completed.
    pub(crate) sync_write: u64,
    /// The log's last zxid when NEWLEADER arrived: what the NEWLEADER ack acknowledges.
    pub(crate) newleader_last: Zxid,
    /// The last zxid acknowledged to the leader.
    pub(crate) acked: Zxid,
    /// Synchronization messages received from the leader in this registration (SYNCACK).
    pub(crate) sync_received: u64,
}

/// Stages of a follower, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum FollowerStage {
    /// FOLLOWERINFO sent; waiting for LEADERINFO.
    AwaitingLeaderInfo,
    /// acceptedEpoch being written; ACKEPOCH leaves once it is durable.
    PersistingAcceptedEpoch {
        /// Whether the epoch was new to us (a fresh ack).
        fresh: bool,
    },
    /// ACKEPOCH sent; waiting for the synchronization to start.
    AwaitingSync,
    /// Receiving DIFF/TRUNC/SNAP and the history; waiting for NEWLEADER.
    ReceivingSync,
    /// NEWLEADER received; waiting for the synchronized history to be durable.
    PersistingHistory,
    /// currentEpoch being written; the NEWLEADER ack leaves once it is durable.
    PersistingCurrentEpoch,
    /// NEWLEADER acked; waiting for UPTODATE.
    AwaitingUpToDate,
    /// Phase 3.
    Broadcast,
}

/// A snapshot arriving in chunks, and the entries that follow it, held until NEWLEADER.
#[derive(Debug)]
pub(crate) struct SnapReceiver {
    /// The snapshot's zxid.
    pub(crate) zxid: Zxid,
    /// The state's announced size (`None`: the initial empty state).
    pub(crate) state_bytes: Option<u64>,
    /// The bytes received so far.
    pub(crate) state: Vec<u8>,
    /// The entries after the snapshot.
    pub(crate) entries: Vec<Entry>,
}

/// A leader's progress and its view of each learner.
#[derive(Debug)]
pub(crate) struct Leader {
    /// Where the leader is.
    pub(crate) stage: LeaderStage,
    /// The epoch being established (0 until chosen).
    pub(crate) epoch: Epoch,
    /// The leader's (currentEpoch, last zxid) when elected: no follower may be ahead of it.
    pub(crate) summary: (Epoch, Zxid),
    /// Followers that sent FOLLOWERINFO in this term.
    pub(crate) learners: BTreeMap<PeerId, Learner>,
    /// Discovery and synchronization must complete by this tick.
    pub(crate) deadline: u64,
    /// Peers (self included) that acked the new epoch freshly.
    pub(crate) epoch_acks: BTreeSet<PeerId>,
    /// Peers (self included) that acked NEWLEADER before the epoch was established.
    pub(crate) newleader_acks: BTreeSet<PeerId>,
    /// The last write of the initial history; currentEpoch is written once it completed.
    pub(crate) history_write: u64,
    /// Next tick at which to ping the learners.
    pub(crate) next_ping: u64,
    /// The counter of the last zxid proposed in `epoch`.
    pub(crate) counter: u64,
    /// The counter is exhausted: step down once everything proposed is committed.
    pub(crate) rollover: bool,
    /// Read barriers waiting for a quorum to confirm this leadership.
    pub(crate) reads: ReadRounds,
}

impl Leader {
    /// The learners that acknowledged NEWLEADER: their acks and read answers count.
    pub(crate) fn synced(&self) -> Vec<PeerId> {
        self.learners
            .iter()
            .filter(|(_, learner)| learner.stage == LearnerStage::Synced)
            .map(|(peer, _)| *peer)
            .collect()
    }
}

/// A leader's read barriers (see `read.rs`). A barrier is served at the commit point it found
/// when it arrived, once a quorum of the epoch answered a round started after it arrived.
#[derive(Debug, Default)]
pub(crate) struct ReadRounds {
    /// The last round started (0: none yet).
    pub(crate) round: u64,
    /// The round whose READPINGs are out, if any.
    pub(crate) in_flight: Option<ReadRound>,
    /// Barriers that arrived since the round in flight started: the next round confirms them.
    pub(crate) waiting: Vec<ReadWaiter>,
}

/// One round of READPINGs and the barriers it confirms.
#[derive(Debug)]
pub(crate) struct ReadRound {
    /// Its number.
    pub(crate) round: u64,
    /// Peers, this leader included, that answered it.
    pub(crate) answered: BTreeSet<PeerId>,
    /// The barriers it confirms.
    pub(crate) waiters: Vec<ReadWaiter>,
}

/// One read barrier at the leader.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadWaiter {
    /// Whose read it is.
    pub(crate) reader: Reader,
    /// The leader's commit point when the barrier arrived.
    pub(crate) point: Zxid,
}

/// Who asked for a read barrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reader {
    /// The leader's own application.
    Local(ReadId),
    /// A follower, with its id for the read.
    Remote(PeerId, ReadId),
}

/// Stages of a leader, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LeaderStage {
    /// Waiting for FOLLOWERINFO from a quorum.
    CollectingFollowers,
    /// The epoch is chosen; its acceptedEpoch is being written.
    PersistingAcceptedEpoch,
    /// LEADERINFO sent; waiting for fresh ACKEPOCHs from a quorum.
    CollectingEpochAcks,
    /// A quorum acked; waiting for our own history to be durable before writing currentEpoch.
    PersistingHistory,
    /// currentEpoch being written.
    PersistingCurrentEpoch,
    /// Histories sent; waiting for NEWLEADER acks from a quorum.
    CollectingNewLeaderAcks,
    /// Phase 3: established.
    Broadcast,
}

/// The leader's view of one follower.
#[derive(Debug)]
pub(crate) struct Learner {
    /// The follower's acceptedEpoch from FOLLOWERINFO.
    pub(crate) accepted_epoch: Epoch,
    /// The registration number from FOLLOWERINFO.
    pub(crate) attempt: u64,
    /// Where the follower is.
    pub(crate) stage: LearnerStage,
    /// Tick of the last message from it.
    pub(crate) last_heard: u64,
    /// The highest zxid it acknowledged as durable (meaningful once synced).
    pub(crate) acked: Zxid,
    /// It must be synced by this tick or it is dropped (moved on by synchronization progress).
    pub(crate) deadline: u64,
    /// The synchronization being streamed to it (stage `Streaming`).
    pub(crate) stream: Option<SyncStream>,
}

/// A synchronization in progress: what is left to send to one learner, and what it has not
/// acknowledged yet. The leader sends while the unacknowledged bytes stay within
/// `sync_window_bytes`; every SYNCACK opens the window again.
#[derive(Debug)]
pub(crate) struct SyncStream {
    /// The snapshot still to send (SNAP only), read back from storage a chunk at a time.
    pub(crate) snap: Option<SnapSend>,
    /// The last entry sent (or the synchronization point): the stream goes on after it.
    pub(crate) after: Zxid,
    /// Encoded sizes of the messages sent and not yet acknowledged, oldest first.
    pub(crate) in_flight: VecDeque<usize>,
    /// The sum of `in_flight`.
    pub(crate) in_flight_bytes: usize,
    /// Messages of this stream sent so far.
    pub(crate) sent: u64,
    /// Waiting for entries or a snapshot chunk read back from disk (`Action::ReadLog`,
    /// `Action::ReadSnapshot`).
    pub(crate) reading: bool,
}

/// The part of a SNAP still to send: the leader's snapshot at `zxid`, `offset` bytes of its
/// `len` already sent. The state is read from storage a chunk at a time, so a leader never
/// holds a copy of it in memory for its learners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SnapSend {
    pub(crate) zxid: Zxid,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// What a node keeps of its newest snapshot: which it is and its size. The state itself is in
/// storage (and in the application), not in the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotMeta {
    pub(crate) zxid: Zxid,
    pub(crate) state_bytes: u64,
}

/// Stages of a learner as the leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LearnerStage {
    /// FOLLOWERINFO received; LEADERINFO not sent yet.
    Connected,
    /// LEADERINFO sent.
    EpochSent,
    /// ACKEPOCH received with the follower's last zxid; not synchronized yet.
    EpochAcked {
        /// The follower's last zxid.
        last_zxid: Zxid,
    },
    /// DIFF / TRUNC / SNAP sent; the snapshot and history are going out in windows
    /// ([`Learner::stream`]). NEWLEADER follows once the stream reaches the end of the log.
    Streaming,
    /// History and NEWLEADER sent; receives every new PROPOSAL and COMMIT (TLA+ issue 1).
    Syncing {
        /// The leader's last zxid when the history was sent.
        stream_last: Zxid,
    },
    /// NEWLEADER acked: its acks count.
    Synced,
}

impl LearnerStage {
    /// Whether PROPOSAL and COMMIT messages go to the learner.
    pub(crate) fn is_forwarding(self) -> bool {
        matches!(self, LearnerStage::Syncing { .. } | LearnerStage::Synced)
    }
}

impl Learner {
    /// A learner that just sent FOLLOWERINFO.
    pub(crate) fn new(accepted_epoch: Epoch, attempt: u64, now: u64, deadline: u64) -> Learner {
        Learner {
            accepted_epoch,
            attempt,
            stage: LearnerStage::Connected,
            last_heard: now,
            acked: Zxid::ZERO,
            deadline,
            stream: None,
        }
    }
}
