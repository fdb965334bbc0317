//! [`RespClient`]: a small blocking Redis-protocol client over a [`TcpStream`], for the `kvstore`
//! binary's `bench` and `status` commands and for tests.
//!
//! - [`RespClient::call`] sends one request and waits for its reply; an error reply (`-ERR …`)
//!   is a successful call returning [`RespValue::Error`].
//! - Pipelining: [`RespClient::send`] any number of requests (they are buffered), then
//!   [`RespClient::recv`] one reply per request, in order. The first `recv` flushes the buffer.
//! - Typed helpers ([`get`](RespClient::get), [`set`](RespClient::set), [`del`](RespClient::del),
//!   [`cas`](RespClient::cas), [`ping`](RespClient::ping), [`info`](RespClient::info)) turn error
//!   replies into [`ClientError::Server`] and replies of the wrong shape into
//!   [`ClientError::Unexpected`].
//!
//! After an I/O error, a timeout or a malformed reply the connection is out of step with the
//! server (a late reply would be taken for the answer to the next request), so the client is
//! *broken*: every later call fails with [`io::ErrorKind::NotConnected`]. Connect again.
//!
//! ```no_run
//! use std::time::Duration;
//! use kvstore_app::tools::client::RespClient;
//!
//! let mut client = RespClient::connect("127.0.0.1:6379", Duration::from_secs(2))?;
//! client.set(b"k", b"v")?;
//! assert_eq!(client.get(b"k")?, Some(b"v".to_vec()));
//! assert!(client.cas(b"k", b"v", b"w")?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::auth::Password;
use crate::resp::{encode_request, ReplyParser, RespValue};

/// The code starting the server's reply when a partition has no leader yet (after waiting up to
/// its timeout): `-TRYAGAIN …`. The request was not executed; it is safe to retry.
pub const TRYAGAIN_PREFIX: &str = "TRYAGAIN";

/// The code starting generic error replies: `-ERR …` (Redis' convention).
pub const ERR_PREFIX: &str = "ERR";

/// Markers, any of which in an error reply means the request may or may not have taken effect
/// (e.g. the leader changed while it was in flight): `OUTCOME_UNKNOWN` as an error code, or the
/// phrase `outcome unknown` used by Zab's proposal errors. Matched case-insensitively.
pub const OUTCOME_UNKNOWN_MARKERS: &[&str] = &["OUTCOME_UNKNOWN", "outcome unknown"];

/// How many bytes one `read` asks the socket for.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Why a typed call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The connection failed, timed out, was closed, or the reply was malformed. The client is
    /// broken afterwards.
    Io(io::Error),
    /// The server answered with an error reply; the text without the leading `-`, e.g.
    /// `TRYAGAIN no leader for partition 2`.
    Server(String),
    /// A well-formed reply of the wrong shape for the command (e.g. an integer for `GET`).
    Unexpected {
        /// The command, e.g. `GET`.
        command: &'static str,
        /// What came back.
        reply: RespValue,
    },
}

impl ClientError {
    /// The error for an error reply, or `None` if `reply` is not one.
    pub fn from_reply(reply: &RespValue) -> Option<ClientError> {
        match reply {
            RespValue::Error(text) => Some(ClientError::Server(text.clone())),
            _ => None,
        }
    }

    /// Whether this is a `-TRYAGAIN …` reply (no leader yet; not executed, safe to retry).
    pub fn is_tryagain(&self) -> bool {
        self.server_message().is_some_and(is_tryagain_text)
    }

    /// Whether this is an error reply saying the outcome is unknown (see
    /// [`OUTCOME_UNKNOWN_MARKERS`]): the request may or may not have been executed.
    pub fn is_outcome_unknown(&self) -> bool {
        self.server_message().is_some_and(is_outcome_unknown_text)
    }

    /// Whether this is an I/O error (the connection is broken).
    pub fn is_io(&self) -> bool {
        matches!(self, ClientError::Io(_))
    }

    /// The error reply's text, if this is [`ClientError::Server`].
    pub fn server_message(&self) -> Option<&str> {
        match self {
            ClientError::Server(text) => Some(text),
            _ => None,
        }
    }
}

/// Whether an error reply's text (without `-`) starts with the code [`TRYAGAIN_PREFIX`].
pub fn is_tryagain_text(text: &str) -> bool {
    text.split_ascii_whitespace().next() == Some(TRYAGAIN_PREFIX)
}

