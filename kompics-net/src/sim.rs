//! The simulated network: the [`Network`] port for the deterministic simulator.
//!
//! One [`Fabric`] component models every link of a simulated cluster; each node has a
//! [`SimNetwork`] component that provides the Network port, exactly as the TCP network does on a
//! real node. A [`SimNet`] handle lets a test build nodes and inject faults:
//!
//! - **latency** per message drawn from the fabric's seeded generator, with FIFO per link within
//!   a session (a message never overtakes an earlier one on the same link); one direction of a
//!   link can be made **slow** with its own range, so that messages on two paths race;
//! - **partitions** between sets of nodes, and **heal**: a partition breaks the sessions across
//!   it (both ends get `SessionDown` after the failure-detection delay); a send across it is lost
//!   and the sender gets `SessionDown`;
//! - a **lossy** mode in which each message breaks its session with a given probability, the way
//!   a TCP reset does (the message and everything in flight in that session are lost);
//! - node **crash** and **restart**: a crashed node's sessions end and its in-flight messages are
//!   lost; a restarted node starts with no session.
//!
//! Every choice comes from the simulation seed, so a failing run replays exactly.
//!
//! ```
//! use std::time::Duration;
//! use kompics_core::Simulation;
//! use kompics_net::sim::{SimNet, SimNetConfig};
//! use kompics_net::NodeAddr;
//!
//! let sim = Simulation::new(1);
//! let net = SimNet::new(&sim.system(), SimNetConfig::default());
//! let a: NodeAddr = "10.0.0.1:1".parse::<std::net::SocketAddr>().unwrap().into();
//! let node_a = net.add_node(a); // provides the Network port for node a
//! # let _ = node_a;
//! sim.run_for(Duration::from_millis(10));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kompics_core::rand::Rng;
use kompics_core::{
    connect_with, Component, ComponentDefinition, Context, Port, Provide, ProvidedPort, Require,
    RequiredPort, Selector, System, Time,
};

use crate::address::NodeAddr;
use crate::message::NetMessage;
use crate::port::{NetEvent, Network};

/// Settings of the simulated network.
#[derive(Clone, Debug)]
pub struct SimNetConfig {
    /// The smallest one-way latency of a message.
    pub latency_min: Duration,
    /// The largest one-way latency of a message.
    pub latency_max: Duration,
    /// How long after a session breaks its ends learn of it (a TCP timeout or reset).
    pub failure_detection: Duration,
    /// The probability that a message breaks its session instead of arriving (lossy mode).
    pub session_break_probability: f64,
}

impl Default for SimNetConfig {
    fn default() -> Self {
        SimNetConfig {
            latency_min: Duration::from_micros(200),
            latency_max: Duration::from_millis(2),
            failure_detection: Duration::from_millis(5),
            session_break_probability: 0.0,
        }
    }
}

/// The internal port between per-node network components and the fabric.
pub struct FabricPort;

/// Requests to the fabric: traffic and fault injection.
#[derive(Clone, Debug)]
pub enum FabricRequest {
    /// Send a message (its `src` is the sending node).
    Transmit(NetMessage),
    /// The node crashed: its sessions end, messages to and from it are lost.
    Crash(NodeAddr),
    /// The node is up again (with no session).
    Restart(NodeAddr),
    /// Cut every link between a node of the first set and a node of the second.
    Partition(Vec<NodeAddr>, Vec<NodeAddr>),
    /// Restore every cut link.
    Heal,
    /// Set the probability that a message breaks its session.
    SetLoss(f64),
    /// Set the latency range.
    SetLatency(Duration, Duration),
    /// Set the latency range of the link from the first node to the second (that direction
    /// only), or with `None` return it to the common range.
    SetLinkLatency(NodeAddr, NodeAddr, Option<(Duration, Duration)>),
}

/// An event for the network component of node `to`.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// The node the event is for.
    pub to: NodeAddr,
    /// The event.
    pub event: NetEvent,
}

impl Port for FabricPort {
    type Request = FabricRequest;
    type Indication = Arrival;
}

/// A session between two nodes; deliveries carry its id and are dropped once it has ended.
struct Session {
    id: u64,
}

/// Every link of a simulated cluster.
pub struct Fabric {
    port: ProvidedPort<FabricPort>,
    config: SimNetConfig,
    down: BTreeSet<NodeAddr>,
    cuts: BTreeSet<(NodeAddr, NodeAddr)>,
    /// Latency ranges of single link directions, overriding the common one.
    link_latency: BTreeMap<(NodeAddr, NodeAddr), (Duration, Duration)>,
    sessions: BTreeMap<(NodeAddr, NodeAddr), Session>,
    /// When the last event from the first node to the second is due.
    due_last: BTreeMap<(NodeAddr, NodeAddr), Time>,
    /// Failure notices already scheduled for a lost send, so a burst yields one notice.
    notices: BTreeSet<(NodeAddr, NodeAddr)>,
    session_seq: u64,
    /// Messages delivered so far.
    pub delivered: u64,
    /// Messages lost (to partitions, crashes, breaks) so far.
    pub lost: u64,
}

