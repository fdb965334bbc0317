//! The TCP transport: reliable FIFO sessions between nodes over mio, on one event-loop thread.
//!
//! This module is the only code in the workspace that imports mio. A [`TcpTransport`] listens
//! on its node's address, connects to peers on demand and reports what happens through a
//! *sink*, a callback given at start: deliveries, and the start and end of each session with a
//! peer ([`TransportEvent`]). It does not know about components; the Network component wraps
//! it.
//!
//! # Threads
//!
//! [`TcpTransport::start`] spawns one thread, the event loop, which owns every socket.
//! [`TcpTransport::send`] may be called from any thread (the transport is `Send + Sync`): it
//! encodes the message into the destination's queue on the caller's thread and wakes the loop
//! if it is not already due to look at that queue. **The sink is only ever called on the
//! event-loop thread**, one event at a time, including for messages a node sends to itself
//! (those never touch a socket but still go through the loop, so the sink needs no locking
//! and never runs on the sender's stack). The sink should return quickly (hand the event to
//! a queue); it may call `send`. If it panics, the loop stops and later sends fail with
//! [`SendError::Stopped`].
//!
//! # Sessions
//!
//! A session is one TCP connection after its handshake: in the secure modes a TLS 1.3
//! handshake first, then the connecting node sends a hello frame naming its listening
//! address, cluster identity and security mode (and, with a shared secret, its proof), the
//! accepting node checks it (its certificate or proof, see [`crate::tls`]) and answers with a
//! welcome naming its own (or a refusal saying why), and from then on both sides report
//! [`TransportEvent::SessionUp`]. The peer of a session is the node the handshake
//! authenticated, and every message delivered on it has that peer as its source. Within a session,
//! messages arrive in the order they were sent, without gaps. The session ends when the
//! connection does (closed, reset, bad input from the peer, a full send queue, shutdown);
//! both sides then report [`TransportEvent::SessionDown`], which means messages sent before
//! it may have been lost. Zab treats that as the end of its peer's session.
//!
//! A message that cannot be sent at all (its frame would exceed
//! [`TcpConfig::frame_bytes_max`], see [`crate::payload_bytes_max`]) is refused by
//! [`TcpTransport::send`] with an error ([`SendError::TooLarge`]) and nothing else changes: the
//! session goes on, no `SessionDown` is reported, and the Network component tells the sender
//! alone ([`crate::NetEvent::SendFailed`]).
//!
//! There is at most one connection per pair of nodes. If both connect to each other at once,
//! the connection opened by the lower [`NodeAddr`] is kept and the other closed before its
//! handshake completes; since frames stay queued until a welcome arrives, no queued message is
//! lost and exactly one session results.
//!
//! # Queues and reconnection
//!
//! Each peer has a send queue bounded by [`TcpConfig::send_queue_frames_max`]. Messages sent
//! while no session exists wait there and go out, in order, when one is established.
//!
//! Nothing queued for a session is delivered into the next one. When the transport reports a
//! `SessionDown` for a peer it drops, at that same point (under the queue's lock), everything
//! still queued for the peer: those messages were sent before the `SessionDown`, which covers
//! them. (After a full queue, below, that point is the failed send.) Messages sent after it are queued for the next session, which they open (`SessionUp`
//! comes first at both ends). A sender that learns of `SessionDown`s later than the transport
//! reports them (the Network component, whose users see events through its mailbox) passes the
//! number of `SessionDown`s it has seen for the peer with each send, and the transport discards
//! a message sent before the latest of them instead of queueing it for the next session.
//!
//! When a send finds the queue full, the transport ends the session with that peer rather than
//! drop that one message (which would leave a gap inside a session): the queue is dropped, the
//! connection closed, `SessionDown` reported, and `send` returns [`SendError::QueueFull`]. If
//! no session was up, `SessionDown` is reported all the same (queued messages were lost), at
//! once or, if a session is being established, just before its `SessionUp`. The failed send is
//! the point that `SessionDown` stands for: the next send starts a new queue and a new
//! connection (and a fenced sender's messages are discarded until it has seen the
//! `SessionDown`). [`TcpTransport::queued_frames`] lets a caller
//! apply back-pressure before that happens.
//!
//! Reconnection is on demand: the transport connects to a peer while messages are queued for
//! it, retrying failed attempts after [`TcpConfig::reconnect_backoff_min`], doubling up to
//! [`TcpConfig::reconnect_backoff_max`]. A peer nobody sends to is not dialled; the failure
//! detector's heartbeats keep sessions with live peers in use.
//!
//! # Limits
//!
//! A broken connection is noticed when the OS reports it: at once for a peer that closes or
//! crashes (its kernel resets the connection), but for a peer whose host vanishes only when
//! this node writes to it and the write times out. Heartbeats from the layer above bound that
//! delay. Until then, if this node has the lower address and opened the session, the peer's
//! new connections are refused as duplicates (they cannot be told apart from the losing side
//! of a simultaneous connect); the peer keeps retrying with backoff and gets through once this
//! node notices the old connection is gone.
//!
//! Messages queued for a peer that never comes back stay queued (and are retried) until the
//! queue overflows, which reports `SessionDown`; the layer above decides when to give up on a
//! peer.

