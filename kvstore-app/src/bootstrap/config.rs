//! [`BootstrapConfig`]: what a node is configured with to find its cluster, its validation, and
//! the check of a table (stored, or sent by the server) against it.

use std::fmt;
use std::time::Duration;

use kompics_net::NodeAddr;

use super::table::{node_list, ClusterTable};
use super::wire::Hello;

/// What a node does when it has no table yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapRole {
    /// The bootstrap server: it forms the cluster once `expected_nodes` nodes (itself included)
    /// have said hello.
    Server {
        /// The size of the cluster, this node included.
        expected_nodes: usize,
    },
    /// A joiner: it says hello to `server` until it receives the table.
    Join {
        /// The bootstrap server.
        server: NodeAddr,
    },
}

/// Settings of the [`Bootstrap`](super::Bootstrap) component.
#[derive(Clone, Debug)]
pub struct BootstrapConfig {
    /// This node.
    pub me: NodeAddr,
    /// Server or joiner.
    pub role: BootstrapRole,
    /// The number of partitions `P` (at least 1).
    pub partitions: u32,
    /// The replication degree `R`: nodes per group (at least 1, at most the cluster size).
    pub replication: usize,
    /// The cluster's name: a node configured for another name is refused.
    pub cluster_name: String,
    /// How often a joiner says hello, and how often a node repeats its announcement to the
    /// nodes that have not answered it. Default 200 ms.
    pub hello_interval: Duration,
    /// The cluster size a joiner expects, sent in its hello: the server refuses a joiner that
    /// expects another size. `None` (the default) accepts the server's. A server uses its
    /// role's `expected_nodes` and ignores this.
    pub expected_nodes: Option<usize>,
}

impl BootstrapConfig {
    /// A configuration with the default `hello_interval` (200 ms) and no expected size for a
    /// joiner.
    pub fn new(
        me: NodeAddr,
        role: BootstrapRole,
        partitions: u32,
        replication: usize,
        cluster_name: impl Into<String>,
    ) -> BootstrapConfig {
        BootstrapConfig {
            me,
            role,
            partitions,
            replication,
            cluster_name: cluster_name.into(),
            hello_interval: Duration::from_millis(200),
            expected_nodes: None,
        }
    }

    /// The cluster size this node expects: the server's `expected_nodes`, or a joiner's
    /// [`expected_nodes`](Self::expected_nodes).
    pub fn expected_size(&self) -> Option<usize> {
        match self.role {
            BootstrapRole::Server { expected_nodes } => Some(expected_nodes),
            BootstrapRole::Join { .. } => self.expected_nodes,
        }
    }

    /// Checks that the settings can form a cluster; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), BootstrapConfigError> {
        if self.partitions == 0 {
            return Err(BootstrapConfigError::NoPartitions);
        }
        if self.replication == 0 {
            return Err(BootstrapConfigError::NoReplication);
        }
        if self.hello_interval.is_zero() {
            return Err(BootstrapConfigError::ZeroHelloInterval);
        }
        if let BootstrapRole::Join { server } = self.role {
            if server == self.me {
                return Err(BootstrapConfigError::JoinsItself { me: self.me });
            }
        }
        if let Some(expected_nodes) = self.expected_size() {
            if expected_nodes < self.replication {
                return Err(BootstrapConfigError::TooFewNodes {
                    expected_nodes,
                    replication: self.replication,
                });
            }
        }
        Ok(())
    }

    /// What this node says in its hello: the settings the server checks against its own.
    pub(super) fn hello(&self) -> Hello {
        Hello {
            cluster_name: self.cluster_name.clone(),
            partitions: self.partitions,
            replication: self.replication,
            expected_nodes: self.expected_size(),
        }
    }

    /// Why `table` cannot be this node's table, or `None` if it can. `source` says where it
    /// came from, for the message.
    pub(super) fn check_table(&self, table: &ClusterTable, source: &str) -> Option<String> {
        let mut wrong = Vec::new();
        if table.cluster_name != self.cluster_name {
            wrong.push(format!(
                "cluster name {:?} there, {:?} here",
                table.cluster_name, self.cluster_name
            ));
        }
        if table.table.partition_count() != self.partitions {
            wrong.push(format!(
                "P={} there, P={} here",
                table.table.partition_count(),
                self.partitions
            ));
        }
        if table.table.replication() != self.replication {
            wrong.push(format!(
                "R={} there, R={} here",
                table.table.replication(),
                self.replication
            ));
        }
        if !wrong.is_empty() {
            return Some(format!(
                "node {}: the table of cluster {:?} ({:016x}) in {source} does not match this \
                 node's configuration: {}. Start the node with the cluster's configuration, or \
                 move {source} away to join a new cluster",
                self.me,
                table.cluster_name,
                table.cluster_id,
                wrong.join("; ")
            ));
        }
        if !table.contains(self.me) {
            return Some(format!(
                "node {}: the table of cluster {:?} ({:016x}) in {source} does not contain this \
                 node (its nodes: {}): it belongs to another node",
                self.me,
                table.cluster_name,
                table.cluster_id,
                node_list(&table.nodes())
            ));
        }
        None
    }
}

