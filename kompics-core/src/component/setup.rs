//! Declaring a component's ports, and the children it is made of, while it is built.
//!
//! Composite components: see [`ExportProvided`]; the rules are written there.

use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::core::{ComponentCore, Drain, PortDrain, Schedulable};
use super::{create_component, Component, ComponentId};
use crate::channel::{Detach, PortCore};
use crate::component::ComponentDefinition;
use crate::event::Event;
use crate::mailbox::{Mailbox, Receive};
use crate::port::{Port, Provide, ProvidedPort, ProvidedRef, Require, RequiredPort, RequiredRef};
use crate::system::Executor;

/// Marks a component that offers a child's provided port `P` as its own, declared with
/// [`Setup::export_provided`]; [`Component::exported_provided`] then gives the port.
///
/// # Composite components
///
/// A component can be made of children created in its factory with [`Setup::create`], and
/// offer their ports as its own with [`Setup::export_provided`] / [`Setup::export_required`]
/// (Kompics' port faces). The exported port *is* the child's port: a channel connected to the
/// parent's port is connected to the child, with no forwarding hop. Because the factory runs
/// inside `create`, the composite is complete, children and exported ports included, when
/// `create` returns: it can be wired from outside at once.
///
/// ```
/// use kompics_core::*;
///
/// struct Square;
/// impl Port for Square { type Request = Request<u64, u64>; type Indication = u64; }
///
/// struct Squarer { _port: ProvidedPort<Square> }
/// impl ComponentDefinition for Squarer {}
/// impl Provide<Square> for Squarer {
///     fn handle(&mut self, _ctx: &mut Context<Self>, r: Request<u64, u64>) {
///         let n = *r.payload();
///         r.reply(n * n);
///     }
/// }
///
/// /// A node made of one `Squarer`, whose port it offers as its own.
/// struct Node { squarer: Component<Squarer> }
/// impl ComponentDefinition for Node {}
/// impl ExportProvided<Square> for Node {}
///
/// let sim = Simulation::new(1);
/// let node = sim.create(|s| {
///     let squarer = s.create(|s| Squarer { _port: s.provided() });
///     s.export_provided(&squarer.provided::<Square>());
///     Node { squarer }
/// });
/// node.start(); // starts the squarer too
/// let mut pending = node.exported_provided::<Square>().ask(12);
/// assert_eq!(sim.run_until_answered(&mut pending, std::time::Duration::from_secs(1)), Ok(144));
/// ```
///
/// Children created in the factory belong to the component's structure, like its ports: when
/// the component is [restarted](crate::FaultAction::Restart), its factory runs again and gets
/// the same children back from `create` (the same types must be created in the same order);
/// each is restarted with fresh state from its own factory, keeping its ports and channels, so
/// the channels to the exported ports survive. Children created later, with
/// [`Context::create`](crate::Context::create), are killed on restart.
pub trait ExportProvided<P: Port>: ComponentDefinition {}

/// Marks a component that offers a child's required port `P` as its own, declared with
/// [`Setup::export_required`]; [`Component::exported_required`] then gives the port.
pub trait ExportRequired<P: Port>: ComponentDefinition {}

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

/// The ports of a component, fixed once it is created, and the children its factory created.
#[derive(Default)]
pub(crate) struct PortTable {
    pub(crate) entries: Vec<PortEntry>,
    /// The children created by the factory, in order (each an `Arc<ComponentCore<D>>`), handed
    /// back to the factory when the component is restarted. Emptied when it is killed.
    pub(crate) structure: Mutex<Vec<(ComponentId, Arc<dyn Any + Send + Sync>)>>,
    /// How many of `structure` the factory already took back during a restart.
    pub(crate) structure_taken: AtomicU64,
}

impl PortTable {
    /// Whether `id` is a child created by the factory.
    pub(crate) fn is_structural(&self, id: ComponentId) -> bool {
        self.structure.lock().iter().any(|(c, _)| *c == id)
    }

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

/// What a factory's `Setup` produced: the port table, the drains of the component's own ports,
/// and the children it created.
pub(crate) type SetupParts<C> = (PortTable, Vec<Box<dyn PortDrain<C>>>, Vec<Arc<dyn Schedulable>>);

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
    exec: Arc<dyn Executor>,
    /// On a restart, the ports the component already had: reused so channels survive.
    existing: Option<Arc<PortTable>>,
    table: PortTable,
    drains: Vec<Box<dyn PortDrain<C>>>,
    /// The children created by the factory (new, or handed back on a restart).
    children: Vec<Arc<dyn Schedulable>>,
}

