//! A byte-stream TCP server for client protocols: the [`ByteStream`] port and [`StreamServer`].
//!
//! This is not the framed peer [`Network`](crate::Network): it carries the raw bytes of many
//! client connections (the key-value store's RESP front end, say), and knows nothing of what
//! they mean. The component using it parses requests out of [`StreamEvent::Data`] and writes
//! replies with [`StreamRequest::Write`].
//!
//! ```
//! use std::io::{Read, Write};
//! use kompics_core::*;
//! use kompics_net::stream::{ByteStream, StreamConfig, StreamEvent, StreamRequest, StreamServer};
//!
//! /// Sends every byte it receives back to the connection it came from.
//! struct Echo {
//!     stream: RequiredPort<ByteStream>,
//! }
//! impl ComponentDefinition for Echo {}
//! impl Require<ByteStream> for Echo {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, event: StreamEvent) {
//!         if let StreamEvent::Data { conn, data } = event {
//!             self.stream.trigger(StreamRequest::Write { conn, data });
//!         }
//!     }
//! }
//!
//! let runtime = Runtime::new(RuntimeConfig::default().workers(1));
//! let server = StreamServer::create(&runtime.system(), StreamConfig::new("127.0.0.1:0".parse()?))?;
//! let addr = server.on_definition(|s| s.local_addr()).unwrap();
//! let echo = runtime.create(|s| Echo { stream: s.required() });
//! connect(&server.provided::<ByteStream>(), &echo.required::<ByteStream>());
//! server.start();
//! echo.start();
//!
//! let mut client = std::net::TcpStream::connect(addr)?;
//! client.write_all(b"PING\r\n")?;
//! let mut reply = [0u8; 6];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"PING\r\n");
//!
//! runtime.shutdown(); // kills the server: its thread ends and its sockets close
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Connections and events
//!
//! Every accepted connection gets a [`ConnId`], unique for the server's lifetime (never
//! reused, even across a stop and restart). For each connection the port indicates, in order:
//! one [`StreamEvent::Opened`], any number of [`StreamEvent::Data`] carrying the bytes in the
//! order they arrived, and exactly one [`StreamEvent::Closed`], always the last event of that
//! connection. Data events are cut wherever the reads happened to fall: a request may span
//! several of them, and one of them may hold several requests.
//!
//! Requests name a connection. Requests for a connection that is unknown or already closed
//! are ignored: if the server closed it, its `Closed` event is already on its way. After a
//! [`StreamRequest::Close`], further requests for that connection are ignored too, and no
//! more `Data` is indicated for it.
//!
//! A peer closing its side of the connection (end of stream) closes the whole connection
//! with [`CloseReason::PeerClosed`] after the bytes received before it, as Redis does: output
//! not yet written is dropped. Half-closed connections are not kept.
//!
//! # Threads and batching
//!
//! [`StreamServer::create`] binds the listener (so a bind error is returned at once) and
//! starts one event-loop thread (named `kstream:<port>`) that owns every socket. The loop
//! tells the component what happened through a [`kompics_core::Mailbox`], one batch of events
//! per round of the loop, and the component indicates them on the port in order. Requests go
//! the other way through a shared queue; the component wakes the loop only when no wake-up is
//! already pending, so a burst of requests costs one wake-up.
//!
//! Reads and writes are fair between connections: each visit to a connection reads at most
//! [`StreamConfig::read_chunk`] bytes (delivered as one `Data` event) and writes at most a
//! few MiB; a connection with more to do is visited again after the other ready ones.
//! Sockets are registered edge-triggered, so the loop reads until the socket is drained
//! unless reading is paused (a read shorter than asked for drains it; after a hang-up, and
//! when reading resumes, it reads on to `WouldBlock`), and resumes reading at once on
//! [`StreamRequest::ResumeReading`].
//!
//! # Back-pressure and limits
//!
//! - **Input**: the server reads as fast as clients send; the component paces it with
//!   [`StreamRequest::PauseReading`] and [`StreamRequest::ResumeReading`]. Once paused, the
//!   kernel's buffers fill and the client's writes block. `Data` read before the pause was
//!   handled by the loop may still arrive after the request. While reading is paused, a peer's
//!   end of stream is noticed only when reading resumes (a reset is noticed at once).
//! - **Output**: writes are appended to the connection's output buffer and flushed as the
//!   socket accepts them. When a connection's unflushed output exceeds
//!   [`StreamConfig::output_buffer_max`] (the client stopped reading), the connection is
//!   closed with [`CloseReason::OutputOverflow`].
//! - **Connections**: beyond [`StreamConfig::max_connections`] open connections, new ones are
//!   accepted and closed at once, with a (rate-limited) warning in the log; no events are
//!   indicated for them.
//!
//! # Closing
//!
//! [`StreamRequest::Close`] stops reading, flushes what was written before it, then shuts
//! down the sending side (the client reads everything, then end of stream) and indicates
//! `Closed { reason: Requested }`. So that bytes the client sent meanwhile do not make the
//! kernel reset the connection (which could destroy the reply in flight), the socket then
//! lingers, its input discarded, until the client closes or [`StreamConfig::linger`] passes.
//!
//! # Stopping
//!
//! Stopping or killing the component (a runtime shutdown kills it) stops the event loop and
//! joins its thread: the listener and every connection close, and each open connection gets
//! `Closed { reason: ServerStopped }` (handled if the component is started again, dropped if
//! it is killed). Starting a stopped server binds the same address again with a new loop.