/// Why a [`BootstrapConfig`] cannot form a cluster: each variant names the setting to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapConfigError {
    /// The partition count `P` is 0: set at least 1.
    NoPartitions,
    /// The replication degree `R` is 0: set at least 1.
    NoReplication,
    /// `hello_interval` is zero: a joiner would flood the server.
    ZeroHelloInterval,
    /// A joiner names itself as its bootstrap server: give that node the server role instead.
    JoinsItself {
        /// This node.
        me: NodeAddr,
    },
    /// Fewer nodes are expected than the `R` distinct replicas each partition needs: expect
    /// more nodes or lower `R`.
    TooFewNodes {
        /// The cluster size this node expects.
        expected_nodes: usize,
        /// The replication degree `R`.
        replication: usize,
    },
}

impl fmt::Display for BootstrapConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootstrapConfigError::NoPartitions => {
                f.write_str("the partition count P must be at least 1")
            }
            BootstrapConfigError::NoReplication => {
                f.write_str("the replication degree R must be at least 1")
            }
            BootstrapConfigError::ZeroHelloInterval => {
                f.write_str("hello_interval must not be zero")
            }
            BootstrapConfigError::JoinsItself { me } => write!(
                f,
                "node {me} is configured to join itself: a bootstrap server has the Server role"
            ),
            BootstrapConfigError::TooFewNodes { expected_nodes, replication } => write!(
                f,
                "{expected_nodes} expected nodes cannot hold R={replication} distinct replicas \
                 of each partition"
            ),
        }
    }
}

impl std::error::Error for BootstrapConfigError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::test_support::{addr, sample};

    #[test]
    fn a_stored_table_is_checked_against_the_configuration() {
        let me = addr(1);
        let config =
            BootstrapConfig::new(me, BootstrapRole::Server { expected_nodes: 5 }, 6, 3, "kv");
        assert_eq!(config.check_table(&sample(1), "/d/cluster.table"), None);
        let mut other = config.clone();
        other.partitions = 8;
        other.cluster_name = "other".into();
        let reason = other.check_table(&sample(1), "/d/cluster.table").unwrap();
        assert!(reason.contains("P=6 there, P=8 here"), "{reason}");
        assert!(reason.contains("\"kv\" there, \"other\" here"), "{reason}");
        assert!(reason.contains("/d/cluster.table"), "{reason}");
        let stranger =
            BootstrapConfig::new(addr(9), BootstrapRole::Join { server: me }, 6, 3, "kv");
        let reason = stranger.check_table(&sample(1), "/d/cluster.table").unwrap();
        assert!(reason.contains("does not contain this node"), "{reason}");
    }

    #[test]
    fn impossible_configurations_are_named() {
        let me = addr(1);
        let server =
            |n| BootstrapConfig::new(me, BootstrapRole::Server { expected_nodes: n }, 6, 3, "kv");
        assert_eq!(server(3).validate(), Ok(()));
        assert_eq!(
            server(2).validate(),
            Err(BootstrapConfigError::TooFewNodes { expected_nodes: 2, replication: 3 })
        );
        assert!(server(2).validate().unwrap_err().to_string().contains("R=3"));
        let mut zero = server(3);
        zero.partitions = 0;
        assert_eq!(zero.validate(), Err(BootstrapConfigError::NoPartitions));
        let selfish = BootstrapConfig::new(me, BootstrapRole::Join { server: me }, 6, 3, "kv");
        assert_eq!(selfish.validate(), Err(BootstrapConfigError::JoinsItself { me }));
        assert!(selfish.validate().unwrap_err().to_string().contains("join itself"));
    }
}
