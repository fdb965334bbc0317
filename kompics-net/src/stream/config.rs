//! [`StreamConfig`]: the settings of a [`super::StreamServer`].

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::tls::ServerTls;

/// Settings of a [`super::StreamServer`]. Build with [`StreamConfig::new`] and adjust fields as
/// needed; [`super::StreamServer::create`] rejects invalid ones with `InvalidInput`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Address to listen on. Port 0 picks a free port (read it back with
    /// [`super::StreamServer::local_addr`]); `0.0.0.0` listens on every interface.
    pub listen: SocketAddr,
    /// Open connections at most (closing ones included, lingering ones not); further
    /// connections are accepted and closed at once. Default: 10 000.
    pub max_connections: usize,
    /// Bytes written to one connection but not yet taken by its socket, at most; a write that
    /// goes beyond closes the connection with
    /// [`CloseReason::OutputOverflow`](super::CloseReason::OutputOverflow). Default: 64 MiB.
    pub output_buffer_max: usize,
    /// Bytes read from one connection per visit of the event loop, at most: the size of the
    /// read buffer and the largest [`Data`](super::StreamEvent::Data) event. Default: 64 KiB.
    pub read_chunk: usize,
    /// After a requested close has flushed the output and shut down the sending side, how long
    /// the socket may wait for the client to close its side (its input is discarded
    /// meanwhile) before it is closed anyway. Zero closes at once, at the risk of a reset that
    /// destroys the reply in flight if the client sent more. Default: 2 s.
    pub linger: Duration,
    /// Serve TLS (and only TLS) with this configuration; `None`, the default, is plaintext.
    pub tls: Option<ServerTls>,
    /// With TLS: time a client has to complete its TLS handshake before it is closed, so
    /// half-open handshakes cannot hold connection slots. Default: 10 s.
    pub tls_handshake_timeout: Duration,
}

impl StreamConfig {
    /// Default `max_connections`.
    pub const MAX_CONNECTIONS_DEFAULT: usize = 10_000;
    /// Default `output_buffer_max`.
    pub const OUTPUT_BUFFER_MAX_DEFAULT: usize = 64 * 1024 * 1024;
    /// Default `read_chunk`.
    pub const READ_CHUNK_DEFAULT: usize = 64 * 1024;
    /// Default `linger`.
    pub const LINGER_DEFAULT: Duration = Duration::from_secs(2);
    /// Default `tls_handshake_timeout`.
    pub const TLS_HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

    /// A configuration listening on `listen` with the documented defaults.
    pub fn new(listen: SocketAddr) -> Self {
        StreamConfig {
            listen,
            max_connections: Self::MAX_CONNECTIONS_DEFAULT,
            output_buffer_max: Self::OUTPUT_BUFFER_MAX_DEFAULT,
            read_chunk: Self::READ_CHUNK_DEFAULT,
            linger: Self::LINGER_DEFAULT,
            tls: None,
            tls_handshake_timeout: Self::TLS_HANDSHAKE_TIMEOUT_DEFAULT,
        }
    }

    /// Checks the fields: `max_connections`, `output_buffer_max` and `read_chunk` must be
    /// positive. The error is `InvalidInput` and names the field.
    pub fn validate(&self) -> io::Result<()> {
        for (field, value) in [
            ("max_connections", self.max_connections),
            ("output_buffer_max", self.output_buffer_max),
            ("read_chunk", self.read_chunk),
        ] {
            if value == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("StreamConfig::{field} must be positive"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zeros_are_not() {
        let config = StreamConfig::new("127.0.0.1:0".parse().unwrap());
        config.validate().unwrap();
        let mut bad = config.clone();
        bad.read_chunk = 0;
        let err = bad.validate().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("read_chunk"), "{err}");
        let mut bad = config;
        bad.max_connections = 0;
        assert!(bad.validate().unwrap_err().to_string().contains("max_connections"));
    }
}
