//! zab-components: Zab (ZooKeeper Atomic Broadcast) for the Kompics component model.
//!
//! [`protocol`] is the protocol as a pure state machine (election, discovery, synchronization,
//! broadcast) that a driver feeds with ticks, messages, proposals and storage completions and
//! that answers with actions; its module docs show the drive loop. Around it:
//!
//! - [`component::ZabComponent`]: one group's Zab instance as a component. It provides the
//!   [`AtomicBroadcast`](component::AtomicBroadcast) port (propose; deliver; status; state
//!   transfer) and requires the Network port and the failure detector. Several instances, one
//!   per replication group, share a node's network.
//! - [`failure_detector::FailureDetector`]: heartbeats with a timeout that grows after each
//!   false suspicion (eventually perfect); Suspect and Restore indications.
//! - [`storage`]: the [`ZabStorage`](storage::ZabStorage) trait the component writes through
//!   (group commit: one sync per batch, completions only after it) and
//!   [`SimDisk`](storage::SimDisk), a simulated disk whose unsynced writes a crash can lose.
//! - [`wal::FileStorage`]: the durable `ZabStorage`: checksummed records in preallocated
//!   segment files, group commit, atomic epoch files, snapshots and crash-atomic installs;
//!   [`storage::conformance`] is the suite it and `SimDisk` both pass.
//!
//! - [`facade::Zab`]: the standalone API proposed on the ZooKeeper wiki, for programs that know
//!   nothing of components: `Zab::start(options, storage, callback)`, `propose(bytes)` with a
//!   handle to wait on, and a callback with `deliver`, `status`, `get_state` and `set_state`.
//!
//! - `testing` (with the `testing` feature): the deterministic cluster harness this crate's tests use,
//!   with its invariant checks, for testing your own components and storages against Zab.
//!
//! See `shared/DESIGN.md` (zab-components).

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod component;
pub mod facade;
pub mod failure_detector;
pub mod protocol;
pub mod storage;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod wal;
