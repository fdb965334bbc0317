//! kvstore-app: a partitioned, replicated, linearizable key-value store on Zab.
//!
//! A node is a tree of components ([`node::KvNode`]) on one shared network:
//!
//! - [`bootstrap`]: forms the cluster once and keeps its table ([`partition::LookupTable`] with
//!   an id and a name) on disk, so that a restarted node rejoins on its own;
//! - [`overlay`]: routes each client operation to the group of its key's partition, locally or
//!   to a member on another node;
//! - [`replica`]: one partition's state machine on its Zab group; writes go through the log,
//!   reads through a read barrier, so both are linearizable;
//! - [`ports`]: the ports between them ([`ports::KvPort`], [`ports::ReplicaStatusPort`]) and
//!   [`ports::KvError`], why an operation has no result;
//! - [`frontend`]: the RESP (Redis protocol) front end over kompics-net's byte-stream server;
//!   [`auth`] decides what a connection may run before it authenticates (`--requirepass`);
//! - [`launch`]: a real node (TCP network, file storage, client port), as the `kvstore` binary
//!   runs it; [`info`] is what a node reports of itself in `INFO`.
//!
//! Their pure building blocks, free of I/O, clocks and threads:
//!
//! - [`resp`]: the Redis protocol (RESP2) codec, incremental and safe on hostile input, with every
//!   bound named in [`resp::RespLimits`];
//! - [`command`]: from a parsed request to a typed [`command::Command`] with Redis' error texts,
//!   and the exact replies that let redis-cli, redis-benchmark and redis-py talk to the store;
//! - [`store`]: the deterministic state machine of one partition ([`store::Store`]), the
//!   [`store::Op`]s that go through Zab, and checksummed, canonical snapshots;
//! - [`partition`]: the stable key hash, key → [`partition::PartitionId`], and the placement of
//!   partitions on nodes ([`partition::LookupTable`]).
//!
//! What runs outside a node, against a cluster, is in [`tools`]: a RESP client, the benchmark,
//! the cluster-status check and the linearizability checker the tests judge histories with.
//! See `shared/DESIGN.md` (kvstore-app).
//!
//! How a request travels through them (the network and Zab in between are elided):
//!
//! ```
//! use kvstore_app::command::{op_reply, Command, CommandLimits, ConnectionInfo, Handling};
//! use kvstore_app::partition::LookupTable;
//! use kvstore_app::resp::{Protocol, RequestParser, RespValue};
//! use kvstore_app::store::{Op, Store};
//!
//! let table = LookupTable::build(&[1u64, 2, 3], 4, 3).unwrap();
//! let mut replicas: Vec<Store> = (0..table.partition_count()).map(|_| Store::new()).collect();
//!
//! let connection = ConnectionInfo { client_id: 1, protocol: Protocol::Resp2 };
//! let mut parser = RequestParser::default();
//! parser.feed(b"*3\r\n$3\r\nSET\r\n$4\r\nuser\r\n$3\r\nada\r\nGET user\r\n");
//! let mut replies = Vec::new();
//! while let Some(request) = parser.next_request().unwrap() {
//!     let reply = match Command::parse(request, &CommandLimits::default()) {
//!         Err(error) => error.to_reply(),
//!         Ok(command) => match command.into_handling(&connection) {
//!             Handling::Op(op) => {
//!                 // The leader of the key's group proposes `op.to_bytes()`; every member
//!                 // applies the delivered op in zxid order.
//!                 let partition = table.partition_of_key(op.key());
//!                 let delivered = Op::from_bytes(&op.to_bytes()).unwrap();
//!                 op_reply(&replicas[partition.0 as usize].apply(&delivered))
//!             }
//!             Handling::Reply(reply)
//!             | Handling::ReplyAndClose(reply)
//!             | Handling::Reset(reply)
//!             | Handling::Hello { reply, .. } => reply,
//!             Handling::Info { .. } => RespValue::bulk("# Server\r\n"),
//!             // Several ops, the partition count, the node's connections: see the front end.
//!             Handling::Plan(_) | Handling::Keyspace(_) | Handling::Client(_) => {
//!                 unreachable!("not in this pipeline")
//!             }
//!         },
//!     };
//!     reply.encode(&mut replies);
//! }
//! assert_eq!(replies, b"+OK\r\n$3\r\nada\r\n");
//! ```

pub mod auth;
pub mod bootstrap;
pub mod command;
pub mod data_dir;
pub mod frontend;
pub mod glob;
pub mod incarnation;
pub mod info;
pub mod launch;
pub mod node;
pub mod overlay;
pub mod partition;
pub mod peer_auth;
pub mod ports;
pub mod replica;
pub mod resp;
pub mod store;
pub mod tools;

#[cfg(test)]
mod test_dir;

/// The history checker, at the path the simulation tests know it by; it lives in [`tools`].
pub use tools::linearizability;
