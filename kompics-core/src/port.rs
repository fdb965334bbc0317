//! Port types and the two sides of a port.
//!
//! A port type declares two event types: **requests** travel towards the component that
//! *provides* the port, **indications** travel from it to the components that *require* it.
//! The compiler checks directions: [`ProvidedPort::trigger`] only takes indications and
//! [`RequiredPort::trigger`] only takes requests.
//!
//! ```
//! use kompics_core::Port;
//!
//! /// A port of a component that answers pings.
//! struct PingPort;
//!
//! #[derive(Clone, Debug)]
//! struct Ping(u64);
//! #[derive(Clone, Debug)]
//! struct Pong(u64);
//!
//! impl Port for PingPort {
//!     type Request = Ping;
//!     type Indication = Pong;
//! }
//! ```
//!
//! Triggering a request on a provided port does not compile:
//!
//! ```compile_fail,E0308
//! use kompics_core::{ComponentDefinition, Context, Port, Provide, ProvidedPort};
//! struct PingPort;
//! #[derive(Clone, Debug)] struct Ping;
//! #[derive(Clone, Debug)] struct Pong;
//! impl Port for PingPort { type Request = Ping; type Indication = Pong; }
//! struct Ponger { port: ProvidedPort<PingPort> }
//! impl ComponentDefinition for Ponger {}
//! impl Provide<PingPort> for Ponger {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, _ping: Ping) {
//!         self.port.trigger(Ping); // a request cannot go out of a provided port
//!     }
//! }
//! ```
//!
//! Nor does triggering an indication on a required port:
//!
//! ```compile_fail,E0308
//! use kompics_core::{ComponentDefinition, Context, Port, Require, RequiredPort};
//! struct PingPort;
//! #[derive(Clone, Debug)] struct Ping;
//! #[derive(Clone, Debug)] struct Pong;
//! impl Port for PingPort { type Request = Ping; type Indication = Pong; }
//! struct Pinger { port: RequiredPort<PingPort> }
//! impl ComponentDefinition for Pinger {}
//! impl Require<PingPort> for Pinger {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, _pong: Pong) {
//!         self.port.trigger(Pong); // an indication cannot go out of a required port
//!     }
//! }
//! ```

use std::marker::PhantomData;
use std::sync::Arc;

use crate::channel::{PortCore, Trigger};
use crate::component::ComponentDefinition;
use crate::context::Context;
use crate::event::Event;

/// A port type: the pair of event types that flow through it.
///
/// A port type is a marker (usually an empty struct); it is never instantiated. Use enums as the
/// event types when a port carries several kinds of events.
pub trait Port: 'static {
    /// Events towards the provider of the port.
    type Request: Event;
    /// Events from the provider of the port to the components that require it.
    type Indication: Event;
}

/// Handles the requests of a port the component provides.
///
/// A component provides at most one port of each port type.
pub trait Provide<P: Port>: ComponentDefinition {
    /// Handles one request that arrived on the provided port `P`.
    fn handle(&mut self, ctx: &mut Context<Self>, request: P::Request);
}

/// Handles the indications of a port the component requires.
///
/// A component requires at most one port of each port type.
pub trait Require<P: Port>: ComponentDefinition {
    /// Handles one indication that arrived on the required port `P`.
    fn handle(&mut self, ctx: &mut Context<Self>, indication: P::Indication);
}

/// The side of a port a component provides: it receives requests and triggers indications.
///
/// Created by [`Setup::provided`](crate::Setup::provided) and kept as a field of the component.
pub struct ProvidedPort<P: Port> {
    out: Trigger<P::Request, P::Indication>,
}

impl<P: Port> ProvidedPort<P> {
    pub(crate) fn new(core: Arc<PortCore<P::Request, P::Indication>>) -> Self {
        ProvidedPort { out: Trigger::new(core) }
    }

    /// Sends `indication` down every channel connected to this port (one clone per channel,
    /// skipping channels whose selector rejects it). With no channel, the event is dropped.
    #[inline]
    pub fn trigger(&mut self, indication: P::Indication) {
        self.out.trigger(indication)
    }

    /// A handle on this port, to connect channels to it from outside the component.
    pub fn share(&self) -> ProvidedRef<P> {
        ProvidedRef { core: self.out.core().clone(), _port: PhantomData }
    }
}

/// The side of a port a component requires: it receives indications and triggers requests.
///
/// Created by [`Setup::required`](crate::Setup::required) and kept as a field of the component.
pub struct RequiredPort<P: Port> {
    out: Trigger<P::Indication, P::Request>,
}

impl<P: Port> RequiredPort<P> {
    pub(crate) fn new(core: Arc<PortCore<P::Indication, P::Request>>) -> Self {
        RequiredPort { out: Trigger::new(core) }
    }

    /// Sends `request` down every channel connected to this port (one clone per channel,
    /// skipping channels whose selector rejects it). With no channel, the event is dropped.
    #[inline]
    pub fn trigger(&mut self, request: P::Request) {
        self.out.trigger(request)
    }

    /// A handle on this port, to connect channels to it from outside the component.
    pub fn share(&self) -> RequiredRef<P> {
        RequiredRef { core: self.out.core().clone(), _port: PhantomData }
    }
}

/// A shareable handle on a provided port, used to connect channels.
pub struct ProvidedRef<P: Port> {
    pub(crate) core: Arc<PortCore<P::Request, P::Indication>>,
    _port: PhantomData<fn() -> P>,
}

impl<P: Port> ProvidedRef<P> {
    pub(crate) fn from_core(core: Arc<PortCore<P::Request, P::Indication>>) -> Self {
        ProvidedRef { core, _port: PhantomData }
    }
}

impl<P: Port> Clone for ProvidedRef<P> {
    fn clone(&self) -> Self {
        ProvidedRef { core: self.core.clone(), _port: PhantomData }
    }
}

/// A shareable handle on a required port, used to connect channels.
pub struct RequiredRef<P: Port> {
    pub(crate) core: Arc<PortCore<P::Indication, P::Request>>,
    _port: PhantomData<fn() -> P>,
}

impl<P: Port> RequiredRef<P> {
    pub(crate) fn from_core(core: Arc<PortCore<P::Indication, P::Request>>) -> Self {
        RequiredRef { core, _port: PhantomData }
    }
}

impl<P: Port> Clone for RequiredRef<P> {
    fn clone(&self) -> Self {
        RequiredRef { core: self.core.clone(), _port: PhantomData }
    }
}
