//! [`ClusterTable`]: a formed cluster's identity and the placement of its partitions, as the
//! bootstrap server builds it, every node stores it and the network carries it.

use std::fmt;

use kompics_net::NodeAddr;
use serde::{Deserialize, Serialize};

use crate::partition::LookupTable;

/// A formed cluster: its identity and the placement of its partitions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterTable {
    /// Drawn at random by the bootstrap server when the cluster formed; two clusters, even of
    /// the same name and nodes, have different ids.
    pub cluster_id: u64,
    /// The configured name of the cluster.
    pub cluster_name: String,
    /// Partition → group. Its partition count is `P`, its group size `R`.
    pub table: LookupTable<NodeAddr>,
}

impl ClusterTable {
    /// The nodes of the cluster, sorted.
    pub fn nodes(&self) -> Vec<NodeAddr> {
        self.table.nodes()
    }

    /// Whether `node` is one of the cluster's nodes.
    pub fn contains(&self, node: NodeAddr) -> bool {
        self.table.iter().any(|(_, group)| group.contains(&node))
    }
}

impl fmt::Display for ClusterTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cluster {:?} ({:016x}): {} nodes, P={}, R={}",
            self.cluster_name,
            self.cluster_id,
            self.nodes().len(),
            self.table.partition_count(),
            self.table.replication()
        )
    }
}

/// `nodes` as a comma-separated list, for messages.
pub(super) fn node_list(nodes: &[NodeAddr]) -> String {
    nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
}
