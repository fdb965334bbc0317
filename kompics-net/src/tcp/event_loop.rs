//! The event loop: one thread that owns every socket of a transport.
//!
//! It accepts connections, runs the TLS handshake (secure modes) and the hello / welcome
//! handshake (authentication, cluster identity), resolves duplicate connections,
//! moves queued frames from the peers' outboxes to their sockets, decodes incoming frames and
//! reports everything to the sink. It sleeps in `mio::Poll` until a socket is ready, a sender
//! wakes it, or a timer (handshake deadline, reconnect backoff) is due.
//!
//! Sockets are registered for both readable and writable interest once, edge-triggered: the
//! loop reads until the socket is drained and writes until its buffer is empty or
//! `WouldBlock`, so no readiness is ever lost and no re-registration is needed. A read that
//! returns less than it asked for has drained the socket (anything arriving later raises a new
//! edge), so after a plain readable event the loop stops there instead of paying one more
//! `read` for the `WouldBlock`; it reads on to `WouldBlock` or end of stream when the event
//! also reported a hang-up or error (the end of stream may already be queued, and would raise
//! no new edge) and on revisits. So that one busy peer cannot hold
//! the loop (and every other peer, timer and sender) for long, each visit to a connection reads
//! and writes at most a budget of bytes; a connection that used up its budget is revisited
//! after the other events of the round, before the loop sleeps again.
//!
//! Unauthenticated work is bounded: each handshake has a deadline (TLS included), at most
//! `handshakes_max` incoming connections may be unauthenticated at once, and one round accepts
//! at most [`ACCEPTS_PER_ROUND`] connections (the rest wait in the backlog for the next round),
//! so a flood of connection attempts cannot starve established sessions.
//!
//! # Identity
//!
//! Message frames carry no sender: everything delivered on a session is attributed to the
//! session's peer, the node the handshake authenticated (mutual TLS: named by its certificate;
//! shared secret: proved knowledge of the secret; insecure: as claimed).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Poll, Token};
use parking_lot::Mutex;

use super::config::TcpConfig;
use super::connection::{ConnState, Connection, Role};
use super::event::TransportEvent;
use super::shared::{Outbox, Overflow, Shared};
use crate::address::NodeAddr;
use crate::frame::{Frame, Handshake};
use crate::hasher::FastHashBuilder;
use crate::message::NetMessage;
use crate::poll_loop::{self, PollLoop};
use crate::tls::auth::{self, AuthKey};
use crate::tls::context::{peer_identity, TlsContext};
use crate::tls::link::Link;
use crate::tls::security::Kind;
use crate::tls::{SecurityMode, TlsStream};

/// Tokens from here on name connections; they are never reused.
const FIRST_CONNECTION_TOKEN: usize = 2;
/// Bytes read from one connection per visit before the loop moves on.
const READ_BUDGET_BYTES: usize = 1024 * 1024;
/// Bytes written to one connection per visit before the loop moves on.
const WRITE_BUDGET_BYTES: usize = 4 * 1024 * 1024;
/// Connections accepted per round at most; the rest wait in the listen backlog for the next
/// round, so accepting (and the TLS work it starts) cannot starve established sessions.
const ACCEPTS_PER_ROUND: usize = 32;

/// Where the transport reports its events. With each session event comes the peer's count of
/// session ends at that point (`Outbox::downs`; 0 with a delivery): a sender that passes it
/// back with its sends (`TcpTransport::send_fenced`) has the messages it sent before seeing a
/// `SessionDown` discarded rather than delivered into the next session.
pub(crate) type Sink = Box<dyn FnMut(TransportEvent, u64) + Send>;

/// What the loop knows about one peer.
struct Peer {
    /// Shared with the senders.
    outbox: Arc<Mutex<Outbox>>,
    /// The peer's connection: the one carrying the session, or this node's attempt to open one.
    /// (Inbound connections still waiting for their hello belong to no peer yet.)
    conn: Option<Token>,
    /// Delay before the next retry if the current attempt fails.
    backoff: Duration,
    /// No connection attempt before this time.
    retry_at: Option<Instant>,
}

/// A timer in the loop's heap. Entries are not removed when the thing they time goes away;
/// instead a firing timer is checked against the current deadline and ignored if stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    /// The connection's handshake deadline.
    Handshake(Token),
    /// The peer's reconnect backoff.
    Retry(NodeAddr),
}

