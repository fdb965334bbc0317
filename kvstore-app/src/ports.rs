//! The ports of the store's components and the errors they carry: [`KvPort`], on which a
//! [`Replica`](crate::replica::Replica) (and the overlay, for a remote one) serves client
//! operations, [`KvError`], why an operation has no result, and [`ReplicaStatusPort`], on which
//! a replica reports its role and progress.

use std::fmt;

use kompics_core::Port;
use serde::{Deserialize, Serialize};
use zab_components::component::ZabStatus;
use zab_components::protocol::Zxid;

use crate::partition::PartitionId;
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
