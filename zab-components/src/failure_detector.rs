//! The FailureDetector component: an eventually perfect failure detector (◇P) over the network.
//!
//! Every `heartbeat_period` it sends a heartbeat request to each monitored node and checks when
//! it last heard from each: a node silent for longer than its timeout is suspected. A node
//! answers every heartbeat request it receives, so monitoring needs no agreement between the
//! two ends. When a suspected node is heard again, it is restored and its timeout grows by
//! `timeout_increment` (up to `timeout_max`): after enough false suspicions on a stable network
//! the timeout exceeds the real delay and suspicions stop, which is what makes the detector
//! eventually perfect.
//!
//! One detector serves a whole node: every Zab group on it connects to the same
//! [`FailureDetectorPort`] and asks to monitor the peers of its group; a peer is monitored while
//! at least one requester wants it.

use std::collections::BTreeMap;
use std::time::Duration;

use kompics_core::{
    ComponentDefinition, Context, Port, Provide, ProvidedPort, Require, RequiredPort, Time,
};
use kompics_net::{NetEvent, NetMessage, Network, NodeAddr, Route};
use serde::{Deserialize, Serialize};

/// The network service number of failure-detector messages (see [`Route`]).
pub const FD_SERVICE: u32 = 0xFD;

/// The route of failure-detector messages: one detector per node.
pub const FD_ROUTE: Route = Route::new(FD_SERVICE, 0);

/// The port of the failure detector.
pub struct FailureDetectorPort;

/// Requests to the failure detector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdRequest {
    /// Start monitoring a node (counted: as many `Unmonitor`s as `Monitor`s stop it).
    Monitor(NodeAddr),
    /// Stop monitoring a node once.
    Unmonitor(NodeAddr),
}

/// What the failure detector tells its users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdEvent {
    /// The node has been silent for longer than its timeout.
    Suspect(NodeAddr),
    /// A suspected node was heard from again.
    Restore(NodeAddr),
}

impl Port for FailureDetectorPort {
    type Request = FdRequest;
    type Indication = FdEvent;
}

/// Settings of the failure detector.
#[derive(Clone, Debug)]
pub struct FdConfig {
    /// How often heartbeats go out and silences are checked.
    pub heartbeat_period: Duration,
    /// How long a node may be silent before it is first suspected.
    pub timeout_initial: Duration,
    /// How much a node's timeout grows after each false suspicion.
    pub timeout_increment: Duration,
    /// The largest timeout.
    pub timeout_max: Duration,
}

impl Default for FdConfig {
    fn default() -> Self {
        FdConfig {
            heartbeat_period: Duration::from_millis(50),
            timeout_initial: Duration::from_millis(200),
            timeout_increment: Duration::from_millis(100),
            timeout_max: Duration::from_secs(5),
        }
    }
}

/// The messages detectors exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Heartbeat {
    Request,
    Reply,
}

#[derive(Debug)]
struct Peer {
    /// Requesters that asked to monitor it.
    watchers: u32,
    last_heard: Time,
    timeout: Duration,
    suspected: bool,
}

/// The FailureDetector component of one node.
pub struct FailureDetector {
    port: ProvidedPort<FailureDetectorPort>,
    net: RequiredPort<Network>,
    me: NodeAddr,
    config: FdConfig,
    peers: BTreeMap<NodeAddr, Peer>,
}

impl FailureDetector {
    /// A detector for node `me`. Create it with
    /// `system.create(move |s| FailureDetector::new(s, me, config.clone()))`, connect its
    /// `Network` port with [`kompics_net::route_selector`]`(`[`FD_ROUTE`]`)`.
    pub fn new(setup: &mut kompics_core::Setup<Self>, me: NodeAddr, config: FdConfig) -> Self {
        FailureDetector {
            port: setup.provided(),
            net: setup.required(),
            me,
            config,
            peers: BTreeMap::new(),
        }
    }

    /// Creates node `me`'s detector in `system`, connected to the node's network (receiving
    /// only heartbeats). It is passive: start it with the node's other components.
    pub fn create(
        system: &kompics_core::System,
        network: &kompics_core::ProvidedRef<Network>,
        me: NodeAddr,
        config: FdConfig,
    ) -> kompics_core::Component<FailureDetector> {
        let fd = system.create(move |s| FailureDetector::new(s, me, config.clone()));
        kompics_core::connect_with(
            network,
            &fd.required::<Network>(),
            kompics_net::route_selector(FD_ROUTE),
        );
        fd
    }