/// Why a connection is being closed; decides the log level and what happens to the session.
#[derive(Debug)]
enum Close {
    /// The peer closed the connection at a frame boundary.
    Eof,
    /// A socket error.
    Io(io::Error),
    /// An outbound connect failed.
    ConnectFailed(io::Error),
    /// The peer sent something invalid (bad frame, bad handshake, cut-off frame, failed TLS
    /// or authentication).
    Bad(String),
    /// The peer refused this node's hello, saying why.
    Refused(String),
    /// A bound was reached.
    Limit(String),
    /// A duplicate connection lost the tie-break.
    Rejected(&'static str),
    /// A newer connection from the same peer took this one's place.
    Replaced,
    /// The handshake did not complete in time.
    HandshakeTimeout,
    /// A send found the peer's queue full.
    QueueOverflow,
    /// The transport is shutting down.
    Shutdown,
}

/// How far a visit reads a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// Not at all (only writable).
    No,
    /// Until a read returns less than it asked for, or `WouldBlock`.
    UntilShort,
    /// Until `WouldBlock` or end of stream.
    Drain,
}

/// The state owned by the event-loop thread.
pub(crate) struct EventLoop {
    poll: Poll,
    listener: TcpListener,
    shared: Arc<Shared>,
    sink: Sink,
    config: TcpConfig,
    conns: HashMap<Token, Connection, FastHashBuilder>,
    peers: HashMap<NodeAddr, Peer, FastHashBuilder>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    next_token: usize,
    next_session: u64,
    /// This node's hello frame in insecure mode, encoded once (the secure modes build one per
    /// connection, bound to its TLS session).
    hello: Vec<u8>,
    /// The rustls configurations (secure modes).
    tls: Option<TlsContext>,
    /// The shared-secret MAC key (shared-secret mode).
    auth_key: Option<AuthKey>,
    /// The listener has connections left after this round's accept budget.
    accept_pending: bool,
    /// Reused buffers for draining the shared lists.
    ready: Vec<NodeAddr>,
    local: VecDeque<NetMessage>,
    /// Connections that used up a read or write budget: visit again before sleeping.
    again: Vec<Token>,
}

/// Marks the transport stopped when the loop thread ends, even by a panic in the sink.
struct StoppedGuard(Arc<Shared>);

impl Drop for StoppedGuard {
    fn drop(&mut self) {
        self.0.set_stopped();
    }
}

impl EventLoop {
    /// A loop over an already registered listener and waker, with the TLS configurations
    /// `tls` built from `config.security`.
    pub(crate) fn new(
        poll: Poll,
        listener: TcpListener,
        shared: Arc<Shared>,
        sink: Sink,
        config: TcpConfig,
        tls: Option<TlsContext>,
    ) -> Self {
        let hello = Frame::Hello(Handshake::insecure(shared.local, config.security.cluster()))
            .to_bytes()
            .expect("a hello frame always encodes");
        let auth_key = match config.security.kind() {
            Kind::SharedSecret(secret) => {
                Some(AuthKey::derive(&secret.0, config.security.cluster()))
            }
            _ => None,
        };
        EventLoop {
            tls,
            auth_key,
            accept_pending: false,
            poll,
            listener,
            shared,
            sink,
            config,
            conns: HashMap::default(),
            peers: HashMap::default(),
            timers: BinaryHeap::new(),
            next_token: FIRST_CONNECTION_TOKEN,
            next_session: 1,
            hello,
            ready: Vec::new(),
            local: VecDeque::new(),
            again: Vec::new(),
        }
    }

    /// Runs until the transport asks it to stop, then closes every connection.
    pub(crate) fn run(mut self) {
        let _guard = StoppedGuard(Arc::clone(&self.shared));
        poll_loop::run(&mut self);
        self.close_all();
    }

    fn emit(&mut self, event: TransportEvent, downs: u64) {
        (self.sink)(event, downs);
    }

    // ----- senders -----------------------------------------------------------------------

    /// Delivers messages this node sent itself and serves the peers that got new frames.
    fn on_wake(&mut self) {
        self.shared.take_wake();
        let mut local = std::mem::take(&mut self.local);
        self.shared.take_local(&mut local);
        for msg in local.drain(..) {
            self.emit(TransportEvent::Deliver(msg), 0);
        }
        self.local = local;
        let mut ready = std::mem::take(&mut self.ready);
        self.shared.take_ready(&mut ready);
        for &addr in &ready {
            self.on_ready(addr);
        }
        self.ready = ready;
    }

