//! Tooling around the store, not part of it: what runs outside a node, against a cluster.
//!
//! - [`client`]: [`client::RespClient`], a small blocking RESP client, for the tools and tests;
//! - [`bench`](mod@bench): the `kvstore bench` load generator and its report;
//! - [`status`]: `kvstore status`, the cluster at a glance from every node's `INFO`;
//! - [`linearizability`]: a Wing–Gong–Lowe checker for client histories, used by the
//!   simulation and multi-process tests.

pub mod bench;
pub mod client;
pub mod linearizability;
pub mod status;
