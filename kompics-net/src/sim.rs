//! The simulated network: the [`Network`] port for the deterministic simulator.
//!
//! One [`Fabric`] component models every link of a simulated cluster; each node has a
//! [`SimNetwork`] component that provides the Network port, exactly as the TCP network does on a
//! real node. A [`SimNet`] handle lets a test build nodes and inject faults:
//!
//! - **latency** per message drawn from the fabric's seeded generator, with FIFO per link within
//!   a session (a message never overtakes an earlier one on the same link); one direction of a
//!   link can be made **slow** with its own range, so that messages on two paths race;
//! - a **frame limit**, the same as TCP's: a message whose frame would exceed
//!   [`SimNetConfig::frame_bytes_max`] is refused and its sender alone gets
//!   [`NetEvent::SendFailed`] (see [`crate::payload_bytes_max`]);
//! - link **bandwidth**: each direction of a link sends one frame at a time at
//!   [`SimNetConfig::bandwidth`] bytes per second of virtual time (settable for all links and
//!   per link), so a large message takes time and delays what follows it on that link, as on
//!   a TCP connection; a message arrives its latency after its last byte was sent;
//! - **partitions** between sets of nodes, and **heal**: a partition breaks the sessions across
//!   it (both ends get `SessionDown` after the failure-detection delay); a send across it is lost
//!   and the sender gets `SessionDown`;
//! - a **lossy** mode in which each message breaks its session with a given probability, the way
//!   a TCP reset does (the message and everything in flight in that session are lost);
//! - node **crash** and **restart**: a crashed node's sessions end and its in-flight messages are
//!   lost; a restarted node starts with no session.
//!
//! As on TCP, nothing sent before a `SessionDown` arrives after it: messages in flight when a
//! session ends are lost, and so are messages a node sends its peer after the session broke
//! but before its network component has passed the `SessionDown` on (they belong to the ended
//! session, which that `SessionDown` covers). Messages sent after it open a new session.
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
use crate::frame::{message_frame_len, FRAME_BYTES_MAX_DEFAULT, FRAME_LENGTH_BYTES};
use crate::message::NetMessage;
use crate::port::{NetEvent, Network, SendFailure};

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
    /// The largest frame length field, as [`crate::TcpConfig::frame_bytes_max`]: a message
    /// whose frame would be longer is refused with [`NetEvent::SendFailed`]. Default: TCP's
    /// default, [`FRAME_BYTES_MAX_DEFAULT`] (16 MiB).
    pub frame_bytes_max: usize,
    /// Bytes per second of virtual time each direction of a link carries (whole frames, length
    /// field included); `None` for no limit. Default: 1 Gbit/s (125,000,000 bytes/s), a LAN:
    /// a kilobyte takes 8 µs, far below the default latency, while a snapshot of megabytes
    /// takes milliseconds and holds back what is sent after it.
    pub bandwidth: Option<u64>,
}

/// The default [`SimNetConfig::bandwidth`]: 1 Gbit/s.
pub const BANDWIDTH_DEFAULT: u64 = 125_000_000;

impl Default for SimNetConfig {
    fn default() -> Self {
        SimNetConfig {
            latency_min: Duration::from_micros(200),
            latency_max: Duration::from_millis(2),
            failure_detection: Duration::from_millis(5),
            session_break_probability: 0.0,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            bandwidth: Some(BANDWIDTH_DEFAULT),
        }
    }
}

/// The internal port between per-node network components and the fabric.
pub struct FabricPort;

/// Requests to the fabric: traffic and fault injection.
#[derive(Clone, Debug)]
pub enum FabricRequest {
    /// Send a message (its `src` is the sending node).
    Transmit {
        /// The message.
        msg: NetMessage,
        /// The `SessionDown` count for `msg.dst` the sending node had seen (from
        /// [`Arrival::downs`]), if any: if the fabric has reported more, the message was sent
        /// for a session that has ended and is lost with it.
        downs_seen: Option<u64>,
    },
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
    /// Set the bandwidth of every link without its own (bytes per second; `None`: unlimited).
    SetBandwidth(Option<u64>),
    /// Set the bandwidth of the link from the first node to the second (that direction only),
    /// or with `None` return it to the common one.
    SetLinkBandwidth(NodeAddr, NodeAddr, Option<u64>),
}