impl<C: ComponentDefinition> Setup<C> {
    pub(crate) fn new(
        owner: Weak<dyn Schedulable>,
        exec: Arc<dyn Executor>,
        existing: Option<Arc<PortTable>>,
    ) -> Self {
        if let Some(existing) = &existing {
            existing.structure_taken.store(0, Ordering::Relaxed);
        }
        Setup {
            owner,
            exec,
            existing,
            table: PortTable::default(),
            drains: Vec::new(),
            children: Vec::new(),
        }
    }

    pub(crate) fn into_parts(self) -> SetupParts<C> {
        (self.table, self.drains, self.children)
    }

    /// Creates a child component as part of this one, now, so that the factory can connect it
    /// and [export](Setup::export_provided) its ports before `create` returns. Like a child
    /// made with [`Context::create`](crate::Context::create), it starts, stops and dies with
    /// this component and its faults come to this component's
    /// [`on_fault`](ComponentDefinition::on_fault); unlike one, it survives a restart of this
    /// component (see [`ExportProvided`]).
    ///
    /// # Panics
    /// During a restart, if the factory does not create the same types of children in the same
    /// order as the first time.
    pub fn create<D, F>(&mut self, factory: F) -> Component<D>
    where
        D: ComponentDefinition,
        F: Fn(&mut Setup<D>) -> D + Send + Sync + 'static,
    {
        if let Some(existing) = &self.existing {
            let i = existing.structure_taken.fetch_add(1, Ordering::Relaxed) as usize;
            let structure = existing.structure.lock();
            let core = structure
                .get(i)
                .and_then(|(_, c)| c.clone().downcast::<ComponentCore<D>>().ok())
                .expect("a restarted component creates the same children in the same order");
            self.children.push(core.clone());
            return Component { core };
        }
        let child =
            create_component(self.exec.clone(), Some(self.owner.clone()), Box::new(factory));
        self.table.structure.lock().push((child.id(), child.core.clone()));
        self.children.push(child.core.clone());
        child
    }

    /// Offers `port`, a provided port of a child (usually one made with [`Setup::create`]),
    /// as this component's provided port of type `P`: [`Component::exported_provided`] returns
    /// it, and a channel connected to it is connected to the child.
    ///
    /// # Panics
    /// If the component already has a provided port of type `P`.
    pub fn export_provided<P: Port>(&mut self, port: &ProvidedRef<P>)
    where
        C: ExportProvided<P>,
    {
        self.export(TypeId::of::<P>(), Side::Provided, port.core.clone(), "provided");
    }

    /// Offers `port`, a required port of a child (usually one made with [`Setup::create`]),
    /// as this component's required port of type `P`: [`Component::exported_required`] returns
    /// it, and a channel connected to it is connected to the child.
    ///
    /// # Panics
    /// If the component already has a required port of type `P`.
    pub fn export_required<P: Port>(&mut self, port: &RequiredRef<P>)
    where
        C: ExportRequired<P>,
    {
        self.export(TypeId::of::<P>(), Side::Required, port.core.clone(), "required");
    }

    fn export<T: Detach + Any + Send + Sync>(
        &mut self,
        port: TypeId,
        side: Side,
        core: Arc<T>,
        what: &str,
    ) {
        if self.existing.is_some() {
            // A restart: the children, hence their ports, are the same, and already exported.
            return;
        }
        assert!(
            self.table.find(port, side).is_none(),
            "{} has two {what} ports of one type",
            std::any::type_name::<C>(),
        );
        self.table.entries.push(PortEntry { port, side, core: core.clone(), detach: core });
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
        let core = Arc::new(PortCore::<P::Request, P::Indication>::subscribed(
            self.owner.clone(),
            <C as Provide<P>>::ACCEPTS,
        ));
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
        let core = Arc::new(PortCore::<P::Indication, P::Request>::subscribed(
            self.owner.clone(),
            <C as Require<P>>::ACCEPTS,
        ));
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
