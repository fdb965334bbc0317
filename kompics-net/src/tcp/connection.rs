//! [`Connection`]: one TCP connection of the event loop: its socket (plain, or under TLS
//! through [`TlsStream`](crate::tls::TlsStream)), where it stands in the handshake, its frame decoder and its write
//! buffer.
//!
//! The connection knows how to move bytes; what the bytes mean (handshake rules, sessions,
//! delivering messages) is the event loop's business.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::Token;

use super::shared::Outbox;
use crate::address::NodeAddr;
use crate::frame::{Frame, FrameDecoder, Handshake};
use crate::tls::link::Link;

/// Which side opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// This node connected to the peer.
    Outbound,
    /// The peer connected to this node.
    Inbound,
}

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// Outbound: the TCP connect has not completed yet. In insecure mode the hello is already
    /// buffered.
    Connecting,
    /// Either side: the TLS handshake is running (secure modes). The hello is sent, or
    /// awaited, once it is done and the peer's certificate checked.
    Securing,
    /// Outbound: hello sent (or being sent), waiting for the peer's welcome.
    AwaitingWelcome,
    /// Inbound: waiting for the peer's hello.
    AwaitingHello,
    /// Handshake done; carries the session with this id.
    Established {
        /// Unique per transport, so a stale reset request cannot end a later session.
        session: u64,
    },
}

/// One TCP connection.
pub(crate) struct Connection {
    pub(crate) token: Token,
    pub(crate) link: Link,
    /// The socket's remote address (for logs; an inbound peer's identity comes from its hello,
    /// checked against its certificate or proof).
    pub(crate) remote: SocketAddr,
    pub(crate) role: Role,
    /// The peer's identity: known from the start for outbound connections, after the hello for
    /// inbound ones.
    pub(crate) peer: Option<NodeAddr>,
    pub(crate) state: ConnState,
    /// When the handshake must be complete (none once established).
    pub(crate) deadline: Option<Instant>,
    pub(crate) decoder: FrameDecoder,
    /// Secure modes, once the TLS handshake is done: the session's exporter value, which the
    /// shared-secret proofs are bound to.
    pub(crate) exporter: Option<Vec<u8>>,
    /// Mutual TLS, once the TLS handshake is done: the node the peer's certificate names.
    pub(crate) certified: Option<NodeAddr>,
    /// Outbound: the hello sent, which the welcome's proof answers.
    pub(crate) hello_sent: Option<Handshake>,
    /// `out[out_pos..]` is still to be written.
    out: Vec<u8>,
    out_pos: usize,
    /// The last write hit `WouldBlock`: wait for a writable event before writing again.
    pub(crate) write_blocked: bool,
}

/// A write buffer with more capacity than this is released once empty, so one burst does not
/// pin its memory for the life of the connection.
const OUT_RETAIN_MAX: usize = 4 * 1024 * 1024;

impl Connection {
    /// A connection this node is opening to `peer`; `hello` is the encoded hello frame in
    /// insecure mode (in the secure modes it is built after the TLS handshake).
    pub(crate) fn outbound(
        token: Token,
        link: Link,
        peer: NodeAddr,
        hello: Vec<u8>,
        frame_bytes_max: usize,
        deadline: Instant,
    ) -> Self {
        Connection {
            token,
            link,
            remote: peer.socket_addr(),
            role: Role::Outbound,
            peer: Some(peer),
            state: ConnState::Connecting,
            deadline: Some(deadline),
            decoder: FrameDecoder::new(frame_bytes_max),
            exporter: None,
            certified: None,
            hello_sent: None,
            out: hello,
            out_pos: 0,
            write_blocked: false,
        }
    }

    /// A connection a peer opened to this node.
    pub(crate) fn inbound(
        token: Token,
        link: Link,
        remote: SocketAddr,
        frame_bytes_max: usize,
        deadline: Instant,
    ) -> Self {
        let state = if link.is_tls() { ConnState::Securing } else { ConnState::AwaitingHello };
        Connection {
            token,
            link,
            remote,
            role: Role::Inbound,
            peer: None,
            state,
            deadline: Some(deadline),
            decoder: FrameDecoder::new(frame_bytes_max),
            exporter: None,
            certified: None,
            hello_sent: None,
            out: Vec::new(),
            out_pos: 0,
            write_blocked: false,
        }
    }

    /// The session this connection carries, if established.
    pub(crate) fn session(&self) -> Option<u64> {
        match self.state {
            ConnState::Established { session } => Some(session),
            _ => None,
        }
    }

    /// Checks whether an outbound connect has completed: `Ok(true)` once connected,
    /// `Ok(false)` while still in progress, `Err` if it failed.
    pub(crate) fn finish_connect(&mut self) -> io::Result<bool> {
        if let Some(e) = self.link.socket().take_error()? {
            return Err(e);
        }
        match self.link.socket().peer_addr() {
            Ok(addr) => {
                self.remote = addr;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Appends a control frame (a hello, welcome or refusal) to the write buffer.
    pub(crate) fn buffer_frame(&mut self, frame: &Frame, frame_bytes_max: usize) {
        // Handshake frames are far below any valid `frame_bytes_max` (see `TcpConfig`).
        frame
            .encode_into(&mut self.out, frame_bytes_max)
            .expect("handshake frame fits frame_bytes_max");
    }

    /// Writes buffered bytes (and, under TLS, the records they became) until the buffer is
    /// empty (`Ok(true)`) or the socket would block (`Ok(false)`, and `write_blocked` is set).
    pub(crate) fn write_buffered(&mut self) -> io::Result<bool> {
        while self.out_pos < self.out.len() {
            match self.link.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.write_blocked = true;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        if self.out.capacity() > OUT_RETAIN_MAX {
            self.out = Vec::new();
        }
        // Records left in rustls (a partial write, a handshake answer) count as buffered: the
        // writable edge must come back here to send them.
        if !self.link.flush_tls()? {
            self.write_blocked = true;
            return Ok(false);
        }
        Ok(true)
    }

    /// Bytes buffered and not yet written.
    pub(crate) fn buffered_len(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Takes every frame queued in `outbox` as the next batch to write, by swapping buffers
    /// (no copy). Call only when the write buffer is empty. Returns the number of frames.
    pub(crate) fn take_batch(&mut self, outbox: &mut Outbox) -> usize {
        debug_assert!(self.out.is_empty() && self.out_pos == 0, "batch taken over unsent bytes");
        std::mem::swap(&mut self.out, &mut outbox.bytes);
        std::mem::replace(&mut outbox.frames, 0)
    }

    /// Who is on the other end, for logs.
    pub(crate) fn describe(&self) -> String {
        match self.peer {
            Some(peer) if peer.socket_addr() == self.remote => format!("peer {peer}"),
            Some(peer) => format!("peer {peer} (connection from {})", self.remote),
            None => format!("unidentified peer at {}", self.remote),
        }
    }
}
