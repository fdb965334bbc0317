//! kompics-net: the Network port of the Kompics component model.
//!
//! Components on different nodes talk through the [`Network`] port: requests are
//! [`NetMessage`]s (source, destination, a [`Route`] naming the component instance there, and an
//! rmp-serde payload); indications are [`NetEvent`]s (a delivered message, a session starting
//! or ending, or a message of this node's refused as unsendable, e.g. too large for a frame).
//! Two implementations provide the port, and nothing above it can tell them apart:
//!
//! - [`TcpNetwork`], a component over [`TcpTransport`]: TCP on a mio event loop (the only code
//!   in the workspace that imports mio), length-prefixed versioned frames, one connection per
//!   pair of nodes, bounded send queues, reconnection with backoff;
//! - [`sim::SimNetwork`], for the deterministic simulator: seeded latency, FIFO per link,
//!   partitions, lossy links that break sessions, node crashes and restarts.
//!
//! [`port`] states the session contract both keep (reliable FIFO within a session; every loss
//! announced by a `SessionDown`, or by a `SendFailed` to the sender of a message that cannot be
//! sent; nothing sent before a `SessionDown` delivered after it), which is what Zab relies on.
//! [`payload_bytes_max`] gives the largest payload that always fits the transport's frame limit,
//! for layers that bound their messages in bytes. See `shared/DESIGN.md`
//! (kompics-net).
//!
//! The transport on its own, without components: two nodes on loopback, one message.
//!
//! ```
//! use std::sync::mpsc;
//! use std::time::Duration;
//! use kompics_net::{NetMessage, PeerSecurity, Route, TcpConfig, TcpTransport, TransportEvent};
//!
//! // Both nodes of cluster "demo" hold the same secret (use 32 random bytes, kept in a file).
//! let security = PeerSecurity::shared_secret("demo", &[42; 32])?;
//! let config = TcpConfig::new("127.0.0.1:0".parse()?, security);
//! // Each transport reports to a sink, called on its event-loop thread.
//! let (tx, events) = mpsc::channel();
//! let alice = TcpTransport::start(config.clone(), Box::new(|_| {}))?;
//! let bob = TcpTransport::start(
//!     config,
//!     Box::new(move |event| { let _ = tx.send(event); }),
//! )?;
//!
//! // Route 7/0: instance 0 of whatever service the application numbers 7.
//! let msg = NetMessage::encode(alice.local_addr(), bob.local_addr(), Route::new(7, 0), &"hello")?;
//! alice.send(msg)?; // queued; alice connects to bob on demand
//!
//! loop {
//!     match events.recv_timeout(Duration::from_secs(5))? {
//!         TransportEvent::SessionUp(peer) => assert_eq!(peer, alice.local_addr()),
//!         TransportEvent::Deliver(msg) => {
//!             assert_eq!(msg.src, alice.local_addr());
//!             assert_eq!(msg.decode::<String>()?, "hello");
//!             break;
//!         }
//!         TransportEvent::SessionDown(peer) => panic!("lost the session with {peer}"),
//!     }
//! }
//! alice.shutdown();
//! bob.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is here
//!
//! - [`address`]: [`NodeAddr`], a node's listening address, which is its identity.
//! - [`bytes`]: serde helpers that put byte strings in MessagePack as `bin` values.
//! - [`message`]: [`NetMessage`] (source, destination, [`Route`], payload) with rmp-serde
//!   helpers to put a value in a payload and take it out.
//! - [`frame`]: the wire format (length, version, kind, body) and the incremental
//!   [`FrameDecoder`], which rejects oversized, unknown or undecodable frames with a typed
//!   [`FrameError`] before allocating for them.
//! - [`tls`]: peer authentication ([`PeerSecurity`]: mutual TLS, a shared secret, or insecure
//!   by name), the cluster identity every handshake carries, and [`tls::TlsStream`], the
//!   rustls pump under every secure connection.
//! - [`tcp`]: [`TcpTransport`], reliable FIFO sessions over TCP on a mio event loop: the
//!   handshake, one connection per pair of nodes, bounded per-peer send queues, reconnection
//!   with backoff, and the session events ([`TransportEvent`]) Zab relies on. Read its module
//!   docs for the threading, session and queue contracts.
//! - [`stream`]: not a peer network but a byte-stream TCP server for client protocols (the
//!   key-value store's RESP front end): [`StreamServer`] provides the [`ByteStream`] port,
//!   which indicates [`StreamEvent`]s (a connection opened, bytes arrived, it closed) per
//!   [`ConnId`] and takes [`StreamRequest`]s (write, close after flushing, pause and resume
//!   reading for back-pressure). One event-loop thread per server; bounded output per
//!   connection and a bounded number of connections ([`StreamConfig`]). Read its module docs
//!   for the event order and the closing rules.
//!
//! - [`port`], [`TcpNetwork`] and [`sim`]: the [`Network`] port and its two providers, the
//!   component over [`TcpTransport`] and the simulated network.
//!
//! The transport knows nothing of components; [`TcpNetwork`], a component of this crate, wraps
//! it to provide the [`Network`] port.

pub mod address;
pub mod bytes;
pub mod frame;
mod hasher;
pub mod message;
mod poll_loop;
pub mod port;
pub mod sim;
pub mod stream;
pub mod tcp;
mod tcp_network;
pub mod tls;

pub use address::NodeAddr;
pub use frame::{
    payload_bytes_max, Frame, FrameDecoder, FrameError, FrameKind, Handshake,
    FRAME_BYTES_MAX_DEFAULT, WIRE_VERSION,
};
pub use message::{CodecError, NetMessage, Route};
pub use port::{route_selector, service_selector, NetEvent, Network, SendFailure};
pub use stream::{
    ByteStream, CloseReason, ConnId, StreamConfig, StreamEvent, StreamRequest, StreamServer,
};
pub use tcp::{ConfigError, EventSink, SendError, TcpConfig, TcpTransport, TransportEvent};
pub use tcp_network::TcpNetwork;
pub use tls::{PeerSecurity, SecurityError, SecurityMode};
