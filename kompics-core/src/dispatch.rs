//! Several event types per port direction, each with its own handler.
//!
//! The rules and an example are on [`ProvideEvent`].

use crate::component::ComponentDefinition;
use crate::context::Context;
use crate::port::Port;

/// An event type that is one case of the event type `E` of a port direction (a variant of the
/// enum [`port_events!`](crate::port_events) generates). Every type is the one case of itself,
/// so [`subscribe!`](crate::subscribe) also works on ports whose events are not enums.
pub trait EventCase<E>: Sized {
    /// Whether `event` is this case.
    fn matches(event: &E) -> bool;
    /// This case out of `event`, or `event` back if it is another case.
    fn take(event: E) -> Result<Self, E>;
}

impl<E> EventCase<E> for E {
    #[inline]
    fn matches(_event: &E) -> bool {
        true
    }

    #[inline]
    fn take(event: E) -> Result<E, E> {
        Ok(event)
    }
}

/// Handles the requests of type `E` (one case of `P::Request`) of a port `P` the component
/// provides. List `E` in the component's [`subscribe!`](crate::subscribe) for port `P`.
///
/// # Several event types per direction
///
/// A port has one request type and one indication type; a port that carries several kinds of
/// events uses an enum for each. With [`Provide`](crate::Provide) /
/// [`Require`](crate::Require) alone, every requirer gets every variant and `match`es them
/// all, even those it ignores. This module gives Kompics' per-event-type subscriptions on top of
/// the same ports, at no cost to components that do not use it:
///
/// - [`port_events!`](crate::port_events) declares the enum from a list of event types, with a
///   `From` impl per type (so `port.trigger(Put { .. })` works without naming the variant) and an
///   [`EventCase`] impl per type (so a handler can pick its variant out).
/// - A component implements [`ProvideEvent<P, E>`] or [`RequireEvent<P, E>`] for each event type
///   it handles, and [`subscribe!`](crate::subscribe) lists them: it generates the component's
///   `Provide<P>` / `Require<P>` impl, which dispatches each event to its handler.
/// - Events of types a component did not subscribe to are dropped by the channel before they
///   are queued: they never wake the component.
///
/// Ports stay what they are: a component may still implement `Provide<P>` by hand with one
/// `match`, and the components at the other end cannot tell the difference.
///
/// ```
/// use kompics_core::*;
///
/// #[derive(Clone, Debug)] pub struct Leader(u32);
/// #[derive(Clone, Debug)] pub struct Delivered(String);
///
/// port_events! {
///     /// What the group tells its users.
///     #[derive(Clone, Debug)]
///     pub enum GroupIndication { Leader(Leader), Delivered(Delivered) }
/// }
///
/// pub struct Group;
/// impl Port for Group {
///     type Request = ();
///     type Indication = GroupIndication;
/// }
///
/// struct Source { port: ProvidedPort<Group> }
/// impl ComponentDefinition for Source {
///     fn on_start(&mut self, _ctx: &mut Context<Self>) {
///         self.port.trigger(Leader(2).into());
///         self.port.trigger(Delivered("x".into()).into());
///     }
/// }
/// impl Provide<Group> for Source {
///     fn handle(&mut self, _ctx: &mut Context<Self>, _request: ()) {}
/// }
///
/// // Watches leaders only: it has no handler for `Delivered`, and never receives one.
/// struct LeaderWatch { _port: RequiredPort<Group>, leader: Option<u32> }
/// impl ComponentDefinition for LeaderWatch {}
/// impl RequireEvent<Group, Leader> for LeaderWatch {
///     fn handle(&mut self, _ctx: &mut Context<Self>, Leader(id): Leader) {
///         self.leader = Some(id);
///     }
/// }
/// subscribe!(LeaderWatch: Require<Group> { Leader });
///
/// let sim = Simulation::new(1);
/// let source = sim.create(|s| Source { port: s.provided() });
/// let watch = sim.create(|s| LeaderWatch { _port: s.required(), leader: None });
/// connect(&source.provided::<Group>(), &watch.required::<Group>());
/// watch.start();
/// source.start();
/// sim.run_until_quiescent(std::time::Duration::from_secs(1));
/// assert_eq!(watch.on_definition(|w| w.leader), Some(Some(2)));
/// ```
pub trait ProvideEvent<P: Port, E>: ComponentDefinition {
    /// Handles one request of type `E`.
    fn handle(&mut self, ctx: &mut Context<Self>, event: E);
}

/// Handles the indications of type `E` (one case of `P::Indication`) of a port `P` the
/// component requires. List `E` in the component's [`subscribe!`](crate::subscribe) for port
/// `P`.
pub trait RequireEvent<P: Port, E>: ComponentDefinition {
    /// Handles one indication of type `E`.
    fn handle(&mut self, ctx: &mut Context<Self>, event: E);
}

