//! [`Link`]: what both event loops (the peer transport's and the stream server's) read and
//! write: a plain socket, or a [`TlsStream`] over it.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use super::TlsStream;

/// The byte stream under a connection: the socket itself (plaintext) or a TLS session over it.
/// Both read and write like a non-blocking socket, so the event loops' framing, budgets and
/// back-pressure do not care which.
pub(crate) enum Link {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Link {
    pub(crate) fn socket(&self) -> &TcpStream {
        match self {
            Link::Plain(s) => s,
            Link::Tls(t) => t.socket(),
        }
    }

    pub(crate) fn socket_mut(&mut self) -> &mut TcpStream {
        match self {
            Link::Plain(s) => s,
            Link::Tls(t) => t.socket_mut(),
        }
    }

    pub(crate) fn tls(&self) -> Option<&rustls::Connection> {
        match self {
            Link::Plain(_) => None,
            Link::Tls(t) => Some(t.tls()),
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Link::Tls(_))
    }

    /// Writes pending TLS records (`Ok(false)`: the socket would block); plain: nothing to do.
    pub(crate) fn flush_tls(&mut self) -> io::Result<bool> {
        match self {
            Link::Plain(_) => Ok(true),
            Link::Tls(t) => t.flush_tls(),
        }
    }

    /// Sends TLS's close_notify, best effort; plain: nothing to do.
    pub(crate) fn close(&mut self) {
        if let Link::Tls(t) = self {
            t.close();
        }
    }
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.read(buf),
            Link::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.write(buf),
            Link::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Link::Plain(s) => s.flush(),
            Link::Tls(t) => t.flush(),
        }
    }
}