mod config;
mod connection;
mod error;
mod event;
mod event_loop;
mod shared;

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::net::TcpListener;
use mio::{Interest, Poll};

pub use config::{ConfigError, TcpConfig};
pub use error::SendError;
pub use event::TransportEvent;

use crate::address::NodeAddr;
use crate::message::NetMessage;
use crate::poll_loop::{Wakeup, LISTENER};
use crate::tls::context::{certificate_identity, TlsContext};
use crate::tls::security::Kind;
use crate::tls::{PeerSecurity, SecurityError, SecurityMode};
use event_loop::EventLoop;
use shared::Shared;

/// The callback a [`TcpTransport`] reports its events to; called only on the event-loop thread.
pub type EventSink = Box<dyn FnMut(TransportEvent) + Send>;

/// A node's TCP endpoint: a listener, connections to peers, and the thread that drives them.
///
/// Dropping the transport (or calling [`TcpTransport::shutdown`]) stops the thread and closes
/// every socket.
pub struct TcpTransport {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl TcpTransport {
    /// Validates `config`, binds its listen address and starts the event-loop thread, which
    /// reports to `sink`.
    ///
    /// Fails with `InvalidInput` (wrapping a [`ConfigError`]) for a bad configuration, or with
    /// the OS error if the address cannot be bound.
    pub fn start(config: TcpConfig, mut sink: EventSink) -> io::Result<TcpTransport> {
        Self::start_counting(config, Box::new(move |event, _downs| sink(event)))
    }

    /// [`TcpTransport::start`] with a sink that also gets, with each session event, the number
    /// of `SessionDown`s reported for that peer so far (this one included), to pass back to
    /// [`TcpTransport::send_fenced`].
    pub(crate) fn start_counting(
        config: TcpConfig,
        sink: event_loop::Sink,
    ) -> io::Result<TcpTransport> {
        config.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let invalid = |e: SecurityError| io::Error::new(io::ErrorKind::InvalidInput, e);
        let tls = TlsContext::new(&config.security).map_err(invalid)?;
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen)?;
        let local = NodeAddr(listener.local_addr()?);
        check_own_identity(&config.security, local).map_err(invalid)?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let wakeup = Wakeup::new(poll.registry(), format!("kompics-net {local}"))?;
        let shared = Arc::new(Shared::new(
            local,
            config.frame_bytes_max,
            config.send_queue_frames_max,
            config.peers_max,
            wakeup,
        ));
        let mode = config.security.mode();
        let event_loop = EventLoop::new(poll, listener, Arc::clone(&shared), sink, config, tls);
        let thread = std::thread::Builder::new()
            .name(format!("kompics-net {local}"))
            .spawn(move || event_loop.run())?;
        log::info!("kompics-net {local}: listening; peers authenticated by {mode}");
        if mode == SecurityMode::Insecure {
            log::warn!(
                "kompics-net {local}: insecure mode: any host that reaches this port can act as a node"
            );
        }
        Ok(TcpTransport { shared, thread: Some(thread) })
    }

    /// This node's address: the address actually bound (with the real port if 0 was asked).
    pub fn local_addr(&self) -> NodeAddr {
        self.shared.local
    }

    /// Queues `msg` for `msg.dst` and returns at once; the event loop sends it.
    ///
    /// A message to this node itself is delivered through the sink (on the loop thread)
    /// without a socket. For a remote destination only `route` and `payload` travel: the
    /// receiver sees `src` as this node. `Ok` means the message is queued, not delivered;
    /// delivery is certain only while the session lasts (see the [module docs](self)).
    pub fn send(&self, msg: NetMessage) -> Result<(), SendError> {
        self.shared.send(msg, None).map(|_| ())
    }

    /// [`TcpTransport::send`] from a sender that has seen `downs_seen` `SessionDown`s for
    /// `msg.dst` (the count [`TcpTransport::start_counting`]'s sink reports). If more have been
    /// reported, the message was sent for a session that has ended and is discarded
    /// (`Ok(false)`): the `SessionDown` the sender has yet to see covers it. `Ok(true)`: queued.
    pub(crate) fn send_fenced(&self, msg: NetMessage, downs_seen: u64) -> Result<bool, SendError> {
        self.shared.send(msg, Some(downs_seen))
    }

    /// Frames queued for `peer` that the event loop has not yet taken for its socket (for this
    /// node itself: messages not yet delivered). Lets a sender slow down before the queue
    /// reaches `send_queue_frames_max`.
    pub fn queued_frames(&self, peer: NodeAddr) -> usize {
        self.shared.queued_frames(peer)
    }

    /// Whether the event loop is still running (false after a panic in the sink).
    pub fn is_running(&self) -> bool {
        self.shared.is_running()
    }

    /// Stops the event loop and waits for it: every connection is closed, with a `SessionDown`
    /// to the sink for each session that was up. Queued messages are dropped.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.request_stop();
        if thread.join().is_err() {
            log::error!(
                "kompics-net {}: the event loop panicked (in the sink?)",
                self.shared.local
            );
        }
    }
}

