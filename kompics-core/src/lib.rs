//! kompics-core: a message-passing component runtime in the Kompics model.
//!
//! Components own their state and handle typed events. They talk only through typed **ports**
//! (requests towards the provider, indications back, directions checked by the compiler) joined
//! by **channels**. They have a **lifecycle** (start, stop, kill) and a parent that
//! **supervises** them (a panic in a handler becomes a fault the parent resolves). They use
//! **timers**, time and randomness only through their [`Context`], so the very same components
//! run on the multi-core [`Runtime`] or in the deterministic, single-threaded [`Simulation`].
//!
//! # Your first component
//!
//! ```
//! use kompics_core::*;
//!
//! // A port type: requests go to the provider, indications come back.
//! struct Counter;
//! #[derive(Clone, Debug)]
//! enum CounterRequest { Add(u64) }
//! #[derive(Clone, Debug)]
//! enum CounterIndication { Total(u64) }
//! impl Port for Counter {
//!     type Request = CounterRequest;
//!     type Indication = CounterIndication;
//! }
//!
//! // A component providing it: state plus a handler per port.
//! struct Adder { port: ProvidedPort<Counter>, total: u64 }
//! impl ComponentDefinition for Adder {}
//! impl Provide<Counter> for Adder {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, request: CounterRequest) {
//!         let CounterRequest::Add(n) = request;
//!         self.total += n;
//!         self.port.trigger(CounterIndication::Total(self.total));
//!     }
//! }
//!
//! // A component requiring it: it adds 1, 2, 3 and remembers the last total.
//! struct User { port: RequiredPort<Counter>, last: u64 }
//! impl ComponentDefinition for User {
//!     fn on_start(&mut self, _ctx: &mut Context<Self>) {
//!         for n in 1..=3 {
//!             self.port.trigger(CounterRequest::Add(n));
//!         }
//!     }
//! }
//! impl Require<Counter> for User {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, indication: CounterIndication) {
//!         let CounterIndication::Total(t) = indication;
//!         self.last = t;
//!     }
//! }
//!
//! // Wire them in the deterministic simulator (the threaded `Runtime` works the same way).
//! let sim = Simulation::new(7);
//! let adder = sim.create(|s| Adder { port: s.provided(), total: 0 });
//! let user = sim.create(|s| User { port: s.required(), last: 0 });
//! connect(&adder.provided::<Counter>(), &user.required::<Counter>());
//! adder.start();
//! user.start();
//! sim.run_until_quiescent(std::time::Duration::from_secs(1));
//! assert_eq!(user.on_definition(|u| u.last), Some(6));
//! ```
//!
//! # Guide
//!
//! The [`guide`] is a short tutorial in seven chapters (a first component, ports and channels,
//! hierarchy and supervision, timers, request/response, networking, testing in the simulator),
//! whose examples are doc tests.
//!
//! # Pieces
//!
//! - [`Port`], [`ProvidedPort`], [`RequiredPort`], [`Provide`], [`Require`]: port types and
//!   handlers.
//! - [`connect`], [`connect_with`], [`Selector`], [`Channel`]: channels, publish semantics,
//!   FIFO per channel, filtering.
//! - [`ComponentDefinition`], [`Component`], [`Setup`], [`Context`]: components, their handles,
//!   their ports and their view of the runtime; lifecycle rules are in [`component`'s
//!   docs](ComponentDefinition).
//! - [`Mailbox`], [`Receive`]: events told to a component from outside (other threads, sockets,
//!   program APIs).
//! - [`Fault`], [`FaultAction`], [`Context::fail`]: supervision; a handler fails with a
//!   typed error, which its supervisor gets back from [`Fault::error`].
//! - [`Request`], [`Responder`], [`RequiredPort::request`], [`ProvidedRef::ask`], [`Pending`]:
//!   request/response, the answer going to its requester alone (also from outside the runtime).
//! - [`Setup::create`], [`Setup::export_provided`], [`ExportProvided`]: composite components
//!   that offer their children's ports as their own.
//! - [`port_events!`], [`subscribe!`], [`ProvideEvent`], [`RequireEvent`]: several event types
//!   per port direction, one handler each; a component receives only what it subscribed to.
//! - [`Runtime`] (threads) and [`Simulation`] (virtual time, seeded): the two runtimes.
//! - [`scenario`]: simulation scenarios as values — processes of start, crash, partition or
//!   client events over virtual time, in sequence or in parallel, seeded, replayable.

#![warn(missing_docs)]

mod channel;
mod component;
mod context;
mod dispatch;
mod event;
pub mod guide;
mod mailbox;
mod port;
mod recorder;
mod request;
mod runtime;
pub mod scenario;
mod supervision;
mod system;
mod time;
mod timer;

pub use channel::{connect, connect_with, Channel, Filter, Selector};
pub use component::setup::{ExportProvided, ExportRequired, Setup};
pub use component::{
    start_all, Component, ComponentDefinition, ComponentId, Lifecycle, LifecycleState,
};
pub use context::{ComponentRng, Context};
pub use dispatch::{EventCase, ProvideEvent, RequireEvent};
pub use event::Event;
pub use mailbox::{Mailbox, Receive};
pub use port::{Port, Provide, ProvidedPort, ProvidedRef, Require, RequiredPort, RequiredRef};
pub use recorder::Recorder;
pub use request::{AskError, Pending, Request, Responder};
pub use runtime::simulation::{Simulation, Step};
pub use runtime::threaded::{FaultHandler, Runtime, RuntimeConfig};
pub use supervision::{Fault, FaultAction, FaultError};
pub use system::System;
pub use time::Time;
pub use timer::TimerId;

/// The random-number crate the components' generators come from, re-exported so that users
/// get the same version (`use kompics_core::rand::Rng;`).
pub use rand;
