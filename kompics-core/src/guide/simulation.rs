//! # 7. Testing in the simulator
//!
//! A distributed protocol fails on an interleaving nobody thought of. The [`Simulation`] runs
//! the very same components as the threaded [`Runtime`](crate::Runtime), on one thread, with
//! every choice drawn from one seed, so such an interleaving can be found by trying many seeds
//! and then replayed, exactly, from the seed that found it.
//!
//! - **Virtual time.** Time is what [`Context::now`](crate::Context::now) says. When no
//!   component has an event to handle, the clock jumps to the next timer: an hour of timeouts
//!   takes as long as its events take to handle.
//! - **Seeded scheduling.** Each step, the simulator picks one of the components that have
//!   events, with its seeded generator, and that component handles one event. Different seeds
//!   give different (legal) interleavings; the same seed gives the same one.
//! - **Seeded randomness.** Each component's [`Context::rng`](crate::Context::rng) is seeded
//!   from the simulation seed and the component's id. A component must take randomness and time
//!   only from its context, never from the system clock, `rand::rng()` or threads of its own:
//!   that is the whole price of determinism.
//! - **Driving it.** [`run_for`](crate::Simulation::run_for) and [`run_until`](crate::Simulation::run_until)
//!   advance virtual time; [`run_until_cond`](crate::Simulation::run_until_cond) stops when a
//!   condition holds; [`run_until_quiescent`](crate::Simulation::run_until_quiescent) stops when
//!   nothing is left to do; [`step`](crate::Simulation::step) handles one event;
//!   [`run_until_answered`](crate::Simulation::run_until_answered) waits for an `ask`. Between calls a
//!   test inspects components ([`Component::on_definition`](crate::Component::on_definition))
//!   and injects faults (kill a component, partition the simulated network).
//! - **Checking that a run replays.** [`trace_hash`](crate::Simulation::trace_hash) summarises every
//!   step (its time, its component, and with [`enable_trace`](crate::Simulation::enable_trace) its
//!   event); [`take_trace`](crate::Simulation::take_trace) gives the steps as readable lines.
//!
//! Three racers draw random waits; who wins depends on the seed, and only on the seed:
//!
//! ```
//! use std::time::Duration;
//! use kompics_core::rand::Rng;
//! use kompics_core::*;
//!
//! #[derive(Clone, Debug)] struct Finished(u32);
//! struct Race;
//! impl Port for Race { type Request = Finished; type Indication = (); }
//!
//! struct Judge { _port: ProvidedPort<Race>, order: Vec<u32> }
//! impl ComponentDefinition for Judge {}
//! impl Provide<Race> for Judge {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, Finished(n): Finished) {
//!         self.order.push(n);
//!     }
//! }
//!
//! struct Racer { port: RequiredPort<Race>, number: u32 }
//! impl ComponentDefinition for Racer {
//!     fn on_start(&mut self, ctx: &mut Context<Self>) {
//!         let wait = Duration::from_millis(ctx.rng().random_range(1..1000));
//!         ctx.schedule_once(wait, |r: &mut Racer, _ctx| r.port.trigger(Finished(r.number)));
//!     }
//! }
//! impl Require<Race> for Racer {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, _: ()) {}
//! }
//!
//! /// One whole run: the finishing order, when it ended, and the hash of every step.
//! fn race(seed: u64) -> (Vec<u32>, Time, u64) {
//!     let sim = Simulation::new(seed);
//!     sim.enable_trace();
//!     let judge = sim.create(|s| Judge { _port: s.provided(), order: vec![] });
//!     judge.start();
//!     for number in 1..=3 {
//!         let racer = sim.create(move |s| Racer { port: s.required(), number });
//!         connect(&judge.provided::<Race>(), &racer.required::<Race>());
//!         racer.start();
//!     }
//!     assert!(sim.run_until_quiescent(Duration::from_secs(60)));
//!     let order = judge.on_definition(|j| j.order.clone()).unwrap();
//!     (order, sim.now(), sim.trace_hash())
//! }
//!
//! // A test takes its seed from the environment, to replay a failure: SIM_SEED=... cargo test
//! let seed = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(42);
//! let first = race(seed);
//! assert_eq!(first.0.len(), 3, "seed {seed}: every racer finished"); // say the seed on failure
//! assert!(first.1 < Time::ZERO + Duration::from_secs(1), "virtual time: under a second");
//! assert_eq!(race(seed), first, "the same seed replays the same run, step for step");
//!
//! // Other seeds give other runs: over 20 seeds, more than one racer wins.
//! let winners: std::collections::BTreeSet<u32> = (0..20).map(|s| race(s).0[0]).collect();
//! assert!(winners.len() > 1);
//! ```
//!
//! A randomized test sweeps many seeds (the workspace's tests read `SIM_SEEDS=N` for how many)
//! and prints the seed of any failure; `SIM_SEED=S` then replays that one run, as often as
//! needed, with tracing or extra logging, and gives the same result every time. The Zab and
//! key-value store tests of this workspace are built this way, on the simulated network of
//! chapter 6.
//!
//! What the simulator does not model: work done on threads of your own (use a
//! [`Mailbox`](crate::Mailbox) to bring their results in, and expect those to arrive whenever
//! the thread sends them, which no seed controls) and real I/O. Keep both at the edge, behind a
//! port, and give the simulation a simulated component for the same port, as `kompics-net`
//! does for the network.
//!
//! [`Simulation`]: crate::Simulation
