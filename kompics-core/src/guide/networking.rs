//! # 6. Networking
//!
//! Components on different nodes talk through the **Network port** of the `kompics-net` crate
//! (kompics-core knows nothing of networks; `kompics-net` builds on it). It is an ordinary
//! port: a component *requires* `Network`, and a network component on its node *provides* it.
//!
//! - Requests are `NetMessage`s: source and destination node (`NodeAddr`, a node's listening
//!   address), a `Route` naming the component instance at the destination (`service`,
//!   `instance`), and a payload; `NetMessage::encode` / `decode` put any serde value in it.
//! - Indications are `NetEvent`s: `Deliver(message)`, `SessionUp(peer)`, `SessionDown(peer)`,
//!   and `SendFailed` for a message the network refused (too large for a frame, say).
//! - Several components share a node's network: each connects with
//!   `connect_with(.., route_selector(route))`, a [`Selector`](crate::Selector) that lets
//!   through the messages routed to it, the failures of its own sends, and every session
//!   event (chapter 2's filters at work).
//! - **The session contract**: between two nodes there is at most one session at a time;
//!   within it messages arrive in order, none lost or duplicated; every loss is announced by a
//!   `SessionDown` to both ends, and nothing sent before it arrives after it. Protocols (Zab,
//!   in this workspace) rely on exactly this, and nothing more.
//!
//! Two implementations provide the port, and components cannot tell them apart: `TcpNetwork`
//! (TCP on a mio event loop, for real nodes) and `sim::SimNetwork`, built by a `sim::SimNet`
//! in the simulator, with seeded latency, partitions, lossy links and crashes. See the
//! [kompics-net documentation](../../../kompics_net/index.html) (built with
//! `cargo doc --workspace`).
//!
//! A ping-pong between two simulated nodes, then a partition:
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use kompics_core::*;
//! use kompics_net::sim::{SimNet, SimNetConfig};
//! use kompics_net::{route_selector, NetEvent, NetMessage, Network, NodeAddr, Route};
//!
//! /// The pinger and the ponger are instance 0 of service 1 on their nodes.
//! const PING: Route = Route::new(1, 0);
//!
//! struct Pinger { net: RequiredPort<Network>, me: NodeAddr, peer: NodeAddr,
//!                 pongs: Vec<(String, Time)>, lost: Vec<NodeAddr> }
//! impl Pinger {
//!     fn ping(&mut self) {
//!         let msg = NetMessage::encode(self.me, self.peer, PING, "ping").expect("encodes");
//!         self.net.trigger(msg);
//!     }
//! }
//! impl ComponentDefinition for Pinger {
//!     fn on_start(&mut self, _ctx: &mut Context<Self>) {
//!         self.ping();
//!     }
//! }
//! impl Require<Network> for Pinger {
//!     fn handle(&mut self, ctx: &mut Context<Self>, event: NetEvent) {
//!         match event {
//!             NetEvent::Deliver(msg) => {
//!                 self.pongs.push((msg.decode().expect("a string"), ctx.now()));
//!             }
//!             NetEvent::SessionDown(peer) => self.lost.push(peer),
//!             NetEvent::SessionUp(_) | NetEvent::SendFailed { .. } => {}
//!         }
//!     }
//! }
//!
//! struct Ponger { net: RequiredPort<Network>, me: NodeAddr }
//! impl ComponentDefinition for Ponger {}
//! impl Require<Network> for Ponger {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, event: NetEvent) {
//!         if let NetEvent::Deliver(msg) = event {
//!             let text: String = msg.decode().expect("a string");
//!             let answer = text.replace('i', "o"); // "ping" -> "pong"
//!             let reply = NetMessage::encode(self.me, msg.src, msg.route, &answer);
//!             self.net.trigger(reply.expect("encodes"));
//!         }
//!     }
//! }
//!
//! let sim = Simulation::new(6);
//! let net = SimNet::new(&sim.system(), SimNetConfig::default());
//! let a: NodeAddr = "10.0.0.1:7000".parse::<SocketAddr>().unwrap().into();
//! let b: NodeAddr = "10.0.0.2:7000".parse::<SocketAddr>().unwrap().into();
//! let (net_a, net_b) = (net.add_node(a), net.add_node(b)); // each provides `Network`
//!
//! let pinger = sim.create(move |s| Pinger { net: s.required(), me: a, peer: b,
//!                                           pongs: vec![], lost: vec![] });
//! let ponger = sim.create(move |s| Ponger { net: s.required(), me: b });
//! connect_with(&net_a.provided::<Network>(), &pinger.required::<Network>(), route_selector(PING));
//! connect_with(&net_b.provided::<Network>(), &ponger.required::<Network>(), route_selector(PING));
//! pinger.start();
//! ponger.start();
//! sim.run_for(Duration::from_millis(100));
//!
//! let pongs = pinger.on_definition(|p| p.pongs.clone()).unwrap();
//! assert_eq!(pongs.len(), 1);
//! assert_eq!(pongs[0].0, "pong");
//! // Two one-way latencies of 0.2 to 2 ms each (SimNetConfig's defaults), in virtual time.
//! let rtt = pongs[0].1.since_start();
//! assert!(rtt >= Duration::from_micros(400) && rtt <= Duration::from_millis(5), "{rtt:?}");
//!
//! // Cut the link: the session breaks, and both ends are told.
//! net.partition(&[a], &[b]);
//! sim.run_for(Duration::from_millis(100));
//! assert_eq!(pinger.on_definition(|p| p.lost.clone()), Some(vec![b]));
//!
//! // Heal it: the next message opens a new session.
//! net.heal();
//! pinger.on_definition(|p| p.ping());
//! sim.run_for(Duration::from_millis(100));
//! assert_eq!(pinger.on_definition(|p| p.pongs.len()), Some(2));
//! ```
//!
//! On real nodes the same `Pinger` and `Ponger` are connected to the component that
//! `TcpNetwork::create(&runtime.system(), TcpConfig::new(listen_addr))` returns instead of
//! `net.add_node(..)`; nothing in them changes.
//! `examples/examples/net_ping_pong.rs` in the repository does that across two processes.
//!
//! Next: [testing in the simulator](super::simulation).
