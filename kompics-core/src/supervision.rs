//! Faults and what a supervisor does about them.
//!
//! When a handler (or a lifecycle hook, or a timer callback) panics, the runtime catches the
//! panic, stops the component (its timers are cancelled, its children stopped, its queued events
//! kept) and sends a [`Fault`] to its parent, whose
//! [`on_fault`](crate::ComponentDefinition::on_fault) returns a [`FaultAction`]. A component
//! without a parent reports to the runtime's fault handler. Nothing else stops: other
//! components keep running.

use std::fmt;

use crate::component::ComponentId;

/// A panic caught in a component, as its supervisor sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The component that failed.
    pub component: ComponentId,
    /// The Rust type of the failed component's definition.
    pub type_name: &'static str,
    /// The panic message.
    pub message: String,
    /// The child fault this one escalates, if the failed component escalated a child's fault.
    pub cause: Option<Box<Fault>>,
}

impl Fault {
    /// The innermost fault of an escalation chain: the component where the panic happened.
    pub fn root_cause(&self) -> &Fault {
        let mut f = self;
        while let Some(c) = &f.cause {
            f = c;
        }
        f
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "component {} ({}) failed: {}", self.component, self.type_name, self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, "; caused by: {cause}")?;
        }
        Ok(())
    }
}

/// What a supervisor decides for a failed child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Rebuild the child from its factory (fresh state), keeping its ports, channels and queued
    /// events, then start it. Its old children are killed.
    Restart,
    /// Leave the child stopped: the fault is handled. It can be restarted later.
    Stop,
    /// Kill the child. To replace it, create a new child in the same handler and connect it.
    Destroy,
    /// Fail this component too, with the child's fault as the cause, and let its own supervisor
    /// decide. This is the default, as in Kompics.
    Escalate,
}
