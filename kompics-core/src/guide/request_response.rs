//! # 5. Request/response
//!
//! An indication goes down every channel of the provided port it is triggered on. That is right
//! for news, and wrong for an answer: every requester would see every other requester's
//! answers, and need ids to pick out its own. So a request that expects an answer is a
//! [`Request<Q, A>`](crate::Request): the question `Q` plus a [`Responder`] bound to where it
//! came from. The provider answers with [`Request::reply`], and the answer goes back to that
//! requester alone, on the way the request came, as an indication of its required port.
//!
//! - A port declares it in its types: its request type (or a variant of its request enum) is a
//!   `Request<Q, A>`, and `A` converts into its indication type. The compiler checks both.
//! - A component asks with [`RequiredPort::request(q)`](crate::RequiredPort::request); the
//!   answer arrives at its `Require` handler like any indication, but only there.
//! - A provider that cannot answer at once keeps the responder with
//!   [`Request::into_parts`] and answers later (after a disk write, a quorum, a timer), while it
//!   goes on handling other events.
//!
//! Two students ask one tutor; each gets only its own answers, one of them late:
//!
//! ```
//! use std::time::Duration;
//! use kompics_core::*;
//!
//! #[derive(Clone, Debug)] struct Root(u64);
//! struct Maths;
//! impl Port for Maths {
//!     type Request = Request<u64, Root>; // ask a square, get back its root
//!     type Indication = Root;
//! }
//!
//! struct Tutor { _port: ProvidedPort<Maths> }
//! impl ComponentDefinition for Tutor {}
//! impl Provide<Maths> for Tutor {
//!     fn handle(&mut self, ctx: &mut Context<Self>, request: Request<u64, Root>) {
//!         let (square, responder) = request.into_parts();
//!         let root = (square as f64).sqrt() as u64;
//!         if square > 100 {
//!             // A hard one: answer in a second, keeping the responder meanwhile.
//!             ctx.schedule_once(Duration::from_secs(1), move |_: &mut Tutor, _ctx| {
//!                 responder.reply(Root(root));
//!             });
//!         } else {
//!             responder.reply(Root(root));
//!         }
//!     }
//! }
//!
//! struct Student { port: RequiredPort<Maths>, asks: Vec<u64>, roots: Vec<u64> }
//! impl ComponentDefinition for Student {
//!     fn on_start(&mut self, _ctx: &mut Context<Self>) {
//!         for square in self.asks.clone() {
//!             self.port.request(square);
//!         }
//!     }
//! }
//! impl Require<Maths> for Student {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, Root(root): Root) {
//!         self.roots.push(root);
//!     }
//! }
//!
//! let sim = Simulation::new(5);
//! let tutor = sim.create(|s| Tutor { _port: s.provided() });
//! let ann = sim.create(|s| Student { port: s.required(), asks: vec![144, 4], roots: vec![] });
//! let bo = sim.create(|s| Student { port: s.required(), asks: vec![81], roots: vec![] });
//! connect(&tutor.provided::<Maths>(), &ann.required::<Maths>());
//! connect(&tutor.provided::<Maths>(), &bo.required::<Maths>());
//! tutor.start();
//! ann.start();
//! bo.start();
//! sim.run_until_quiescent(Duration::from_secs(5));
//! assert_eq!(ann.on_definition(|s| s.roots.clone()), Some(vec![2, 12])); // 12 came late
//! assert_eq!(bo.on_definition(|s| s.roots.clone()), Some(vec![9]));      // none of Ann's
//! ```
//!
//! ## Asking from outside the runtime
//!
//! A `main`, a test or another thread asks a provider directly with
//! [`ProvidedRef::ask`](crate::ProvidedRef::ask): the request goes straight to the provider,
//! through no channel, and the answer comes back to the returned [`Pending`]. On the threaded
//! runtime, [`Pending::wait(timeout)`](crate::Pending::wait) blocks for it; in the simulator,
//! [`Simulation::run_until_answered`](crate::Simulation::run_until_answered) runs events until
//! it comes. Either gives a `Result<A, AskError>`, so a caller never hangs:
//!
//! - [`AskError::Timeout`]: no answer in time (the request may still be handled later; its
//!   answer is then dropped);
//! - [`AskError::Dropped`]: the request was dropped unanswered: the provider was killed, does
//!   not handle this request, or dropped the responder without replying. This is reported as
//!   soon as it happens, not after the timeout.
//!
//! ```
//! use std::time::Duration;
//! use kompics_core::*;
//!
//! struct Echo;
//! impl Port for Echo { type Request = Request<String, String>; type Indication = String; }
//! struct Echoer { _port: ProvidedPort<Echo> }
//! impl ComponentDefinition for Echoer {}
//! impl Provide<Echo> for Echoer {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, request: Request<String, String>) {
//!         if request.payload().is_empty() {
//!             return; // drops the request, and its responder, unanswered
//!         }
//!         let loud = request.payload().to_uppercase();
//!         request.reply(loud);
//!     }
//! }
//!
//! let runtime = Runtime::new(RuntimeConfig::default().workers(1));
//! let echo = runtime.create(|s| Echoer { _port: s.provided() });
//! let port = echo.provided::<Echo>();
//!
//! // Not started yet: the request is kept for later, and this wait runs out.
//! let early = port.ask("early".to_string()).wait(Duration::from_millis(50));
//! assert_eq!(early, Err(AskError::Timeout));
//!
//! echo.start();
//! let answer = port.ask("hello".to_string()).wait(Duration::from_secs(10));
//! assert_eq!(answer.as_deref(), Ok("HELLO"));
//!
//! // Dropped unanswered: the asker learns it at once, long before its timeout.
//! let unanswered = port.ask(String::new()).wait(Duration::from_secs(600));
//! assert_eq!(unanswered, Err(AskError::Dropped));
//!
//! // Killed: requests to it are dropped too.
//! echo.kill();
//! while echo.state() != LifecycleState::Destroyed {
//!     std::thread::yield_now(); // kill is asynchronous on the threaded runtime
//! }
//! assert_eq!(port.ask("anyone?".to_string()).wait(Duration::from_secs(600)), Err(AskError::Dropped));
//! runtime.shutdown();
//! ```
//!
//! Never call `wait` inside a handler (it would block a worker thread) or while driving a
//! simulation (nothing runs while the driver waits; use `run_until_answered`).
//!
//! Next: [networking](super::networking).
//!
//! [`Responder`]: crate::Responder
//! [`Request::reply`]: crate::Request::reply
//! [`Request::into_parts`]: crate::Request::into_parts
//! [`Pending`]: crate::Pending
//! [`AskError::Timeout`]: crate::AskError::Timeout
//! [`AskError::Dropped`]: crate::AskError::Dropped
