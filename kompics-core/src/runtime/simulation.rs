//! The simulation runtime: one thread, virtual time, seeded choices.
//!
//! The simulator keeps the components that have events (the *ready* set) and the pending
//! timers. Each step, its seeded generator picks one ready component, which handles exactly one
//! event. When nothing is ready, virtual time jumps to the earliest timer. The same seed gives
//! the same sequence of steps, event for event; [`Simulation::trace_hash`] summarises it, and
//! [`Simulation::enable_trace`] records it readably.

use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::mix64;
use crate::component::core::{enqueue_control, Control, Schedulable};
use crate::component::setup::Setup;
use crate::component::{Component, ComponentDefinition, ComponentId, LifecycleState};
use crate::request::{AskError, Pending};
use crate::supervision::Fault;
use crate::system::{Executor, System};
use crate::time::Time;
use crate::timer::{PendingTimer, TimerId};

type Task = Arc<dyn Schedulable>;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

struct State {
    now: Time,
    ready: Vec<Task>,
    timers: BinaryHeap<PendingTimer<Weak<dyn Schedulable>>>,
    timer_seq: u64,
    rng: SmallRng,
    next_id: u64,
    live: usize,
    steps: u64,
    hash: u64,
    trace: Option<Vec<String>>,
    faults: Vec<Fault>,
    roots: Vec<Task>,
}

struct SimExec {
    seed: u64,
    state: Mutex<State>,
    tracing: std::sync::atomic::AtomicBool,
}

impl Executor for SimExec {
    fn schedule(&self, task: Task) {
        self.state.lock().ready.push(task);
    }

    fn now(&self) -> Time {
        self.state.lock().now
    }

    fn schedule_timer(&self, deadline: Time, target: Weak<dyn Schedulable>, id: TimerId) {
        let mut s = self.state.lock();
        s.timer_seq += 1;
        let seq = s.timer_seq;
        s.timers.push(PendingTimer { deadline, seq, target, id });
    }

    fn next_component_id(&self) -> ComponentId {
        let mut s = self.state.lock();
        s.next_id += 1;
        s.live += 1;
        ComponentId(s.next_id)
    }

    fn component_seed(&self, id: ComponentId) -> u64 {
        mix64(self.seed ^ mix64(id.0))
    }

    fn root_fault(&self, fault: Fault) {
        log::error!("unhandled fault: {fault}");
        self.state.lock().faults.push(fault);
    }

    fn register_root(&self, component: Task) {
        self.state.lock().roots.push(component);
    }

    fn component_destroyed(&self, _id: ComponentId) {
        self.state.lock().live -= 1;
    }