/// Whether an error reply's text contains one of [`OUTCOME_UNKNOWN_MARKERS`].
pub fn is_outcome_unknown_text(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    OUTCOME_UNKNOWN_MARKERS.iter().any(|marker| lower.contains(&marker.to_ascii_lowercase()))
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(error) => write!(f, "I/O error: {error}"),
            ClientError::Server(text) => write!(f, "server error: {text}"),
            ClientError::Unexpected { command, reply } => {
                let shown = String::from_utf8_lossy(&reply.to_bytes()).escape_debug().to_string();
                write!(f, "unexpected reply to {command}: {shown}")
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(error: io::Error) -> Self {
        ClientError::Io(error)
    }
}

/// A blocking RESP2 client on one TCP connection. See the [module documentation](self).
#[derive(Debug)]
pub struct RespClient {
    stream: TcpStream,
    peer: SocketAddr,
    parser: ReplyParser,
    /// Encoded requests not yet written.
    out: Vec<u8>,
    /// Requests sent (or buffered) whose replies have not been received.
    pending: usize,
    read_buf: Vec<u8>,
    broken: bool,
}

impl RespClient {
    /// Connects to `addr` (each address it resolves to in turn), waiting at most `timeout` per
    /// address, and uses `timeout` as the read and write timeout too (see
    /// [`set_timeouts`](Self::set_timeouts)). Sets `TCP_NODELAY`.
    pub fn connect(addr: impl ToSocketAddrs, timeout: Duration) -> io::Result<Self> {
        let mut last_error = None;
        for candidate in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&candidate, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    let mut client = RespClient {
                        stream,
                        peer: candidate,
                        parser: ReplyParser::default(),
                        out: Vec::new(),
                        pending: 0,
                        read_buf: vec![0; READ_CHUNK_BYTES],
                        broken: false,
                    };
                    client.set_timeouts(Some(timeout), Some(timeout))?;
                    return Ok(client);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the address resolved to nothing")
        }))
    }

    /// Sets how long a read (waiting for a reply) and a write may block; `None` waits forever.
    /// A zero duration is treated as `None` (the socket API refuses zero).
    pub fn set_timeouts(
        &mut self,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> io::Result<()> {
        let nonzero = |timeout: Option<Duration>| timeout.filter(|t| !t.is_zero());
        self.stream.set_read_timeout(nonzero(read))?;
        self.stream.set_write_timeout(nonzero(write))
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Whether an earlier I/O error, timeout or malformed reply broke the connection.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// How many requests were sent (or buffered) and await their replies.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Sends one request and returns its reply. Error replies are `Ok(RespValue::Error(_))`.
    /// Replies still pending from earlier [`send`](Self::send)s must be received first, or this
    /// returns the oldest of them.
    pub fn call(&mut self, args: &[&[u8]]) -> io::Result<RespValue> {
        self.send(args)?;
        self.recv()
    }

    /// Buffers one request (pipelining). It is written by the next [`flush`](Self::flush) or
    /// [`recv`](Self::recv).
    pub fn send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        self.check_usable()?;
        encode_request(args, &mut self.out);
        self.pending += 1;
        Ok(())
    }

    /// Writes every buffered request.
    pub fn flush(&mut self) -> io::Result<()> {
        self.check_usable()?;
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.out).and_then(|()| self.stream.flush());
        self.out.clear();
        result.map_err(|error| self.fail(error))
    }

    /// Receives the reply to the oldest pending request, flushing buffered requests first.
    /// Fails with [`io::ErrorKind::InvalidInput`] if no request is pending, with
    /// [`io::ErrorKind::UnexpectedEof`] if the server closes the connection first, with
    /// `WouldBlock` or `TimedOut` (depending on the platform) after the read timeout, and with
    /// [`io::ErrorKind::InvalidData`] on a malformed reply.
    pub fn recv(&mut self) -> io::Result<RespValue> {
        self.check_usable()?;
        if self.pending == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no request is pending"));
        }
        self.flush()?;
        loop {
            match self.parser.next_value() {
                Ok(Some(value)) => {
                    self.pending -= 1;
                    return Ok(value);
                }
                Ok(None) => {}
                Err(error) => {
                    return Err(self.fail(io::Error::new(io::ErrorKind::InvalidData, error)));
                }
            }
            match self.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    return Err(self.fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection before replying",
                    )));
                }
                Ok(n) => self.parser.feed(&self.read_buf[..n]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(self.fail(error)),
            }
        }
    }

    /// `GET key`: the value, or `None` for a missing key.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, ClientError> {
        match self.typed_call(&[b"GET", key])? {
            RespValue::BulkString(value) => Ok(value),
            reply => Err(ClientError::Unexpected { command: "GET", reply }),
        }
    }

    /// `SET key value`, expecting `+OK`.
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        match self.typed_call(&[b"SET", key, value])? {
            RespValue::SimpleString(text) if text == "OK" => Ok(()),
            reply => Err(ClientError::Unexpected { command: "SET", reply }),
        }
    }

    /// `DEL key`: the number of keys removed (`1` or `0`).
    pub fn del(&mut self, key: &[u8]) -> Result<i64, ClientError> {
        match self.typed_call(&[b"DEL", key])? {
            RespValue::Integer(n) => Ok(n),
            reply => Err(ClientError::Unexpected { command: "DEL", reply }),
        }
    }

    /// `CAS key expected new`: whether the key held `expected` and now holds `new` (`:1`), or
    /// not (`:0`).
    pub fn cas(&mut self, key: &[u8], expected: &[u8], new: &[u8]) -> Result<bool, ClientError> {
        match self.typed_call(&[b"CAS", key, expected, new])? {
            RespValue::Integer(1) => Ok(true),
            RespValue::Integer(0) => Ok(false),
            reply => Err(ClientError::Unexpected { command: "CAS", reply }),
        }
    }

    /// `AUTH password` (the `default` user), expecting `+OK`; a node with a password refuses
    /// everything else until then (`-NOAUTH`). Wrong credentials are a
    /// [`ClientError::Server`] with `WRONGPASS …`.
    pub fn auth(&mut self, password: &Password) -> Result<(), ClientError> {
        match self.typed_call(&[b"AUTH", password.expose()])? {
            RespValue::SimpleString(text) if text == "OK" => Ok(()),
            reply => Err(ClientError::Unexpected { command: "AUTH", reply }),
        }
    }

    /// [`connect`](Self::connect), then [`auth`](Self::auth) if a password is given.
    pub fn connect_auth(
        addr: impl ToSocketAddrs,
        timeout: Duration,
        password: Option<&Password>,
    ) -> Result<Self, ClientError> {
        let mut client = RespClient::connect(addr, timeout)?;
        if let Some(password) = password {
            client.auth(password)?;
        }
        Ok(client)
    }

    /// `PING`, expecting `+PONG`.
    pub fn ping(&mut self) -> Result<(), ClientError> {
        match self.typed_call(&[b"PING"])? {
            RespValue::SimpleString(text) if text == "PONG" => Ok(()),
            reply => Err(ClientError::Unexpected { command: "PING", reply }),
        }
    }

    /// `INFO [section]`: the text (`# Section` headers and `field:value` lines, see
    /// [`status`](super::status) for what the store's nodes report).
    pub fn info(&mut self, section: Option<&str>) -> Result<String, ClientError> {
        let reply = match section {
            Some(section) => self.typed_call(&[b"INFO", section.as_bytes()])?,
            None => self.typed_call(&[b"INFO"])?,
        };
        match reply {
            RespValue::BulkString(Some(bytes)) => match String::from_utf8(bytes) {
                Ok(text) => Ok(text),
                Err(error) => Err(ClientError::Unexpected {
                    command: "INFO",
                    reply: RespValue::bulk(error.into_bytes()),
                }),
            },
            reply => Err(ClientError::Unexpected { command: "INFO", reply }),
        }
    }

    /// One call whose error reply becomes [`ClientError::Server`].
    fn typed_call(&mut self, args: &[&[u8]]) -> Result<RespValue, ClientError> {
        let reply = self.call(args)?;
        match ClientError::from_reply(&reply) {
            Some(error) => Err(error),
            None => Ok(reply),
        }
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.broken {
            Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection broke earlier (I/O error, timeout or malformed reply)",
            ))
        } else {
            Ok(())
        }
    }

    /// Marks the connection broken and passes the error on.
    fn fail(&mut self, error: io::Error) -> io::Error {
        self.broken = true;
        self.out.clear();
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        error
    }
}

