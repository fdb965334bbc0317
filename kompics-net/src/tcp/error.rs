//! [`SendError`]: why [`super::TcpTransport::send`] refused a message.

use std::fmt;

use crate::address::NodeAddr;

/// Why a message was not queued. In every case the message was not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// `send_queue_frames_max` frames were already waiting for `peer`.
    ///
    /// For a remote peer this ends the session, as a TCP reset would: the connection is closed
    /// and [`super::TransportEvent::SessionDown`] follows (also when no session was up, since
    /// queued messages were lost). The failed send is the point that `SessionDown` stands
    /// for: the next `send` to the peer starts a new queue, for a new connection.
    /// (Dropping only the newest message would leave a gap inside a session that promises
    /// reliable FIFO delivery.)
    ///
    /// For this node itself (no socket, no session) only this message is refused; earlier ones
    /// are still delivered.
    QueueFull {
        /// The destination whose queue was full.
        peer: NodeAddr,
        /// The configured bound.
        frames_max: usize,
    },
    /// The message's frame would be `len` bytes (its length field), more than
    /// `frame_bytes_max` (`max`). Nothing changed: only this message is refused, the session
    /// (if any) goes on. Payloads up to [`crate::payload_bytes_max`]`(max)` always fit.
    TooLarge {
        /// The frame length the message needs.
        len: usize,
        /// The configured `frame_bytes_max`.
        max: usize,
    },
    /// The message frame could not be encoded (the encoder's reason). Nothing changed.
    Encode(String),
    /// The destination is not an address a node can listen on (unspecified IP or port 0).
    InvalidDestination(NodeAddr),
    /// The transport already keeps state for `peers_max` peers and `dst` is a new one.
    TooManyPeers {
        /// The configured bound.
        max: usize,
    },
    /// The transport's event loop has stopped (shut down, or its sink panicked).
    Stopped,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::QueueFull { peer, frames_max } => write!(
                f,
                "send queue for {peer} is full ({frames_max} frames); its session was ended"
            ),
            SendError::TooLarge { len, max } => {
                write!(f, "message frame of {len} bytes exceeds frame_bytes_max ({max})")
            }
            SendError::Encode(reason) => write!(f, "cannot encode the message frame: {reason}"),
            SendError::InvalidDestination(dst) => write!(f, "{dst} is not a routable node address"),
            SendError::TooManyPeers { max } => {
                write!(f, "already tracking peers_max ({max}) peers")
            }
            SendError::Stopped => f.write_str("the transport has stopped"),
        }
    }
}

impl std::error::Error for SendError {}
