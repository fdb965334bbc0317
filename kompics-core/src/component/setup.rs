//! Declaring a component's ports while it is built.

use std::any::{Any, TypeId};
use std::sync::{Arc, Weak};

use super::core::{Drain, PortDrain, Schedulable};
use crate::channel::{Detach, PortCore};
use crate::component::ComponentDefinition;
use crate::event::Event;
use crate::mailbox::{Mailbox, Receive};
use crate::port::{Port, Provide, ProvidedPort, Require, RequiredPort};

/// Which side of a port a registered port core is (or a mailbox).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Side {
    Provided,
    Required,
    Mailbox,
}

/// One port of a component, kept without its type so that handles can find it later.
pub(crate) struct PortEntry {
    port: TypeId,
    side: Side,
    core: Arc<dyn Any + Send + Sync>,
    pub(crate) detach: Arc<dyn Detach>,
}

/// The ports of a component, fixed once it is created.
#[derive(Default)]
pub(crate) struct PortTable {
    pub(crate) entries: Vec<PortEntry>,
}

impl PortTable {
    fn find(&self, port: TypeId, side: Side) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.entries.iter().find(|e| e.port == port && e.side == side).map(|e| &e.core)
    }

    pub(crate) fn provided<P: Port>(&self) -> Option<Arc<PortCore<P::Request, P::Indication>>> {
        self.find(TypeId::of::<P>(), Side::Provided)
            .map(|c| c.clone().downcast().expect("port type"))
    }

    pub(crate) fn required<P: Port>(&self) -> Option<Arc<PortCore<P::Indication, P::Request>>> {
        self.find(TypeId::of::<P>(), Side::Required)
            .map(|c| c.clone().downcast().expect("port type"))
    }

    pub(crate) fn mailbox<E: Event>(&self) -> Option<Arc<PortCore<E, ()>>> {
        self.find(TypeId::of::<E>(), Side::Mailbox)
            .map(|c| c.clone().downcast().expect("event type"))
    }
}

/// Handed to a component's factory to create its ports.
///
/// ```
/// # use kompics_core::*;
/// # struct PingPort;
/// # #[derive(Clone, Debug)] struct Ping;
/// # #[derive(Clone, Debug)] struct Pong;
/// # impl Port for PingPort { type Request = Ping; type Indication = Pong; }
/// struct Ponger {
///     port: ProvidedPort<PingPort>,
///     pongs: u64,
/// }
/// impl ComponentDefinition for Ponger {}
/// impl Provide<PingPort> for Ponger {
///     fn handle(&mut self, _ctx: &mut Context<Self>, _ping: Ping) {
///         self.pongs += 1;
///         self.port.trigger(Pong);
///     }
/// }
///
/// let sim = Simulation::new(1);
/// let ponger = sim.create(|setup| Ponger { port: setup.provided(), pongs: 0 });
/// # let _ = ponger;
/// ```
pub struct Setup<C: ComponentDefinition> {
    owner: Weak<dyn Schedulable>,
    /// On a restart, the ports the component already had: reused so channels survive.
    existing: Option<Arc<PortTable>>,
    table: PortTable,
    drains: Vec<Box<dyn PortDrain<C>>>,
}

impl<C: ComponentDefinition> Setup<C> {
    pub(crate) fn new(owner: Weak<dyn Schedulable>, existing: Option<Arc<PortTable>>) -> Self {
        Setup { owner, existing, table: PortTable::default(), drains: Vec::new() }
    }

    pub(crate) fn into_parts(self) -> (PortTable, Vec<Box<dyn PortDrain<C>>>) {
        (self.table, self.drains)
    }

    /// Creates the component's provided port of type `P`; requests arriving on it go to the
    /// component's `Provide<P>` handler. Keep the returned port in a field to trigger
    /// indications on it; the port exists, and receives requests, even if it is never used.
    ///
    /// # Panics
    /// If the component already has a provided port of type `P`.
    pub fn provided<P: Port>(&mut self) -> ProvidedPort<P>
    where
        C: Provide<P>,
    {
        if let Some(existing) = &self.existing {
            let core =
                existing.provided::<P>().expect("a restarted component declares the same ports");
            return ProvidedPort::new(core);
        }
        assert!(
            self.table.find(TypeId::of::<P>(), Side::Provided).is_none(),
            "{} provides {} twice",
            std::any::type_name::<C>(),
            std::any::type_name::<P>()
        );
        let core = Arc::new(PortCore::<P::Request, P::Indication>::new(self.owner.clone()));
        self.drains.push(Box::new(Drain {
            inbox: core.inbox.clone(),
            handler: <C as Provide<P>>::handle,
            name: std::any::type_name::<P>(),
        }));
        self.table.entries.push(PortEntry {
            port: TypeId::of::<P>(),
            side: Side::Provided,
            core: core.clone(),
            detach: core.clone(),
        });
        ProvidedPort::new(core)
    }

    /// Creates the component's required port of type `P`; indications arriving on it go to the
    /// component's `Require<P>` handler. Keep the returned port in a field to trigger requests
    /// on it; the port exists, and receives indications, even if it is never used.
    ///
    /// # Panics
    /// If the component already has a required port of type `P`.
    pub fn required<P: Port>(&mut self) -> RequiredPort<P>
    where
        C: Require<P>,
    {
        if let Some(existing) = &self.existing {
            let core =
                existing.required::<P>().expect("a restarted component declares the same ports");
            return RequiredPort::new(core);
        }
        assert!(
            self.table.find(TypeId::of::<P>(), Side::Required).is_none(),
            "{} requires {} twice",
            std::any::type_name::<C>(),
            std::any::type_name::<P>()
        );
        let core = Arc::new(PortCore::<P::Indication, P::Request>::new(self.owner.clone()));
        self.drains.push(Box::new(Drain {
            inbox: core.inbox.clone(),
            handler: <C as Require<P>>::handle,
            name: std::any::type_name::<P>(),
        }));
        self.table.entries.push(PortEntry {
            port: TypeId::of::<P>(),
            side: Side::Required,
            core: core.clone(),
            detach: core.clone(),
        });
        RequiredPort::new(core)
    }

    /// Creates the component's mailbox for events of type `E`, which any thread can use to tell
    /// the component events (see [`Mailbox`]); they go to the component's `Receive<E>` handler.
    ///
    /// # Panics
    /// If the component already has a mailbox for `E`.
    pub fn mailbox<E: Event>(&mut self) -> Mailbox<E>
    where
        C: Receive<E>,
    {
        let core = match &self.existing {
            Some(existing) => {
                existing.mailbox::<E>().expect("a restarted component declares the same mailboxes")
            }
            None => {
                assert!(
                    self.table.find(TypeId::of::<E>(), Side::Mailbox).is_none(),
                    "{} has two mailboxes for {}",
                    std::any::type_name::<C>(),
                    std::any::type_name::<E>()
                );
                let core = Arc::new(PortCore::<E, ()>::new(self.owner.clone()));
                self.drains.push(Box::new(Drain {
                    inbox: core.inbox.clone(),
                    handler: <C as Receive<E>>::receive,
                    name: std::any::type_name::<E>(),
                }));
                self.table.entries.push(PortEntry {
                    port: TypeId::of::<E>(),
                    side: Side::Mailbox,
                    core: core.clone(),
                    detach: core.clone(),
                });
                core
            }
        };
        Mailbox::from_parts(core, self.owner.clone())
    }
}
