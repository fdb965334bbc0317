//! Faults and what a supervisor does about them.
//!
//! When a handler (or a lifecycle hook, or a timer callback) panics, the runtime catches the
//! panic, stops the component (its timers are cancelled, its children stopped, its queued events
//! kept) and sends a [`Fault`] to its parent, whose
//! [`on_fault`](crate::ComponentDefinition::on_fault) returns a [`FaultAction`]. A component
//! without a parent reports to the runtime's fault handler. Nothing else stops: other
//! components keep running.
//!
//! A handler that meets an error it cannot handle (a disk that fails, a corrupt file) does not
//! need to panic: [`Context::fail`](crate::Context::fail) takes a typed error, and the component
//! fails exactly as if it had panicked once the handler returns. Its supervisor finds the error in
//! the fault, downcastable to its type:
//!
//! ```
//! use kompics_core::*;
//!
//! #[derive(Debug)]
//! struct DiskFull { needed: u64 }
//! impl std::fmt::Display for DiskFull {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         write!(f, "disk full: {} bytes needed", self.needed)
//!     }
//! }
//! impl std::error::Error for DiskFull {}
//!
//! struct Writer;
//! impl ComponentDefinition for Writer {
//!     fn on_start(&mut self, ctx: &mut Context<Self>) {
//!         ctx.fail(DiskFull { needed: 4096 });
//!     }
//! }
//!
//! let sim = Simulation::new(3);
//! let writer = sim.create(|_| Writer);
//! writer.start();
//! sim.run_until_quiescent(std::time::Duration::from_secs(1));
//! let fault = &sim.faults()[0];
//! assert_eq!(fault.message, "disk full: 4096 bytes needed");
//! assert_eq!(fault.error::<DiskFull>().map(|e| e.needed), Some(4096));
//! assert_eq!(writer.state(), LifecycleState::Faulty);
//! ```

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use crate::component::ComponentId;

/// The typed error a component failed with, shared so that a fault stays cheap to clone.
pub type FaultError = Arc<dyn Error + Send + Sync + 'static>;

/// A panic or error caught in a component, as its supervisor sees it.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The component that failed.
    pub component: ComponentId,
    /// The Rust type of the failed component's definition.
    pub type_name: &'static str,
    /// The panic message, or the `Display` text of the error passed to
    /// [`Context::fail`](crate::Context::fail).
    pub message: String,
    /// The child fault this one escalates, if the failed component escalated a child's fault.
    pub cause: Option<Box<Fault>>,
    /// The error the component failed with, if it failed through
    /// [`Context::fail`](crate::Context::fail) rather than a panic. See [`Fault::error`].
    pub failure: Option<FaultError>,
}

impl PartialEq for Fault {
    /// Faults are equal when they describe the same failure; errors compare by identity.
    fn eq(&self, other: &Fault) -> bool {
        let same_error = match (&self.failure, &other.failure) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        self.component == other.component
            && self.type_name == other.type_name
            && self.message == other.message
            && self.cause == other.cause
            && same_error
    }
}

impl Eq for Fault {}

impl Fault {
    /// The error this component failed with, if it failed through
    /// [`Context::fail`](crate::Context::fail) with an error of type `E`. For an escalated
    /// fault, look at [`root_cause`](Fault::root_cause) first.
    pub fn error<E: Error + 'static>(&self) -> Option<&E> {
        self.failure.as_deref().and_then(|e| e.downcast_ref::<E>())
    }

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
