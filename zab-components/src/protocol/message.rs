//! The messages peers exchange. The driver carries them over reliable FIFO sessions (one per
//! pair of peers, as TCP gives) and tells the node when a session ends.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::action::ProposalFailure;
use super::entry::Entry;
use super::ids::{Epoch, PeerId, ProposalId, ReadId, Zxid};

/// A message between two peers. The sender is not inside: the driver passes it to
/// [`crate::protocol::ZabNode::step`] next to the message, as the session knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 0: an election notification (FLE).
    Notification(Notification),
    /// Phase 1, follower → leader: "I follow you; this is the last epoch I accepted".
    FollowerInfo {
        /// The follower's acceptedEpoch.
        accepted_epoch: Epoch,
        /// Which registration of this follower this is. A follower may re-register with the
        /// same leader over the same session (it went back to election and chose it again);
        /// messages the leader sent for an older registration are recognised by the attempt
        /// echoed in LEADERINFO and ignored (ZooKeeper gets this from a new TCP connection).
        attempt: u64,
    },
    /// Phase 1, leader → follower: the epoch the leader proposes to establish (NEWEPOCH).
    LeaderInfo {
        /// The new epoch.
        epoch: Epoch,
        /// The registration answered (from FOLLOWERINFO).
        attempt: u64,
    },
    /// Phase 1, follower → leader: the follower accepted the epoch and reports its history.
    AckEpoch {
        /// The epoch acknowledged.
        epoch: Epoch,
        /// The follower's currentEpoch (the last epoch whose NEWLEADER it acknowledged).
        current_epoch: Epoch,
        /// The last zxid in the follower's log.
        last_zxid: Zxid,
        /// False when the follower had already accepted this epoch before: such an ack lets the
        /// follower synchronize but does not count towards the epoch's quorum, because a server
        /// promises an epoch to one leader only (ZooKeeper sends currentEpoch -1 for it).
        fresh: bool,
    },
    /// Phase 2, leader → follower: how the follower's log will be brought to the leader's.
    SyncStart(SyncMode),
    /// Phase 2, leader → follower: the next piece of a SNAP's snapshot state.
    SnapChunk {
        /// Bytes following the previous chunk.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Phase 2, leader → follower: a run of the leader's history (after SyncStart).
    SyncEntries {
        /// Consecutive entries in zxid order.
        entries: Vec<Entry>,
    },
    /// Phase 2, leader → follower: the end of the history; adopt it and acknowledge the epoch.
    NewLeader {
        /// The epoch being established.
        epoch: Epoch,
    },
    /// Phase 2, follower → leader: the history is durable and currentEpoch is `epoch`.
    AckNewLeader {
        /// The epoch acknowledged.
        epoch: Epoch,
    },
    /// Phase 2 → 3, leader → follower: the epoch is established; start serving.
    UpToDate {
        /// The leader's latest committed zxid (TLA+ issue 3: not the NEWLEADER zxid).
        committed: Zxid,
    },
    /// Phase 3, leader → follower: new transactions, in zxid order, consecutive.
    Proposal {
        /// The proposed entries.
        entries: Vec<Entry>,
    },
    /// Phase 3, follower → leader: every entry up to `zxid` is durable here.
    Ack {
        /// The last durable zxid acknowledged.
        zxid: Zxid,
    },
    /// Phase 3, leader → follower: every entry up to `zxid` is committed.
    Commit {
        /// The new commit point.
        zxid: Zxid,
    },
    /// Phase 3, follower → leader: please propose this payload for me.
    Forward {
        /// The follower's local id for the proposal.
        id: ProposalId,
        /// The transaction.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Phase 3, leader → follower: the outcome of a forwarded proposal.
    ForwardResult {
        /// The follower's local id.
        id: ProposalId,
        /// The zxid assigned, or why the leader refused.
        result: Result<Zxid, ProposalFailure>,
    },
    /// Phase 3, follower → leader: confirm a read point for this follower's read barrier.
    ReadRequest {
        /// The follower's local id for the read.
        id: ReadId,
    },
    /// Phase 3, leader → follower: the read point of a barrier, confirmed by a quorum of the
    /// leader's epoch after the request arrived; the follower serves the read once it has
    /// delivered through it.
    ReadResult {
        /// The follower's local id.
        id: ReadId,
        /// The read point (the leader's commit point when the request arrived), or why the
        /// leader refused.
        result: Result<Zxid, ProposalFailure>,
    },
    /// Phase 3, leader → follower: "do you still follow me in `epoch`?", for the read barriers
    /// that arrived before round `round` started.
    ReadPing {
        /// The leader's epoch.
        epoch: Epoch,
        /// The leader's round number (increasing within the epoch).
        round: u64,
    },
    /// Phase 3, follower → leader: the answer to a READPING, sent only while following the
    /// leader in that epoch.
    ReadPong {
        /// The epoch echoed.
        epoch: Epoch,
        /// The round echoed.
        round: u64,
    },
    /// Phase 2, follower → leader: the follower has received `received` synchronization
    /// messages (SNAPCHUNK and SYNCENTRIES) of the current synchronization so far. The leader
    /// keeps at most [`crate::protocol::Config::sync_window_bytes`] of them unacknowledged.
    SyncAck {
        /// Synchronization messages received, cumulative.
        received: u64,
    },
    /// Leader → follower heartbeat.
    Ping,
    /// Follower → leader answer to a heartbeat.
    Pong,
}

/// How the leader synchronizes a follower (zab.md §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncMode {
    /// Keep the log; the entries after `last` follow.
    Diff {
        /// The follower's last zxid, which the leader also has.
        last: Zxid,
    },
    /// Remove the log's entries after `to` (the last common zxid); the leader's entries after
    /// `to` follow.
    Trunc {
        /// The last common zxid.
        to: Zxid,
    },
    /// Replace everything with the leader's snapshot at `zxid`, whose state follows in
    /// [`Message::SnapChunk`]s, then the leader's entries after `zxid`.
    Snap {
        /// The snapshot's last transaction.
        zxid: Zxid,
        /// The state's size in bytes, or `None` for the initial (empty) application state,
        /// which has no bytes to send.
        state_bytes: Option<u64>,
    },
}

