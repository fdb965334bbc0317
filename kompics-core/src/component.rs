//! Components: state plus handlers, with a lifecycle and a supervisor.
//!
//! A component is a struct implementing [`ComponentDefinition`] (lifecycle hooks and fault
//! handling, all optional) and one [`Provide`](crate::Provide) or
//! [`Require`](crate::Require) impl per port. The runtime runs at most one handler of a
//! component at a time, so its state needs no locks.
//!
//! # Lifecycle
//!
//! `created → (start) → active ⇄ (stop) passive → (kill) → destroyed`; a panic moves an active
//! component to `faulty`, from which its supervisor restarts, stops or destroys it. Start and stop
//! propagate to children; kill destroys the whole subtree.
//!
//! # Events reaching a component that is not running
//!
//! The rule, tested in `tests/lifecycle.rs`:
//! - **created, stopped or faulty**: events are kept, in order, and handled once the component
//!   (re)starts. Nothing is lost by connecting and triggering before a start.
//! - **destroyed**: events are dropped (the channels were disconnected when it was killed; only
//!   events already in flight can still arrive).
//! - Timers are cancelled when a component stops, faults or is killed.

pub(crate) mod core;
pub(crate) mod setup;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use self::core::{enqueue_control, ComponentCore, Control, Factory, Schedulable};
use self::setup::{ExportProvided, ExportRequired};
use crate::context::Context;
use crate::event::Event;
use crate::mailbox::{Mailbox, Receive};
use crate::port::{Port, Provide, ProvidedRef, Require, RequiredRef};
use crate::supervision::{Fault, FaultAction};
use crate::system::Executor;

/// Identifies a component within its runtime. Ids are never reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId(pub(crate) u64);

impl ComponentId {
    /// The id as a number (stable for the life of the runtime; deterministic in the simulator).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// Where a component is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleState {
    /// Created or stopped: events are queued, not handled.
    Passive,
    /// Started: events are handled.
    Active,
    /// A handler panicked; events are queued until the supervisor restarts it.
    Faulty,
    /// Killed: its state is dropped and events are discarded.
    Destroyed,
}

impl LifecycleState {
    pub(crate) fn from_u8(v: u8) -> LifecycleState {
        match v {
            0 => LifecycleState::Passive,
            1 => LifecycleState::Active,
            2 => LifecycleState::Faulty,
            _ => LifecycleState::Destroyed,
        }
    }

    pub(crate) fn as_u8(self) -> u8 {
        match self {
            LifecycleState::Passive => 0,
            LifecycleState::Active => 1,
            LifecycleState::Faulty => 2,
            LifecycleState::Destroyed => 3,
        }
    }
}

/// The behaviour of a component beyond its port handlers. Every method has a default.
pub trait ComponentDefinition: Send + Sized + 'static {
    /// Runs once after the component is created (and again after a
    /// [restart](FaultAction::Restart)), before any other handler: the place to create and
    /// connect children, as a Kompics constructor does.
    fn on_init(&mut self, _ctx: &mut Context<Self>) {}

    /// Runs each time the component starts, after its children were told to start.
    fn on_start(&mut self, _ctx: &mut Context<Self>) {}

    /// Runs each time the component stops (and before it is killed while active).
    fn on_stop(&mut self, _ctx: &mut Context<Self>) {}

    /// Runs once when the component is killed, before its state is dropped.
    fn on_kill(&mut self, _ctx: &mut Context<Self>) {}

    /// Decides what to do about a child that failed. The default escalates, as in Kompics.
    fn on_fault(&mut self, _ctx: &mut Context<Self>, _fault: &Fault) -> FaultAction {
        FaultAction::Escalate
    }
}

/// A handle on a component: to connect its ports, start, stop or kill it, and inspect it.
///
/// Cloning the handle does not clone the component.
pub struct Component<C: ComponentDefinition> {
    pub(crate) core: Arc<ComponentCore<C>>,
}

impl<C: ComponentDefinition> Clone for Component<C> {
    fn clone(&self) -> Self {
        Component { core: self.core.clone() }
    }
}

impl<C: ComponentDefinition> fmt::Debug for Component<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Component<{}>({})", std::any::type_name::<C>(), self.core.header.id)
    }
}

/// The lifecycle of a component, whatever its definition: what code that handles components of
/// different types together needs (see [`start_all`]). [`Component`] implements it.
pub trait Lifecycle {
    /// Starts the component (see [`Component::start`]).
    fn start(&self);
    /// Stops the component (see [`Component::stop`]).
    fn stop(&self);
    /// Kills the component (see [`Component::kill`]).
    fn kill(&self);
}

impl<C: ComponentDefinition> Lifecycle for Component<C> {
    fn start(&self) {
        Component::start(self);
    }

    fn stop(&self) {
        Component::stop(self);
    }

    fn kill(&self) {
        Component::kill(self);
    }
}

/// Starts each of `components`, in order: components of different types wired together are
/// started in one line.
///
/// ```
/// use kompics_core::{start_all, ComponentDefinition, LifecycleState, Setup, Simulation};
///
/// struct Server;
/// impl ComponentDefinition for Server {}
/// struct Client;
/// impl ComponentDefinition for Client {}
///
/// let sim = Simulation::new(1);
/// let server = sim.create(|_: &mut Setup<Server>| Server);
/// let client = sim.create(|_: &mut Setup<Client>| Client);
/// start_all(&[&server, &client]);
/// sim.run_until_quiescent(std::time::Duration::from_secs(1));
/// assert_eq!(server.state(), LifecycleState::Active);
/// assert_eq!(client.state(), LifecycleState::Active);
/// ```
pub fn start_all(components: &[&dyn Lifecycle]) {
    for component in components {
        component.start();
    }
}