/// Whether an I/O error is a read or write timeout (`WouldBlock` on Unix, `TimedOut` on Windows).
pub fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    #[test]
    fn error_classification_follows_the_prefixes() {
        let tryagain = ClientError::Server("TRYAGAIN no leader for partition 2".into());
        assert!(tryagain.is_tryagain());
        assert!(!tryagain.is_outcome_unknown());
        assert!(!ClientError::Server("ERR TRYAGAIN later".into()).is_tryagain());
        assert!(!ClientError::Server("TRYAGAINX".into()).is_tryagain());
        assert!(ClientError::Server("TRYAGAIN".into()).is_tryagain());

        let unknown = ClientError::Server("OUTCOME_UNKNOWN the leader changed".into());
        assert!(unknown.is_outcome_unknown());
        assert!(ClientError::Server("ERR outcome unknown: no answer in time".into())
            .is_outcome_unknown());
        assert!(!ClientError::Server(format!("{ERR_PREFIX} syntax error")).is_outcome_unknown());

        let io = ClientError::from(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        assert!(io.is_io() && !io.is_tryagain() && !io.is_outcome_unknown());
        assert_eq!(io.server_message(), None);
        assert!(ClientError::from_reply(&RespValue::ok()).is_none());
        assert_eq!(
            ClientError::from_reply(&RespValue::error("ERR x")).unwrap().server_message(),
            Some("ERR x")
        );
    }

    #[test]
    fn errors_display_readably() {
        let unexpected = ClientError::Unexpected { command: "GET", reply: RespValue::Integer(3) };
        assert_eq!(unexpected.to_string(), "unexpected reply to GET: :3\\r\\n");
        assert_eq!(ClientError::Server("ERR x".into()).to_string(), "server error: ERR x");
    }

    /// A server thread answering each read with the canned bytes of `replies`, one per request.
    fn canned_server(replies: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut parser = crate::resp::RequestParser::default();
            let mut replies = replies.into_iter();
            let mut buf = [0u8; 1024];
            loop {
                let n = match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                parser.feed(&buf[..n]);
                while let Ok(Some(_)) = parser.next_request() {
                    match replies.next() {
                        Some(reply) => stream.write_all(reply).unwrap(),
                        None => return,
                    }
                }
            }
        });
        addr
    }

    #[test]
    fn typed_helpers_map_replies() {
        let addr = canned_server(vec![
            b"$1\r\nv\r\n",
            b"$-1\r\n",
            b"+OK\r\n",
            b":1\r\n",
            b":0\r\n",
            b":1\r\n",
            b"+PONG\r\n",
            b"$8\r\n# Server\r\n",
            b"-TRYAGAIN no leader\r\n",
            b":7\r\n",
            b"+OK\r\n",
        ]);
        let mut client = RespClient::connect(addr, Duration::from_secs(5)).unwrap();
        assert_eq!(client.peer_addr(), addr);
        assert_eq!(client.get(b"k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(client.get(b"k").unwrap(), None);
        client.set(b"k", b"v").unwrap();
        assert_eq!(client.del(b"k").unwrap(), 1);
        assert!(!client.cas(b"k", b"a", b"b").unwrap());
        assert!(client.cas(b"k", b"a", b"b").unwrap());
        client.ping().unwrap();
        assert_eq!(client.info(Some("server")).unwrap(), "# Server");
        assert!(client.get(b"k").unwrap_err().is_tryagain());
        assert!(matches!(
            client.cas(b"k", b"a", b"b"),
            Err(ClientError::Unexpected { command: "CAS", reply: RespValue::Integer(7) })
        ));
        // An unexpected (but well-formed) reply leaves the connection usable.
        assert!(!client.is_broken());
        assert!(matches!(client.get(b"k"), Err(ClientError::Unexpected { command: "GET", .. })));
    }

    #[test]
    fn a_malformed_reply_breaks_the_connection() {
        let addr = canned_server(vec![b"?what\r\n", b"+OK\r\n"]);
        let mut client = RespClient::connect(addr, Duration::from_secs(5)).unwrap();
        let error = client.call(&[b"PING"]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(client.is_broken());
        assert_eq!(client.call(&[b"PING"]).unwrap_err().kind(), io::ErrorKind::NotConnected);
    }

    #[test]
    fn recv_without_a_request_is_refused() {
        let addr = canned_server(vec![]);
        let mut client = RespClient::connect(addr, Duration::from_secs(5)).unwrap();
        assert_eq!(client.recv().unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(!client.is_broken());
    }
}
