//! zab-components: Zab (ZooKeeper Atomic Broadcast) for the Kompics component model.
//!
//! [`protocol`] is the protocol as a pure state machine (election, discovery, synchronization,
//! broadcast) that a driver feeds with ticks, messages, proposals and storage completions and
//! that answers with actions; its module docs show the drive loop. The crate will also hold the Zab and
//! FailureDetector components, the write-ahead log and snapshots, and the standalone Zab facade
//! proposed on the ZooKeeper wiki. See `shared/DESIGN.md` (zab-components).

pub mod protocol;