/// What a server in an election is voting for.
///
/// Votes are ordered by `(epoch, zxid, leader)`: the server with the most recent history wins,
/// its id breaking ties (FLE's `totalOrderPredicate`, zab.md §5). The election itself also
/// honours [`crate::protocol::Config::preferred_leader`] on ties, which this `Ord` cannot know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote {
    /// The proposed leader.
    pub leader: PeerId,
    /// The proposed leader's last zxid.
    pub zxid: Zxid,
    /// The proposed leader's currentEpoch (after an epoch is established: that epoch).
    pub epoch: Epoch,
}

/// The role of the sender of a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PeerState {
    /// Electing.
    Looking,
    /// Following the leader named in the vote.
    Following,
    /// Leading.
    Leading,
}

/// An election notification: the sender's vote, election round and role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The sender's vote (for a follower or leader: the vote it decided on).
    pub vote: Vote,
    /// The sender's election round (FLE's logical clock).
    pub round: u64,
    /// The sender's role.
    pub state: PeerState,
    /// The sender's acceptedEpoch. Not part of the vote: a future leader proposes an epoch
    /// above every acceptedEpoch it heard of, so that no server is left out by a promise it
    /// made to a failed leader.
    pub accepted_epoch: Epoch,
}

impl Ord for Vote {
    fn cmp(&self, other: &Vote) -> Ordering {
        (self.epoch, self.zxid, self.leader).cmp(&(other.epoch, other.zxid, other.leader))
    }
}

impl PartialOrd for Vote {
    fn partial_cmp(&self, other: &Vote) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Message {
    /// An upper bound on the encoded size of everything in a message but its entries and
    /// byte strings (variant name, headers, ids and zxids).
    pub const OVERHEAD_BYTES_MAX: usize = 128;
    /// An upper bound on the encoded size of an entry besides its payload (zxid and headers).
    pub const ENTRY_OVERHEAD_BYTES_MAX: usize = 32;

    /// An upper bound on this message's size once encoded (MessagePack, as the Zab component
    /// sends it). The byte bounds of [`crate::protocol::Config`] are checked against it.
    pub fn encoded_len_max(&self) -> usize {
        let body = match self {
            Message::Proposal { entries } | Message::SyncEntries { entries } => {
                entries.iter().map(Entry::encoded_len_max).sum()
            }
            Message::SnapChunk { bytes } => bytes.len(),
            Message::Forward { payload, .. } => payload.len(),
            _ => 0,
        };
        Message::OVERHEAD_BYTES_MAX + body
    }

    /// A short name for logs and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Notification(_) => "NOTIFICATION",
            Message::FollowerInfo { .. } => "FOLLOWERINFO",
            Message::LeaderInfo { .. } => "LEADERINFO",
            Message::AckEpoch { .. } => "ACKEPOCH",
            Message::SyncStart(SyncMode::Diff { .. }) => "DIFF",
            Message::SyncStart(SyncMode::Trunc { .. }) => "TRUNC",
            Message::SyncStart(SyncMode::Snap { .. }) => "SNAP",
            Message::SnapChunk { .. } => "SNAPCHUNK",
            Message::SyncEntries { .. } => "SYNCENTRIES",
            Message::NewLeader { .. } => "NEWLEADER",
            Message::AckNewLeader { .. } => "ACKNEWLEADER",
            Message::UpToDate { .. } => "UPTODATE",
            Message::Proposal { .. } => "PROPOSAL",
            Message::Ack { .. } => "ACK",
            Message::Commit { .. } => "COMMIT",
            Message::Forward { .. } => "FORWARD",
            Message::ForwardResult { .. } => "FORWARDRESULT",
            Message::ReadRequest { .. } => "READREQUEST",
            Message::ReadResult { .. } => "READRESULT",
            Message::ReadPing { .. } => "READPING",
            Message::ReadPong { .. } => "READPONG",
            Message::SyncAck { .. } => "SYNCACK",
            Message::Ping => "PING",
            Message::Pong => "PONG",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Entry, Zxid};

