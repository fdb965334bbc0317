//! # 2. Ports and channels
//!
//! A port type has two directions. **Requests** travel towards the component that
//! *provides* the port; **indications** travel from it to the components that *require* it. A
//! service provides its port; its users require it. A **channel**, made with [`connect`], joins
//! one provided port to one required port of the same type.
//!
//! The rules:
//!
//! - **Publish, not send.** An event triggered on a port goes down *every* channel connected
//!   to it, one clone per channel. A component never names the receiver of an event, so the
//!   same component works whoever is wired to it.
//! - **FIFO per channel.** Events on one channel arrive in the order they were triggered.
//! - **Filters.** [`connect_with`] takes a [`Selector`] that lets only some events down the
//!   channel (the network uses it to deliver each message to the component it is for).
//! - **No channel, no event.** An event triggered on a port without channels is dropped.
//!   [`Channel::disconnect`] removes a channel; killing a component removes all of its own.
//!
//! ```
//! use std::time::Duration;
//! use kompics_core::*;
//!
//! #[derive(Clone, Debug)] struct Publish(u32);
//! #[derive(Clone, Debug)] struct News(u32);
//! struct Feed;
//! impl Port for Feed { type Request = Publish; type Indication = News; }
//!
//! // Provides `Feed`: every `Publish` becomes `News` for all subscribers.
//! struct Agency { port: ProvidedPort<Feed> }
//! impl ComponentDefinition for Agency {}
//! impl Provide<Feed> for Agency {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, Publish(n): Publish) {
//!         self.port.trigger(News(n));
//!     }
//! }
//!
//! // Requires `Feed` and records the news it gets.
//! struct Reader { port: RequiredPort<Feed>, read: Vec<u32> }
//! impl ComponentDefinition for Reader {}
//! impl Require<Feed> for Reader {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, News(n): News) {
//!         self.read.push(n);
//!     }
//! }
//!
//! let sim = Simulation::new(1);
//! let agency = sim.create(|s| Agency { port: s.provided() });
//! let alice = sim.create(|s| Reader { port: s.required(), read: vec![] });
//! let bob = sim.create(|s| Reader { port: s.required(), read: vec![] });
//! let carol = sim.create(|s| Reader { port: s.required(), read: vec![] });
//! connect(&agency.provided::<Feed>(), &alice.required::<Feed>());
//! let to_bob = connect(&agency.provided::<Feed>(), &bob.required::<Feed>());
//! // Carol reads only even news.
//! connect_with(
//!     &agency.provided::<Feed>(),
//!     &carol.required::<Feed>(),
//!     Selector::new().indications(|News(n): &News| n % 2 == 0),
//! );
//! agency.start();
//! alice.start();
//! bob.start();
//! carol.start();
//!
//! // Alice publishes 1 and 2: her request goes to the agency (the only provider on her
//! // channel), and its news goes to every reader.
//! alice.on_definition(|r| { r.port.trigger(Publish(1)); r.port.trigger(Publish(2)); });
//! sim.run_until_quiescent(Duration::from_secs(1));
//! to_bob.disconnect();
//! alice.on_definition(|r| r.port.trigger(Publish(4)));
//! sim.run_until_quiescent(Duration::from_secs(1));
//!
//! assert_eq!(alice.on_definition(|r| r.read.clone()), Some(vec![1, 2, 4]));
//! assert_eq!(bob.on_definition(|r| r.read.clone()), Some(vec![1, 2])); // disconnected
//! assert_eq!(carol.on_definition(|r| r.read.clone()), Some(vec![2, 4])); // even only
//! ```
//!
//! (Triggering from outside with [`on_definition`](crate::Component::on_definition), as this
//! test does, is a shortcut for tests; components trigger events from their handlers.)
//!
//! The compiler checks directions: a provider cannot trigger a request, a requirer cannot
//! trigger an indication.
//!
//! ```compile_fail,E0308
//! # use kompics_core::*;
//! # #[derive(Clone, Debug)] struct Publish(u32);
//! # #[derive(Clone, Debug)] struct News(u32);
//! # struct Feed;
//! # impl Port for Feed { type Request = Publish; type Indication = News; }
//! struct Agency { port: ProvidedPort<Feed> }
//! impl ComponentDefinition for Agency {}
//! impl Provide<Feed> for Agency {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, p: Publish) {
//!         self.port.trigger(p); // error: a provided port triggers indications only
//!     }
//! }
//! ```
//!
//! ## Several event types per direction
//!
//! A port has one request type and one indication type; a port that carries several kinds of
//! event uses an enum for each. [`port_events!`](crate::port_events) declares such an enum
//! from a list of event types (with a `From` impl for each, so `trigger(Put { .. }.into())`
//! needs no variant name). A component then handles each type in its own handler,
//! [`ProvideEvent<P, E>`](crate::ProvideEvent) or [`RequireEvent<P, E>`](crate::RequireEvent),
//! and lists the types it handles with [`subscribe!`](crate::subscribe). It receives only
//! those: the channel drops the others before they are queued, so they never wake it.
//!
//! ```
//! use std::time::Duration;
//! use kompics_core::*;
//!
//! #[derive(Clone, Debug)] pub struct Joined(String);
//! #[derive(Clone, Debug)] pub struct Left(String);
//! #[derive(Clone, Debug)] pub struct Said(String, String);
//! port_events! {
//!     #[derive(Clone, Debug)]
//!     pub enum RoomIndication { Joined(Joined), Left(Left), Said(Said) }
//! }
//! pub struct Room;
//! impl Port for Room { type Request = Said; type Indication = RoomIndication; }
//!
//! // The room announces arrivals and departures, and repeats what is said.
//! struct Host { port: ProvidedPort<Room> }
//! impl ComponentDefinition for Host {
//!     fn on_start(&mut self, _ctx: &mut Context<Self>) {
//!         self.port.trigger(Joined("ann".into()).into());
//!         self.port.trigger(Joined("bo".into()).into());
//!         self.port.trigger(Left("ann".into()).into());
//!     }
//! }
//! impl Provide<Room> for Host {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, said: Said) {
//!         self.port.trigger(said.into());
//!     }
//! }
//!
//! // Keeps the list of who is present: it subscribes to `Joined` and `Left`, not to `Said`.
//! struct Roster { _port: RequiredPort<Room>, present: Vec<String>, events: u32 }
//! impl ComponentDefinition for Roster {}
//! impl RequireEvent<Room, Joined> for Roster {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, Joined(who): Joined) {
//!         self.events += 1;
//!         self.present.push(who);
//!     }
//! }
//! impl RequireEvent<Room, Left> for Roster {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, Left(who): Left) {
//!         self.events += 1;
//!         self.present.retain(|p| *p != who);
//!     }
//! }
//! subscribe!(Roster: Require<Room> { Joined, Left });
//!
//! let sim = Simulation::new(2);
//! let host = sim.create(|s| Host { port: s.provided() });
//! let roster = sim.create(|s| Roster { _port: s.required(), present: vec![], events: 0 });
//! connect(&host.provided::<Room>(), &roster.required::<Room>());
//! host.start();
//! roster.start();
//! sim.run_until_quiescent(Duration::from_secs(1));
//! host.on_definition(|h| h.port.trigger(Said("bo".into(), "hi".into()).into()));
//! sim.run_until_quiescent(Duration::from_secs(1));
//! assert_eq!(roster.on_definition(|r| r.present.clone()), Some(vec!["bo".to_string()]));
//! assert_eq!(roster.on_definition(|r| r.events), Some(3)); // `Said` never reached it
//! ```
//!
//! A plain [`Provide`](crate::Provide) / [`Require`](crate::Require) impl with one `match`
//! over the enum still works; the components at the other end of the channel cannot tell the
//! difference.
//!
//! Next: [hierarchy and supervision](super::hierarchy).
//!
//! [`connect`]: crate::connect
//! [`connect_with`]: crate::connect_with
//! [`Selector`]: crate::Selector
//! [`Channel::disconnect`]: crate::Channel::disconnect