    /// `addr`'s outbox got frames, or a send found it full.
    fn on_ready(&mut self, addr: NodeAddr) {
        if !self.ensure_peer(addr) {
            return;
        }
        let peer = &self.peers[&addr];
        let token = peer.conn;
        let conn = token.and_then(|t| self.conns.get(&t));
        let session = conn.and_then(Connection::session);
        let blocked = conn.is_some_and(|c| c.write_blocked);
        let overflow = {
            let mut ob = peer.outbox.lock();
            let overflow = ob.take_overflow(session);
            // A session waiting for its socket to drain will look at the outbox on its next
            // writable event, so senders need not wake the loop for it meanwhile.
            ob.listed = overflow == Overflow::Handled && session.is_some() && blocked;
            overflow
        };
        match overflow {
            Overflow::EndSession => {
                if let Some(conn) = token.and_then(|t| self.conns.remove(&t)) {
                    self.close(conn, Close::QueueOverflow);
                }
                self.maybe_connect(addr);
                return;
            }
            Overflow::ReportDown => {
                self.report_lost_queue(addr);
            }
            Overflow::Handled => {}
        }
        match token {
            Some(token) if session.is_some() && !blocked => {
                self.with_connection(token, Self::flush)
            }
            // Handshaking (the session's start flushes) or blocked (the writable event flushes).
            Some(_) => {}
            None => self.maybe_connect(addr),
        }
    }

    /// Makes sure the loop tracks `addr`; false if it cannot (`peers_max`).
    fn ensure_peer(&mut self, addr: NodeAddr) -> bool {
        if self.peers.contains_key(&addr) {
            return true;
        }
        match self.shared.outbox(addr) {
            Ok(outbox) => {
                self.peers.insert(
                    addr,
                    Peer {
                        outbox,
                        conn: None,
                        backoff: self.config.reconnect_backoff_min,
                        retry_at: None,
                    },
                );
                true
            }
            Err(_) => false,
        }
    }

    // ----- connecting --------------------------------------------------------------------

    /// Opens a connection to `addr` if frames wait for it, none is open, and no backoff is
    /// running. Reconnection is on demand: a peer nobody sends to is not dialled.
    fn maybe_connect(&mut self, addr: NodeAddr) {
        let now = Instant::now();
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        if peer.conn.is_some() || peer.retry_at.is_some_and(|at| at > now) {
            return;
        }
        peer.retry_at = None;
        if peer.outbox.lock().frames == 0 {
            return;
        }
        if self.conns.len() >= self.config.connections_max {
            log::warn!(
                "kompics-net {}: cannot connect to {addr}: connections_max ({}) reached; will retry",
                self.shared.local,
                self.config.connections_max
            );
            schedule_retry(peer, addr, now, &self.config, &mut self.timers);
            return;
        }
        let token = Token(self.next_token);
        let registry = self.poll.registry();
        let tls = self.tls.as_ref();
        let connected = TcpStream::connect(addr.socket_addr()).and_then(|mut stream| {
            poll_loop::register_connection(registry, &mut stream, token)?;
            match tls {
                None => Ok(Link::Plain(stream)),
                Some(ctx) => {
                    let client = ctx.client().map_err(io::Error::other)?;
                    Ok(Link::Tls(Box::new(TlsStream::new(stream, client))))
                }
            }
        });
        match connected {
            Ok(link) => {
                self.next_token += 1;
                let deadline = now + self.config.handshake_timeout;
                // In the secure modes the hello is built once TLS is up (it is bound to it).
                let hello = if link.is_tls() { Vec::new() } else { self.hello.clone() };
                let conn = Connection::outbound(
                    token,
                    link,
                    addr,
                    hello,
                    self.config.frame_bytes_max,
                    deadline,
                );
                peer.conn = Some(token);
                self.timers.push(Reverse((deadline, TimerKey::Handshake(token))));
                self.conns.insert(token, conn);
                log::debug!("kompics-net {}: connecting to {addr}", self.shared.local);
            }
            Err(e) => {
                log::debug!("kompics-net {}: cannot connect to {addr}: {e}", self.shared.local);
                schedule_retry(peer, addr, now, &self.config, &mut self.timers);
            }
        }
    }

    // ----- connection I/O ----------------------------------------------------------------

    fn on_connection_event(&mut self, token: Token, read: Read, writable: bool) {
        self.with_connection(token, |this, conn| {
            if conn.state == ConnState::Connecting {
                match conn.finish_connect() {
                    Ok(true) if conn.link.is_tls() => conn.state = ConnState::Securing,
                    Ok(true) => conn.state = ConnState::AwaitingWelcome,
                    Ok(false) => return Ok(()),
                    Err(e) => return Err(Close::ConnectFailed(e)),
                }
            }
            if writable {
                conn.write_blocked = false;
            }
            if read != Read::No {
                this.read(conn, read)?;
            }
            this.flush(conn)
        });
    }

