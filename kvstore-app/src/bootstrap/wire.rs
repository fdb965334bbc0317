//! The wire format of bootstrap: the route its messages travel on and the messages bootstrap
//! components exchange (hello, table, refusal, announcement and its answers).

use kompics_net::Route;
use serde::{Deserialize, Serialize};

use super::table::ClusterTable;

/// The network service number of bootstrap messages (see [`Route`]); one instance, 0, per node.
pub const BOOTSTRAP_SERVICE: u32 = 0xB007;

/// The route of bootstrap messages: [`BOOTSTRAP_SERVICE`], instance 0.
pub const BOOTSTRAP_ROUTE: Route = Route::new(BOOTSTRAP_SERVICE, 0);

/// What a joiner says to the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Hello {
    pub(super) cluster_name: String,
    pub(super) partitions: u32,
    pub(super) replication: usize,
    pub(super) expected_nodes: Option<usize>,
}

/// The messages bootstrap components exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Wire {
    /// Joiner → server: please send me the table.
    Hello(Hello),
    /// Server → joiner: the cluster's table.
    Table(ClusterTable),
    /// Server → joiner: you cannot join.
    Refuse { reason: String },
    /// Ready node → the other nodes of its table: I am in your cluster.
    Announce { cluster_id: u64, cluster_name: String },
    /// Yes, you are.
    Welcome { cluster_id: u64 },
    /// No, you are not.
    Reject { reason: String },
}
