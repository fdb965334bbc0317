//! kompics-net: the Network port of the Kompics component model.
//!
//! This crate will hold the `Network` port (send a message to a node; deliveries and session
//! events back), a TCP implementation on mio (the only code in the workspace that imports mio)
//! and a simulated network with latency, loss, reordering and partitions for the deterministic
//! simulator. See `shared/DESIGN.md` (kompics-net).
//!
//! Two nodes on loopback, one message:
//!
//! ```
//! use std::sync::mpsc;
//! use std::time::Duration;
//! use kompics_net::{NetMessage, Route, TcpConfig, TcpTransport, TransportEvent};
//!
//! // Each transport reports to a sink, called on its event-loop thread.
//! let (tx, events) = mpsc::channel();
//! let alice = TcpTransport::start(TcpConfig::new("127.0.0.1:0".parse()?), Box::new(|_| {}))?;
//! let bob = TcpTransport::start(
//!     TcpConfig::new("127.0.0.1:0".parse()?),
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
//! - [`message`]: [`NetMessage`] (source, destination, [`Route`], payload) with rmp-serde
//!   helpers to put a value in a payload and take it out.
//! - [`frame`]: the wire format (length, version, kind, body) and the incremental
//!   [`FrameDecoder`], which rejects oversized, unknown or undecodable frames with a typed
//!   [`FrameError`] before allocating for them.
//! - [`tcp`]: [`TcpTransport`], reliable FIFO sessions over TCP on a mio event loop: the
//!   handshake, one connection per pair of nodes, bounded per-peer send queues, reconnection
//!   with backoff, and the session events ([`TransportEvent`]) Zab relies on. Read its module
//!   docs for the threading, session and queue contracts.
//!
//! The transport knows nothing of components; the Network component of kompics-core wraps it.

pub mod address;
mod bytes;
pub mod frame;
pub mod message;
pub mod tcp;

pub use address::NodeAddr;
pub use frame::{Frame, FrameDecoder, FrameError, FrameKind, WIRE_VERSION};
pub use message::{CodecError, NetMessage, Route};
pub use tcp::{ConfigError, EventSink, SendError, TcpConfig, TcpTransport, TransportEvent};
