//! Mailboxes: how code outside the component world (another thread, a socket loop, a program's
//! API) hands events to a component.
//!
//! A component declares a mailbox for an event type in its factory and handles what arrives in
//! it with [`Receive`]. The [`Mailbox`] handle is cheap to clone and can be sent to any thread;
//! [`tell`](Mailbox::tell) queues the event like a port event, and the component handles it one at
//! a time with its other events. Components talk to each other through ports; mailboxes are the
//! bridge from everything else.
//!
//! ```
//! use kompics_core::*;
//!
//! struct Tally { total: u64 }
//! impl ComponentDefinition for Tally {}
//! impl Receive<u64> for Tally {
//!     fn receive(&mut self, _ctx: &mut Context<Self>, n: u64) {
//!         self.total += n;
//!     }
//! }
//!
//! let sim = Simulation::new(1);
//! let (tally, mailbox) = {
//!     let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
//!     let s2 = slot.clone();
//!     let c = sim.create(move |s| {
//!         *s2.lock().unwrap() = Some(s.mailbox::<u64>());
//!         Tally { total: 0 }
//!     });
//!     let m = slot.lock().unwrap().take().unwrap();
//!     (c, m)
//! };
//! tally.start();
//! std::thread::spawn(move || assert!(mailbox.tell(5))).join().unwrap();
//! sim.run_until_quiescent(std::time::Duration::from_secs(1));
//! assert_eq!(tally.on_definition(|t| t.total), Some(5));
//! ```
//!
//! [`Component::mailbox`](crate::Component::mailbox) gets the same handle from outside.

use std::fmt;
use std::sync::{Arc, Weak};

use crate::channel::{Inbox, PortCore};
use crate::component::core::{enqueue, Schedulable};
use crate::component::ComponentDefinition;
use crate::context::Context;
use crate::event::Event;

/// Handles the events told to a component's [`Mailbox`] of type `E`.
pub trait Receive<E: Event>: ComponentDefinition {
    /// Handles one event told to the mailbox.
    fn receive(&mut self, ctx: &mut Context<Self>, event: E);
}

/// A handle to tell events of type `E` to one component, from any thread.
///
/// Events told to a component that is not running follow the rule for port events: kept until it
/// starts, dropped once it is destroyed. A mailbox keeps its component's memory alive, like a
/// The handle does not keep the component alive: once it is gone, told events are dropped.
pub struct Mailbox<E> {
    inbox: Arc<Inbox<E>>,
    target: Weak<dyn Schedulable>,
}

impl<E> Clone for Mailbox<E> {
    fn clone(&self) -> Self {
        Mailbox { inbox: self.inbox.clone(), target: self.target.clone() }
    }
}

impl<E: Event> Mailbox<E> {
    pub(crate) fn from_parts(core: Arc<PortCore<E, ()>>, target: Weak<dyn Schedulable>) -> Self {
        Mailbox { inbox: core.inbox.clone(), target }
    }

    /// Queues `event` for the component; returns false (dropping the event) if the component no
    /// longer exists.
    #[inline]
    pub fn tell(&self, event: E) -> bool {
        match self.target.upgrade() {
            Some(target) => {
                enqueue(&target, || self.inbox.queue.push(event));
                true
            }
            None => false,
        }
    }
}

impl<E> fmt::Debug for Mailbox<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailbox<{}>", std::any::type_name::<E>())
    }
}
