//! [`TlsStream`]: a rustls connection pumped by hand over a non-blocking mio socket, seen by
//! the event loops as a plaintext, non-blocking byte stream.
//!
//! rustls never touches the socket; this type moves the bytes. It is written for
//! edge-triggered readiness (mio's contract: after an edge, operate until `WouldBlock`, or no
//! further edge is guaranteed):
//!
//! - [`Read`]: returns decrypted bytes already buffered first (rustls stops reading from the
//!   socket while its 16 KiB plaintext buffer is full, so it must be drained); otherwise reads
//!   TLS records from the socket (`read_tls`), processes them (`process_new_packets`, which
//!   also advances the handshake) and sends whatever the handshake answers, until plaintext
//!   appears, the socket returns `WouldBlock` (returned as `WouldBlock`: the socket is
//!   drained) or the stream ends. A protocol error sends rustls' alert and is returned as
//!   `InvalidData`; the connection is then dead.
//! - [`Write`]: first flushes pending TLS records; if the socket blocks, returns `WouldBlock`
//!   without taking anything (so a caller's "write blocked" state is exact), else encrypts up
//!   to one chunk and flushes what it can.
//! - [`TlsStream::flush_tls`]: writes pending records until none is left (`Ok(true)`) or the
//!   socket blocks (`Ok(false)`); callers run it whenever the socket becomes writable, since
//!   records can be left over from a read (handshake answers) or a partial write.
//!
//! End of stream: the peer's `close_notify` reads as `Ok(0)`; a bare TCP end without it as
//! `UnexpectedEof` (a truncation the caller logs as such). [`TlsStream::close`] sends this
//! side's `close_notify` before the socket is dropped.
//!
//! The type knows nothing of frames, peers or RESP, so the peer transport and the stream server
//! (client port) can both put it under their protocol: one pump, not two.

use std::io::{self, Read, Write};

use mio::net::TcpStream;
use rustls::Connection;

/// Plaintext taken per `write` call: one call makes at most this much ciphertext wait in
/// rustls, so a slow peer's backlog stays in the caller's bounded queues, not here.
const WRITE_CHUNK: usize = 64 * 1024;

/// A TLS session over a non-blocking TCP socket; see the [module docs](self).
pub struct TlsStream {
    sock: TcpStream,
    tls: Connection,
}

impl TlsStream {
    /// Wraps a connected (or connecting) socket and a fresh rustls client or server
    /// connection. Nothing is sent until the first read, write or flush.
    pub fn new(sock: TcpStream, tls: impl Into<Connection>) -> TlsStream {
        let mut tls = tls.into();
        // The callers bound what they hand over per write (`WRITE_CHUNK`) and flush before
        // taking more, so rustls' own limit would only turn into spurious short writes.
        tls.set_buffer_limit(None);
        TlsStream { sock, tls }
    }

    /// The socket, to register it, read its addresses or take its error.
    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// The socket, mutably (mio registration).
    pub fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    /// The rustls connection: handshake state, peer certificates, exporter.
    pub fn tls(&self) -> &Connection {
        &self.tls
    }

    /// Whether the TLS handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// Writes pending TLS records: `Ok(true)` when none is left, `Ok(false)` when the socket
    /// would block (a writable edge will come).
    pub fn flush_tls(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Sends this side's `close_notify` (best effort: the socket is about to be dropped, and a
    /// peer that misses it sees a truncation, which it treats as the end all the same).
    pub fn close(&mut self) {
        self.tls.send_close_notify();
        let _ = self.flush_tls();
    }

    /// Decrypts what `read_tls` brought in and sends what the handshake answers. On a protocol
    /// error, sends the alert rustls prepared (one last flush) and reports `InvalidData`.
    fn process(&mut self) -> io::Result<()> {
        if let Err(e) = self.tls.process_new_packets() {
            let _ = self.flush_tls();
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        // A blocked flush is fine here: the writable edge (or the next write) finishes it.
        self.flush_tls().map(|_| ())
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            // Plaintext first: `Ok(0)` after close_notify, `UnexpectedEof` after a bare TCP
            // end, `WouldBlock` if rustls needs more bytes.
            match self.tls.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            match self.tls.read_tls(&mut self.sock) {
                // End of stream: rustls records it, and the reader reports it on the next turn.
                Ok(0) => self.process()?,
                Ok(_) => self.process()?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Drained. Anything the handshake still has to say goes out now.
                    self.flush_tls()?;
                    return Err(e);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.flush_tls()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.tls.writer().write(&buf[..buf.len().min(WRITE_CHUNK)])?;
        // The plaintext is taken even if the socket blocks now: rustls keeps the records, and
        // the next write or flush (on the writable edge) sends them.
        self.flush_tls()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.flush_tls()? {
            true => Ok(()),
            false => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("peer", &self.sock.peer_addr().ok())
            .field("handshaking", &self.tls.is_handshaking())
            .finish()
    }
}
