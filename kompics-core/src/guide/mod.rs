//! A guide for framework users: seven short chapters, each a page of these docs whose examples
//! are doc tests (they compile, run and check what they claim on every `cargo test`).
//!
//! Read them in order; each builds on the one before.
//!
//! 1. [A first component](first_component): state, an event type, a port, a handler; start
//!    it in a runtime and watch it react.
//! 2. [Ports and channels](ports_and_channels): the two directions of a port, provide and
//!    require, connecting, publish semantics, filtering, several event types per direction.
//! 3. [Hierarchy and supervision](hierarchy): children, composite components that export their
//!    children's ports, faults, and what a supervisor does about them.
//! 4. [Timers](timers): one-shot and periodic timers, cancelling them, time as a component
//!    sees it.
//! 5. [Request/response](request_response): answers that go back to the requester alone, from
//!    a component or from code outside the runtime.
//! 6. [Networking](networking): the Network port of `kompics-net`, driven here by its
//!    simulated network.
//! 7. [Testing in the simulator](simulation): virtual time, seeded randomness, replaying a run
//!    from its seed.
//!
//! The model comes from Kompics (Arad, Dowling, Haridi: *Message-passing concurrency for
//! scalable, stateful, reconfigurable middleware*); the rest of this crate's documentation is
//! the reference for every item the chapters use.

pub mod first_component;
pub mod hierarchy;
pub mod networking;
pub mod ports_and_channels;
pub mod request_response;
pub mod simulation;
pub mod timers;