/// An event for the network component of node `to`.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// The node the event is for.
    pub to: NodeAddr,
    /// The event.
    pub event: NetEvent,
    /// For a session event about a peer: the number of `SessionDown`s about that peer the
    /// fabric has reported to this node so far, this one included (0 for other events).
    pub downs: u64,
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
    /// Bandwidths of single link directions, overriding the common one.
    link_bandwidth: BTreeMap<(NodeAddr, NodeAddr), u64>,
    /// When each link direction has sent the last byte of what it was given so far.
    busy_until: BTreeMap<(NodeAddr, NodeAddr), Time>,
    /// `SessionDown`s about the second node reported to the first so far (see
    /// [`FabricRequest::Transmit`]).
    downs: BTreeMap<(NodeAddr, NodeAddr), u64>,
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
            link_bandwidth: BTreeMap::new(),
            busy_until: BTreeMap::new(),
            downs: BTreeMap::new(),
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

    /// How long from now until the link from `from` to `to` has sent `bytes` more, after
    /// everything it was given before (FIFO); books the link until then.
    fn transmission(&mut self, now: Time, from: NodeAddr, to: NodeAddr, bytes: usize) -> Duration {
        let Some(bandwidth) =
            self.link_bandwidth.get(&(from, to)).copied().or(self.config.bandwidth)
        else {
            return Duration::ZERO;
        };
        let nanos = (bytes as u128 * 1_000_000_000).div_ceil(u128::from(bandwidth.max(1)));
        let start = self.busy_until.get(&(from, to)).copied().unwrap_or(Time::ZERO).max(now);
        let done = start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.busy_until.insert((from, to), done);
        done - now
    }

    /// The number of `SessionDown`s about `peer` reported to `node` so far.
    fn downs_of(&self, node: NodeAddr, peer: NodeAddr) -> u64 {
        self.downs.get(&(node, peer)).copied().unwrap_or(0)
    }

    /// Tells `node`, after `delay`, that its session with `peer` ended; from now on, what
    /// `node` sends `peer` before it has seen this is lost with that session.
    fn report_down(
        &mut self,
        ctx: &mut Context<Self>,
        node: NodeAddr,
        peer: NodeAddr,
        delay: Duration,
    ) {
        let downs = self.downs.entry((node, peer)).or_insert(0);
        *downs += 1;
        let downs = *downs;
        self.schedule(ctx, peer, node, delay, NetEvent::SessionDown(peer), None, downs);
    }

    /// Schedules `event` for node `to` about/from node `from`, no earlier than `after` from now
    /// and never before an earlier event on the same link direction. If `session` is given, the
    /// event is dropped if that session has ended by then. `downs` goes in the [`Arrival`].
    #[allow(clippy::too_many_arguments)]
    fn schedule(
        &mut self,
        ctx: &mut Context<Self>,
        from: NodeAddr,
        to: NodeAddr,
        after: Duration,
        event: NetEvent,
        session: Option<u64>,
        downs: u64,
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
            f.port.trigger(Arrival { to, event, downs });
        });
    }

    fn break_session(&mut self, ctx: &mut Context<Self>, a: NodeAddr, b: NodeAddr) {
        if self.sessions.remove(&pair(a, b)).is_none() {
            return;
        }
        // Like a TCP reset, the break discards what the links had not sent yet: the next
        // session does not wait behind it.
        self.busy_until.remove(&(a, b));
        self.busy_until.remove(&(b, a));
        let delay = self.config.failure_detection;
        self.report_down(ctx, a, b, delay);
        self.report_down(ctx, b, a, delay);
    }

    fn transmit(&mut self, ctx: &mut Context<Self>, msg: NetMessage, downs_seen: Option<u64>) {
        let (src, dst) = (msg.src, msg.dst);
        if self.down.contains(&src) {
            return;
        }
        if src == dst {
            self.delivered += 1;
            self.schedule(ctx, src, dst, Duration::ZERO, NetEvent::Deliver(msg), None, 0);
            return;
        }
        if downs_seen.is_some_and(|seen| seen < self.downs_of(src, dst)) {
            // Sent for a session that has ended; the SessionDown on its way to `src` covers it.
            self.lost += 1;
            return;
        }
        if !self.sessions.contains_key(&pair(src, dst)) {
            if !self.reachable(src, dst) {
                self.lost += 1;
                if self.notices.insert((src, dst)) {
                    let delay = self.config.failure_detection;
                    self.report_down(ctx, src, dst, delay);
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
            let downs = self.downs_of(src, dst);
            self.schedule(ctx, dst, src, Duration::ZERO, NetEvent::SessionUp(dst), None, downs);
            let lat = self.latency(ctx, src, dst);
            let downs = self.downs_of(dst, src);
            self.schedule(ctx, src, dst, lat, NetEvent::SessionUp(src), None, downs);
        }
        let p = self.config.session_break_probability;
        if p > 0.0 && ctx.rng().random_bool(p.min(1.0)) {
            self.lost += 1;
            self.break_session(ctx, src, dst);
            return;
        }
        let id = self.sessions[&pair(src, dst)].id;
        let lat = self.latency(ctx, src, dst);
        let bytes = FRAME_LENGTH_BYTES + message_frame_len(msg.route, msg.payload.len());
        let sending = self.transmission(ctx.now(), src, dst, bytes);
        self.schedule(ctx, src, dst, sending + lat, NetEvent::Deliver(msg), Some(id), 0);
    }
}

impl ComponentDefinition for Fabric {}

impl Provide<FabricPort> for Fabric {
    fn handle(&mut self, ctx: &mut Context<Self>, request: FabricRequest) {
        match request {
            FabricRequest::Transmit { msg, downs_seen } => self.transmit(ctx, msg, downs_seen),
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
            FabricRequest::SetBandwidth(bandwidth) => self.config.bandwidth = bandwidth,
            FabricRequest::SetLinkBandwidth(from, to, bandwidth) => match bandwidth {
                Some(b) => {
                    self.link_bandwidth.insert((from, to), b);
                }
                None => {
                    self.link_bandwidth.remove(&(from, to));
                }
            },
        }
    }
}

/// The Network component of one simulated node.
pub struct SimNetwork {
    addr: NodeAddr,
    frame_bytes_max: usize,
    network: ProvidedPort<Network>,
    fabric: RequiredPort<FabricPort>,
    /// Per peer, the fabric's `SessionDown` count as of the last session event passed on
    /// (sent with each message, so that one sent before a `SessionDown` is lost with its
    /// session rather than opening the next).
    downs_seen: BTreeMap<NodeAddr, u64>,
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
        // The same check, with the same numbers, as the TCP transport's.
        let len = message_frame_len(msg.route, msg.payload.len());
        if len > self.frame_bytes_max {
            let error = SendFailure::TooLarge { len, max: self.frame_bytes_max };
            log::warn!(
                "{}: message to {} on route {} refused: {error}",
                self.addr,
                msg.dst,
                msg.route
            );
            self.network.trigger(NetEvent::SendFailed { to: msg.dst, route: msg.route, error });
            return;
        }
        let downs_seen = self.downs_seen.get(&msg.dst).copied();
        self.fabric.trigger(FabricRequest::Transmit { msg, downs_seen });
    }
}

