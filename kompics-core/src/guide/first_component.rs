//! # 1. A first component
//!
//! A component is a struct: its fields are its state, and nothing else can touch them. It talks
//! to the world only through **ports**, and reacts to **events** that arrive on them, one at a
//! time. Because the runtime never runs two handlers of one component at once, the state needs
//! no lock, even on the multi-core [`Runtime`].
//!
//! Four pieces make a component:
//!
//! - **An event type**: any `Clone + Send + Debug + 'static` type (see [`Event`]; there is
//!   nothing to derive beyond `Clone` and `Debug`).
//! - **A port type**: a marker type implementing [`Port`], naming the events that go *towards*
//!   the component providing the port (`Request`) and those that come *back* from it
//!   (`Indication`).
//! - **The component**: a struct implementing [`ComponentDefinition`] (lifecycle hooks, all
//!   optional), holding the [`ProvidedPort`] or [`RequiredPort`] it triggers events on.
//! - **A handler** per port: [`Provide<P>`](crate::Provide) handles the requests of a port the
//!   component provides, [`Require<P>`](crate::Require) the indications of a port it requires.
//!
//! Here is a lamp that can be switched, and a wall panel that switches it:
//!
//! ```
//! use std::sync::mpsc;
//! use std::time::Duration;
//! use kompics_core::*;
//!
//! // The events, and the port type that carries them.
//! #[derive(Clone, Debug)]
//! struct Switch(bool);                            // request: towards the lamp
//! #[derive(Clone, Debug, PartialEq)]
//! struct Status { on: bool, switches: u64 }       // indication: back from the lamp
//!
//! struct LampPort;
//! impl Port for LampPort {
//!     type Request = Switch;
//!     type Indication = Status;
//! }
//!
//! // The lamp provides the port: it handles `Switch` and triggers `Status`.
//! struct Lamp { port: ProvidedPort<LampPort>, on: bool, switches: u64 }
//! impl ComponentDefinition for Lamp {}
//! impl Provide<LampPort> for Lamp {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, Switch(on): Switch) {
//!         self.on = on;
//!         self.switches += 1;
//!         self.port.trigger(Status { on, switches: self.switches });
//!     }
//! }
//!
//! // The panel requires the port: it triggers `Switch` and handles `Status`. It reports what it
//! // sees to the test through a std channel, as a real program would log it or show it.
//! struct Panel { port: RequiredPort<LampPort>, seen: mpsc::Sender<Status> }
//! impl ComponentDefinition for Panel {
//!     fn on_start(&mut self, _ctx: &mut Context<Self>) {
//!         self.port.trigger(Switch(true));
//!         self.port.trigger(Switch(false));
//!     }
//! }
//! impl Require<LampPort> for Panel {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, status: Status) {
//!         self.seen.send(status).unwrap();
//!     }
//! }
//!
//! // A runtime with one worker thread; components are built by factories, which declare
//! // their ports through the `Setup` they get.
//! let runtime = Runtime::new(RuntimeConfig::default().workers(1));
//! let (tx, rx) = mpsc::channel();
//! let lamp = runtime.create(|s| Lamp { port: s.provided(), on: false, switches: 0 });
//! let panel = runtime.create(move |s| Panel { port: s.required(), seen: tx.clone() });
//! connect(&lamp.provided::<LampPort>(), &panel.required::<LampPort>());
//! lamp.start();
//! panel.start();
//!
//! let wait = Duration::from_secs(10);
//! assert_eq!(rx.recv_timeout(wait), Ok(Status { on: true, switches: 1 }));
//! assert_eq!(rx.recv_timeout(wait), Ok(Status { on: false, switches: 2 }));
//! // Tests may look at a component's state (never a way to communicate):
//! assert_eq!(lamp.on_definition(|l| (l.on, l.switches)), Some((false, 2)));
//! runtime.shutdown();
//! ```
//!
//! What happened, and why it is built this way:
//!
//! - **Factories, not values.** [`Runtime::create`] takes a closure that builds the component,
//!   because the runtime may need to build it again: a supervisor can
//!   [restart](crate::FaultAction::Restart) a failed component with fresh state (chapter 3).
//!   The factory declares the ports with [`Setup::provided`] and [`Setup::required`]; the
//!   component keeps them in fields to trigger events on.
//! - **Directions are checked by the compiler.** [`ProvidedPort::trigger`] takes only the
//!   port's indications and [`RequiredPort::trigger`] only its requests: the lamp cannot send a
//!   `Switch`, the panel cannot send a `Status`.
//! - **Created passive, then started.** A component handles nothing until it is
//!   [started](crate::Component::start); events that reach it before are kept, in order, and handled
//!   once it starts. So the order of `lamp.start()` and `panel.start()` above does not matter.
//!   [`ComponentDefinition::on_start`] runs first thing after a start.
//! - **The context.** Every handler gets a [`Context`] next to `&mut self`: the component's view
//!   of the runtime (time, randomness, timers, children, failing). It is the only way to reach
//!   these, which is what lets the very same components run in the deterministic
//!   [`Simulation`] (chapter 7): replace `Runtime::new(..)` by `Simulation::new(seed)` and wait
//!   with `sim.run_for(..)` instead of on a channel.
//!
//! `examples/examples/first_component.rs` in the repository is a runnable program built the
//! same way, with a periodic timer (`cargo run -p examples --example first_component`).
//!
//! Next: [ports and channels](super::ports_and_channels).
//!
//! [`Runtime`]: crate::Runtime
//! [`Event`]: crate::Event
//! [`Port`]: crate::Port
//! [`ComponentDefinition`]: crate::ComponentDefinition
//! [`ComponentDefinition::on_start`]: crate::ComponentDefinition::on_start
//! [`ProvidedPort`]: crate::ProvidedPort
//! [`RequiredPort`]: crate::RequiredPort
//! [`Runtime::create`]: crate::Runtime::create
//! [`Setup::provided`]: crate::Setup::provided
//! [`Setup::required`]: crate::Setup::required
//! [`ProvidedPort::trigger`]: crate::ProvidedPort::trigger
//! [`RequiredPort::trigger`]: crate::RequiredPort::trigger
//! [`Context`]: crate::Context
//! [`Simulation`]: crate::Simulation
