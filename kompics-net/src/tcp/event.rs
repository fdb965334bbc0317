//! [`TransportEvent`]: what a transport reports to its owner through the sink.

use crate::address::NodeAddr;
use crate::message::NetMessage;

/// An event reported by a [`super::TcpTransport`] to its sink.
///
/// For each peer, session events alternate strictly: `SessionUp`, then `SessionDown`, then
/// `SessionUp` again, and so on, starting with `SessionUp`. Every `Deliver` from a peer comes
/// between the `SessionUp` and `SessionDown` of the session that carried it, in the order the
/// peer sent the messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportEvent {
    /// A message for this node. From a peer, `src` is that peer and `dst` this node; a message
    /// this node sent to itself arrives unchanged.
    Deliver(NetMessage),
    /// A session with the peer began: messages this node sends it from now on (and those queued
    /// for it) arrive in order, with no gaps, for as long as the session lasts.
    SessionUp(NodeAddr),
    /// The session with the peer ended (connection lost or closed, bad input, a full send
    /// queue, or shutdown). Messages sent to it before this point may have been lost, and
    /// whatever was still queued for it was dropped. Messages sent afterwards are queued for
    /// the next session.
    SessionDown(NodeAddr),
}
