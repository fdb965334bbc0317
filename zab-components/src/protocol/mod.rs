//! The Zab protocol as a pure state machine: no I/O, no clock, no threads, no ambient
//! randomness. Events go in, [`Action`]s come out (raft-rs `RawNode`, openraft `Engine`).
//!
//! # Driving a node
//!
//! A driver (the Zab component, a simulator, a test) owns one [`ZabNode`] and:
//!
//! 1. calls [`ZabNode::tick`] at a fixed period; every timeout in [`Config`] is a number of
//!    ticks (the defaults assume ~100 ms);
//! 2. passes each message from a peer to [`ZabNode::step`], with the sender as the session
//!    knows it, and reports [`ZabNode::session_ended`] when a session breaks (messages in
//!    flight on it are lost; sessions are FIFO and reliable while up, like TCP; the end of a
//!    session must be reported before any message of the next session with that peer);
//!    failure-detector verdicts go to [`ZabNode::peer_suspected`] / [`ZabNode::peer_restored`];
//! 3. calls [`ZabNode::propose`] for application transactions;
//! 4. after any of these, takes [`ZabNode::drain_actions`] and executes them **in order**;
//! 5. reports storage completions: [`ZabNode::persisted`] for `Persist` and
//!    `InstallSnapshot`, [`ZabNode::epoch_persisted`] for `PersistEpoch`,
//!    [`ZabNode::snapshot_taken`] for `TakeSnapshot`.
//!
//! Storage contract: storage actions take effect in the order emitted, and none may become
//! durable before every earlier one is (one log thread that fsyncs before reporting gives
//! this). The node never sends an acknowledgement (ACKEPOCH, NEWLEADER ack, ACK) before the
//! completion that covers it has been reported, so completions must only be reported once the
//! data is on stable storage. `InstallSnapshot` replaces snapshot and log atomically.
//!
//! The application applies `Deliver` in order; on `InstallSnapshot` it replaces its state;
//! on `TakeSnapshot` it serializes its state as of that point in the action sequence. On a
//! restart the driver rebuilds the application from the newest snapshot only and passes the
//! stored epochs, snapshot and log in [`Recovered`]: log entries after the snapshot are
//! delivered again once a leader confirms them.
//!
//! ```
//! use zab_components::protocol::{Action, Config, PeerId, Recovered, Status, ZabNode};
//!
//! // A one-node ensemble: it elects itself, establishes epoch 1, and commits alone.
//! let mut node = ZabNode::new(Config::new(PeerId(1), vec![PeerId(1)]), Recovered::default())
//!     .expect("valid config");
//! let mut delivered = Vec::new();
//! let mut drive = |node: &mut ZabNode, delivered: &mut Vec<Vec<u8>>| {
//!     // Execute actions until none are left; storage completes at once here.
//!     loop {
//!         let actions = node.drain_actions();
//!         if actions.is_empty() {
//!             break;
//!         }
//!         for action in actions {
//!             match action {
//!                 Action::Persist { entries } => node.persisted(entries.last().unwrap().zxid),
//!                 Action::PersistEpoch { kind, epoch } => node.epoch_persisted(kind, epoch),
//!                 Action::Deliver { payload, .. } => delivered.push(payload),
//!                 _ => {} // no peers to send to, no snapshots in this example
//!             }
//!         }
//!     }
//! };
//! while !matches!(node.status(), Status::Leading { .. }) {
//!     node.tick();
//!     drive(&mut node, &mut delivered);
//! }
//! node.propose(b"hello".to_vec()).expect("the leader accepts proposals");
//! drive(&mut node, &mut delivered);
//! assert_eq!(delivered, vec![b"hello".to_vec()]);
//! ```
//!
//! # Layout
//!
//! One file per phase: `election.rs` (FLE), `discovery.rs` (epochs), `sync.rs` (DIFF / TRUNC
//! / SNAP, NEWLEADER, UPTODATE), `broadcast.rs` (PROPOSAL / ACK / COMMIT, forwarding,
//! leaving broadcast). `node.rs` holds the inputs and the invariants checked after each one;
//! `read.rs` read barriers (linearizable reads without a log write); `role.rs` the per-role state; `log.rs` the in-memory log tail and its durability;
//! `quorum.rs` majority counting.

mod action;
mod broadcast;
mod config;
mod discovery;
mod election;
mod entry;
mod ids;
mod log;
mod message;
mod node;
mod quorum;
mod read;
mod rng;
mod role;
mod sync;

pub use action::{Action, EpochKind, ProposalFailure, Status};
pub use config::{Config, ConfigError};
pub use entry::{Entry, Snapshot};
pub use ids::{Epoch, PeerId, ProposalId, ReadId, Zxid};
pub use message::{Message, Notification, PeerState, SyncMode, Vote};
pub use node::{InitError, Phase, ProposeError, Recovered, ZabNode};
pub use quorum::Quorum;
pub use sync::{plan_sync, SyncPlan};
