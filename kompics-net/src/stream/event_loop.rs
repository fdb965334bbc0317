//! The event loop of a [`super::StreamServer`]: one thread that owns the listener and every
//! client socket.
//!
//! Each round it waits in `mio::Poll`, accepts connections, reads and writes the sockets that
//! are ready, applies the requests the component queued, and tells the component everything
//! that happened in the round as one [`EventBatch`].
//!
//! Sockets are registered once for readable and writable interest, edge-triggered: a visit
//! reads until `WouldBlock` (unless reading is paused) and writes until the output is empty or
//! `WouldBlock`, so no readiness is lost. A visit reads at most `read_chunk` bytes and writes at
//! most [`WRITE_BUDGET_BYTES`]; a connection with more to do is revisited after the other
//! events of the round, before the loop sleeps again. Resuming a paused connection revisits it
//! the same way, since its readable edge may have passed while it was paused.
//!
//! With [`StreamConfig::tls`], every connection is a [`TlsStream`] (the pump the peer
//! transport uses too): the component sees plaintext only, a client must finish its handshake
//! within `tls_handshake_timeout`, and a requested close sends `close_notify` before shutting
//! down the socket's sending side.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kompics_core::Mailbox;
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use parking_lot::Mutex;

use super::config::StreamConfig;
use super::out_queue::{Flushed, OutQueue};
use super::{CloseReason, ConnId, StreamEvent, StreamRequest};
use crate::hasher::FastHashBuilder;
use crate::poll_loop::{self, PollLoop, Wakeup, LISTENER};
use crate::tls::link::Link;
use crate::tls::TlsStream;

/// A connection's token is its id plus this.
const TOKEN_OFFSET: u64 = 2;
/// Bytes written to one connection per visit before the loop moves on.
const WRITE_BUDGET_BYTES: usize = 4 * 1024 * 1024;
/// Bytes of a lingering connection's input discarded per visit.
const DISCARD_BUDGET_BYTES: usize = 1024 * 1024;
/// At most one warning about refused connections per this interval.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The events of one round of the loop, in order; what the loop tells the component.
#[derive(Clone, Debug)]
pub(crate) struct EventBatch(pub(crate) Vec<StreamEvent>);

/// What the component and the loop share.
pub(crate) struct Shared {
    /// The bound address.
    pub(crate) local: SocketAddr,
    /// Requests not yet taken by the loop.
    requests: Mutex<Vec<StreamRequest>>,
    wakeup: Wakeup,
}

impl Shared {
    /// Queues `request` for the loop, waking it unless a wake-up is already pending.
    pub(crate) fn request(&self, request: StreamRequest) {
        self.requests.lock().push(request);
        self.wakeup.wake();
    }

    /// Takes every queued request, leaving `into` (emptied) in its place.
    fn take_requests(&self, into: &mut Vec<StreamRequest>) {
        self.wakeup.take();
        into.clear();
        std::mem::swap(&mut *self.requests.lock(), into);
    }

    /// Asks the loop to stop and wakes it.
    pub(crate) fn request_stop(&self) {
        self.wakeup.request_stop();
    }
}

/// The connections by id. The ids are our own counter, so the fast hasher serves.
type ConnMap = HashMap<u64, Conn, FastHashBuilder>;

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading (unless paused) and writing.
    Open,
    /// A close was requested: flushing the output; no reading.
    Closing,
    /// Closed for the component (its `Closed` was indicated), output shut down; discarding
    /// input until the client closes or the linger time passes.
    Lingering,
}

/// One client connection.
struct Conn {
    link: Link,
    peer: SocketAddr,
    out: OutQueue,
    state: State,
    paused: bool,
    /// The last write hit `WouldBlock`: wait for a writable event.
    write_blocked: bool,
    /// Already on the loop's list of connections to flush after the current requests.
    flush_listed: bool,
}