/// Mutual TLS: this node's own certificate must name it (its cluster and bound address), or
/// every peer would refuse it; better to say so at start.
fn check_own_identity(security: &PeerSecurity, local: NodeAddr) -> Result<(), SecurityError> {
    let Kind::MutualTls(creds) = security.kind() else {
        return Ok(());
    };
    let (cluster, node) =
        certificate_identity(&creds.chain[0]).map_err(SecurityError::Credentials)?;
    if cluster != security.cluster() || node != local {
        return Err(SecurityError::Credentials(format!(
            "this node's certificate names node {node} of cluster {cluster:?}, but this node is {local} of cluster {:?}",
            security.cluster()
        )));
    }
    Ok(())
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("local", &self.shared.local)
            .field("running", &self.shared.is_running())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TcpTransport>();
    }

    use std::sync::mpsc::{channel, Receiver};
    use std::time::Duration;

    use crate::message::Route;

    const WAIT: Duration = Duration::from_secs(5);

    fn loopback() -> std::net::SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    /// A transport whose sink (with `SessionDown` counts) forwards to a channel.
    fn counting(listen: std::net::SocketAddr) -> (TcpTransport, Receiver<(TransportEvent, u64)>) {
        let (tx, rx) = channel();
        let security = PeerSecurity::shared_secret("unit", &[3; 32]).unwrap();
        let mut config = TcpConfig::new(listen, security);
        config.reconnect_backoff_min = Duration::from_millis(10);
        config.reconnect_backoff_max = Duration::from_millis(100);
        let sink = Box::new(move |event, downs| {
            let _ = tx.send((event, downs));
        });
        (TcpTransport::start_counting(config, sink).expect("transport starts"), rx)
    }

    fn message(from: &TcpTransport, to: NodeAddr, text: &str) -> NetMessage {
        NetMessage::encode(from.local_addr(), to, Route::new(1, 0), &text).unwrap()
    }

    fn next_text(rx: &Receiver<(TransportEvent, u64)>) -> String {
        match rx.recv_timeout(WAIT).expect("an event") {
            (TransportEvent::Deliver(m), _) => m.decode().unwrap(),
            other => panic!("expected a delivery, got {other:?}"),
        }
    }

    /// Messages a sender sends to a peer whose session has ended, before it has seen that
    /// `SessionDown`, are covered by it: whether still queued when the transport reported it
    /// (dropped then) or sent after (discarded by the fence), none reaches the restarted peer.
    /// What is sent after the `SessionDown` opens the next session and arrives, first.
    #[test]
    fn nothing_sent_before_a_session_down_is_delivered_into_the_next_session() {
        let (a, a_events) = counting(loopback());
        let (b, b_events) = counting(loopback());
        let b_addr = b.local_addr();
        assert_eq!(a.send_fenced(message(&a, b_addr, "first"), 0), Ok(true));
        assert_eq!(
            b_events.recv_timeout(WAIT).unwrap(),
            (TransportEvent::SessionUp(a.local_addr()), 0)
        );
        assert_eq!(next_text(&b_events), "first");
        assert_eq!(a_events.recv_timeout(WAIT).unwrap(), (TransportEvent::SessionUp(b_addr), 0));

        b.shutdown();
        // Keep sending as a sender that has not yet seen the SessionDown would (it has seen 0).
        let mut stale = 0;
        let downs = loop {
            match a_events.try_recv() {
                Ok((TransportEvent::SessionDown(peer), downs)) if peer == b_addr => break downs,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(_) => {}
            }
            assert!(stale < 100_000, "no SessionDown after {stale} sends");
            a.send_fenced(message(&a, b_addr, "stale"), 0).expect("accepted");
            stale += 1;
            std::thread::sleep(Duration::from_micros(50));
        };
        assert_eq!(downs, 1);
        assert_eq!(a.send_fenced(message(&a, b_addr, "stale"), 0), Ok(false), "fenced off");

        assert_eq!(a.send_fenced(message(&a, b_addr, "fresh"), downs), Ok(true));
        let (b2, b2_events) = counting(b_addr.socket_addr());
        assert_eq!(b2.local_addr(), b_addr);
        assert_eq!(
            b2_events.recv_timeout(WAIT).unwrap(),
            (TransportEvent::SessionUp(a.local_addr()), 0)
        );
        assert_eq!(next_text(&b2_events), "fresh", "the first message of the new session");
        assert_eq!(a.send_fenced(message(&a, b_addr, "last"), downs), Ok(true));
        assert_eq!(next_text(&b2_events), "last");
        assert_eq!(a_events.recv_timeout(WAIT).unwrap(), (TransportEvent::SessionUp(b_addr), 1));
    }

    #[test]
    fn bad_config_is_rejected_at_start() {
        let config =
            TcpConfig::new("0.0.0.0:0".parse().unwrap(), PeerSecurity::insecure("unit").unwrap());
        let err = TcpTransport::start(config, Box::new(|_| {})).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.get_ref().unwrap().is::<ConfigError>());
    }
}
