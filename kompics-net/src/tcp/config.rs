//! [`TcpConfig`]: the settings of a [`super::TcpTransport`], with their bounds, validated once
//! when the transport starts.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::frame::{FRAME_BYTES_MAX_DEFAULT, FRAME_BYTES_MAX_LIMIT};
use crate::tls::PeerSecurity;

/// Settings of a TCP transport. Build with [`TcpConfig::new`] and adjust fields as needed; the
/// transport calls [`TcpConfig::validate`] when it starts.
///
/// How peers are authenticated ([`TcpConfig::security`]) has no default: [`TcpConfig::new`]
/// takes it, so a plaintext transport is always asked for by name
/// ([`PeerSecurity::insecure`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Address to listen on, which becomes the node's identity ([`crate::NodeAddr`]). Port 0
    /// picks a free port (read it back with [`super::TcpTransport::local_addr`]). The IP must be
    /// a specific one that peers can connect to, not `0.0.0.0` or `::`.
    pub listen: SocketAddr,
    /// How peers are authenticated (mutual TLS, shared secret, or insecure) and the cluster
    /// identity every handshake carries; see [`crate::tls`].
    pub security: PeerSecurity,
    /// Largest frame accepted or sent, counting the bytes after the 4-byte length field.
    /// A peer sending a larger one is disconnected; sending a message that would need a larger
    /// one fails. Default: 16 MiB.
    pub frame_bytes_max: usize,
    /// Frames that may wait for one peer (sent but not yet handed to its socket), whether or
    /// not a session with it is up. When a send finds the queue full, the session with that
    /// peer ends (see [`super::SendError::QueueFull`]). Default: 16 384.
    pub send_queue_frames_max: usize,
    /// Delay before retrying after the first failed connection attempt; doubles with each
    /// further failure. Default: 50 ms.
    pub reconnect_backoff_min: Duration,
    /// Cap on the retry delay. Default: 5 s.
    pub reconnect_backoff_max: Duration,
    /// Time a new connection has to complete its handshake (the connect itself, the TLS
    /// handshake in the secure modes, and the hello / welcome exchange) before it is closed.
    /// Default: 5 s.
    pub handshake_timeout: Duration,
    /// Open connections at most, established or handshaking; further incoming connections
    /// are closed as they are accepted. Default: 1024.
    pub connections_max: usize,
    /// Incoming connections at most that have not completed their handshake (unauthenticated);
    /// further ones are closed as they are accepted, so a flood of half-open handshakes cannot
    /// take every slot of `connections_max` from real peers. Default: 64.
    pub handshakes_max: usize,
    /// Distinct peers a transport keeps state for (one send queue each). Sending to a new peer
    /// beyond this fails. Default: 1024.
    pub peers_max: usize,
}

impl TcpConfig {
    /// Default `send_queue_frames_max`: deep enough for a pipelining protocol to run ahead of
    /// the network by many round trips, small enough to bound memory at 64 MiB for 4 KiB frames.
    pub const SEND_QUEUE_FRAMES_MAX_DEFAULT: usize = 16_384;
    /// Default `reconnect_backoff_min`.
    pub const RECONNECT_BACKOFF_MIN_DEFAULT: Duration = Duration::from_millis(50);
    /// Default `reconnect_backoff_max`.
    pub const RECONNECT_BACKOFF_MAX_DEFAULT: Duration = Duration::from_secs(5);
    /// Default `handshake_timeout`.
    pub const HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
    /// Default `connections_max`.
    pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;
    /// Default `peers_max`.
    pub const PEERS_MAX_DEFAULT: usize = 1024;
    /// Default `handshakes_max`.
    pub const HANDSHAKES_MAX_DEFAULT: usize = 64;
    /// Smallest allowed `frame_bytes_max`: room for a handshake frame with an IPv6 address, the
    /// longest cluster identity, a nonce and a proof.
    pub const FRAME_BYTES_MIN: usize = 512;

