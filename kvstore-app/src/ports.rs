//! The ports of the store's components and the errors they carry: [`KvPort`], on which a
//! [`Replica`](crate::replica::Replica) (and the overlay, for a remote one) serves client
//! operations, [`KvError`], why an operation has no result, [`ReplicaStatusPort`], on which
//! a replica reports its role and progress, and [`OverlayControl`], on which the node gives
//! its [`Overlay`](crate::overlay::Overlay) the table and the front end asks it about the
//! node.

use std::fmt;

use std::sync::Arc;

use kompics_core::{Port, Request};
use kompics_net::NodeAddr;
use serde::{Deserialize, Serialize};
use zab_components::component::ZabStatus;
use zab_components::protocol::Zxid;

use crate::partition::{LookupTable, PartitionId};
use crate::store::{Op, OpResult};

/// The port a replica provides to the components that serve clients.
pub struct KvPort;

/// A client operation; `id` is the caller's and comes back in the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvRequest {
    /// The caller's identifier for this request.
    pub id: u64,
    /// The operation.
    pub op: Op,
}

/// The answer to one [`KvRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvReply {
    /// The request's `id`.
    pub id: u64,
    /// The result, or why there is none.
    pub result: Result<OpResult, KvError>,
}

impl Port for KvPort {
    type Request = KvRequest;
    type Indication = KvReply;
}

/// What a replica reports about itself: its role in its group and how far it has applied.
pub struct ReplicaStatusPort;

/// The state of one replica, sent when its role changes and, while it applies operations, at
/// most every [`ReplicaConfig::status_interval`](crate::replica::ReplicaConfig::status_interval).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The partition.
    pub partition: PartitionId,
    /// The role of its Zab instance.
    pub status: ZabStatus,
    /// The last operation applied.
    pub last_applied: Option<Zxid>,
}

impl Port for ReplicaStatusPort {
    /// A request for a report now.
    type Request = ();
    type Indication = ReplicaStatus;
}

/// Why an operation has no result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvError {
    /// The operation did not happen: the partition had no leader for the whole wait.
    TryAgain {
        /// The partition.
        partition: PartitionId,
    },
    /// The operation did not happen: too many operations are in flight in the partition.
    Busy {
        /// The partition.
        partition: PartitionId,
    },
    /// The operation may or may not have happened (the leader changed while it was in flight,
    /// or the node serving it became unreachable).
    OutcomeUnknown {
        /// The partition.
        partition: PartitionId,
    },
    /// The operation did not happen and never will: its log entry would exceed the Zab
    /// group's `payload_bytes_max` (`max`).
    TooLarge {
        /// The partition.
        partition: PartitionId,
        /// The bound, in bytes.
        max: usize,
    },
    /// The write did not happen: it would take the node's data beyond its memory limit
    /// ([`ReplicaConfig::memory`](crate::replica::ReplicaConfig::memory)).
    OutOfMemory,
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::TryAgain { partition } => {
                write!(f, "partition {partition} has no leader; the operation did not happen")
            }
            KvError::Busy { partition } => write!(
                f,
                "partition {partition} has too many operations in flight; the operation did not happen"
            ),
            KvError::OutcomeUnknown { partition } => write!(
                f,
                "partition {partition}: the outcome is unknown (the operation may or may not have happened)"
            ),
            KvError::TooLarge { partition, max } => write!(
                f,
                "partition {partition}: the operation exceeds the log's entry limit of {max} bytes; it did not happen"
            ),
            KvError::OutOfMemory => f.write_str(OOM_MESSAGE),
        }
    }
}

impl std::error::Error for KvError {}

/// Redis' text for a write refused by `maxmemory` (the `-OOM` error), word for word.
pub const OOM_MESSAGE: &str = "command not allowed when used memory > 'maxmemory'.";

/// What the node tells its overlay.
#[derive(Clone, Debug)]
pub enum OverlayRequest {
    /// The cluster's table: routing starts. The node has created its replicas and connected
    /// them first. Later installs are ignored (a node's table never changes).
    Install {
        /// The placement of partitions on nodes.
        table: Arc<LookupTable<NodeAddr>>,
        /// The cluster's name.
        cluster_name: String,
        /// The cluster's identifier.
        cluster_id: u64,
    },
    /// Ask for an [`OverlayInfo`]: send it with [`RequiredPort::request`](kompics_core::RequiredPort::request)`(InfoQuery)`, and
    /// the answer comes back to the asker alone, as the indication.
    Info(Request<InfoQuery, OverlayInfo>),
}

/// The question of [`OverlayRequest::Info`]: the node at a glance, please.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InfoQuery;

impl From<Request<InfoQuery, OverlayInfo>> for OverlayRequest {
    fn from(request: Request<InfoQuery, OverlayInfo>) -> OverlayRequest {
        OverlayRequest::Info(request)
    }
}

/// One partition's group as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    /// The partition.
    pub partition: PartitionId,
    /// Its members, in table order.
    pub members: Vec<NodeAddr>,
    /// The local replica's last report, if this node is a member.
    pub local: Option<ReplicaStatus>,
    /// The leader, if known (from the local replica, or hints from members).
    pub leader: Option<NodeAddr>,
}

/// Counters of an overlay, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverlayStats {
    /// `GET`s received from this node's clients.
    pub gets: u64,
    /// `SET`s.
    pub sets: u64,
    /// `DEL`s.
    pub dels: u64,
    /// `CAS`es.
    pub cases: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Requests forwarded to another node.
    pub forwarded: u64,
    /// Requests served here for another node.
    pub served_for_others: u64,
}

/// A node at a glance, as its overlay knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayInfo {
    /// This node.
    pub me: NodeAddr,
    /// The cluster's name and identifier, once the table is installed.
    pub cluster: Option<(String, u64)>,
    /// The replication degree (0 before the table is installed).
    pub replication: usize,
    /// Every partition's group.
    pub groups: Vec<GroupView>,
    /// Nodes the failure detector suspects now.
    pub suspected: Vec<NodeAddr>,
    /// Counters.
    pub stats: OverlayStats,
}

/// The control port of an overlay: the table goes in, information about the node comes out.
///
/// The only indication is the answer to an [`OverlayRequest::Info`], and it goes to the
/// component that asked: nothing is ever broadcast to the other requirers (the node itself
/// receives nothing here).
pub struct OverlayControl;

impl Port for OverlayControl {
    type Request = OverlayRequest;
    type Indication = OverlayInfo;
}
