//! The Bootstrap component: forms a cluster once, remembers it for ever.
//!
//! A new cluster forms around one **bootstrap server**. Every other node (a **joiner**) sends it
//! a `Hello` (its cluster name, partition count `P`, replication degree `R` and the cluster size
//! it expects) every [`BootstrapConfig::hello_interval`]. When the server has heard from
//! `expected_nodes` distinct nodes, itself included, it builds the [`LookupTable`](crate::partition::LookupTable) (`P`
//! partitions, `R` replicas each, balanced over the nodes, several groups per node), draws a
//! random cluster id, **persists** the [`ClusterTable`] through its [`TableStore`], sends it to
//! every node and reports [`BootstrapEvent::Ready`]. A joiner persists the table before it
//! reports `Ready`; so nothing ever acts on a table that is not on disk.
//!
//! A node that finds a table in its store at start checks it against its configuration (cluster
//! name, `P`, `R`, and that the table contains the node), announces itself to the table's other
//! nodes and is `Ready` as soon as one of them welcomes it (at once if the table has no other
//! node): a restarted node rejoins without the bootstrap server, and a node holding another
//! cluster's table is refused (below) before its groups start with that cluster's logs. A node
//! that crashed before it persisted the table sends `Hello` again and the server sends it the
//! same table.
//!
//! Refusals, each reported as [`BootstrapEvent::Refused`] with a message that says what to do
//! (and logged):
//!
//! - a joiner whose name, `P`, `R` or expected size differ from the server's is refused by the
//!   server, with both values in the message;
//! - a node that contacts the server after the cluster formed without it is refused (`cluster
//!   <name> (<id>) formed without <addr>; expected N nodes`);
//! - a node whose stored table does not match its configuration is refused at start, the message
//!   naming both values and the store (the data directory's `cluster.table`);
//! - a node holding **another cluster's** table (an old data directory): once `Ready`, every
//!   node announces its cluster id to the other nodes of its table, retrying until each has
//!   answered. A node of another cluster, or whose table lacks the announcer, answers with a
//!   refusal. A node reports `Refused` when a majority of the other nodes of its table refuse it:
//!   one stale node cannot stop a healthy cluster, but the stale node itself is stopped. A node
//!   whose table came from its store reports `Ready` only after a welcome, so a stale node is
//!   normally refused before it is ever `Ready`; but `Refused` may still follow `Ready` (a
//!   welcome from one stale peer, then refusals from the majority): the node must then stop
//!   serving.
//!
//! A `Ready` node never changes its table. Time is read only through timers and randomness only
//! through the context's generator, so simulated runs are deterministic.
//!
//! A three-node cluster in the simulator:
//!
//! ```
//! use std::time::Duration;
//! use kompics_core::Simulation;
//! use kompics_net::sim::{SimNet, SimNetConfig};
//! use kompics_net::{Network, NodeAddr};
//! use kvstore_app::bootstrap::{Bootstrap, BootstrapConfig, BootstrapRole, MemTableStore};
//!
//! let sim = Simulation::new(1);
//! let net = SimNet::new(&sim.system(), SimNetConfig::default());
//! let addrs: Vec<NodeAddr> =
//!     (1..=3).map(|i| NodeAddr(([10, 0, 0, i], 7000).into())).collect();
//! let mut nodes = Vec::new();
//! for &me in &addrs {
//!     let role = if me == addrs[0] {
//!         BootstrapRole::Server { expected_nodes: 3 }
//!     } else {
//!         BootstrapRole::Join { server: addrs[0] }
//!     };
//!     let config = BootstrapConfig::new(me, role, 4, 3, "demo");
//!     let store = MemTableStore::new(); // FileTableStore::new(data_dir) on a real node
//!     let network = net.add_node(me);
//!     let boot = Bootstrap::create(&sim.system(), &network.provided::<Network>(), config,
//!         move || Box::new(store.clone()));
//!     boot.start();
//!     nodes.push((network, boot));
//! }
//! let table = |i: usize| nodes[i].1.on_definition(|b| b.table().cloned()).flatten();
//! assert!(sim.run_until_cond(Duration::from_secs(5), || (0..3).all(|i| table(i).is_some())));
//! let formed = table(0).unwrap();
//! assert_eq!(formed.table.partition_count(), 4);
//! assert!((1..3).all(|i| table(i).unwrap() == formed));
//! ```
//!
//! The pieces, one a file: [`ClusterTable`] (what a formed cluster is), [`BootstrapConfig`]
//! (what a node is configured with, and how a table is checked against it), the
//! [`TableStore`]s that keep the table across restarts ([`FileTableStore`] on disk,
//! [`MemTableStore`] in memory), [`BootstrapPort`] (what the component reports), the messages
//! bootstrap components exchange (private to this module), and the [`Bootstrap`] component.

mod component;
mod config;
mod file_store;
mod port;
mod table;
mod table_store;
mod wire;

pub use component::Bootstrap;
pub use config::{BootstrapConfig, BootstrapConfigError, BootstrapRole};
pub use file_store::FileTableStore;
pub use port::{BootstrapEvent, BootstrapPort, BootstrapRequest};
pub use table::ClusterTable;
pub use table_store::{MemTableStore, TableStore, TableStoreError};
pub use wire::{BOOTSTRAP_ROUTE, BOOTSTRAP_SERVICE};

/// What the unit tests of the pieces share: addresses and a table of five nodes.
#[cfg(test)]
mod test_support {
    use kompics_net::NodeAddr;

    use super::ClusterTable;
    use crate::partition::LookupTable;

    pub(super) fn addr(i: u8) -> NodeAddr {
        NodeAddr(([10, 0, 0, i], 7000).into())
    }

    /// A table of nodes 1..=5, P=6, R=3, named "kv".
    pub(super) fn sample(id: u64) -> ClusterTable {
        let nodes: Vec<NodeAddr> = (1..=5).map(addr).collect();
        ClusterTable {
            cluster_id: id,
            cluster_name: "kv".into(),
            table: LookupTable::build(&nodes, 6, 3).unwrap(),
        }
    }
}
