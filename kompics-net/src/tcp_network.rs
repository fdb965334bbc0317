//! The Network component over TCP: the [`Network`] port on a real node.
//!
//! It wraps a [`TcpTransport`]: requests on the port are sent through the transport, and the
//! transport's events (told to the component's mailbox from the event-loop thread) become the
//! port's indications. See [`crate::port`] for the session contract both network
//! implementations keep.
//!
//! ```
//! use kompics_core::{Runtime, RuntimeConfig};
//! use kompics_net::{TcpConfig, TcpNetwork};
//!
//! let runtime = Runtime::new(RuntimeConfig::default().workers(1));
//! let net = TcpNetwork::create(&runtime.system(), TcpConfig::new("127.0.0.1:0".parse().unwrap()))
//!     .expect("bind a loopback port");
//! let addr = net.on_definition(|n| n.addr()).unwrap();
//! assert!(addr.is_routable());
//! net.start();
//! runtime.shutdown(); // kills the component, which stops its transport
//! ```

use std::io;
use std::sync::Arc;

use kompics_core::{
    Component, ComponentDefinition, Context, Mailbox, Provide, ProvidedPort, Receive, System,
};
use parking_lot::Mutex;

use crate::address::NodeAddr;
use crate::message::NetMessage;
use crate::port::{NetEvent, Network};
use crate::tcp::{SendError, TcpConfig, TcpTransport, TransportEvent};

/// The transport, shared with the component's factory so that a restarted component keeps it.
type SharedTransport = Arc<Mutex<Option<TcpTransport>>>;

/// The Network component of a node, over TCP.
pub struct TcpNetwork {
    network: ProvidedPort<Network>,
    _events: Mailbox<TransportEvent>,
    transport: SharedTransport,
    addr: NodeAddr,
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
        });
        let mailbox = component.mailbox::<TransportEvent>();
        let started = TcpTransport::start(
            config,
            Box::new(move |event| {
                mailbox.tell(event);
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
        let dst = msg.dst;
        let result = match self.transport.lock().as_ref() {
            Some(t) => t.send(msg),
            None => Err(SendError::Stopped),
        };
        match result {
            Ok(()) => {}
            // The transport ended the session and reports SessionDown itself.
            Err(SendError::QueueFull { .. }) => {}
            // The message is lost without the session ending: tell the users, who must treat
            // anything they sent to `dst` as possibly lost (the port's contract).
            Err(e) => {
                log::error!("{}: message to {dst} lost: {e}", self.addr);
                self.network.trigger(NetEvent::SessionDown(dst));
            }
        }
    }
}

impl Receive<TransportEvent> for TcpNetwork {
    fn receive(&mut self, _ctx: &mut Context<Self>, event: TransportEvent) {
        self.network.trigger(match event {
            TransportEvent::Deliver(msg) => NetEvent::Deliver(msg),
            TransportEvent::SessionUp(peer) => NetEvent::SessionUp(peer),
            TransportEvent::SessionDown(peer) => NetEvent::SessionDown(peer),
        });
    }
}