/// The state owned by the event-loop thread.
pub(crate) struct EventLoop {
    poll: Poll,
    listener: TcpListener,
    shared: Arc<Shared>,
    sink: Mailbox<EventBatch>,
    config: StreamConfig,
    conns: ConnMap,
    /// The next connection id; shared with the server so that a restarted loop goes on.
    next_id: Arc<AtomicU64>,
    /// Connections not lingering (what `max_connections` bounds).
    open: usize,
    /// Events of the current round.
    events: Vec<StreamEvent>,
    /// Reused buffers.
    requests: Vec<StreamRequest>,
    scratch: Vec<u8>,
    /// Connections to flush once the round's requests are applied.
    to_flush: Vec<u64>,
    /// Connections that used up a budget or resumed reading: visit again before sleeping.
    again: Vec<u64>,
    /// Lingering connections by deadline (deadlines only grow, so this is in order).
    lingering: VecDeque<(Instant, u64)>,
    /// TLS connections by handshake deadline (in order, as for `lingering`).
    handshaking: VecDeque<(Instant, u64)>,
    /// Connections refused since the last warning, and when that was.
    refused: u64,
    refusal_logged: Option<Instant>,
}

/// Which interest a readiness event reports, errors and hang-ups included.
#[derive(Clone, Copy)]
struct Ready {
    readable: bool,
    writable: bool,
    error: bool,
    /// Read until `WouldBlock` or end of stream, not just until a short read.
    drain: bool,
}