fn pair(a: NodeAddr, b: NodeAddr) -> (NodeAddr, NodeAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl Fabric {
    fn new(port: ProvidedPort<FabricPort>, config: SimNetConfig) -> Self {
        Fabric {
            port,
            config,
            down: BTreeSet::new(),
            cuts: BTreeSet::new(),
            link_latency: BTreeMap::new(),
            sessions: BTreeMap::new(),
            due_last: BTreeMap::new(),
            notices: BTreeSet::new(),
            session_seq: 0,
            delivered: 0,
            lost: 0,
        }
    }

    fn reachable(&self, a: NodeAddr, b: NodeAddr) -> bool {
        !self.down.contains(&a) && !self.down.contains(&b) && !self.cuts.contains(&pair(a, b))
    }

    fn latency(&self, ctx: &mut Context<Self>, from: NodeAddr, to: NodeAddr) -> Duration {
        let (lo, hi) = self
            .link_latency
            .get(&(from, to))
            .copied()
            .unwrap_or((self.config.latency_min, self.config.latency_max));
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo).as_nanos() as u64;
        lo + Duration::from_nanos(ctx.rng().random_range(0..=span))
    }

    /// Schedules `event` for node `to` about/from node `from`, no earlier than `after` from now
    /// and never before an earlier event on the same link direction. If `session` is given, the
    /// event is dropped if that session has ended by then.
    fn schedule(
        &mut self,
        ctx: &mut Context<Self>,
        from: NodeAddr,
        to: NodeAddr,
        after: Duration,
        event: NetEvent,
        session: Option<u64>,
    ) {
        let now = ctx.now();
        let due = {
            let last = self.due_last.entry((from, to)).or_insert(Time::ZERO);
            let due = (now + after).max(*last);
            *last = due;
            due
        };
        ctx.schedule_once(due - now, move |f: &mut Fabric, _ctx| {
            if f.down.contains(&to) {
                return;
            }
            if let Some(id) = session {
                if f.sessions.get(&pair(from, to)).is_none_or(|s| s.id != id) {
                    f.lost += 1;
                    return;
                }
                f.delivered += 1;
            }
            f.port.trigger(Arrival { to, event });
        });
    }

    fn break_session(&mut self, ctx: &mut Context<Self>, a: NodeAddr, b: NodeAddr) {
        if self.sessions.remove(&pair(a, b)).is_none() {
            return;
        }
        let delay = self.config.failure_detection;
        self.schedule(ctx, b, a, delay, NetEvent::SessionDown(b), None);
        self.schedule(ctx, a, b, delay, NetEvent::SessionDown(a), None);
    }

    fn transmit(&mut self, ctx: &mut Context<Self>, msg: NetMessage) {
        let (src, dst) = (msg.src, msg.dst);
        if self.down.contains(&src) {
            return;
        }
        if src == dst {
            self.delivered += 1;
            self.schedule(ctx, src, dst, Duration::ZERO, NetEvent::Deliver(msg), None);
            return;
        }
        if !self.sessions.contains_key(&pair(src, dst)) {
            if !self.reachable(src, dst) {
                self.lost += 1;
                if self.notices.insert((src, dst)) {
                    let delay = self.config.failure_detection;
                    self.schedule(ctx, dst, src, delay, NetEvent::SessionDown(dst), None);
                    // Another lost send may report again once this notice is out.
                    let key = (src, dst);
                    ctx.schedule_once(delay, move |f: &mut Fabric, _| {
                        f.notices.remove(&key);
                    });
                }
                return;
            }
            self.session_seq += 1;
            self.sessions.insert(pair(src, dst), Session { id: self.session_seq });
            // The opener learns at once, the other end when the connection reaches it.
            self.schedule(ctx, dst, src, Duration::ZERO, NetEvent::SessionUp(dst), None);
            let lat = self.latency(ctx, src, dst);
            self.schedule(ctx, src, dst, lat, NetEvent::SessionUp(src), None);
        }
        let p = self.config.session_break_probability;
        if p > 0.0 && ctx.rng().random_bool(p.min(1.0)) {
            self.lost += 1;
            self.break_session(ctx, src, dst);
            return;
        }
        let id = self.sessions[&pair(src, dst)].id;
        let lat = self.latency(ctx, src, dst);
        self.schedule(ctx, src, dst, lat, NetEvent::Deliver(msg), Some(id));
    }
}

impl ComponentDefinition for Fabric {}

