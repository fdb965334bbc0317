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
use crate::component::core::enqueue;
use crate::component::ComponentDefinition;
use crate::context::Context;
use crate::event::Event;
use crate::request::{Pending, PortReplier, Request, Responder};

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
    /// Which requests the component handles; the others are dropped before they are queued
    /// (they do not wake the component). `None`, the default, means all of them.
    /// [`subscribe!`](crate::subscribe) sets it from the event types it lists.
    const ACCEPTS: Option<fn(&P::Request) -> bool> = None;

    /// Handles one request that arrived on the provided port `P`.
    fn handle(&mut self, ctx: &mut Context<Self>, request: P::Request);
}

/// Handles the indications of a port the component requires.
///
/// A component requires at most one port of each port type.
pub trait Require<P: Port>: ComponentDefinition {
    /// Which indications the component handles; the others are dropped before they are queued
    /// (they do not wake the component). `None`, the default, means all of them.
    /// [`subscribe!`](crate::subscribe) sets it from the event types it lists.
    const ACCEPTS: Option<fn(&P::Indication) -> bool> = None;

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
    /// Where answers to this port's requests go: its own inbox, past the channels. Made once
    /// per port, so a request costs a reference-count increment, not an allocation.
    replier: Arc<PortReplier<P::Indication>>,
}

impl<P: Port> RequiredPort<P> {
    pub(crate) fn new(core: Arc<PortCore<P::Indication, P::Request>>) -> Self {
        let replier = Arc::new(PortReplier {
            inbox: core.inbox.clone(),
            target: core.owner.clone(),
            accepts: core.accepts,
        });
        RequiredPort { out: Trigger::new(core), replier }
    }

    /// Sends a request that expects an answer (see [`Request`]): the answer comes back to this
    /// component alone, as an indication of this port, even if the port has channels to other
    /// providers or the provider has other requirers. The request goes down every channel of
    /// the port like any request; with several providers, each may answer.
    ///
    /// The port's request type must be (or convert from) `Request<Q, A>` and the answer type
    /// `A` must convert into its indication type; [`port_events!`](crate::port_events)
    /// generates both conversions for enum variants.
    ///
    /// ```
    /// # use kompics_core::*;
    /// # struct Square;
    /// # #[derive(Clone, Debug)] struct Root(u64);
    /// # impl Port for Square { type Request = Request<u64, Root>; type Indication = Root; }
    /// struct Student { port: RequiredPort<Square>, roots: Vec<u64> }
    /// impl ComponentDefinition for Student {
    ///     fn on_start(&mut self, _ctx: &mut Context<Self>) {
    ///         self.port.request(49);
    ///     }
    /// }
    /// impl Require<Square> for Student {
    ///     fn handle(&mut self, _ctx: &mut Context<Self>, Root(r): Root) {
    ///         self.roots.push(r); // only the answers to this component's own requests
    ///     }
    /// }
    /// ```
    #[inline]
    pub fn request<Q, A>(&mut self, request: Q)
    where
        Request<Q, A>: Into<P::Request>,
        A: Into<P::Indication> + 'static,
    {
        let responder = Responder::port(self.replier.clone());
        self.out.trigger(Request::new(request, responder).into())
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

    /// Asks the provider from outside the runtime (a test, a `main`, another thread): the
    /// request goes straight to the provider's queue, through no channel, and the answer comes
    /// back to the returned [`Pending`] alone. Wait for it with [`Pending::wait`] on the
    /// threaded runtime, or with
    /// [`Simulation::run_until_answered`](crate::Simulation::run_until_answered) in the
    /// simulator, where the provider handles it during `run_for`/`run_until` like any event.
    ///
    /// Never fails here: if the provider is gone, or is killed before answering, the pending
    /// answer resolves to [`AskError::Dropped`](crate::AskError::Dropped).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use kompics_core::*;
    /// # struct Square;
    /// # #[derive(Clone, Debug)] struct Root(u64);
    /// # impl Port for Square { type Request = Request<u64, Root>; type Indication = Root; }
    /// # struct Squarer { _port: ProvidedPort<Square> }
    /// # impl ComponentDefinition for Squarer {}
    /// # impl Provide<Square> for Squarer {
    /// #     fn handle(&mut self, _ctx: &mut Context<Self>, r: Request<u64, Root>) {
    /// #         let n = (*r.payload() as f64).sqrt() as u64;
    /// #         r.reply(Root(n));
    /// #     }
    /// # }
    /// let runtime = Runtime::new(RuntimeConfig::default().workers(1));
    /// let squarer = runtime.create(|s| Squarer { _port: s.provided() });
    /// squarer.start();
    /// let root = squarer.provided::<Square>().ask(64).wait(Duration::from_secs(10));
    /// assert_eq!(root.unwrap().0, 8);
    /// ```
    pub fn ask<Q, A>(&self, request: Q) -> Pending<A>
    where
        Request<Q, A>: Into<P::Request>,
        A: Send + 'static,
    {
        let (pending, responder) = Pending::new();
        let event: P::Request = Request::new(request, responder).into();
        // Dropping the event (no provider, or one that does not handle it) drops the responder,
        // which resolves the pending answer to `Dropped`.
        if self.core.accepts.is_none_or(|accepts| accepts(&event)) {
            if let Some(target) = self.core.owner.upgrade() {
                enqueue(&target, || self.core.inbox.queue.push(event));
            }
        }
        pending
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