    /// Runs `f` on the connection (taken out of the map meanwhile, so `f` may use the rest of
    /// the loop), then puts it back, or closes it if `f` failed.
    fn with_connection(
        &mut self,
        token: Token,
        f: impl FnOnce(&mut Self, &mut Connection) -> Result<(), Close>,
    ) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        match f(self, &mut conn) {
            Ok(()) => {
                self.conns.insert(token, conn);
            }
            Err(reason) => {
                let peer = conn.peer;
                self.close(conn, reason);
                if let Some(peer) = peer {
                    self.maybe_connect(peer);
                }
            }
        }
    }

    /// Reads until the socket is drained (see the module doc) or the read budget is used up
    /// (the connection is then listed for another visit), handling every complete frame.
    fn read(&mut self, conn: &mut Connection, how: Read) -> Result<(), Close> {
        let mut budget = READ_BUDGET_BYTES;
        loop {
            if budget == 0 {
                self.again.push(conn.token);
                return Ok(());
            }
            match conn.decoder.read_some(&mut conn.link) {
                Ok((0, _)) => {
                    return Err(match conn.decoder.finish() {
                        Ok(()) => Close::Eof,
                        Err(e) => Close::Bad(e.to_string()),
                    })
                }
                Ok((n, filled)) => {
                    budget = budget.saturating_sub(n);
                    self.check_secured(conn)?;
                    while let Some(frame) =
                        conn.decoder.next_frame().map_err(|e| bad_frame(conn, e))?
                    {
                        self.on_frame(conn, frame)?;
                    }
                    // A short read of plaintext says nothing about the socket under TLS: only
                    // `WouldBlock` means it is drained.
                    if !filled && how == Read::UntilShort && !conn.link.is_tls() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The TLS handshake may have completed on bytes that carried no plaintext.
                    return self.check_secured(conn);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // What the pump reports for a TLS failure (bad record, rejected certificate,
                // an alert from the peer): the peer's fault, logged as such.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => return Err(tls_failure(e)),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && conn.link.is_tls() => {
                    return Err(Close::Io(io::Error::new(
                        e.kind(),
                        "the peer closed the TCP connection without a TLS close_notify",
                    )))
                }
                Err(e) => return Err(Close::Io(e)),
            }
        }
    }

    /// Writes what the connection has buffered, then, on a session, batch after batch from the
    /// peer's outbox until it is empty or the socket would block (or the write budget is used
    /// up, and the connection is listed for another visit).
    fn flush(&mut self, conn: &mut Connection) -> Result<(), Close> {
        if conn.write_blocked || conn.state == ConnState::Connecting {
            return Ok(());
        }
        let mut written = 0;
        loop {
            if written >= WRITE_BUDGET_BYTES {
                self.again.push(conn.token);
                return Ok(());
            }
            if !conn.write_buffered().map_err(Close::Io)? {
                return Ok(());
            }
            let (Some(session), Some(addr)) = (conn.session(), conn.peer) else {
                return Ok(());
            };
            let Some(peer) = self.peers.get(&addr) else {
                return Ok(());
            };
            let mut ob = peer.outbox.lock();
            ob.listed = false;
            // `ReportDown` cannot happen with a session up (`establish` takes that overflow);
            // ending the session would report it anyway.
            if ob.take_overflow(Some(session)) != Overflow::Handled {
                return Err(Close::QueueOverflow);
            }
            if ob.frames == 0 || conn.take_batch(&mut ob) == 0 {
                return Ok(());
            }
            written += conn.buffered_len();
        }
    }

    /// Visits the connections that used up a budget in this round.
    fn revisit(&mut self) {
        // Reading when nothing is left costs one `WouldBlock`; `flush` skips blocked sockets.
        poll_loop::revisit(
            self,
            |lp| &mut lp.again,
            |lp, token| lp.on_connection_event(token, Read::Drain, false),
        );
    }

    // ----- protocol ----------------------------------------------------------------------

    fn on_frame(&mut self, conn: &mut Connection, frame: Frame) -> Result<(), Close> {
        match (conn.state, frame) {
            (ConnState::Established { .. }, Frame::Message { route, payload }) => {
                // Frames carry no sender: the session's authenticated peer is the source.
                let src = conn.peer.expect("an established connection knows its peer");
                let dst = self.shared.local;
                self.emit(TransportEvent::Deliver(NetMessage::new(src, dst, route, payload)), 0);
                Ok(())
            }
            (ConnState::AwaitingHello, Frame::Hello(hello)) => self.on_hello(conn, hello),
            (ConnState::AwaitingWelcome, Frame::Welcome(welcome)) => self.on_welcome(conn, welcome),
            (ConnState::AwaitingWelcome, Frame::Refuse { reason }) => Err(Close::Refused(reason)),
            (ConnState::AwaitingHello, other) => Err(Close::Bad(format!(
                "expected a hello frame first, got a {} frame",
                other.kind()
            ))),
            (ConnState::AwaitingWelcome, other) => {
                Err(Close::Bad(format!("expected a welcome frame, got a {} frame", other.kind())))
            }
            (state, other) => Err(Close::Bad(format!(
                "unexpected {} frame on a connection in state {state:?}",
                other.kind()
            ))),
        }
    }

    /// Moves a connection whose TLS handshake just completed to the hello exchange: records
    /// the exporter value, reads the peer's certificate identity (mutual TLS; a dialer checks
    /// it names the node dialled) and, outbound, sends the hello.
    fn check_secured(&mut self, conn: &mut Connection) -> Result<(), Close> {
        if conn.state != ConnState::Securing {
            return Ok(());
        }
        let Some(tls) = conn.link.tls().filter(|tls| !tls.is_handshaking()) else {
            return Ok(());
        };
        let mut exporter = vec![0; auth::EXPORTER_BYTES];
        tls.export_keying_material(&mut exporter[..], auth::EXPORTER_LABEL, None)
            .map_err(|e| Close::Bad(format!("TLS exporter: {e}")))?;
        conn.exporter = Some(exporter);
        if self.config.security.mode() == SecurityMode::MutualTls {
            let (cluster, node) = peer_identity(tls).map_err(Close::Bad)?;
            let own = self.config.security.cluster();
            if cluster != own {
                return Err(Close::Bad(format!(
                    "the peer's certificate is for cluster {cluster:?}, this node is in cluster {own:?}"
                )));
            }
            if conn.role == Role::Outbound && conn.peer != Some(node) {
                return Err(Close::Bad(format!(
                    "the certificate names node {node}, not the node this node dialled"
                )));
            }
            conn.certified = Some(node);
        }
        match conn.role {
            Role::Inbound => conn.state = ConnState::AwaitingHello,
            Role::Outbound => {
                let mut hello = self.own_handshake();
                if let (Some(key), Some(exporter)) = (&self.auth_key, &conn.exporter) {
                    hello.proof = key.dialer_proof(exporter, &hello);
                }
                conn.buffer_frame(&Frame::Hello(hello.clone()), self.config.frame_bytes_max);
                conn.hello_sent = Some(hello);
                conn.state = ConnState::AwaitingWelcome;
            }
        }
        Ok(())
    }

    /// This node's hello or welcome, without a proof.
    fn own_handshake(&self) -> Handshake {
        let mode = self.config.security.mode();
        Handshake {
            node: self.shared.local,
            cluster: self.config.security.cluster().to_string(),
            mode: mode.as_byte(),
            nonce: if mode == SecurityMode::Insecure { Vec::new() } else { auth::nonce() },
            proof: Vec::new(),
        }
    }

    /// Checks what `theirs` (a hello, or a welcome answering `hello_sent`) says against this
    /// node's settings and the connection: same cluster, same mode, and the identity the
    /// connection established (certificate, proof). `Err` says why, for logs and refusals.
    fn check_handshake(
        &self,
        conn: &Connection,
        theirs: &Handshake,
        hello_sent: Option<&Handshake>,
    ) -> Result<(), String> {
        let security = &self.config.security;
        if theirs.cluster != security.cluster() {
            return Err(format!(
                "cluster mismatch: the hello is for cluster {:?}, which is not this node's",
                theirs.cluster
            ));
        }
        let mode = SecurityMode::from_byte(theirs.mode);
        if mode != Some(security.mode()) {
            let theirs =
                mode.map_or_else(|| format!("unknown ({})", theirs.mode), |m| m.to_string());
            return Err(format!(
                "security mode mismatch: the peer runs {theirs}, this node runs {}",
                security.mode()
            ));
        }
        if let Some(certified) = conn.certified {
            if theirs.node != certified {
                return Err(format!(
                    "the hello claims node {}, but the peer's certificate names {certified}",
                    theirs.node
                ));
            }
        }
        if let (Some(key), Some(exporter)) = (&self.auth_key, &conn.exporter) {
            let valid = match hello_sent {
                None => key.verify_dialer(exporter, theirs),
                Some(hello) => key.verify_acceptor(exporter, hello, theirs),
            };
            if !valid {
                return Err(
                    "authentication failed: the proof does not match this node's cluster secret"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// Refuses an inbound hello: tells the dialer why (best effort; the reason names only what
    /// the dialer claimed itself) and closes.
    fn refuse(&self, conn: &mut Connection, reason: String) -> Close {
        conn.buffer_frame(&Frame::Refuse { reason: reason.clone() }, self.config.frame_bytes_max);
        let _ = conn.write_buffered();
        Close::Bad(format!("refused: {reason}"))
    }

    /// An inbound connection introduced itself as `hello.node`.
    ///
    /// The hello is checked first (cluster, mode, certificate or proof); a hello that fails is
    /// refused before it touches any peer state. Then: at most one connection per pair of nodes
    /// carries a session. If this node is also connecting to `node` (or connected to it on its
    /// own connection), the connection opened by the lower address wins: when that is ours, the
    /// new one is closed (the peer then drops its attempt when ours reaches it); otherwise the
    /// new one replaces ours. Queued frames stay in the outbox until a session is established,
    /// so nothing queued is lost.
    fn on_hello(&mut self, conn: &mut Connection, hello: Handshake) -> Result<(), Close> {
        if let Err(reason) = self.check_handshake(conn, &hello, None) {
            return Err(self.refuse(conn, reason));
        }
        let node = hello.node;
        let local = self.shared.local;
        if node == local {
            return Err(Close::Bad("hello claims to be this node".into()));
        }
        if !node.is_routable() {
            return Err(Close::Bad(format!(
                "hello names {node}, which is not a routable node address"
            )));
        }
        conn.peer = Some(node);
        if !self.ensure_peer(node) {
            return Err(Close::Limit(format!("peers_max ({}) reached", self.config.peers_max)));
        }
        if let Some(existing) = self.peers[&node].conn {
            let ours_wins =
                local < node && self.conns.get(&existing).is_some_and(|c| c.role == Role::Outbound);
            if ours_wins {
                return Err(Close::Rejected(
                    "this node's own connection to it takes precedence (the lower address's connection wins)",
                ));
            }
            if let Some(old) = self.conns.remove(&existing) {
                self.close(old, Close::Replaced);
            }
        }
        let mut welcome = self.own_handshake();
        if let (Some(key), Some(exporter)) = (&self.auth_key, &conn.exporter) {
            welcome.proof = key.acceptor_proof(exporter, &hello, &welcome);
        }
        let downs = self.establish(conn, node);
        conn.buffer_frame(&Frame::Welcome(welcome), self.config.frame_bytes_max);
        self.emit(TransportEvent::SessionUp(node), downs);
        Ok(())
    }

    /// The node this node connected to accepted the connection.
    fn on_welcome(&mut self, conn: &mut Connection, welcome: Handshake) -> Result<(), Close> {
        let expected = conn.peer.expect("an outbound connection knows its peer");
        let node = welcome.node;
        if node != expected {
            return Err(Close::Bad(format!(
                "welcome names {node}, but this node connected to {expected}"
            )));
        }
        let hello_sent = conn.hello_sent.take();
        self.check_handshake(conn, &welcome, hello_sent.as_ref()).map_err(Close::Bad)?;
        let downs = self.establish(conn, node);
        self.emit(TransportEvent::SessionUp(node), downs);
        Ok(())
    }

    /// Makes `conn` carry a new session with `node`; returns the peer's `SessionDown` count
    /// (to report with the `SessionUp`).
    fn establish(&mut self, conn: &mut Connection, node: NodeAddr) -> u64 {
        let session = self.next_session;
        self.next_session += 1;
        conn.state = ConnState::Established { session };
        conn.deadline = None;
        let peer = self.peers.get_mut(&node).expect("peer tracked before its session starts");
        peer.conn = Some(conn.token);
        peer.backoff = self.config.reconnect_backoff_min;
        peer.retry_at = None;
        // Under the same lock as publishing the session: an overflow either happened before
        // (and, with no session up, is reported now, before this session's SessionUp) or
        // after (and ends this session).
        let overflow = {
            let mut ob = peer.outbox.lock();
            ob.session = Some(session);
            ob.take_overflow(None)
        };
        if overflow == Overflow::ReportDown {
            self.report_lost_queue(node);
        }
        let downs = peer_downs(&self.peers, node);
        log::info!("kompics-net {}: session {session} with {node} up", self.shared.local);
        downs
    }

    /// A send overflowed `addr`'s queue while no session was up: the queued messages were
    /// dropped, which users learn as a `SessionDown` (messages may have been lost). What was
    /// queued since was sent after the failed send, the point this `SessionDown` stands for
    /// (and where the send counted it): it belongs to the next session.
    fn report_lost_queue(&mut self, addr: NodeAddr) {
        log::warn!(
            "kompics-net {}: send queue for {addr} full ({} frames) with no session up; queued messages dropped",
            self.shared.local,
            self.config.send_queue_frames_max
        );
        let downs = peer_downs(&self.peers, addr);
        self.emit(TransportEvent::SessionDown(addr), downs);
    }

    // ----- closing -----------------------------------------------------------------------

    /// Closes `conn` (already out of the map) and updates its peer: an ended session drops
    /// its queue and reports `SessionDown`; a failed attempt starts the backoff. Does not
    /// reconnect; callers do that when appropriate.
    fn close(&mut self, mut conn: Connection, reason: Close) {
        self.log_close(&conn, &reason);
        if !matches!(reason, Close::Io(_) | Close::ConnectFailed(_)) {
            // A TLS peer learns the end was deliberate, not a truncation.
            conn.link.close();
        }
        if let Err(e) = self.poll.registry().deregister(conn.link.socket_mut()) {
            log::debug!("kompics-net {}: deregister failed: {e}", self.shared.local);
        }
        let Some(addr) = conn.peer else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        if peer.conn != Some(conn.token) {
            return;
        }
        peer.conn = None;
        if let Some(session) = conn.session() {
            let downs = {
                let mut ob = peer.outbox.lock();
                ob.session = None;
                // An overflow during this session is reported by this SessionDown.
                if ob.reset_session == Some(session) {
                    ob.reset_session = None;
                    ob.overflowed = false;
                }
                ob.listed = false;
                if matches!(reason, Close::QueueOverflow) {
                    // The failed send dropped the queue and counted this SessionDown; what is
                    // queued now was sent after it and belongs to the next session.
                    ob.downs
                } else {
                    // As a TCP reset would, drop what was queued for the ended session: it was
                    // sent before this SessionDown, which covers it, and must never be
                    // delivered into the next session.
                    discard_queue(&mut ob)
                }
            };
            peer.backoff = self.config.reconnect_backoff_min;
            peer.retry_at = None;
            log::info!("kompics-net {}: session {session} with {addr} down", self.shared.local);
            self.emit(TransportEvent::SessionDown(addr), downs);
        } else if conn.role == Role::Outbound {
            schedule_retry(peer, addr, Instant::now(), &self.config, &mut self.timers);
        }
    }

    fn log_close(&self, conn: &Connection, reason: &Close) {
        let local = self.shared.local;
        let who = conn.describe();
        match reason {
            Close::Bad(why) | Close::Limit(why) => {
                log::warn!("kompics-net {local}: closing connection with {who}: {why}")
            }
            Close::Refused(why) => {
                log::warn!("kompics-net {local}: {who} refused this node's hello: {why}")
            }
            Close::HandshakeTimeout if conn.role == Role::Inbound => log::warn!(
                "kompics-net {local}: closing connection with {who}: no hello within {:?}",
                self.config.handshake_timeout
            ),
            Close::HandshakeTimeout => log::info!(
                "kompics-net {local}: connection to {who} did not complete its handshake within {:?}",
                self.config.handshake_timeout
            ),
            Close::QueueOverflow => log::warn!(
                "kompics-net {local}: ending session with {who}: send queue full ({} frames)",
                self.config.send_queue_frames_max
            ),
            Close::Eof if conn.session().is_some() => {
                log::info!("kompics-net {local}: {who} closed the connection")
            }
            Close::Io(e) if conn.session().is_some() => {
                log::info!("kompics-net {local}: connection with {who} failed: {e}")
            }
            Close::Eof => log::debug!("kompics-net {local}: {who} closed the connection during the handshake"),
            Close::Io(e) | Close::ConnectFailed(e) => {
                log::debug!("kompics-net {local}: connection with {who} failed: {e}")
            }
            Close::Rejected(why) => log::debug!("kompics-net {local}: closing connection with {who}: {why}"),
            Close::Replaced => log::debug!("kompics-net {local}: connection with {who} replaced by a newer one"),
            Close::Shutdown => log::debug!("kompics-net {local}: closing connection with {who}: shutting down"),
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            match key {
                TimerKey::Handshake(token) => {
                    if self.conns.get(&token).is_some_and(|c| c.deadline == Some(at)) {
                        self.with_connection(token, |_, _| Err(Close::HandshakeTimeout));
                    }
                }
                TimerKey::Retry(addr) => {
                    if let Some(peer) = self.peers.get_mut(&addr) {
                        if peer.retry_at == Some(at) {
                            peer.retry_at = None;
                            self.maybe_connect(addr);
                        }
                    }
                }
            }
        }
    }

    /// Shutdown: closes every connection, reporting `SessionDown` for each session.
    fn close_all(&mut self) {
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for token in tokens {
            if let Some(conn) = self.conns.remove(&token) {
                self.close(conn, Close::Shutdown);
            }
        }
    }
}

impl PollLoop for EventLoop {
    const NAME: &'static str = "kompics-net";

    fn local_addr(&self) -> SocketAddr {
        self.shared.local.socket_addr()
    }

    fn poll_mut(&mut self) -> &mut Poll {
        &mut self.poll
    }

    fn revisits_pending(&self) -> bool {
        !self.again.is_empty() || self.accept_pending
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    fn accept_all(&mut self) {
        let local = self.shared.local;
        self.accept_pending = false;
        let mut unauthenticated = self
            .conns
            .values()
            .filter(|c| c.role == Role::Inbound && c.session().is_none())
            .count();
        for _ in 0..ACCEPTS_PER_ROUND {
            let Some((mut stream, remote)) =
                poll_loop::accept_next(&self.listener, format_args!("kompics-net {local}"))
            else {
                return;
            };
            if self.conns.len() >= self.config.connections_max {
                log::warn!(
                    "kompics-net {local}: refusing connection from {remote}: connections_max ({}) reached",
                    self.config.connections_max
                );
                continue;
            }
            if unauthenticated >= self.config.handshakes_max {
                log::warn!(
                    "kompics-net {local}: refusing connection from {remote}: handshakes_max ({}) connections are already handshaking",
                    self.config.handshakes_max
                );
                continue;
            }
            let token = Token(self.next_token);
            if let Err(e) = poll_loop::register_connection(self.poll.registry(), &mut stream, token)
            {
                log::warn!("kompics-net {local}: cannot register connection from {remote}: {e}");
                continue;
            }
            let link = match &self.tls {
                None => Link::Plain(stream),
                Some(ctx) => match ctx.server() {
                    Ok(server) => Link::Tls(Box::new(TlsStream::new(stream, server))),
                    Err(e) => {
                        log::warn!("kompics-net {local}: cannot start TLS with {remote}: {e}");
                        continue;
                    }
                },
            };
            self.next_token += 1;
            unauthenticated += 1;
            let deadline = Instant::now() + self.config.handshake_timeout;
            self.timers.push(Reverse((deadline, TimerKey::Handshake(token))));
            let conn =
                Connection::inbound(token, link, remote, self.config.frame_bytes_max, deadline);
            self.conns.insert(token, conn);
        }
        // Budget used up: more may wait in the backlog, which raises no new edge.
        self.accept_pending = true;
    }

    fn on_socket(&mut self, token: Token, event: &Event) {
        // Error and hang-up conditions surface as read or write errors.
        let hang_up = event.is_read_closed() || event.is_error();
        let read = if hang_up {
            Read::Drain
        } else if event.is_readable() {
            Read::UntilShort
        } else {
            Read::No
        };
        let writable = event.is_writable() || event.is_write_closed() || event.is_error();
        self.on_connection_event(token, read, writable);
    }

    fn on_wake(&mut self) -> bool {
        if self.shared.stop_requested() {
            return false;
        }
        EventLoop::on_wake(self);
        true
    }

    fn end_round(&mut self) {
        if self.accept_pending {
            self.accept_all();
        }
        self.revisit();
        self.fire_timers();
    }
}

/// What a TLS failure means: the peer's `close_notify` before the handshake ended is a peer
/// giving up its attempt (a lost duplicate-connection tie-break, a shutdown), not bad input;
/// anything else (bad record, rejected certificate, another alert) is the peer's fault.
fn tls_failure(e: io::Error) -> Close {
    let alert = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    if matches!(alert, Some(rustls::Error::AlertReceived(rustls::AlertDescription::CloseNotify))) {
        return Close::Eof;
    }
    Close::Bad(format!("TLS: {e}"))
}

/// A frame error, explained when it is probably a TLS peer talking to this plaintext node (TLS
/// records read as an absurd frame length), so a mixed cluster is diagnosed at a glance.
fn bad_frame(conn: &Connection, e: crate::frame::FrameError) -> Close {
    if !conn.link.is_tls() && conn.session().is_none() {
        return Close::Bad(format!(
            "{e} (if the peer runs TLS: this node is in insecure mode, the peer is not)"
        ));
    }
    Close::Bad(e.to_string())
}

/// Drops what is queued in `ob` and counts the `SessionDown` about to be reported for it; both
/// under the outbox's lock, so a send is either dropped here or, if fenced, discarded as sent
/// before it. Returns the new count.
fn discard_queue(ob: &mut Outbox) -> u64 {
    ob.bytes.clear();
    ob.frames = 0;
    ob.downs += 1;
    ob.downs
}

/// The `SessionDown` count of `addr` (0 for a peer not tracked).
fn peer_downs(peers: &HashMap<NodeAddr, Peer, FastHashBuilder>, addr: NodeAddr) -> u64 {
    peers.get(&addr).map_or(0, |peer| peer.outbox.lock().downs)
}

/// Schedules the next attempt to connect to `addr` after the current backoff, and doubles the
/// backoff up to its cap.
fn schedule_retry(
    peer: &mut Peer,
    addr: NodeAddr,
    now: Instant,
    config: &TcpConfig,
    timers: &mut BinaryHeap<Reverse<(Instant, TimerKey)>>,
) {
    let at = now + peer.backoff;
    peer.retry_at = Some(at);
    peer.backoff = (peer.backoff * 2).min(config.reconnect_backoff_max);
    timers.push(Reverse((at, TimerKey::Retry(addr))));
}
