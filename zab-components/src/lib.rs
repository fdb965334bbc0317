//! zab-components: Zab (ZooKeeper Atomic Broadcast) for the Kompics component model.
//!
//! [`protocol`] is the protocol as a pure state machine. The crate will also hold the Zab and
//! FailureDetector components, the write-ahead log and snapshots, and the standalone Zab facade
//! proposed on the ZooKeeper wiki. See `shared/DESIGN.md` (zab-components).

pub mod protocol;