impl Provide<FabricPort> for Fabric {
    fn handle(&mut self, ctx: &mut Context<Self>, request: FabricRequest) {
        match request {
            FabricRequest::Transmit(msg) => self.transmit(ctx, msg),
            FabricRequest::Crash(node) => {
                self.down.insert(node);
                let peers: Vec<_> = self
                    .sessions
                    .keys()
                    .filter(|(a, b)| *a == node || *b == node)
                    .copied()
                    .collect();
                for (a, b) in peers {
                    self.break_session(ctx, a, b);
                }
            }
            FabricRequest::Restart(node) => {
                self.down.remove(&node);
            }
            FabricRequest::Partition(left, right) => {
                for &a in &left {
                    for &b in &right {
                        if a != b {
                            self.cuts.insert(pair(a, b));
                            self.break_session(ctx, a, b);
                        }
                    }
                }
            }
            FabricRequest::Heal => self.cuts.clear(),
            FabricRequest::SetLoss(p) => self.config.session_break_probability = p,
            FabricRequest::SetLatency(lo, hi) => {
                self.config.latency_min = lo;
                self.config.latency_max = hi.max(lo);
            }
            FabricRequest::SetLinkLatency(from, to, range) => match range {
                Some((lo, hi)) => {
                    self.link_latency.insert((from, to), (lo, hi.max(lo)));
                }
                None => {
                    self.link_latency.remove(&(from, to));
                }
            },
        }
    }
}

/// The Network component of one simulated node.
pub struct SimNetwork {
    addr: NodeAddr,
    network: ProvidedPort<Network>,
    fabric: RequiredPort<FabricPort>,
}

impl SimNetwork {
    /// This node's address.
    pub fn addr(&self) -> NodeAddr {
        self.addr
    }
}

impl ComponentDefinition for SimNetwork {}

impl Provide<Network> for SimNetwork {
    fn handle(&mut self, _ctx: &mut Context<Self>, mut msg: NetMessage) {
        msg.src = self.addr;
        self.fabric.trigger(FabricRequest::Transmit(msg));
    }
}

impl Require<FabricPort> for SimNetwork {
    fn handle(&mut self, _ctx: &mut Context<Self>, arrival: Arrival) {
        self.network.trigger(arrival.event);
    }
}

/// Injects fault requests into the fabric on behalf of a test.
struct Controller {
    fabric: RequiredPort<FabricPort>,
}

impl ComponentDefinition for Controller {}

impl Require<FabricPort> for Controller {
    fn handle(&mut self, _ctx: &mut Context<Self>, _arrival: Arrival) {}
}

/// A simulated network: build nodes and inject faults.
pub struct SimNet {
    system: System,
    fabric: Component<Fabric>,
    controller: Component<Controller>,
}

impl SimNet {
    /// Creates the fabric (started) in `system`, which should be a simulation's.
    pub fn new(system: &System, config: SimNetConfig) -> SimNet {
        let fabric = system.create(move |s| Fabric::new(s.provided(), config.clone()));
        let controller = system.create(|s| Controller { fabric: s.required() });
        connect_with(
            &fabric.provided::<FabricPort>(),
            &controller.required::<FabricPort>(),
            Selector::new().indications(|_: &Arrival| false),
        );
        fabric.start();
        controller.start();
        SimNet { system: system.clone(), fabric, controller }
    }

    /// Creates and starts the Network component of node `addr`, which is up from now on. Use it
    /// again after a [`crash`](Self::crash) to restart the node.
    pub fn add_node(&self, addr: NodeAddr) -> Component<SimNetwork> {
        self.request(FabricRequest::Restart(addr));
        let node = self.system.create(move |s| SimNetwork {
            addr,
            network: s.provided(),
            fabric: s.required(),
        });
        connect_with(
            &self.fabric.provided::<FabricPort>(),
            &node.required::<FabricPort>(),
            Selector::new().indications(move |a: &Arrival| a.to == addr),
        );
        node.start();
        node
    }

    fn request(&self, request: FabricRequest) {
        self.controller.on_definition(|c| c.fabric.trigger(request));
    }

    /// The node crashed: its sessions end and its in-flight messages are lost. Kill the node's
    /// components (its `SimNetwork` included) yourself.
    pub fn crash(&self, node: NodeAddr) {
        self.request(FabricRequest::Crash(node));
    }

    /// Cuts every link between a node of `left` and a node of `right`.
    pub fn partition(&self, left: &[NodeAddr], right: &[NodeAddr]) {
        self.request(FabricRequest::Partition(left.to_vec(), right.to_vec()));
    }

    /// Restores every cut link.
    pub fn heal(&self) {
        self.request(FabricRequest::Heal);
    }

    /// Sets the probability that a message breaks its session instead of arriving.
    pub fn set_loss(&self, probability: f64) {
        self.request(FabricRequest::SetLoss(probability));
    }

    /// Sets the latency range.
    pub fn set_latency(&self, min: Duration, max: Duration) {
        self.request(FabricRequest::SetLatency(min, max));
    }

    /// Sets the latency range of the link from `from` to `to` (that direction only; FIFO on
    /// the link still holds). The other links keep the common range.
    pub fn set_link_latency(&self, from: NodeAddr, to: NodeAddr, min: Duration, max: Duration) {
        self.request(FabricRequest::SetLinkLatency(from, to, Some((min, max))));
    }

    /// Returns the link from `from` to `to` to the common latency range.
    pub fn reset_link_latency(&self, from: NodeAddr, to: NodeAddr) {
        self.request(FabricRequest::SetLinkLatency(from, to, None));
    }

    /// Messages delivered and lost so far.
    pub fn counts(&self) -> (u64, u64) {
        self.fabric.on_definition(|f| (f.delivered, f.lost)).unwrap_or_default()
    }
}