mod config;
mod event_loop;
mod out_queue;
mod server;

use std::fmt;
use std::net::SocketAddr;

use kompics_core::Port;

pub use config::StreamConfig;
pub use server::StreamServer;

/// Names one client connection of a [`StreamServer`]: unique for the server's lifetime, never
/// reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// The byte-stream port: raw bytes of many client connections. See the [module docs](self).
pub struct ByteStream;

impl Port for ByteStream {
    /// Write, close, pause or resume one connection.
    type Request = StreamRequest;
    /// A connection opened, bytes arrived, or a connection closed.
    type Indication = StreamEvent;
}

/// What a component asks of a [`StreamServer`] about one connection.
///
/// Requests for a connection that is unknown, closed, or being closed (after a `Close`) are
/// ignored.
#[derive(Clone, PartialEq, Eq)]
pub enum StreamRequest {
    /// Appends `data` to the connection's output, after everything written before. If the
    /// output not yet taken by the socket then exceeds
    /// [`StreamConfig::output_buffer_max`], the connection is closed with
    /// [`CloseReason::OutputOverflow`].
    Write {
        /// The connection.
        conn: ConnId,
        /// The bytes to send.
        data: Vec<u8>,
    },
    /// Stops reading, flushes what was written, then closes the connection; its `Closed`
    /// event says [`CloseReason::Requested`] (or why flushing failed).
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Stops reading from this connection (back-pressure): no more `Data` except what was
    /// already read. Pausing a paused connection does nothing.
    PauseReading {
        /// The connection.
        conn: ConnId,
    },
    /// Reads from this connection again. Resuming a connection that is not paused does
    /// nothing.
    ResumeReading {
        /// The connection.
        conn: ConnId,
    },
}

impl StreamRequest {
    /// The connection the request is about.
    pub fn conn(&self) -> ConnId {
        match self {
            StreamRequest::Write { conn, .. }
            | StreamRequest::Close { conn }
            | StreamRequest::PauseReading { conn }
            | StreamRequest::ResumeReading { conn } => *conn,
        }
    }
}

