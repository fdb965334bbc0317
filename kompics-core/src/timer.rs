//! Timers: one-shot and periodic, cancellable, delivered as events.
//!
//! A component schedules a timer through its [`Context`](crate::Context); when it expires, the
//! runtime puts a timeout into the component's queue, and the callback runs like any handler
//! (one at a time with the component's other handlers, never concurrently). Under the simulator
//! the same timers run in virtual time.
//!
//! Rule: stopping, killing or faulting a component cancels all its timers; a component that is
//! started again schedules them again (typically in `on_start`).

use std::fmt;
use std::time::Duration;

use crate::component::ComponentDefinition;
use crate::context::Context;
use crate::time::Time;

/// Identifies a timer of one component, to cancel it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub(crate) u64);

impl fmt::Debug for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timer#{}", self.0)
    }
}

/// The callback of a one-shot timer.
pub(crate) type OnceCallback<C> = Box<dyn FnOnce(&mut C, &mut Context<C>) + Send>;
/// The callback of a periodic timer.
pub(crate) type PeriodicCallback<C> = Box<dyn FnMut(&mut C, &mut Context<C>) + Send>;

/// A timer a component has scheduled and not yet seen expire (or, if periodic, cancelled).
pub(crate) enum TimerEntry<C: ComponentDefinition> {
    Once(OnceCallback<C>),
    Periodic { callback: PeriodicCallback<C>, period: Duration },
}

/// A timer expiry the runtime is holding until its deadline.
pub(crate) struct PendingTimer<T> {
    pub(crate) deadline: Time,
    /// Insertion order, so that timers with equal deadlines expire in a deterministic order.
    pub(crate) seq: u64,
    pub(crate) target: T,
    pub(crate) id: TimerId,
}

impl<T> PartialEq for PendingTimer<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl<T> Eq for PendingTimer<T> {}
impl<T> PartialOrd for PendingTimer<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for PendingTimer<T> {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest deadline first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}