impl Require<FabricPort> for SimNetwork {
    fn handle(&mut self, _ctx: &mut Context<Self>, arrival: Arrival) {
        if let NetEvent::SessionUp(peer) | NetEvent::SessionDown(peer) = arrival.event {
            self.downs_seen.insert(peer, arrival.downs);
        }
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
    frame_bytes_max: usize,
    fabric: Component<Fabric>,
    controller: Component<Controller>,
}

impl SimNet {
    /// Creates the fabric (started) in `system`, which should be a simulation's.
    pub fn new(system: &System, config: SimNetConfig) -> SimNet {
        let fabric_config = config.clone();
        let fabric = system.create(move |s| Fabric::new(s.provided(), fabric_config.clone()));
        let controller = system.create(|s| Controller { fabric: s.required() });
        connect_with(
            &fabric.provided::<FabricPort>(),
            &controller.required::<FabricPort>(),
            Selector::new().indications(|_: &Arrival| false),
        );
        fabric.start();
        controller.start();
        SimNet {
            system: system.clone(),
            frame_bytes_max: config.frame_bytes_max,
            fabric,
            controller,
        }
    }

    /// Creates and starts the Network component of node `addr`, which is up from now on. Use it
    /// again after a [`crash`](Self::crash) to restart the node.
    pub fn add_node(&self, addr: NodeAddr) -> Component<SimNetwork> {
        self.request(FabricRequest::Restart(addr));
        let frame_bytes_max = self.frame_bytes_max;
        let node = self.system.create(move |s| SimNetwork {
            addr,
            frame_bytes_max,
            network: s.provided(),
            fabric: s.required(),
            downs_seen: BTreeMap::new(),
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

    /// Sets the bandwidth of every link that has none of its own, in bytes per second of
    /// virtual time (`None`: unlimited). Default: [`SimNetConfig::bandwidth`].
    pub fn set_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.request(FabricRequest::SetBandwidth(bytes_per_sec));
    }

    /// Sets the bandwidth of the link from `from` to `to` (that direction only), in bytes per
    /// second of virtual time. The other links keep the common bandwidth.
    pub fn set_link_bandwidth(&self, from: NodeAddr, to: NodeAddr, bytes_per_sec: u64) {
        self.request(FabricRequest::SetLinkBandwidth(from, to, Some(bytes_per_sec)));
    }

    /// Returns the link from `from` to `to` to the common bandwidth.
    pub fn reset_link_bandwidth(&self, from: NodeAddr, to: NodeAddr) {
        self.request(FabricRequest::SetLinkBandwidth(from, to, None));
    }

    /// The frame limit of this network's nodes ([`SimNetConfig::frame_bytes_max`]).
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Messages delivered and lost so far.
    pub fn counts(&self) -> (u64, u64) {
        self.fabric.on_definition(|f| (f.delivered, f.lost)).unwrap_or_default()
    }
}
