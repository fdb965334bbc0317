//! The [`AtomicBroadcast`] port between a Zab instance and its application: proposals, read
//! barriers and snapshot answers in; deliveries, outcomes, status and state-transfer requests
//! out.

use kompics_core::Port;
use kompics_net::NodeAddr;

use crate::protocol::{Epoch, Zxid};

/// The atomic-broadcast port a Zab instance provides to its application.
pub struct AtomicBroadcast;

/// Requests from the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AbRequest {
    /// Broadcast `payload`. `tag` is the caller's, echoed in the outcome events.
    Propose {
        /// The caller's identifier for this proposal.
        tag: u64,
        /// The transaction.
        payload: Vec<u8>,
    },
    /// A linearizable read barrier: [`AbEvent::ReadReady`] says when the application's state
    /// reflects every transaction committed before this request (read it then, in that
    /// handler); [`AbEvent::Failed`] (`NotLeader`, `TooManyOutstanding`) that nothing was read.
    /// Nothing is written to any log: the leader confirms with a quorum that it still leads.
    Read {
        /// The caller's identifier for this read (not shared with a pending proposal).
        tag: u64,
    },
    /// The answer to [`AbEvent::TakeSnapshot`]: the application's state after every delivery up
    /// to `zxid`.
    SnapshotTaken {
        /// The zxid of the request.
        zxid: Zxid,
        /// The serialized state.
        state: Vec<u8>,
    },
}

/// What a Zab instance tells its application, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AbEvent {
    /// A committed transaction, in zxid order, each once (until an `InstallState`).
    Deliver {
        /// Its zxid.
        zxid: Zxid,
        /// The transaction.
        payload: Vec<u8>,
    },
    /// This instance's role changed.
    Status(ZabStatus),
    /// A proposal of this node got its zxid.
    Assigned {
        /// The caller's tag.
        tag: u64,
        /// The zxid.
        zxid: Zxid,
    },
    /// A proposal of this node committed (its `Deliver` came just before).
    Committed {
        /// The caller's tag.
        tag: u64,
        /// The zxid.
        zxid: Zxid,
    },
    /// A read barrier passed ([`AbRequest::Read`]): every delivery it needs came before this
    /// event, so the application's state now may be read.
    ReadReady {
        /// The caller's tag.
        tag: u64,
    },
    /// A proposal or read barrier of this node will not be reported further.
    Failed {
        /// The caller's tag.
        tag: u64,
        /// Why, and what the caller can do.
        reason: ProposeFailure,
    },
    /// Answer with [`AbRequest::SnapshotTaken`]: the state after every delivery so far (which
    /// is up to `zxid`).
    TakeSnapshot {
        /// The last delivered zxid.
        zxid: Zxid,
    },
    /// Replace the whole state with this snapshot (`None`: the empty initial state); deliveries
    /// continue after `zxid`.
    InstallState {
        /// The snapshot's last transaction.
        zxid: Zxid,
        /// The state.
        state: Option<Vec<u8>>,
    },
}

impl Port for AtomicBroadcast {
    type Request = AbRequest;
    type Indication = AbEvent;
}

/// The role of an instance, with nodes named by address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZabStatus {
    /// Electing or synchronizing: proposals are refused.
    Looking,
    /// Following an established leader; proposals are forwarded to it.
    Following {
        /// The leader.
        leader: NodeAddr,
        /// Its epoch.
        epoch: Epoch,
    },
    /// Leading `epoch`.
    Leading {
        /// The epoch.
        epoch: Epoch,
    },
}

/// Why a proposal failed, and what the caller can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeFailure {
    /// Nothing happened: no leader is established (retry later), or the leader is elsewhere.
    NotLeader {
        /// The leader to retry with, if known.
        leader: Option<NodeAddr>,
    },
    /// Nothing happened: too many proposals are in flight; retry later.
    TooManyOutstanding,
    /// Nothing happened, and retrying will not help: the payload is larger than
    /// `payload_bytes_max` (`max`: this node's bound; a leader configured with a smaller one
    /// refuses too).
    TooLarge {
        /// This node's `payload_bytes_max`.
        max: usize,
    },
    /// The proposal may or may not commit: watch the deliveries.
    OutcomeUnknown,
}
