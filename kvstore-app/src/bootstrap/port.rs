//! [`BootstrapPort`]: what the [`Bootstrap`](super::Bootstrap)(super::Bootstrap) component tells the rest of the
//! node (ready with a table, or refused) and the one thing it can be asked.

use std::sync::Arc;

use kompics_core::Port;

use super::table::ClusterTable;

/// The port of the [`Bootstrap`](super::Bootstrap) component.
pub struct BootstrapPort;

/// Requests to the [`Bootstrap`](super::Bootstrap) component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapRequest {
    /// Repeat the outcome ([`BootstrapEvent::Ready`] or [`BootstrapEvent::Refused`]) if there
    /// is one yet, for a component connected after it was reported.
    Status,
}

/// What the [`Bootstrap`](super::Bootstrap) component reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapEvent {
    /// The node belongs to this cluster: the table is on disk and will not change.
    Ready(Arc<ClusterTable>),
    /// The node must not serve (it may follow `Ready`): its configuration does not match the
    /// cluster's, the cluster formed without it, the majority of its cluster refuse it, or its
    /// table store failed. The reason says which, and what to do.
    Refused {
        /// The reason, for the operator.
        reason: String,
    },
}

impl Port for BootstrapPort {
    type Request = BootstrapRequest;
    type Indication = BootstrapEvent;
}