    /// The bound holds for every kind of message, with the largest ids and zxids.
    #[test]
    fn encoded_len_max_bounds_the_encoding() {
        let big = Zxid::new(u64::MAX, u64::MAX);
        let entries: Vec<Entry> =
            [0, 1, 300, 70_000].iter().map(|&n| Entry::new(big, vec![7u8; n])).collect();
        let vote = Vote { leader: PeerId(u64::MAX), zxid: big, epoch: Epoch(u64::MAX) };
        let messages = vec![
            Message::Notification(Notification {
                vote,
                round: u64::MAX,
                state: PeerState::Following,
                accepted_epoch: Epoch(u64::MAX),
            }),
            Message::FollowerInfo { accepted_epoch: Epoch(u64::MAX), attempt: u64::MAX },
            Message::LeaderInfo { epoch: Epoch(u64::MAX), attempt: u64::MAX },
            Message::AckEpoch {
                epoch: Epoch(u64::MAX),
                current_epoch: Epoch(u64::MAX),
                last_zxid: big,
                fresh: false,
            },
            Message::SyncStart(SyncMode::Snap { zxid: big, state_bytes: Some(u64::MAX) }),
            Message::SyncStart(SyncMode::Trunc { to: big }),
            Message::SnapChunk { bytes: vec![1; 70_000] },
            Message::SyncEntries { entries: entries.clone() },
            Message::Proposal { entries },
            Message::Forward { id: ProposalId(u64::MAX), payload: vec![3; 70_000] },
            Message::ForwardResult { id: ProposalId(u64::MAX), result: Ok(big) },
            Message::ForwardResult {
                id: ProposalId(u64::MAX),
                result: Err(ProposalFailure::NotLeader { leader: Some(PeerId(u64::MAX)) }),
            },
            Message::ReadResult { id: ReadId(u64::MAX), result: Ok(big) },
            Message::ReadPing { epoch: Epoch(u64::MAX), round: u64::MAX },
            Message::SyncAck { received: u64::MAX },
            Message::UpToDate { committed: big },
            Message::Ping,
        ];
        for message in messages {
            let encoded = rmp_serde::to_vec(&message).unwrap().len();
            assert!(
                encoded <= message.encoded_len_max(),
                "{}: {encoded} bytes > bound {}",
                message.kind(),
                message.encoded_len_max()
            );
        }
    }

    /// Payloads travel as MessagePack byte strings: serde's default for `Vec<u8>` would send
    /// one integer per byte (up to twice the size, and a visitor call per byte each way).
    #[test]
    fn payloads_are_encoded_as_byte_strings() {
        let payload = vec![0xAB; 1000];
        let proposal =
            Message::Proposal { entries: vec![Entry::new(Zxid::new(3, 7), payload.clone()); 4] };
        let wire = rmp_serde::to_vec(&proposal).unwrap();
        assert!(wire.len() < 4 * 1000 + 100, "{} bytes for 4000 bytes of payload", wire.len());
        let back: Message = rmp_serde::from_slice(&wire).unwrap();
        assert_eq!(back, proposal);
        let forward = Message::Forward { id: ProposalId(9), payload: payload.clone() };
        assert!(rmp_serde::to_vec(&forward).unwrap().len() < 1000 + 50);
        let chunk = Message::SnapChunk { bytes: payload };
        assert!(rmp_serde::to_vec(&chunk).unwrap().len() < 1000 + 50);
    }
}
