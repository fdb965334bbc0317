//! The threaded runtime's timer: one thread sleeping until the earliest deadline.

use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::component::core::{enqueue_control, Control, Schedulable};
use crate::time::Time;
use crate::timer::{PendingTimer, TimerId};

struct State {
    heap: BinaryHeap<PendingTimer<Weak<dyn Schedulable>>>,
    seq: u64,
    shutdown: bool,
}

/// Timers waiting for their deadline, and the condition the timer thread sleeps on.
pub(crate) struct TimerQueue {
    state: Mutex<State>,
    wake: Condvar,
    epoch: Instant,
}

impl TimerQueue {
    pub(crate) fn new(epoch: Instant) -> Arc<Self> {
        Arc::new(TimerQueue {
            state: Mutex::new(State { heap: BinaryHeap::new(), seq: 0, shutdown: false }),
            wake: Condvar::new(),
            epoch,
        })
    }

    pub(crate) fn now(&self) -> Time {
        Time::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    pub(crate) fn schedule(&self, deadline: Time, target: Weak<dyn Schedulable>, id: TimerId) {
        let mut s = self.state.lock();
        s.seq += 1;
        let seq = s.seq;
        let earliest = s.heap.peek().is_none_or(|t| deadline < t.deadline);
        s.heap.push(PendingTimer { deadline, seq, target, id });
        if earliest {
            self.wake.notify_one();
        }
    }

    pub(crate) fn shutdown(&self) {
        self.state.lock().shutdown = true;
        self.wake.notify_one();
    }

    /// The timer thread's loop: fire what is due, then sleep until the next deadline (or until
    /// an earlier timer is scheduled). With no timer it sleeps without a timeout.
    pub(crate) fn run(&self) {
        let mut s = self.state.lock();
        let mut due = Vec::new();
        while !s.shutdown {
            let now = self.now();
            while s.heap.peek().is_some_and(|t| t.deadline <= now) {
                due.push(s.heap.pop().expect("peeked"));
            }
            if !due.is_empty() {
                parking_lot::MutexGuard::unlocked(&mut s, || {
                    for t in due.drain(..) {
                        if let Some(target) = t.target.upgrade() {
                            enqueue_control(
                                &target,
                                Control::Timer { id: t.id, deadline: t.deadline },
                            );
                        }
                    }
                });
                continue;
            }
            match s.heap.peek().map(|t| t.deadline) {
                Some(deadline) => {
                    let at = self.epoch + deadline.since_start();
                    self.wake.wait_until(&mut s, at);
                }
                None => self.wake.wait(&mut s),
            }
        }
    }
}
