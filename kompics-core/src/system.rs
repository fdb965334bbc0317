//! The seam between components and the runtime that executes them.
//!
//! A component never knows whether it runs on the threaded [`Runtime`](crate::Runtime) or the
//! [`Simulation`](crate::Simulation): both implement the internal [`Executor`] trait, and users
//! reach either through a [`System`] handle.

use std::sync::{Arc, Weak};

use crate::component::core::Schedulable;
use crate::component::setup::Setup;
use crate::component::{create_component, Component, ComponentDefinition, ComponentId};
use crate::supervision::Fault;
use crate::time::Time;
use crate::timer::TimerId;

/// What a runtime does for the components it runs.
pub(crate) trait Executor: Send + Sync + 'static {
    /// Runs `task` soon. Called exactly once per transition of the task's pending count from zero.
    fn schedule(&self, task: Arc<dyn Schedulable>);
    /// The current time.
    fn now(&self) -> Time;
    /// Delivers a timer control event for `id` to `target` at `deadline`.
    fn schedule_timer(&self, deadline: Time, target: Weak<dyn Schedulable>, id: TimerId);
    /// A new, never reused component id.
    fn next_component_id(&self) -> ComponentId;
    /// The seed of the random generator of component `id`.
    fn component_seed(&self, id: ComponentId) -> u64;
    /// A fault that no supervisor handled (the component had no parent, or escalation reached
    /// the top).
    fn root_fault(&self, fault: Fault);
    /// A component without a parent was created: the runtime kills it at shutdown.
    fn register_root(&self, component: Arc<dyn Schedulable>);
    /// A component was destroyed.
    fn component_destroyed(&self, id: ComponentId);
    /// Whether event descriptions should be recorded (simulation traces).
    fn tracing(&self) -> bool {
        false
    }
}

/// A handle on a runtime (threaded or simulated) to create components at its top level.
///
/// Components created here have no parent: their faults go to the runtime's fault handler, and
/// the runtime kills them when it shuts down. Inside a component, create children through
/// [`Context::create`](crate::Context::create) instead.
#[derive(Clone)]
pub struct System {
    pub(crate) exec: Arc<dyn Executor>,
}

impl System {
    pub(crate) fn new(exec: Arc<dyn Executor>) -> System {
        System { exec }
    }

    /// Creates a top-level component from `factory`, which declares its ports through the
    /// [`Setup`] it receives. The component is created passive: connect it, then
    /// [`start`](Component::start) it.
    ///
    /// The factory is kept: [`FaultAction::Restart`](crate::FaultAction::Restart) calls it again
    /// to rebuild the component with fresh state.
    pub fn create<C, F>(&self, factory: F) -> Component<C>
    where
        C: ComponentDefinition,
        F: Fn(&mut Setup<C>) -> C + Send + Sync + 'static,
    {
        let c = create_component(self.exec.clone(), None, Box::new(factory));
        self.exec.register_root(c.core.clone());
        c
    }

    /// The current time of this runtime.
    pub fn now(&self) -> Time {
        self.exec.now()
    }
}