    /// The nodes suspected now.
    pub fn suspected(&self) -> Vec<NodeAddr> {
        self.peers.iter().filter(|(_, p)| p.suspected).map(|(a, _)| *a).collect()
    }

    /// The current timeout of a monitored node.
    pub fn timeout_of(&self, node: NodeAddr) -> Option<Duration> {
        self.peers.get(&node).map(|p| p.timeout)
    }

    fn send(&mut self, to: NodeAddr, hb: Heartbeat) {
        match NetMessage::encode(self.me, to, FD_ROUTE, &hb) {
            Ok(msg) => self.net.trigger(msg),
            Err(e) => log::error!("failure detector: cannot encode a heartbeat: {e}"),
        }
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        let now = ctx.now();
        let mut suspects = Vec::new();
        for (addr, peer) in &mut self.peers {
            if !peer.suspected && now.saturating_since(peer.last_heard) > peer.timeout {
                peer.suspected = true;
                suspects.push(*addr);
            }
        }
        for addr in suspects {
            log::info!("{}: suspect {addr}", self.me);
            self.port.trigger(FdEvent::Suspect(addr));
        }
        let targets: Vec<NodeAddr> = self.peers.keys().copied().collect();
        for to in targets {
            self.send(to, Heartbeat::Request);
        }
    }

    fn heard(&mut self, ctx: &mut Context<Self>, from: NodeAddr) {
        let now = ctx.now();
        let Some(peer) = self.peers.get_mut(&from) else { return };
        peer.last_heard = now;
        if peer.suspected {
            peer.suspected = false;
            peer.timeout =
                (peer.timeout + self.config.timeout_increment).min(self.config.timeout_max);
            log::info!("{}: restore {from}, timeout now {:?}", self.me, peer.timeout);
            self.port.trigger(FdEvent::Restore(from));
        }
    }
}

impl ComponentDefinition for FailureDetector {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        // A node is given a full timeout from now, not from before the detector ran.
        let now = ctx.now();
        for peer in self.peers.values_mut() {
            peer.last_heard = now;
        }
        let period = self.config.heartbeat_period;
        ctx.schedule_periodic(period, period, |fd: &mut FailureDetector, ctx| fd.round(ctx));
    }
}

impl Provide<FailureDetectorPort> for FailureDetector {
    fn handle(&mut self, ctx: &mut Context<Self>, request: FdRequest) {
        match request {
            FdRequest::Monitor(node) if node != self.me => {
                let now = ctx.now();
                let timeout = self.config.timeout_initial;
                let peer = self.peers.entry(node).or_insert(Peer {
                    watchers: 0,
                    last_heard: now,
                    timeout,
                    suspected: false,
                });
                peer.watchers += 1;
                if peer.suspected {
                    // A new requester learns the current view at once.
                    self.port.trigger(FdEvent::Suspect(node));
                }
            }
            FdRequest::Monitor(_) => {}
            FdRequest::Unmonitor(node) => {
                if let Some(peer) = self.peers.get_mut(&node) {
                    peer.watchers = peer.watchers.saturating_sub(1);
                    if peer.watchers == 0 {
                        self.peers.remove(&node);
                    }
                }
            }
        }
    }
}

impl Require<Network> for FailureDetector {
    fn handle(&mut self, ctx: &mut Context<Self>, event: NetEvent) {
        let msg = match event {
            NetEvent::Deliver(msg) => msg,
            // A heartbeat is tiny, so this means the network has stopped or the peer's address
            // is bad; the missing heartbeats will make the peer suspected as usual.
            NetEvent::SendFailed { to, route, error } if route == FD_ROUTE => {
                log::error!("failure detector: heartbeat to {to} not sent: {error}");
                return;
            }
            _ => return,
        };
        if msg.route != FD_ROUTE {
            return;
        }
        match msg.decode::<Heartbeat>() {
            Ok(Heartbeat::Request) => {
                self.send(msg.src, Heartbeat::Reply);
                self.heard(ctx, msg.src);
            }
            Ok(Heartbeat::Reply) => self.heard(ctx, msg.src),
            Err(e) => log::warn!("{}: bad heartbeat from {}: {e}", self.me, msg.src),
        }
    }
}