impl EventLoop {
    /// Binds `config.listen` and prepares a loop; run it with [`EventLoop::run`] on its own
    /// thread. Returns the loop and what the server shares with it.
    pub(crate) fn bind(
        config: StreamConfig,
        sink: Mailbox<EventBatch>,
        next_id: Arc<AtomicU64>,
    ) -> io::Result<(EventLoop, Arc<Shared>)> {
        config.validate()?;
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen)?;
        let local = listener.local_addr()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let wakeup = Wakeup::new(poll.registry(), format!("kstream {local}"))?;
        let shared = Arc::new(Shared { local, requests: Mutex::new(Vec::new()), wakeup });
        let scratch = vec![0; config.read_chunk];
        let event_loop = EventLoop {
            poll,
            listener,
            shared: Arc::clone(&shared),
            sink,
            config,
            conns: ConnMap::default(),
            next_id,
            open: 0,
            events: Vec::new(),
            requests: Vec::new(),
            scratch,
            to_flush: Vec::new(),
            again: Vec::new(),
            lingering: VecDeque::new(),
            handshaking: VecDeque::new(),
            refused: 0,
            refusal_logged: None,
        };
        Ok((event_loop, shared))
    }

    /// Runs until asked to stop, then closes every connection and the listener.
    pub(crate) fn run(mut self) {
        poll_loop::run(&mut self);
        self.close_all();
        self.send_events();
        log::info!("kstream {}: stopped", self.shared.local);
    }

    /// Tells the component the round's events, if any.
    fn send_events(&mut self) {
        if !self.events.is_empty() {
            let batch = std::mem::take(&mut self.events);
            // False once the component is gone; it is being killed and will stop the loop.
            let _ = self.sink.tell(EventBatch(batch));
        }
    }

    // ----- accepting -----------------------------------------------------------------------

    fn on_accept(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        if self.open >= self.config.max_connections {
            self.refuse(peer);
            return; // dropping the stream closes it
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = Token((id + TOKEN_OFFSET) as usize);
        // Nagle off, as Redis does: replies are batched already.
        if let Err(e) = poll_loop::register_connection(self.poll.registry(), &mut stream, token) {
            log::warn!(
                "kstream {}: cannot register connection from {peer}: {e}",
                self.shared.local
            );
            return;
        }
        let link = match &self.config.tls {
            None => Link::Plain(stream),
            Some(tls) => match tls.accept() {
                Ok(server) => {
                    let deadline = Instant::now() + self.config.tls_handshake_timeout;
                    self.handshaking.push_back((deadline, id));
                    Link::Tls(Box::new(TlsStream::new(stream, server)))
                }
                Err(e) => {
                    log::warn!("kstream {}: cannot start TLS with {peer}: {e}", self.shared.local);
                    return;
                }
            },
        };
        self.conns.insert(
            id,
            Conn {
                link,
                peer,
                out: OutQueue::default(),
                state: State::Open,
                paused: false,
                write_blocked: false,
                flush_listed: false,
            },
        );
        self.open += 1;
        self.events.push(StreamEvent::Opened { conn: ConnId(id), peer });
        // Registration reports the socket's current readiness, so bytes the client sent
        // already are read on that first event.
    }

    fn refuse(&mut self, peer: SocketAddr) {
        self.refused += 1;
        let now = Instant::now();
        if self.refusal_logged.is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_INTERVAL) {
            log::warn!(
                "kstream {}: max_connections ({}) reached: closed {} new connection(s), the last from {peer}",
                self.shared.local,
                self.config.max_connections,
                self.refused
            );
            self.refused = 0;
            self.refusal_logged = Some(now);
        }
    }

    // ----- connection I/O ------------------------------------------------------------------

    /// Handles readiness of connection `id` (or a revisit).
    fn visit(&mut self, id: u64, ready: Ready) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if ready.writable {
            conn.write_blocked = false;
        }
        match conn.state {
            State::Lingering => {
                if ready.readable || ready.error {
                    self.discard_input(id);
                }
                return;
            }
            State::Open if !conn.paused => {
                if ready.readable || ready.error {
                    let read = read_chunk(
                        conn,
                        ConnId(id),
                        &mut self.scratch,
                        &mut self.events,
                        ready.drain,
                    );
                    match read {
                        Ok(false) => {}
                        Ok(true) => self.again.push(id),
                        Err(reason) => return self.close(id, reason),
                    }
                }
            }
            // Not reading (paused, or closing): a reset still ends the connection at once;
            // an end of stream waits for reading to resume, after the bytes before it.
            State::Open | State::Closing => {
                if ready.error {
                    if let Ok(Some(e)) | Err(e) = conn.link.socket().take_error() {
                        return self.close(id, CloseReason::Error(e.to_string()));
                    }
                }
            }
        }
        self.flush(id);
    }

    /// Writes connection `id`'s output; finishes a requested close once it is all written.
    fn flush(&mut self, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.state == State::Lingering {
            return;
        }
        if !conn.out.is_empty() && !conn.write_blocked {
            match conn.out.write_to(&mut conn.link, WRITE_BUDGET_BYTES) {
                Ok(Flushed::Empty) => {}
                Ok(Flushed::Blocked) => conn.write_blocked = true,
                Ok(Flushed::Budget) => self.again.push(id),
                Err(e) => return self.close(id, CloseReason::Error(e.to_string())),
            }
        }
        // TLS records can wait in the pump with the queue empty (a handshake answer, the tail
        // of a write): only a blocked socket stops them, and its writable edge comes back here.
        if !conn.write_blocked {
            match conn.link.flush_tls() {
                Ok(true) => {}
                Ok(false) => conn.write_blocked = true,
                Err(e) => return self.close(id, CloseReason::Error(e.to_string())),
            }
        }
        if conn.state == State::Closing && conn.out.is_empty() {
            self.finish_close(id);
        }
    }

    /// Visits the connections listed for another visit this round.
    fn revisit(&mut self) {
        // Reading when nothing is left costs one `WouldBlock`; `flush` skips blocked sockets.
        let ready = Ready { readable: true, writable: false, error: false, drain: true };
        poll_loop::revisit(self, |lp| &mut lp.again, |lp, id| lp.visit(id, ready));
    }

    // ----- requests ------------------------------------------------------------------------

    fn apply_requests(&mut self) {
        let mut requests = std::mem::take(&mut self.requests);
        self.shared.take_requests(&mut requests);
        for request in requests.drain(..) {
            self.apply(request);
        }
        self.requests = requests;
        let mut to_flush = std::mem::take(&mut self.to_flush);
        for &id in &to_flush {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.flush_listed = false;
                self.flush(id);
            }
        }
        to_flush.clear();
        self.to_flush = to_flush;
    }

    fn apply(&mut self, request: StreamRequest) {
        let id = request.conn().0;
        // Unknown ids belong to connections already closed (whose `Closed` is on its way).
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        // After a close request, the connection is closed as far as requests go.
        if conn.state != State::Open {
            return;
        }
        match request {
            StreamRequest::Write { data, .. } => {
                conn.out.push(data);
                if conn.out.len() > self.config.output_buffer_max && !conn.write_blocked {
                    // Make room by writing now, if the socket takes it.
                    match conn.out.write_to(&mut conn.link, usize::MAX) {
                        Ok(Flushed::Blocked) => conn.write_blocked = true,
                        Ok(_) => {}
                        Err(e) => return self.close(id, CloseReason::Error(e.to_string())),
                    }
                }
                if conn.out.len() > self.config.output_buffer_max {
                    return self.close(id, CloseReason::OutputOverflow);
                }
                self.list_for_flush(id);
            }
            StreamRequest::Close { .. } => {
                conn.state = State::Closing;
                self.list_for_flush(id);
            }
            StreamRequest::PauseReading { .. } => conn.paused = true,
            StreamRequest::ResumeReading { .. } => {
                if std::mem::take(&mut conn.paused) {
                    // Its readable edge may have passed while paused: read now.
                    self.again.push(id);
                }
            }
        }
    }

    fn list_for_flush(&mut self, id: u64) {
        if let Some(conn) = self.conns.get_mut(&id) {
            if !std::mem::replace(&mut conn.flush_listed, true) {
                self.to_flush.push(id);
            }
        }
    }

    // ----- closing -------------------------------------------------------------------------

    /// Closes connection `id` now, indicating `Closed { reason }` unless it was lingering.
    fn close(&mut self, id: u64, reason: CloseReason) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        let _ = self.poll.registry().deregister(conn.link.socket_mut());
        if conn.state == State::Lingering {
            return;
        }
        self.open -= 1;
        let local = self.shared.local;
        match &reason {
            CloseReason::OutputOverflow => log::warn!(
                "kstream {local}: closing conn#{id} from {}: more than {} bytes of output unread",
                conn.peer,
                self.config.output_buffer_max
            ),
            CloseReason::Error(e) => {
                log::debug!("kstream {local}: conn#{id} from {} failed: {e}", conn.peer)
            }
            _ => log::debug!("kstream {local}: conn#{id} from {}: {reason}", conn.peer),
        }
        self.events.push(StreamEvent::Closed { conn: ConnId(id), reason });
    }

    /// A requested close has flushed its output: shut down the sending side, indicate
    /// `Closed`, and linger until the client closes too.
    fn finish_close(&mut self, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        // TLS: the client learns the end is deliberate, not a truncation.
        conn.link.close();
        if self.config.linger.is_zero() {
            let _ = conn.link.socket().shutdown(Shutdown::Write);
            return self.close(id, CloseReason::Requested);
        }
        if let Err(e) = conn.link.socket().shutdown(Shutdown::Write) {
            // Already reset or gone: what was written may not have arrived.
            return self.close(id, CloseReason::Error(e.to_string()));
        }
        conn.state = State::Lingering;
        self.open -= 1;
        log::debug!(
            "kstream {}: conn#{id} from {} closed on request",
            self.shared.local,
            conn.peer
        );
        self.events.push(StreamEvent::Closed { conn: ConnId(id), reason: CloseReason::Requested });
        self.lingering.push_back((Instant::now() + self.config.linger, id));
        // Input was not read while closing, so its readable edge may have passed.
        self.discard_input(id);
    }

    /// Reads and drops a lingering connection's input; closes it at end of stream or error.
    fn discard_input(&mut self, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let mut discarded = 0;
        let done = loop {
            if discarded >= DISCARD_BUDGET_BYTES {
                self.again.push(id);
                break false;
            }
            match conn.link.read(&mut self.scratch) {
                Ok(0) => break true,
                Ok(n) => discarded += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        if done {
            self.close(id, CloseReason::Requested); // lingering: nothing is indicated
        }
    }

    fn expire_lingering(&mut self) {
        let now = Instant::now();
        while let Some(&(at, id)) = self.lingering.front() {
            if at > now {
                break;
            }
            self.lingering.pop_front();
            // Gone already if the client closed first (ids are never reused).
            self.close(id, CloseReason::Requested);
        }
    }

    /// Closes the TLS connections whose handshake did not finish in time.
    fn expire_handshakes(&mut self) {
        let now = Instant::now();
        while let Some(&(at, id)) = self.handshaking.front() {
            if at > now {
                break;
            }
            self.handshaking.pop_front();
            let pending = self
                .conns
                .get(&id)
                .and_then(|c| c.link.tls())
                .is_some_and(|tls| tls.is_handshaking());
            if pending {
                log::debug!(
                    "kstream {}: conn#{id}: no TLS handshake within {:?}",
                    self.shared.local,
                    self.config.tls_handshake_timeout
                );
                self.close(id, CloseReason::Error("TLS handshake not completed in time".into()));
            }
        }
    }

    /// Shutdown: every connection closes; the open ones are indicated `ServerStopped`.
    fn close_all(&mut self) {
        let mut ids: Vec<u64> = self.conns.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.close(id, CloseReason::ServerStopped);
        }
    }
}