impl<C: ComponentDefinition> Component<C> {
    /// The component's id.
    pub fn id(&self) -> ComponentId {
        self.core.header.id
    }

    /// Where the component is in its lifecycle.
    pub fn state(&self) -> LifecycleState {
        LifecycleState::from_u8(self.core.header.state.load(Ordering::Acquire))
    }

    /// Starts the component (and its children). Starting an active component does nothing.
    pub fn start(&self) {
        enqueue_control(&self.as_schedulable(), Control::Start);
    }

    /// Stops the component (and its children): it keeps its state and queues events until it is
    /// started again.
    pub fn stop(&self) {
        enqueue_control(&self.as_schedulable(), Control::Stop);
    }

    /// Kills the component and its children: their channels are disconnected and their state
    /// dropped after `on_kill` runs.
    pub fn kill(&self) {
        enqueue_control(&self.as_schedulable(), Control::Kill);
    }

    /// The component's provided port of type `P`.
    ///
    /// # Panics
    /// If the component's factory did not create a `ProvidedPort<P>` with
    /// [`Setup::provided`](crate::Setup::provided).
    pub fn provided<P: Port>(&self) -> ProvidedRef<P>
    where
        C: Provide<P>,
    {
        ProvidedRef::from_core(self.core.ports.provided::<P>().unwrap_or_else(|| {
            panic!(
                "{} implements Provide<{}> but its factory created no such provided port",
                std::any::type_name::<C>(),
                std::any::type_name::<P>()
            )
        }))
    }

    /// The component's required port of type `P`.
    ///
    /// # Panics
    /// If the component's factory did not create a `RequiredPort<P>` with
    /// [`Setup::required`](crate::Setup::required).
    pub fn required<P: Port>(&self) -> RequiredRef<P>
    where
        C: Require<P>,
    {
        RequiredRef::from_core(self.core.ports.required::<P>().unwrap_or_else(|| {
            panic!(
                "{} implements Require<{}> but its factory created no such required port",
                std::any::type_name::<C>(),
                std::any::type_name::<P>()
            )
        }))
    }

    /// The provided port of type `P` this component exports from a child (see
    /// [`Setup::export_provided`](crate::Setup::export_provided)): a channel connected to it is
    /// connected to the child. Available as soon as the component is created.
    ///
    /// # Panics
    /// If the component's factory did not export such a port.
    pub fn exported_provided<P: Port>(&self) -> ProvidedRef<P>
    where
        C: ExportProvided<P>,
    {
        ProvidedRef::from_core(self.core.ports.provided::<P>().unwrap_or_else(|| {
            panic!(
                "{} implements ExportProvided<{}> but its factory exported no such port",
                std::any::type_name::<C>(),
                std::any::type_name::<P>()
            )
        }))
    }

    /// The required port of type `P` this component exports from a child (see
    /// [`Setup::export_required`](crate::Setup::export_required)): a channel connected to it is
    /// connected to the child. Available as soon as the component is created.
    ///
    /// # Panics
    /// If the component's factory did not export such a port.
    pub fn exported_required<P: Port>(&self) -> RequiredRef<P>
    where
        C: ExportRequired<P>,
    {
        RequiredRef::from_core(self.core.ports.required::<P>().unwrap_or_else(|| {
            panic!(
                "{} implements ExportRequired<{}> but its factory exported no such port",
                std::any::type_name::<C>(),
                std::any::type_name::<P>()
            )
        }))
    }

    /// The component's mailbox for events of type `E`.
    ///
    /// # Panics
    /// If the component's factory did not create one with [`Setup::mailbox`](crate::Setup::mailbox).
    pub fn mailbox<E: Event>(&self) -> Mailbox<E>
    where
        C: Receive<E>,
    {
        let core = self.core.ports.mailbox::<E>().unwrap_or_else(|| {
            panic!(
                "{} implements Receive<{}> but its factory created no such mailbox",
                std::any::type_name::<C>(),
                std::any::type_name::<E>()
            )
        });
        let target: Weak<dyn Schedulable> = Arc::downgrade(&self.core) as Weak<dyn Schedulable>;
        Mailbox::from_parts(core, target)
    }

    /// Runs `f` on the component's state, waiting for any running handler to finish; `None` if
    /// the component was destroyed. Meant for tests and inspection, not for communication.
    pub fn on_definition<R>(&self, f: impl FnOnce(&mut C) -> R) -> Option<R> {
        let mut inner = self.core.inner.lock();
        inner.definition.as_mut().map(f)
    }

    pub(crate) fn as_schedulable(&self) -> Arc<dyn Schedulable> {
        self.core.clone()
    }
}

/// Creates a component; `parent` is `None` for a top-level one.
pub(crate) fn create_component<C: ComponentDefinition>(
    exec: Arc<dyn Executor>,
    parent: Option<Weak<dyn Schedulable>>,
    factory: Factory<C>,
) -> Component<C> {
    let core = ComponentCore::new(exec, parent, factory);
    // on_init runs as the first event, on the component's own turn.
    enqueue_control(&(core.clone() as Arc<dyn Schedulable>), Control::Init);
    Component { core }
}
