//! The Zab protocol as a pure state machine: no I/O, no clock, no threads.
//!
//! (Placeholder: the tutorial is written in `lib.rs` of the crate.)

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
mod rng;
mod role;
mod sync;

pub use action::{Action, EpochKind, ProposalFailure, Status};
pub use config::{Config, ConfigError};
pub use entry::{Entry, Snapshot};
pub use ids::{Epoch, PeerId, ProposalId, Zxid};
pub use message::{Message, Notification, PeerState, SyncMode, Vote};
pub use node::{InitError, Phase, ProposeError, Recovered, ZabNode};
pub use quorum::Quorum;
pub use sync::{plan_sync, SyncPlan};
