//! [`NetMessage`]: what the network carries between components on different nodes, and
//! [`Route`]: which local component instance a message is for.
//!
//! The payload is opaque bytes to the network; [`NetMessage::encode`] and
//! [`NetMessage::decode`] turn a serde value into those bytes and back with rmp-serde (compact
//! form: structs as arrays), the same encoding the wire format uses for its frame bodies.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::address::NodeAddr;

/// Names the local component instance a message is for, e.g. "the Zab instance of partition 3"
/// is `Route::new(ZAB_SERVICE, 3)`.
///
/// `service` says which kind of component (each upper layer picks its own constant), `instance`
/// which one of them on the destination node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Route {
    /// The kind of component the message is for.
    pub service: u32,
    /// Which instance of that kind on the destination node.
    pub instance: u32,
}

impl Route {
    /// A route to `instance` of `service`.
    pub const fn new(service: u32, instance: u32) -> Self {
        Route { service, instance }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.instance)
    }
}

/// A message between nodes: who sent it, who it is for, which component there, and its payload.
///
/// On TCP, only `route` and `payload` travel in the frame: the session already names both ends,
/// so the receiving transport sets `src` to the peer that sent it and `dst` to itself. (This saves
/// bytes on every frame and means a peer cannot claim to be another node within a session.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetMessage {
    /// The sending node.
    pub src: NodeAddr,
    /// The node the message is for.
    pub dst: NodeAddr,
    /// The component instance on `dst` the message is for.
    pub route: Route,
    /// The encoded message (see [`NetMessage::encode`]); opaque to the network.
    #[serde(with = "crate::bytes::vec")]
    pub payload: Vec<u8>,
}

impl NetMessage {
    /// A message carrying already-encoded bytes.
    pub fn new(src: NodeAddr, dst: NodeAddr, route: Route, payload: Vec<u8>) -> Self {
        NetMessage { src, dst, route, payload }
    }

    /// A message whose payload is `value` encoded with rmp-serde.
    pub fn encode<T: Serialize + ?Sized>(
        src: NodeAddr,
        dst: NodeAddr,
        route: Route,
        value: &T,
    ) -> Result<NetMessage, CodecError> {
        let payload = rmp_serde::to_vec(value).map_err(CodecError::Encode)?;
        Ok(NetMessage::new(src, dst, route, payload))
    }

    /// Decodes the payload as a `T` (the inverse of [`NetMessage::encode`]).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        rmp_serde::from_slice(&self.payload).map_err(CodecError::Decode)
    }
}

/// A payload could not be encoded or decoded; the variant says whose fault it is.
#[derive(Debug)]
pub enum CodecError {
    /// The value cannot be serialized: its type has something MessagePack cannot express (rare
    /// with rmp-serde). A bug in the sender's type; sending it again fails again.
    Encode(rmp_serde::encode::Error),
    /// The payload is not an encoding of the requested type: the sender runs another version of
    /// the protocol, or the message came on the wrong route. Drop the message (and say so).
    Decode(rmp_serde::decode::Error),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Encode(reason) => write!(f, "cannot encode payload: {reason}"),
            CodecError::Decode(reason) => write!(f, "cannot decode payload: {reason}"),
        }
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CodecError::Encode(error) => Some(error),
            CodecError::Decode(error) => Some(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> NodeAddr {
        NodeAddr(([127, 0, 0, 1], port).into())
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Ping {
        Ping { seq: u64 },
        Pong(String),
    }

    #[test]
    fn encode_then_decode_gives_the_value_back() {
        let msg = NetMessage::encode(addr(1), addr(2), Route::new(7, 3), &Ping::Ping { seq: 42 })
            .unwrap();
        assert_eq!(msg.src, addr(1));
        assert_eq!(msg.dst, addr(2));
        assert_eq!(msg.route, Route::new(7, 3));
        assert_eq!(msg.decode::<Ping>().unwrap(), Ping::Ping { seq: 42 });
    }

    #[test]
    fn decoding_as_the_wrong_type_is_an_error() {
        let msg = NetMessage::encode(addr(1), addr(2), Route::new(0, 0), &Ping::Pong("x".into()))
            .unwrap();
        assert!(matches!(msg.decode::<u64>(), Err(CodecError::Decode(_))));
    }

    #[test]
    fn whole_message_serde_roundtrip_writes_payload_as_bin() {
        let msg = NetMessage::new(addr(1), addr(2), Route::new(1, 2), vec![0xff; 300]);
        let bytes = rmp_serde::to_vec(&msg).unwrap();
        // A `bin` payload costs ~3 bytes of header, not one extra byte per 0xff.
        assert!(bytes.len() < 300 + 64, "encoded length {}", bytes.len());
        assert_eq!(rmp_serde::from_slice::<NetMessage>(&bytes).unwrap(), msg);
    }
}
