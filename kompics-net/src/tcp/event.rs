//! [`TransportEvent`]: what a transport reports to its owner through the sink.

use crate::address::NodeAddr;
use crate::message::NetMessage;

/// An event reported by a [`super::TcpTransport`] to its sink.
///
/// For each peer, every `SessionUp` is followed by a `SessionDown` before the next
/// `SessionUp`. A `SessionDown` can also come while no session is up: messages queued for the
/// peer were dropped because its queue overflowed (see [`super::SendError::QueueFull`]).
/// Either way `SessionDown` means the same to the receiver: messages sent to that peer before
/// it may have been lost. Every `Deliver` from a peer comes between the `SessionUp` and
/// `SessionDown` of the session that carried it, in the order the peer sent the messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportEvent {
    /// A message for this node. From a peer, `src` is that peer and `dst` this node; a message
    /// this node sent to itself arrives unchanged.
    Deliver(NetMessage),
    /// A session with the peer began: messages this node sends it from now on (and those queued
    /// for it) arrive in order, with no gaps, for as long as the session lasts.
    SessionUp(NodeAddr),
    /// The session with the peer ended (connection lost or closed, bad input, a full send
    /// queue, or shutdown), or, with no session up, its queue overflowed. Messages sent to it
    /// before this point may have been lost, and whatever was still queued for it was
    /// dropped: nothing sent before this point is delivered into a later session. Messages
    /// sent afterwards are queued for the next session.
    SessionDown(NodeAddr),
}
