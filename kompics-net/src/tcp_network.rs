//! The Network component over TCP: the [`Network`] port on a real node.
//!
//! It wraps a [`TcpTransport`]: requests on the port are sent through the transport, and the
//! transport's events (told to the component's mailbox from the event-loop thread) become the
//! port's indications. See [`crate::port`] for the session contract both network
//! implementations keep.
//!
//! Two parts of that contract are kept here. A message the transport refuses (too large for a
//! frame, ...) becomes a [`NetEvent::SendFailed`] on the message's own route, so only its sender
//! hears of it and no session is disturbed. And since the transport's `SessionDown`s reach this
//! component through its mailbox, a send it handles may have been meant for a session the
//! transport has already ended: the component passes the number of `SessionDown`s it has seen
//! for the destination with each send, and the transport discards such a message (the
//! `SessionDown` on its way here covers it) instead of delivering it into the next session.
//!
//! ```
//! use kompics_core::{Runtime, RuntimeConfig};
//! use kompics_net::{PeerSecurity, TcpConfig, TcpNetwork};
//!
//! let runtime = Runtime::new(RuntimeConfig::default().workers(1));
//! let security = PeerSecurity::insecure("example").unwrap(); // a doc test: no peers at all
//! let net = TcpNetwork::create(&runtime.system(), TcpConfig::new("127.0.0.1:0".parse().unwrap(), security))
//!     .expect("bind a loopback port");
//! let addr = net.on_definition(|n| n.addr()).unwrap();
//! assert!(addr.is_routable());
//! net.start();
//! runtime.shutdown(); // kills the component, which stops its transport
//! ```

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use kompics_core::{
    Component, ComponentDefinition, Context, Mailbox, Provide, ProvidedPort, Receive, System,
};
use parking_lot::Mutex;

use crate::address::NodeAddr;
use crate::message::NetMessage;
use crate::port::{NetEvent, Network, SendFailure};
use crate::tcp::{SendError, TcpConfig, TcpTransport, TransportEvent};

/// The transport, shared with the component's factory so that a restarted component keeps it.
type SharedTransport = Arc<Mutex<Option<TcpTransport>>>;

/// A transport event with the peer's `SessionDown` count at the time it was reported (see
/// [`TcpTransport::send_fenced`]).
#[derive(Clone, Debug)]
struct LoopEvent {
    event: TransportEvent,
    downs: u64,
}

/// The Network component of a node, over TCP.
pub struct TcpNetwork {
    network: ProvidedPort<Network>,
    _events: Mailbox<LoopEvent>,
    transport: SharedTransport,
    addr: NodeAddr,
    /// Per peer, the transport's `SessionDown` count as of the last session event this
    /// component passed on. A peer with no entry (none seen since this component was created,
    /// e.g. after a restart) is sent to unfenced.
    downs_seen: HashMap<NodeAddr, u64>,
}

impl TcpNetwork {
    /// Binds `config.listen`, starts the transport and creates the component (passive: connect
    /// its users, then start it). Events that arrive before it starts are kept.
    pub fn create(system: &System, config: TcpConfig) -> io::Result<Component<TcpNetwork>> {
        let transport: SharedTransport = Arc::new(Mutex::new(None));
        // The address is known only once bound; the factory reads it from the transport.
        let shared = transport.clone();
        let component = system.create(move |s| TcpNetwork {
            network: s.provided(),
            _events: s.mailbox(),
            transport: shared.clone(),
            addr: shared.lock().as_ref().map_or_else(unbound, TcpTransport::local_addr),
            downs_seen: HashMap::new(),
        });
        let mailbox = component.mailbox::<LoopEvent>();
        let started = TcpTransport::start_counting(
            config,
            Box::new(move |event, downs| {
                mailbox.tell(LoopEvent { event, downs });
            }),
        );
        let started = match started {
            Ok(t) => t,
            Err(e) => {
                component.kill();
                return Err(e);
            }
        };
        let addr = started.local_addr();
        *transport.lock() = Some(started);
        component.on_definition(|n| n.addr = addr);
        Ok(component)
    }

    /// This node's address (the bound one).
    pub fn addr(&self) -> NodeAddr {
        self.addr
    }
}

fn unbound() -> NodeAddr {
    NodeAddr(([0, 0, 0, 0], 0).into())
}

impl ComponentDefinition for TcpNetwork {
    fn on_kill(&mut self, _ctx: &mut Context<Self>) {
        if let Some(t) = self.transport.lock().take() {
            t.shutdown();
        }
    }
}

impl Provide<Network> for TcpNetwork {
    fn handle(&mut self, _ctx: &mut Context<Self>, mut msg: NetMessage) {
        msg.src = self.addr;
        let (dst, route) = (msg.dst, msg.route);
        let fence = self.downs_seen.get(&dst).copied();
        let result = match (self.transport.lock().as_ref(), fence) {
            (Some(t), Some(seen)) => t.send_fenced(msg, seen).map(|_| ()),
            (Some(t), None) => t.send(msg),
            (None, _) => Err(SendError::Stopped),
        };
        let error = match result {
            Ok(()) => return,
            // The transport ended the session and reports SessionDown itself.
            Err(SendError::QueueFull { peer, .. }) if peer != self.addr => return,
            Err(SendError::QueueFull { frames_max, .. }) => SendFailure::QueueFull { frames_max },
            Err(SendError::TooLarge { len, max }) => SendFailure::TooLarge { len, max },
            Err(SendError::Encode(reason)) => SendFailure::Encode(reason),
            Err(SendError::InvalidDestination(_)) => SendFailure::InvalidDestination,
            Err(SendError::TooManyPeers { max }) => SendFailure::TooManyPeers { max },
            Err(SendError::Stopped) => SendFailure::Stopped,
        };
        // Only this message is lost, and the session (if any) goes on: its sender alone is told.
        log::warn!("{}: message to {dst} on route {route} refused: {error}", self.addr);
        self.network.trigger(NetEvent::SendFailed { to: dst, route, error });
    }
}

impl Receive<LoopEvent> for TcpNetwork {
    fn receive(&mut self, _ctx: &mut Context<Self>, LoopEvent { event, downs }: LoopEvent) {
        self.network.trigger(match event {
            TransportEvent::Deliver(msg) => NetEvent::Deliver(msg),
            TransportEvent::SessionUp(peer) => {
                self.downs_seen.insert(peer, downs);
                NetEvent::SessionUp(peer)
            }
            TransportEvent::SessionDown(peer) => {
                self.downs_seen.insert(peer, downs);
                NetEvent::SessionDown(peer)
            }
        });
    }
}