impl PollLoop for EventLoop {
    const NAME: &'static str = "kstream";

    fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    fn poll_mut(&mut self) -> &mut Poll {
        &mut self.poll
    }

    fn revisits_pending(&self) -> bool {
        !self.again.is_empty()
    }

    fn next_deadline(&self) -> Option<Instant> {
        let lingering = self.lingering.front().map(|&(at, _)| at);
        let handshaking = self.handshaking.front().map(|&(at, _)| at);
        lingering.into_iter().chain(handshaking).min()
    }

    fn accept_all(&mut self) {
        let local = self.shared.local;
        while let Some((stream, peer)) =
            poll_loop::accept_next(&self.listener, format_args!("kstream {local}"))
        {
            self.on_accept(stream, peer);
        }
    }

    fn on_socket(&mut self, Token(token): Token, event: &Event) {
        let ready = Ready {
            readable: event.is_readable() || event.is_read_closed(),
            writable: event.is_writable() || event.is_write_closed(),
            error: event.is_error(),
            // See `read_chunk`: a queued end of stream raises no new edge.
            drain: event.is_read_closed() || event.is_error(),
        };
        self.visit(token as u64 - TOKEN_OFFSET, ready);
    }

    fn on_wake(&mut self) -> bool {
        if self.shared.wakeup.stop_requested() {
            return false;
        }
        self.apply_requests();
        true
    }