/// What a [`StreamServer`] tells its users about one connection. Per connection: `Opened`,
/// then `Data` in arrival order, then exactly one `Closed`, last.
#[derive(Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A client connected.
    Opened {
        /// The new connection.
        conn: ConnId,
        /// The client's address.
        peer: SocketAddr,
    },
    /// Bytes arrived on the connection (never empty), following those of the previous `Data`.
    Data {
        /// The connection.
        conn: ConnId,
        /// The bytes, in arrival order.
        data: Vec<u8>,
    },
    /// The connection is closed; nothing more will be indicated for it, and requests for it
    /// are ignored.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why it closed.
        reason: CloseReason,
    },
}

impl StreamEvent {
    /// The connection the event is about.
    pub fn conn(&self) -> ConnId {
        match self {
            StreamEvent::Opened { conn, .. }
            | StreamEvent::Data { conn, .. }
            | StreamEvent::Closed { conn, .. } => *conn,
        }
    }
}

/// Why a connection closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the connection (end of stream).
    PeerClosed,
    /// A [`StreamRequest::Close`] was carried out: the output was flushed to the socket.
    Requested,
    /// A socket error (a reset by the peer, for instance); the OS's message.
    Error(String),
    /// The unflushed output exceeded [`StreamConfig::output_buffer_max`]: the client does not
    /// read its replies.
    OutputOverflow,
    /// The server stopped (the component was stopped or killed).
    ServerStopped,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by the peer"),
            CloseReason::Requested => f.write_str("closed on request"),
            CloseReason::Error(e) => write!(f, "socket error: {e}"),
            CloseReason::OutputOverflow => f.write_str("output buffer overflow"),
            CloseReason::ServerStopped => f.write_str("server stopped"),
        }
    }
}

/// Formats bytes for `Debug` without printing megabytes: the length and a short escaped head.
struct Bytes<'a>(&'a [u8]);

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEAD: usize = 32;
        let head = &self.0[..self.0.len().min(HEAD)];
        write!(f, "{} bytes \"{}", self.0.len(), head.escape_ascii())?;
        f.write_str(if self.0.len() > HEAD { "\"…" } else { "\"" })
    }
}

impl fmt::Debug for StreamRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamRequest::Write { conn, data } => {
                f.debug_struct("Write").field("conn", conn).field("data", &Bytes(data)).finish()
            }
            StreamRequest::Close { conn } => f.debug_struct("Close").field("conn", conn).finish(),
            StreamRequest::PauseReading { conn } => {
                f.debug_struct("PauseReading").field("conn", conn).finish()
            }
            StreamRequest::ResumeReading { conn } => {
                f.debug_struct("ResumeReading").field("conn", conn).finish()
            }
        }
    }
}

impl fmt::Debug for StreamEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamEvent::Opened { conn, peer } => {
                f.debug_struct("Opened").field("conn", conn).field("peer", peer).finish()
            }
            StreamEvent::Data { conn, data } => {
                f.debug_struct("Data").field("conn", conn).field("data", &Bytes(data)).finish()
            }
            StreamEvent::Closed { conn, reason } => {
                f.debug_struct("Closed").field("conn", conn).field("reason", reason).finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_is_short_for_large_data() {
        let event = StreamEvent::Data { conn: ConnId(3), data: vec![b'x'; 1 << 20] };
        let text = format!("{event:?}");
        assert!(text.len() < 120, "{text}");
        assert!(text.contains("1048576 bytes"), "{text}");
        let small = StreamRequest::Write { conn: ConnId(1), data: b"+OK\r\n".to_vec() };
        assert_eq!(format!("{small:?}"), r#"Write { conn: ConnId(1), data: 5 bytes "+OK\r\n" }"#);
    }

    #[test]
    fn events_and_requests_name_their_connection() {
        assert_eq!(StreamRequest::Close { conn: ConnId(7) }.conn(), ConnId(7));
        let closed = StreamEvent::Closed { conn: ConnId(9), reason: CloseReason::PeerClosed };
        assert_eq!(closed.conn(), ConnId(9));
        assert_eq!(ConnId(9).to_string(), "conn#9");
    }
}
