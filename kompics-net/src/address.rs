//! [`NodeAddr`]: the identity of a node on the network.
//!
//! A node is known by the socket address it listens on. Using the listening address as the
//! identity (rather than a separate id) means a node can be reached from its name alone, and the
//! TCP handshake only has to carry that one value.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The address a node listens on, which is also its identity.
///
/// Two transports are the same node exactly when their `NodeAddr`s are equal. The total order
/// (`Ord`) is used to break ties deterministically, e.g. when two nodes connect to each other at
/// the same moment (see [`crate::tcp`]).
// Debug is derived: `NodeAddr(127.0.0.1:7000)`, as a socket address's Debug is its Display.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeAddr(pub SocketAddr);

impl NodeAddr {
    /// Wraps a socket address.
    pub const fn new(addr: SocketAddr) -> Self {
        NodeAddr(addr)
    }

    /// The socket address to connect to in order to reach this node.
    pub const fn socket_addr(self) -> SocketAddr {
        self.0
    }

    /// Whether a peer could connect to this address: a specific IP (not `0.0.0.0` / `::`) and a
    /// non-zero port.
    pub fn is_routable(self) -> bool {
        !self.0.ip().is_unspecified() && self.0.port() != 0
    }
}

impl From<SocketAddr> for NodeAddr {
    fn from(addr: SocketAddr) -> Self {
        NodeAddr(addr)
    }
}

impl From<NodeAddr> for SocketAddr {
    fn from(addr: NodeAddr) -> Self {
        addr.0
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_socket_address() {
        let addr: NodeAddr = "127.0.0.1:4000".parse::<SocketAddr>().unwrap().into();
        assert_eq!(addr.to_string(), "127.0.0.1:4000");
        assert_eq!(format!("{addr:?}"), "NodeAddr(127.0.0.1:4000)");
    }

    #[test]
    fn order_follows_the_socket_address() {
        let a = NodeAddr("127.0.0.1:4000".parse().unwrap());
        let b = NodeAddr("127.0.0.1:4001".parse().unwrap());
        assert!(a < b);
    }

    #[test]
    fn unspecified_or_port_zero_is_not_routable() {
        assert!(!NodeAddr("0.0.0.0:4000".parse().unwrap()).is_routable());
        assert!(!NodeAddr("127.0.0.1:0".parse().unwrap()).is_routable());
        assert!(NodeAddr("127.0.0.1:4000".parse().unwrap()).is_routable());
    }

    #[test]
    fn serde_roundtrip() {
        let a = NodeAddr("[::1]:9".parse().unwrap());
        let bytes = rmp_serde::to_vec(&a).unwrap();
        assert_eq!(rmp_serde::from_slice::<NodeAddr>(&bytes).unwrap(), a);
    }
}