    fn end_round(&mut self) {
        self.revisit();
        self.expire_lingering();
        self.expire_handshakes();
        self.send_events();
    }
}

/// Reads from `conn` into `scratch` until the socket is drained (a short read, or with `drain`
/// `WouldBlock`) or `scratch` is full, and
/// pushes what was read as one `Data` event. `Ok(true)` if `scratch` filled up (there may be
/// more to read); `Err` with the reason to close the connection, after the bytes before it.
fn read_chunk(
    conn: &mut Conn,
    id: ConnId,
    scratch: &mut [u8],
    events: &mut Vec<StreamEvent>,
    drain: bool,
) -> Result<bool, CloseReason> {
    let mut filled = 0;
    let result = loop {
        if filled == scratch.len() {
            break Ok(true);
        }
        match conn.link.read(&mut scratch[filled..]) {
            Ok(0) => break Err(CloseReason::PeerClosed),
            // A short read drained the socket: data arriving later raises a new edge, so the
            // `read` that would return `WouldBlock` can be saved. Not so for an end of stream
            // already queued (its edge has passed): `drain` reads on to find it. Nor under
            // TLS, where a short read of plaintext says nothing about the socket.
            Ok(n) if !drain && !conn.link.is_tls() && filled + n < scratch.len() => {
                filled += n;
                break Ok(false);
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A TLS client that closes without close_notify (many do) has still closed.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                break Err(CloseReason::PeerClosed)
            }
            Err(e) => break Err(CloseReason::Error(e.to_string())),
        }
    };
    if filled > 0 {
        events.push(StreamEvent::Data { conn: id, data: scratch[..filled].to_vec() });
    }
    result
}
