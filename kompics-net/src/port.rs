//! The Network port: what components on a node use to talk to components on other nodes.
//!
//! Requests are [`NetMessage`]s to send; indications are [`NetEvent`]s: a delivered message, or a
//! session event. Both implementations — TCP ([`crate::tcp`]) and the simulated network
//! ([`crate::sim`]) — provide this same port, so nothing above it can tell them apart.
//!
//! # The session contract (what Zab relies on)
//!
//! Between two nodes there is at most one *session* at a time. Within a session, messages from
//! one node to the other are delivered in the order they were sent, none lost, none duplicated.
//! When a session ends, both ends get [`NetEvent::SessionDown`]: messages sent in it may have been
//! lost (from any point on). A message sent while there is no session either opens a new one
//! (both ends get [`NetEvent::SessionUp`] before its first message) or is lost, and then the
//! sender gets `SessionDown`. Events about one peer reach a node in order: a `SessionDown` is
//! never overtaken by the next session's `SessionUp`.
//!
//! Every send is accounted for:
//!
//! - A message the network cannot send at all (its frame would exceed the transport's frame
//!   limit, see [`crate::payload_bytes_max`]; its destination is not a node address; the network
//!   has stopped) is refused: its sender, and only its sender (the component its
//!   [`Route`] names, on this node), gets [`NetEvent::SendFailed`] with a typed [`SendFailure`].
//!   No session ends for it and nothing else is lost, so no `SessionDown` is reported.
//! - A `SessionDown` covers every message sent to that peer before it: whatever of those had not
//!   arrived is discarded, never delivered into a later session. "Before" is in the order the
//!   network handles the node's sends and reports its events: a message a component sent before
//!   the network reported the `SessionDown` is covered, even if the component had it in flight
//!   to the network at that moment. Messages sent after it belong to the next session (they
//!   open it, and `SessionUp` precedes them at both ends).
//!
//! Several components share one network; each connects to it with a [`route_selector`] so it
//! receives only the messages routed to it, the send failures of its own messages, and every
//! session event.

use std::fmt;

use kompics_core::{Port, Selector};

use crate::address::NodeAddr;
use crate::message::{NetMessage, Route};

/// The Network port type.
pub struct Network;

impl Port for Network {
    /// A message to send; its `dst` names the node, its `route` the component there. The network
    /// sets `src` to the local node.
    type Request = NetMessage;
    type Indication = NetEvent;
}

/// What the network tells the components on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// A message arrived for a component on this node.
    Deliver(NetMessage),
    /// A session with this peer began: messages will arrive in order until it ends.
    SessionUp(NodeAddr),
    /// The session with this peer ended: messages sent in it may have been lost.
    SessionDown(NodeAddr),
    /// A message a component of this node sent to `to` on `route` was refused and not sent.
    /// Only that message is lost; the session with `to` (if any) goes on. Routed like a
    /// delivery: [`NetEvent::route`] is `route`, so only the sending component receives it.
    SendFailed {
        /// The destination of the refused message.
        to: NodeAddr,
        /// The route of the refused message (the sender's own route, by convention).
        route: Route,
        /// Why it was refused.
        error: SendFailure,
    },
}

impl NetEvent {
    /// The route of a delivered or refused message; `None` for session events, which concern
    /// every component of the node.
    pub fn route(&self) -> Option<Route> {
        match self {
            NetEvent::Deliver(m) => Some(m.route),
            NetEvent::SendFailed { route, .. } => Some(*route),
            NetEvent::SessionUp(_) | NetEvent::SessionDown(_) => None,
        }
    }
}

/// Why the network refused a message ([`NetEvent::SendFailed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendFailure {
    /// The message's frame would be `len` bytes (its length field), more than the transport's
    /// `frame_bytes_max` (`max`). Payloads up to [`crate::payload_bytes_max`]`(max)` always fit.
    TooLarge {
        /// The frame length the message needs.
        len: usize,
        /// The transport's frame limit.
        max: usize,
    },
    /// The message could not be put in a frame (the encoder's reason).
    Encode(String),
    /// The destination is not an address a node can listen on (unspecified IP or port 0).
    InvalidDestination,
    /// The transport already keeps state for `max` peers and the destination is a new one.
    TooManyPeers {
        /// The transport's `peers_max`.
        max: usize,
    },
    /// A message to this node itself found `frames_max` messages to itself still waiting. (To
    /// another node a full queue ends the session instead, which `SessionDown` reports.)
    QueueFull {
        /// The transport's `send_queue_frames_max`.
        frames_max: usize,
    },
    /// The network has stopped.
    Stopped,
}

impl fmt::Display for SendFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendFailure::TooLarge { len, max } => {
                write!(f, "message frame of {len} bytes exceeds frame_bytes_max ({max})")
            }
            SendFailure::Encode(reason) => write!(f, "cannot encode the message frame: {reason}"),
            SendFailure::InvalidDestination => f.write_str("not a routable node address"),
            SendFailure::TooManyPeers { max } => {
                write!(f, "already tracking peers_max ({max}) peers")
            }
            SendFailure::QueueFull { frames_max } => {
                write!(f, "queue of messages to this node itself is full ({frames_max})")
            }
            SendFailure::Stopped => f.write_str("the network has stopped"),
        }
    }
}

impl std::error::Error for SendFailure {}

/// A selector for a channel to the network that lets through the messages routed to `route`, the
/// send failures of messages sent on `route`, and every session event.
pub fn route_selector(route: Route) -> Selector<Network> {
    Selector::new().indications(move |e: &NetEvent| e.route().is_none_or(|r| r == route))
}

/// A selector for a channel to the network that lets through the messages (and send failures)
/// for any instance of `service` and every session event.
pub fn service_selector(service: u32) -> Selector<Network> {
    Selector::new().indications(move |e: &NetEvent| e.route().is_none_or(|r| r.service == service))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> NodeAddr {
        NodeAddr(([127, 0, 0, 1], port).into())
    }

    #[test]
    fn a_send_failure_is_routed_to_its_sender_only() {
        let failed = NetEvent::SendFailed {
            to: addr(2),
            route: Route::new(7, 1),
            error: SendFailure::TooLarge { len: 10, max: 5 },
        };
        assert_eq!(failed.route(), Some(Route::new(7, 1)));
        assert_eq!(NetEvent::SessionDown(addr(2)).route(), None, "session events go to everyone");
    }
}
