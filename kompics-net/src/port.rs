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
//! Several components share one network; each connects to it with a [`route_selector`] so it
//! receives only the messages routed to it (and every session event).

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
}

impl NetEvent {
    /// The route of a delivered message; `None` for session events.
    pub fn route(&self) -> Option<Route> {
        match self {
            NetEvent::Deliver(m) => Some(m.route),
            NetEvent::SessionUp(_) | NetEvent::SessionDown(_) => None,
        }
    }
}

/// A selector for a channel to the network that lets through the messages routed to `route` and
/// every session event.
pub fn route_selector(route: Route) -> Selector<Network> {
    Selector::new().indications(move |e: &NetEvent| e.route().is_none_or(|r| r == route))
}

/// A selector for a channel to the network that lets through the messages for any instance of
/// `service` and every session event.
pub fn service_selector(service: u32) -> Selector<Network> {
    Selector::new().indications(move |e: &NetEvent| e.route().is_none_or(|r| r.service == service))
}
