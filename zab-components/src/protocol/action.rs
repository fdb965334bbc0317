//! What the node asks its driver to do: the output side of the state machine.

use serde::{Deserialize, Serialize};

use super::entry::Entry;
use super::ids::{Epoch, PeerId, ProposalId, ReadId, Zxid};
use super::message::Message;

/// One effect for the driver to carry out. Drain them with
/// [`crate::protocol::ZabNode::drain_actions`] and execute them **in order**.
///
/// Storage contract. The storage actions (`Persist`, `PersistEpoch`, `Truncate`,
/// `InstallSnapshot`) must take effect on disk in the order emitted, and an effect may become
/// durable only once every earlier storage action is durable (a single log thread that fsyncs
/// before it reports gives this). The snapshot a `TakeSnapshot` asks for is written when the
/// application's state arrives, in order with the storage actions executed by then. Completions
/// are reported through
/// [`crate::protocol::ZabNode::persisted`], [`crate::protocol::ZabNode::epoch_persisted`] and
/// [`crate::protocol::ZabNode::snapshot_taken`], in the same order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `msg` to `to` over the session with it. If there is no session, drop it: the
    /// protocol recovers through `session_ended` and timeouts.
    Send {
        /// The destination.
        to: PeerId,
        /// The message.
        msg: Message,
    },
    /// Append `entries` to the log, then call `persisted(last zxid of entries)` once they are
    /// durable (fsynced).
    Persist {
        /// Consecutive entries, in zxid order, following the log's current last entry.
        entries: Vec<Entry>,
    },
    /// Write an epoch durably (write-temp, fsync, rename), then call `epoch_persisted(kind, epoch)`.
    PersistEpoch {
        /// Which of the two epochs.
        kind: EpochKind,
        /// Its new value; never lower than the stored one.
        epoch: Epoch,
    },
    /// Remove every log entry with a zxid above `to`. No completion: later completions cover it.
    Truncate {
        /// The last entry to keep.
        to: Zxid,
    },
    /// Replace the application's state with the snapshot, and replace, **atomically**, every
    /// stored snapshot and the whole log with this snapshot followed by `entries`: after a
    /// crash, recovery must find either the old snapshot and log or the new ones, never a mix
    /// (ZOOKEEPER-3642). Then call `persisted(last zxid of entries, or zxid if none)`.
    InstallSnapshot {
        /// The snapshot's last transaction.
        zxid: Zxid,
        /// The application state, or `None` for the initial (empty) state.
        state: Option<Vec<u8>>,
        /// The entries after `zxid`, consecutive.
        entries: Vec<Entry>,
    },
    /// Capture the application's state as it is at this point of the action sequence (every
    /// `Deliver` up to `zxid` applied, and no later one), store it durably as the snapshot at
    /// `zxid`, then call `snapshot_taken(zxid, state.len())`. The log's entries up to `zxid` may
    /// then be discarded from disk.
    ///
    /// The driver does **not** wait: it goes on executing the actions after this one
    /// (messages, heartbeats, deliveries) while the application serializes its capture in the
    /// background, and reports whenever the snapshot is durable. Until then the node asks for no
    /// other snapshot. If an `InstallSnapshot` comes first, the request is void: the driver must
    /// not store the late state (it would go behind the installed snapshot), and
    /// `snapshot_taken` ignores it anyway.
    TakeSnapshot {
        /// The last delivered zxid, which the snapshot covers.
        zxid: Zxid,
    },
    /// Read back from the durable log the entries after `after` through `through`, in order,
    /// stopping before their [`Entry::encoded_len_max`] sizes add up to more than `bytes_max`
    /// (at least one), then call `log_read(peer, after, entries)`; if they cannot be read (a
    /// snapshot removed them meanwhile, an I/O error) call it with no entries. Not a storage
    /// write: it only asks for durable entries, so it may run beside the writes, in any order
    /// with them.
    ReadLog {
        /// The learner being synchronized that needs them (echo it back).
        peer: PeerId,
        /// The entries come after this zxid (echo it back).
        after: Zxid,
        /// The last entry wanted.
        through: Zxid,
        /// The most encoded bytes to return.
        bytes_max: usize,
    },
    /// Read back up to `bytes_max` bytes of the state of the stored snapshot at `zxid`,
    /// starting `offset` bytes in, then call `snapshot_read(peer, zxid, offset, bytes)`; if
    /// they cannot be read (the snapshot was replaced meanwhile, an I/O error, the file does
    /// not check out) call it with no bytes. A leader streams a SNAP this way, so it never
    /// holds a copy of its snapshot for its learners. Like `ReadLog`, not a storage write.
    ReadSnapshot {
        /// The learner being synchronized (echo it back).
        peer: PeerId,
        /// The snapshot (echo it back).
        zxid: Zxid,
        /// Where in its state to start (echo it back).
        offset: u64,
        /// The most bytes to return.
        bytes_max: usize,
    },
    /// Apply a committed transaction. Delivered strictly in zxid order, each once (an
    /// `InstallSnapshot` resets the state, after which delivery continues from its zxid).
    Deliver {
        /// The transaction's zxid.
        zxid: Zxid,
        /// The transaction.
        payload: Vec<u8>,
    },
    /// The node's role changed.
    StatusChanged(Status),
    /// A local proposal got its zxid.
    ProposalAssigned {
        /// The id `propose` returned.
        id: ProposalId,
        /// Its zxid.
        zxid: Zxid,
    },
    /// A local proposal committed; its `Deliver` has just been emitted.
    ProposalCommitted {
        /// The id `propose` returned.
        id: ProposalId,
        /// Its zxid.
        zxid: Zxid,
    },
    /// A local proposal will not be reported further.
    ProposalFailed {
        /// The id `propose` returned.
        id: ProposalId,
        /// Why.
        reason: ProposalFailure,
    },
    /// A read barrier passed: the application's state, as of this point in the action
    /// sequence, reflects every transaction committed before the read was requested (and
    /// nothing uncommitted). Serve the read from it now.
    ReadReady {
        /// The id `read` returned.
        id: ReadId,
    },
    /// A read barrier failed: nothing was read; retry (`NotLeader`) later.
    ReadFailed {
        /// The id `read` returned.
        id: ReadId,
        /// Why.
        reason: ProposalFailure,
    },
}

/// The two durable epochs of zab.md §1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EpochKind {
    /// acceptedEpoch: the last epoch this node promised to take part in (NEWEPOCH accepted).
    Accepted,
    /// currentEpoch: the last epoch whose initial history this node adopted (NEWLEADER acked).
    Current,
}

/// The node's role as the application sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Electing, discovering or synchronizing: no leader accepts proposals through this node.
    Looking,
    /// Synchronized with an established leader; proposals are forwarded to it.
    Following {
        /// The leader.
        leader: PeerId,
        /// The leader's epoch.
        epoch: Epoch,
    },
    /// Established leader of `epoch`; proposals are accepted.
    Leading {
        /// The established epoch.
        epoch: Epoch,
    },
}

/// Why a proposal failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProposalFailure {
    /// The node the proposal was sent to does not lead; `leader` is whom it follows, if anyone.
    NotLeader {
        /// The leader to retry with, if known.
        leader: Option<PeerId>,
    },
    /// The leader has too many uncommitted proposals; retry later.
    TooManyOutstanding,
    /// The leader refused the payload as larger than its `payload_bytes_max` (the members'
    /// configurations disagree: each node checks its own proposals before forwarding them).
    TooLarge,
    /// The node left the broadcast phase while the proposal was in flight: it may or may not
    /// commit. Watch the delivered transactions to find out.
    OutcomeUnknown,
}
