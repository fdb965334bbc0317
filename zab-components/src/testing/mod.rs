//! Test harnesses for Zab, for this crate's tests and for anyone testing a component or a
//! storage of their own against Zab (enabled by the `testing` feature).
//!
//! [`Sim`] is a deterministic in-memory cluster of [`ZabNode`](crate::protocol::ZabNode)s: one
//! FIFO queue per directed link, a simulated disk per node (writes become durable one by one, in
//! order; a crash keeps a random prefix of the unsynced writes), a seeded generator choosing
//! every next event, and checks of zab.md's P1–P13 on what the nodes deliver (plus: a quorum of
//! disks holds every transaction at its first delivery). Everything is ordered (`BTreeMap`,
//! `Vec`), so a seed replays a run exactly, and a failure report starts with that seed.
//!
//! Besides the random schedulers ([`Sim::step_random`], [`Sim::run_until`], [`Sim::settle`]),
//! scenario tests script exact interleavings with:
//! - links: [`Sim::hold`] / [`Sim::release`] one direction, [`Sim::queued`] to look at what is
//!   in flight, [`Sim::deliver_until`] to deliver up to a given message, [`Sim::partition`]
//!   to cut a group off (sessions end, later sends are lost until [`Sim::heal`]);
//! - faulty peers and networks: [`Sim::inject`], [`Sim::drop_queued`], [`Sim::tamper_queued`],
//!   and [`Sim::set_notification_faults`] (loss and duplication of election notifications);
//! - disks: [`Sim::pending_writes`], [`Sim::complete_storage`], [`SimNode::disk_stalled`],
//!   crashes that keep an exact number of unsynced writes ([`Sim::crash_keeping`]) or tear the
//!   next one ([`Sim::crash_tearing`]), prepared disks ([`Sim::with_disks`]), and restarts that
//!   may be refused ([`Sim::try_restart`]);
//! - per-node configurations ([`Sim::new_per_node`]).
//!
//! [`Group`] is the same idea one level up: whole nodes (simulated network, failure detector,
//! [`ZabComponent`](crate::component::ZabComponent) on a [`SimDisk`](crate::storage::SimDisk),
//! and the application component under test) in the component simulator, with crashes that
//! lose unsynced writes, restarts and partitions.
//!
//! The files: `sim.rs` the cluster driver and `script.rs` its helpers for scripted scenarios,
//! `network.rs` and `disk.rs` the simulated links and disks, `checks.rs` the invariant checks,
//! `report.rs` the failure report and trace, `seeds.rs` and `state.rs` the seeded generator and
//! the application state; `group.rs` the group of whole nodes, `log_app.rs` an application
//! that records what Zab tells it ([`LogApp`]), `hooked.rs` a storage wrapper with test hooks
//! ([`Hooked`]).
//!
//! # Example
//!
//! A randomized sweep: for each seed, a three-node cluster under faults, then a calm phase in
//! which it must converge; [`finish`] checks P1–P13 and panics with the report (seed first) if
//! one fails. `SIM_SEEDS=n` sets the number of seeds, `SIM_SEED=s` replays one.
//!
//! ```
//! use zab_components::testing::{finish, sweep_seeds, Sim};
//!
//! for seed in sweep_seeds(3) {
//!     let mut sim = Sim::new(3, seed, |config| config.batch_entries_max = 4);
//!     for _ in 0..2_000 {
//!         sim.step_random(true, 5); // faults among the events, 5 % proposals
//!     }
//!     sim.calm(); // heal, unstall the disks, restart every node
//!     sim.converge(100_000); // panics with the report if it does not converge
//!     finish(&mut sim);
//! }
//! ```

mod checks;
mod disk;
mod group;
mod hooked;
mod log_app;
mod network;
mod report;
mod script;
mod seeds;
mod sim;
mod state;

pub use checks::finish;
pub use disk::{Disk, StorageOp};
pub use group::{addr, Group, GroupNode, NodeSetup};
pub use hooked::{Hooked, StorageHooks};
pub use log_app::{LogApp, SnapshotAnswer};
pub use network::Sent;
pub use report::{describe, panic_text};
pub use seeds::{sweep_seeds, sweep_seeds_from, Rng};
pub use sim::{sim_config, Sim, SimNode};
pub use state::{decode_state, encode_state, AppState};