/// Declares a port's event enum from a list of event types, one variant each, with a `From`
/// impl per type and an [`EventCase`] impl per type. Each type may appear once.
///
/// ```
/// # use kompics_core::*;
/// #[derive(Clone, Debug)] pub struct Get { pub key: String }
/// #[derive(Clone, Debug)] pub struct Put { pub key: String, pub value: u64 }
/// #[derive(Clone, Debug)] pub struct Value(pub Option<u64>);
///
/// port_events! {
///     #[derive(Clone, Debug)]
///     pub enum KvRequest {
///         Get(Request<Get, Value>), // answered to the requester alone
///         Put(Put),                 // fire and forget
///     }
/// }
/// let put: KvRequest = Put { key: "a".into(), value: 1 }.into();
/// assert!(<Put as EventCase<KvRequest>>::matches(&put));
/// ```
#[macro_export]
macro_rules! port_events {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($ty:ty) ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant($ty), )+
        }
        $(
            impl ::core::convert::From<$ty> for $name {
                #[inline]
                fn from(event: $ty) -> Self {
                    $name::$variant(event)
                }
            }

            impl $crate::EventCase<$name> for $ty {
                #[inline]
                fn matches(event: &$name) -> bool {
                    ::core::matches!(event, $name::$variant(_))
                }

                #[inline]
                #[allow(unreachable_patterns)]
                fn take(event: $name) -> ::core::result::Result<Self, $name> {
                    match event {
                        $name::$variant(e) => ::core::result::Result::Ok(e),
                        other => ::core::result::Result::Err(other),
                    }
                }
            }
        )+
    };
}

/// Subscribes a component to some event types of a port direction: generates its
/// `Provide<P>` (or `Require<P>`) impl, which hands each event to the component's
/// [`ProvideEvent<P, E>`] (or [`RequireEvent<P, E>`]) impl for its type, and tells the port to
/// drop the events of every other type before they are queued.
///
/// ```
/// # use kompics_core::*;
/// # #[derive(Clone, Debug)] pub struct Get(String);
/// # #[derive(Clone, Debug)] pub struct Put(String, u64);
/// # port_events! { #[derive(Clone, Debug)] pub enum KvRequest { Get(Request<Get, u64>), Put(Put) } }
/// # pub struct Kv;
/// # impl Port for Kv { type Request = KvRequest; type Indication = u64; }
/// struct Store { _port: ProvidedPort<Kv>, puts: u64 }
/// impl ComponentDefinition for Store {}
/// impl ProvideEvent<Kv, Request<Get, u64>> for Store {
///     fn handle(&mut self, _ctx: &mut Context<Self>, get: Request<Get, u64>) {
///         let puts = self.puts;
///         get.reply(puts);
///     }
/// }
/// impl ProvideEvent<Kv, Put> for Store {
///     fn handle(&mut self, _ctx: &mut Context<Self>, _put: Put) {
///         self.puts += 1;
///     }
/// }
/// subscribe!(Store: Provide<Kv> { Request<Get, u64>, Put });
/// ```
#[macro_export]
macro_rules! subscribe {
    (@impl $component:ty, $side:ident, $each:ident, $dir:ident, $port:ty, $($event:ty),+) => {
        impl $crate::$side<$port> for $component {
            const ACCEPTS: ::core::option::Option<fn(&<$port as $crate::Port>::$dir) -> bool> = {
                fn accepts(event: &<$port as $crate::Port>::$dir) -> bool {
                    $( <$event as $crate::EventCase<<$port as $crate::Port>::$dir>>::matches(event) )||+
                }
                ::core::option::Option::Some(accepts)
            };

            #[inline]
            fn handle(
                &mut self,
                ctx: &mut $crate::Context<Self>,
                event: <$port as $crate::Port>::$dir,
            ) {
                $(
                    let event = match <$event as $crate::EventCase<<$port as $crate::Port>::$dir>>::take(event) {
                        ::core::result::Result::Ok(e) => {
                            return <Self as $crate::$each<$port, $event>>::handle(self, ctx, e);
                        }
                        ::core::result::Result::Err(other) => other,
                    };
                )+
                // Another case: `ACCEPTS` keeps those off the port; one told directly is dropped.
                let _ = event;
            }
        }
    };
    ($component:ty : Provide<$port:ty> { $($event:ty),+ $(,)? }) => {
        $crate::subscribe!(@impl $component, Provide, ProvideEvent, Request, $port, $($event),+);
    };
    ($component:ty : Require<$port:ty> { $($event:ty),+ $(,)? }) => {
        $crate::subscribe!(@impl $component, Require, RequireEvent, Indication, $port, $($event),+);
    };
}
