//! kvstore-app: a partitioned, replicated, linearizable key-value store on Zab.
//!
//! This crate will hold the Bootstrap, Overlay and Replica components, the RESP (Redis
//! protocol) front end and the `kvstore` binary. See `shared/DESIGN.md` (kvstore-app).

pub mod command;
pub mod linearizability;
pub mod partition;
pub mod resp;
pub mod store;