    fn tracing(&self) -> bool {
        self.tracing.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What one call to [`Simulation::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A component handled one event.
    Event,
    /// Nothing was ready; virtual time jumped to the next timer, whose expiries are now queued.
    TimeAdvanced,
    /// Nothing is ready and no timer is pending before the limit.
    Idle,
}

/// The deterministic simulation runtime.
///
/// ```
/// use std::time::Duration;
/// use kompics_core::{Simulation, Time};
///
/// let sim = Simulation::new(42);
/// // sim.create(...), connect, start...
/// sim.run_for(Duration::from_secs(3600)); // an hour of virtual time, instantly if idle
/// assert_eq!(sim.now(), Time::ZERO + Duration::from_secs(3600));
/// ```
pub struct Simulation {
    exec: Arc<SimExec>,
    system: System,
}

impl Simulation {
    /// A simulation whose every choice derives from `seed`.
    pub fn new(seed: u64) -> Simulation {
        let exec = Arc::new(SimExec {
            seed,
            state: Mutex::new(State {
                now: Time::ZERO,
                ready: Vec::new(),
                timers: BinaryHeap::new(),
                timer_seq: 0,
                rng: SmallRng::seed_from_u64(mix64(seed)),
                next_id: 0,
                live: 0,
                steps: 0,
                hash: FNV_OFFSET,
                trace: None,
                faults: Vec::new(),
                roots: Vec::new(),
            }),
            tracing: std::sync::atomic::AtomicBool::new(false),
        });
        let system = System::new(exec.clone());
        Simulation { exec, system }
    }

    /// The seed this simulation was created with.
    pub fn seed(&self) -> u64 {
        self.exec.seed
    }

    /// A handle on this runtime, to give to code that creates components.
    pub fn system(&self) -> System {
        self.system.clone()
    }

    /// Creates a top-level component; see [`System::create`].
    pub fn create<C, F>(&self, factory: F) -> Component<C>
    where
        C: ComponentDefinition,
        F: Fn(&mut Setup<C>) -> C + Send + Sync + 'static,
    {
        self.system.create(factory)
    }

    /// The current virtual time.
    pub fn now(&self) -> Time {
        self.exec.state.lock().now
    }

    /// Records a readable line per step (time, component, event), for [`take_trace`](Self::take_trace).
    /// Also folds the event descriptions into the trace hash.
    pub fn enable_trace(&self) {
        self.exec.tracing.store(true, std::sync::atomic::Ordering::Relaxed);
        self.exec.state.lock().trace.get_or_insert_with(Vec::new);
    }

    /// The trace recorded since the last call.
    pub fn take_trace(&self) -> Vec<String> {
        self.exec.state.lock().trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// A hash of every step so far: its time, its component and (when tracing) its event.
    pub fn trace_hash(&self) -> u64 {
        self.exec.state.lock().hash
    }

    /// The number of events handled so far.
    pub fn steps(&self) -> u64 {
        self.exec.state.lock().steps
    }

    /// Faults that reached the top of the hierarchy unhandled.
    pub fn faults(&self) -> Vec<Fault> {
        self.exec.state.lock().faults.clone()
    }

    /// Components created and not yet destroyed.
    pub fn live_components(&self) -> usize {
        self.exec.state.lock().live
    }

    /// Handles one event, or advances time to the next timer if none is ready, but not past
    /// `limit`.
    pub fn step_until(&self, limit: Time) -> Step {
        let (task, now) = {
            let mut s = self.exec.state.lock();
            if s.ready.is_empty() {
                let Some(next) = s.timers.peek().map(|t| t.deadline) else { return Step::Idle };
                if next > limit {
                    return Step::Idle;
                }
                s.now = s.now.max(next);
                let mut due = Vec::new();
                while s.timers.peek().is_some_and(|t| t.deadline <= next) {
                    due.push(s.timers.pop().expect("peeked"));
                }
                drop(s);
                for t in due {
                    if let Some(target) = t.target.upgrade() {
                        enqueue_control(&target, Control::Timer { id: t.id, deadline: t.deadline });
                    }
                }
                return Step::TimeAdvanced;
            }
            let n = s.ready.len();
            let i = s.rng.random_range(0..n);
            (s.ready.swap_remove(i), s.now)
        };
        let tracing = self.exec.tracing();
        let mut text = String::new();
        let more = task.clone().run(1, tracing.then_some(&mut text));
        let id = task.header().id;
        let mut s = self.exec.state.lock();
        s.steps += 1;
        let mut h = fnv(s.hash, &now.as_nanos().to_le_bytes());
        h = fnv(h, &id.0.to_le_bytes());
        if tracing {
            h = fnv(h, text.as_bytes());
            if let Some(trace) = s.trace.as_mut() {
                trace.push(format!("{now} {id} {text}"));
            }
        }
        s.hash = h;
        if more {
            s.ready.push(task);
        }
        Step::Event
    }

    /// Handles one event (advancing time as needed); false if there is nothing left to do.
    pub fn step(&self) -> bool {
        loop {
            match self.step_until(Time::from_nanos(u64::MAX)) {
                Step::Event => return true,
                Step::TimeAdvanced => continue,
                Step::Idle => return false,
            }
        }
    }

    /// Runs every event up to virtual time `until`, then sets the clock to `until`.
    pub fn run_until(&self, until: Time) {
        while self.step_until(until) != Step::Idle {}
        let mut s = self.exec.state.lock();
        s.now = s.now.max(until);
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&self, duration: Duration) {
        let until = self.now() + duration;
        self.run_until(until);
    }

    /// Runs until `done` returns true (checked after every event) or virtual time passes
    /// `limit` from now; returns whether `done` became true.
    pub fn run_until_cond(&self, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let until = self.now() + limit;
        loop {
            if done() {
                return true;
            }
            if self.step_until(until) == Step::Idle {
                let mut s = self.exec.state.lock();
                s.now = s.now.max(until);
                drop(s);
                return done();
            }
        }
    }

    /// Runs until the answer to an [`ask`](crate::ProvidedRef::ask) comes, or until `limit` of
    /// virtual time has passed ([`AskError::Timeout`]); the provider handles the request as one
    /// of the simulation's events, so the same seed gives the same answer at the same step.
    /// A request dropped unanswered (its provider killed) gives [`AskError::Dropped`] as soon
    /// as it is dropped.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use kompics_core::*;
    /// # struct Echo;
    /// # impl Port for Echo { type Request = Request<u32, u32>; type Indication = u32; }
    /// # struct Echoer { _port: ProvidedPort<Echo> }
    /// # impl ComponentDefinition for Echoer {}
    /// # impl Provide<Echo> for Echoer {
    /// #     fn handle(&mut self, _ctx: &mut Context<Self>, r: Request<u32, u32>) {
    /// #         let n = *r.payload();
    /// #         r.reply(n);
    /// #     }
    /// # }
    /// let sim = Simulation::new(5);
    /// let echo = sim.create(|s| Echoer { _port: s.provided() });
    /// echo.start();
    /// let mut pending = echo.provided::<Echo>().ask(7);
    /// assert_eq!(sim.run_until_answered(&mut pending, Duration::from_secs(1)), Ok(7));
    /// ```
    pub fn run_until_answered<A>(
        &self,
        pending: &mut Pending<A>,
        limit: Duration,
    ) -> Result<A, AskError> {
        let mut result = None;
        self.run_until_cond(limit, || {
            if result.is_none() {
                result = pending.try_result();
            }
            result.is_some()
        });
        result.unwrap_or(Err(AskError::Timeout))
    }

    /// Runs until nothing is ready and no timer is pending, or until `limit` of virtual time has
    /// passed; returns whether it became quiescent.
    pub fn run_until_quiescent(&self, limit: Duration) -> bool {
        let until = self.now() + limit;
        while self.step_until(until) != Step::Idle {}
        let s = self.exec.state.lock();
        s.ready.is_empty() && s.timers.is_empty()
    }

    /// Kills every top-level component (and so every component), then runs their kill hooks.
    pub fn shutdown(&self) {
        let roots = std::mem::take(&mut self.exec.state.lock().roots);
        for r in &roots {
            if LifecycleState::from_u8(r.header().state.load(std::sync::atomic::Ordering::Acquire))
                != LifecycleState::Destroyed
            {
                enqueue_control(r, Control::Kill);
            }
        }
        while self.step_until(self.now()) != Step::Idle {}
    }
}

impl Drop for Simulation {
    fn drop(&mut self) {
        // Break the reference cycles between connected components.
        self.shutdown();
        let mut s = self.exec.state.lock();
        s.ready.clear();
        s.timers.clear();
    }
}