    /// A configuration listening on `listen`, authenticating peers as `security` says, with
    /// the documented defaults.
    pub fn new(listen: SocketAddr, security: PeerSecurity) -> Self {
        TcpConfig {
            listen,
            security,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            send_queue_frames_max: Self::SEND_QUEUE_FRAMES_MAX_DEFAULT,
            reconnect_backoff_min: Self::RECONNECT_BACKOFF_MIN_DEFAULT,
            reconnect_backoff_max: Self::RECONNECT_BACKOFF_MAX_DEFAULT,
            handshake_timeout: Self::HANDSHAKE_TIMEOUT_DEFAULT,
            connections_max: Self::CONNECTIONS_MAX_DEFAULT,
            handshakes_max: Self::HANDSHAKES_MAX_DEFAULT,
            peers_max: Self::PEERS_MAX_DEFAULT,
        }
    }

    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.ip().is_unspecified() {
            return Err(ConfigError::UnspecifiedListenIp(self.listen));
        }
        // A hello frame (an IPv6 address) must fit, or no session could ever be established.
        if self.frame_bytes_max < Self::FRAME_BYTES_MIN {
            return Err(ConfigError::FrameBytesMaxTooSmall {
                value: self.frame_bytes_max,
                min: Self::FRAME_BYTES_MIN,
            });
        }
        if self.frame_bytes_max > FRAME_BYTES_MAX_LIMIT {
            return Err(ConfigError::FrameBytesMaxTooLarge {
                value: self.frame_bytes_max,
                max: FRAME_BYTES_MAX_LIMIT,
            });
        }
        if self.send_queue_frames_max == 0 {
            return Err(ConfigError::Zero("send_queue_frames_max"));
        }
        if self.reconnect_backoff_min.is_zero() {
            return Err(ConfigError::Zero("reconnect_backoff_min"));
        }
        if self.reconnect_backoff_min > self.reconnect_backoff_max {
            return Err(ConfigError::BackoffMinAboveMax {
                min: self.reconnect_backoff_min,
                max: self.reconnect_backoff_max,
            });
        }
        if self.handshake_timeout.is_zero() {
            return Err(ConfigError::Zero("handshake_timeout"));
        }
        if self.connections_max == 0 {
            return Err(ConfigError::Zero("connections_max"));
        }
        if self.handshakes_max == 0 {
            return Err(ConfigError::Zero("handshakes_max"));
        }
        if self.peers_max == 0 {
            return Err(ConfigError::Zero("peers_max"));
        }
        Ok(())
    }
}

/// A [`TcpConfig`] field is out of range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `listen` has the IP `0.0.0.0` or `::`: the listening address is the node's identity, so
    /// it must be one that peers can connect to.
    UnspecifiedListenIp(SocketAddr),
    /// `frame_bytes_max` is below the size of a handshake frame.
    FrameBytesMaxTooSmall {
        /// The configured value.
        value: usize,
        /// The smallest allowed value.
        min: usize,
    },
    /// `frame_bytes_max` is more than the 4-byte length field can say.
    FrameBytesMaxTooLarge {
        /// The configured value.
        value: usize,
        /// The largest allowed value.
        max: usize,
    },
    /// A field that must be positive is zero; names the field.
    Zero(&'static str),
    /// `reconnect_backoff_min` is larger than `reconnect_backoff_max`.
    BackoffMinAboveMax {
        /// The configured minimum.
        min: Duration,
        /// The configured maximum.
        max: Duration,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnspecifiedListenIp(addr) => write!(
                f,
                "listen address {addr} has an unspecified IP; it is the node's identity, so use one peers can reach"
            ),
            ConfigError::FrameBytesMaxTooSmall { value, min } => {
                write!(f, "frame_bytes_max {value} is below the minimum {min}")
            }
            ConfigError::FrameBytesMaxTooLarge { value, max } => {
                write!(f, "frame_bytes_max {value} is above the maximum {max}")
            }
            ConfigError::Zero(field) => write!(f, "{field} must be positive"),
            ConfigError::BackoffMinAboveMax { min, max } => write!(
                f,
                "reconnect_backoff_min {min:?} is above reconnect_backoff_max {max:?}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TcpConfig {
        TcpConfig::new("127.0.0.1:0".parse().unwrap(), PeerSecurity::insecure("test").unwrap())
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(config().validate(), Ok(()));
    }

    #[test]
    fn unspecified_listen_ip_is_rejected() {
        let mut c = config();
        c.listen = "0.0.0.0:7000".parse().unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::UnspecifiedListenIp(_))));
    }

    #[test]
    fn each_bound_is_checked() {
        type Change = fn(&mut TcpConfig);
        let cases: Vec<(Change, &str)> = vec![
            (|c| c.frame_bytes_max = 10, "frame_bytes_max"),
            (|c| c.frame_bytes_max = usize::MAX, "frame_bytes_max"),
            (|c| c.send_queue_frames_max = 0, "send_queue_frames_max"),
            (|c| c.reconnect_backoff_min = Duration::ZERO, "reconnect_backoff_min"),
            (|c| c.reconnect_backoff_max = Duration::from_millis(1), "reconnect_backoff_min"),
            (|c| c.handshake_timeout = Duration::ZERO, "handshake_timeout"),
            (|c| c.connections_max = 0, "connections_max"),
            (|c| c.handshakes_max = 0, "handshakes_max"),
            (|c| c.peers_max = 0, "peers_max"),
        ];
        for (change, field) in cases {
            let mut c = config();
            change(&mut c);
            let err = c.validate().unwrap_err();
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
    }
}
