//! The runtime side of a component: its queues, its scheduling state and its run loop.
//!
//! # Scheduling invariant
//!
//! `pending` counts the events put into the component's queues and not yet taken out. Whoever
//! moves it from zero schedules the component; the run loop takes up to a budget of events,
//! subtracts what it took and asks to be rescheduled if anything is left. So a component is in at
//! most one run queue at a time and never runs on two threads at once, and nothing is left
//! behind. The count is raised *before* the event is pushed, so it never undercounts; if the
//! runner sees the count before the push is visible, it simply runs again.

use std::fmt::{self, Write as _};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use crossbeam_queue::SegQueue;
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use super::setup::{PortTable, Setup};
use super::{ComponentDefinition, ComponentId, LifecycleState};
use crate::channel::{rewiring, Inbox};
use crate::context::Context;
use crate::event::Event;
use crate::supervision::{Fault, FaultAction, FaultError};
use crate::system::Executor;
use crate::time::Time;
use crate::timer::{TimerEntry, TimerId};

/// How a component is built, and rebuilt on restart.
pub(crate) type Factory<C> = Box<dyn Fn(&mut Setup<C>) -> C + Send + Sync>;

/// Runtime events about a component itself, as opposed to port events.
pub(crate) enum Control {
    Init,
    Start,
    Stop,
    Kill,
    Restart,
    Timer {
        id: TimerId,
        deadline: Time,
    },
    ChildFault(Fault),
    /// A handler called `Context::fail`: fail as a panic would, carrying the error.
    Fail(FaultError),
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Control::Init => f.write_str("Init"),
            Control::Start => f.write_str("Start"),
            Control::Stop => f.write_str("Stop"),
            Control::Kill => f.write_str("Kill"),
            Control::Restart => f.write_str("Restart"),
            Control::Timer { id, deadline } => write!(f, "Timeout({id:?} @ {deadline:?})"),
            Control::ChildFault(fault) => write!(f, "ChildFault({fault})"),
            Control::Fail(error) => write!(f, "Fail({error})"),
        }
    }
}

/// The part of a component the runtime sees without knowing its type.
pub(crate) struct Header {
    pub(crate) id: ComponentId,
    pub(crate) type_name: &'static str,
    /// On its own cache line: producers on other cores bump it for every event, and the fields
    /// the runner reads for every event must not share its line.
    pub(crate) pending: CachePadded<AtomicUsize>,
    pub(crate) control: SegQueue<Control>,
    /// Control events announced (raised before the push): the runner looks at `control` only
    /// when this is non-zero, instead of polling the queue for every event.
    pub(crate) controls: AtomicUsize,
    pub(crate) state: AtomicU8,
    pub(crate) exec: Arc<dyn Executor>,
}

/// A component as a scheduler sees it.
pub(crate) trait Schedulable: Send + Sync + 'static {
    fn header(&self) -> &Header;
    /// Handles up to `budget` events; returns whether events remain (the caller reschedules).
    /// With `trace`, appends a description of each event handled.
    fn run(self: Arc<Self>, budget: usize, trace: Option<&mut String>) -> bool;
}

/// Counts one event for `target`, pushes it with `push`, and schedules `target` if it was idle.
#[inline]
pub(crate) fn enqueue(target: &Arc<dyn Schedulable>, push: impl FnOnce()) {
    let header = target.header();
    let prev = header.pending.fetch_add(1, Ordering::AcqRel);
    push();
    if prev == 0 {
        header.exec.schedule(target.clone());
    }
}

/// Puts a control event into `target`'s queue.
pub(crate) fn enqueue_control(target: &Arc<dyn Schedulable>, control: Control) {
    target.header().controls.fetch_add(1, Ordering::AcqRel);
    enqueue(target, || target.header().control.push(control));
}

/// Takes the events of one port side out of its inbox and into the component's handler.
pub(crate) trait PortDrain<C: ComponentDefinition>: Send + Sync {
    /// Handles queued events until none is left, `max` were taken, or a control event is
    /// announced in `controls`. Counts each event in `taken` *before* handling it, so that after
    /// a panic the caller knows the failed event was consumed. With `trace`, handles at most one
    /// and describes it.
    fn handle_batch(
        &self,
        def: &mut C,
        ctx: &mut Context<C>,
        max: usize,
        taken: &mut usize,
        controls: &AtomicUsize,
        trace: Option<&mut String>,
    );
    /// Moves up to `max` queued events to the held list; returns how many.
    fn hold_batch(&self, max: usize) -> usize;
    /// Handles the oldest held event; false if there was none.
    fn replay_next(&self, def: &mut C, ctx: &mut Context<C>) -> bool;
    /// Drops up to `max` queued events; returns how many.
    fn drop_batch(&self, max: usize) -> usize;
    /// Drops every held event.
    fn clear_held(&self);
    /// Whether events are held.
    fn has_held(&self) -> bool;
}

/// The drain of one port side whose events have type `E`, handled by `F` (a handler method,
/// as a zero-sized function item so that it inlines into the batch loop).
pub(crate) struct Drain<E, F> {
    pub(crate) inbox: Arc<Inbox<E>>,
    pub(crate) handler: F,
    pub(crate) name: &'static str,
}

impl<C, E, F> PortDrain<C> for Drain<E, F>
where
    C: ComponentDefinition,
    E: Event,
    F: Fn(&mut C, &mut Context<C>, E) + Send + Sync + 'static,
{
    #[inline]
    fn handle_batch(
        &self,
        def: &mut C,
        ctx: &mut Context<C>,
        max: usize,
        taken: &mut usize,
        controls: &AtomicUsize,
        trace: Option<&mut String>,
    ) {
        if let Some(t) = trace {
            if let Some(event) = self.inbox.queue.pop() {
                *taken += 1;
                let _ = write!(t, "{} {:?}", self.name, event);
                (self.handler)(def, ctx, event);
            }
            return;
        }
        while *taken < max {
            let Some(event) = self.inbox.queue.pop() else { return };
            *taken += 1;
            (self.handler)(def, ctx, event);
            if controls.load(Ordering::Relaxed) != 0 {
                return;
            }
        }
    }

    fn hold_batch(&self, max: usize) -> usize {
        let mut held = self.inbox.held.lock();
        let mut n = 0;
        while n < max {
            let Some(event) = self.inbox.queue.pop() else { break };
            held.push_back(event);
            n += 1;
        }
        n
    }

    fn replay_next(&self, def: &mut C, ctx: &mut Context<C>) -> bool {
        let next = self.inbox.held.lock().pop_front();
        match next {
            Some(event) => {
                (self.handler)(def, ctx, event);
                true
            }
            None => false,
        }
    }

    fn drop_batch(&self, max: usize) -> usize {
        let mut n = 0;
        while n < max && self.inbox.queue.pop().is_some() {
            n += 1;
        }
        n
    }

    fn clear_held(&self) {
        self.inbox.held.lock().clear();
    }

    fn has_held(&self) -> bool {
        !self.inbox.held.lock().is_empty()
    }
}

/// The mutable part of a component: only its current runner touches it.
pub(crate) struct Inner<C: ComponentDefinition> {
    pub(crate) definition: Option<C>,
    pub(crate) ctx: Context<C>,
    /// The port to look at first next time, so that a busy port does not starve the others.
    cursor: usize,
    /// Whether events held while passive are being handled (see `start`).
    replaying: bool,
    /// The port whose held events are being handled.
    replay_port: usize,
}

/// A component: its definition, its ports and everything the runtime needs to run it.
pub(crate) struct ComponentCore<C: ComponentDefinition> {
    pub(crate) header: Header,
    factory: Factory<C>,
    pub(crate) ports: Arc<PortTable>,
    drains: Vec<Box<dyn PortDrain<C>>>,
    pub(crate) inner: Mutex<Inner<C>>,
}

impl<C: ComponentDefinition> ComponentCore<C> {
    pub(crate) fn new(
        exec: Arc<dyn Executor>,
        parent: Option<Weak<dyn Schedulable>>,
        factory: Factory<C>,
    ) -> Arc<Self> {
        let id = exec.next_component_id();
        let seed = exec.component_seed(id);
        let core = Arc::new_cyclic(|me: &Weak<Self>| {
            let owner: Weak<dyn Schedulable> = me.clone();
            let mut setup = Setup::new(owner, exec.clone(), None);
            let definition = factory(&mut setup);
            let (table, drains, children) = setup.into_parts();
            let mut ctx = Context::new(id, exec.clone(), me.clone(), parent, seed);
            ctx.adopt(children);
            ComponentCore {
                header: Header {
                    id,
                    type_name: std::any::type_name::<C>(),
                    pending: CachePadded::new(AtomicUsize::new(0)),
                    control: SegQueue::new(),
                    controls: AtomicUsize::new(0),
                    state: AtomicU8::new(LifecycleState::Passive.as_u8()),
                    exec,
                },
                factory,
                ports: Arc::new(table),
                drains,
                inner: Mutex::new(Inner {
                    definition: Some(definition),
                    ctx,
                    cursor: 0,
                    replaying: false,
                    replay_port: 0,
                }),
            }
        });
        // Channels the factory connected to the component's own ports can reach it now.
        for entry in &core.ports.entries {
            entry.detach.born();
        }
        core
    }

    fn state(&self) -> LifecycleState {
        LifecycleState::from_u8(self.header.state.load(Ordering::Acquire))
    }

    fn set_state(&self, state: LifecycleState) {
        self.header.state.store(state.as_u8(), Ordering::Release);
    }

    /// Runs `f` on the definition, catching a panic; returns false (and faults the component)
    /// if it panicked.
    fn guarded(
        &self,
        inner: &mut Inner<C>,
        what: &str,
        f: impl FnOnce(&mut C, &mut Context<C>),
    ) -> bool {
        let Inner { definition, ctx, .. } = inner;
        let Some(def) = definition.as_mut() else { return true };
        match catch_unwind(AssertUnwindSafe(|| f(def, ctx))) {
            Ok(()) => true,
            Err(payload) => {
                self.fail(inner, format!("{what}: {}", panic_message(payload.as_ref())), None);
                false
            }
        }
    }

    /// Moves the component to faulty and reports to its supervisor.
    fn fail(&self, inner: &mut Inner<C>, message: String, cause: Option<Box<Fault>>) {
        self.fail_with(inner, message, cause, None)
    }

    /// Like `fail`, with the typed error of `Context::fail` when there is one.
    fn fail_with(
        &self,
        inner: &mut Inner<C>,
        message: String,
        cause: Option<Box<Fault>>,
        failure: Option<FaultError>,
    ) {
        self.set_state(LifecycleState::Faulty);
        inner.ctx.cancel_all_timers();
        for child in inner.ctx.live_children() {
            enqueue_control(&child, Control::Stop);
        }
        let fault = Fault {
            component: self.header.id,
            type_name: self.header.type_name,
            message,
            cause,
            failure,
        };
        log::warn!("{fault}");
        match inner.ctx.parent.as_ref().and_then(Weak::upgrade) {
            Some(parent) => enqueue_control(&parent, Control::ChildFault(fault)),
            None => self.header.exec.root_fault(fault),
        }
    }

    fn handle_control(&self, inner: &mut Inner<C>, control: Control) {
        let state = self.state();
        if state == LifecycleState::Destroyed {
            return;
        }
        match control {
            Control::Init => {
                self.guarded(inner, "on_init panicked", |d, c| d.on_init(c));
            }
            Control::Start => self.start(inner, state),
            Control::Stop => {
                if state == LifecycleState::Active {
                    self.set_state(LifecycleState::Passive);
                    inner.ctx.cancel_all_timers();
                    for child in inner.ctx.live_children() {
                        enqueue_control(&child, Control::Stop);
                    }
                    self.guarded(inner, "on_stop panicked", |d, c| d.on_stop(c));
                }
            }
            Control::Kill => self.kill(inner, state),
            Control::Restart => self.restart(inner),
            Control::Timer { id, deadline } => self.fire_timer(inner, state, id, deadline),
            Control::ChildFault(fault) => self.supervise(inner, fault),
            Control::Fail(error) => {
                inner.ctx.failing = false;
                // Already faulty (say, it panicked after calling `fail`): one fault is reported.
                if state != LifecycleState::Faulty {
                    self.fail_with(inner, error.to_string(), None, Some(error));
                }
            }
        }
    }

    fn start(&self, inner: &mut Inner<C>, state: LifecycleState) {
        if state != LifecycleState::Passive {
            if state == LifecycleState::Faulty {
                log::debug!("{}: start ignored while faulty (restart it)", self.header.id);
            }
            return;
        }
        for child in inner.ctx.live_children() {
            enqueue_control(&child, Control::Start);
        }
        self.set_state(LifecycleState::Active);
        if !self.guarded(inner, "on_start panicked", |d, c| d.on_start(c)) {
            return;
        }
        // Events that arrived while passive are handled next, in bounded batches like any
        // others. While that backlog lasts it holds one unit of `pending`, so the component
        // stays scheduled (and is never scheduled twice) until the backlog is gone.
        if !inner.replaying && self.drains.iter().any(|d| d.has_held()) {
            inner.replaying = true;
            inner.replay_port = 0;
            self.header.pending.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Handles the oldest held event of the first port that has one; false when none is left.
    fn replay_one(&self, inner: &mut Inner<C>) -> bool {
        while inner.replay_port < self.drains.len() {
            let drain = &self.drains[inner.replay_port];
            let mut handled = false;
            self.guarded(inner, "handler panicked", |d, c| handled = drain.replay_next(d, c));
            if handled {
                return true;
            }
            inner.replay_port += 1;
        }
        false
    }

    fn kill(&self, inner: &mut Inner<C>, state: LifecycleState) {
        if state == LifecycleState::Active {
            self.guarded(inner, "on_stop panicked", |d, c| d.on_stop(c));
        }
        self.guarded(inner, "on_kill panicked", |d, c| d.on_kill(c));
        self.set_state(LifecycleState::Destroyed);
        inner.ctx.cancel_all_timers();
        for child in inner.ctx.take_children() {
            enqueue_control(&child, Control::Kill);
        }
        for entry in &self.ports.entries {
            entry.detach.detach_all();
        }
        self.ports.structure.lock().clear();
        for drain in &self.drains {
            drain.clear_held();
        }
        inner.definition = None;
        self.header.exec.component_destroyed(self.header.id);
    }

    fn restart(&self, inner: &mut Inner<C>) {
        inner.ctx.cancel_all_timers();
        // Children made by the factory are part of the component, like its ports: they are
        // handed back to the factory and restarted below. The others are killed.
        for child in inner.ctx.take_children() {
            if !self.ports.is_structural(child.header().id) {
                enqueue_control(&child, Control::Kill);
            }
        }
        let owner: Weak<dyn Schedulable> = inner.ctx.me.clone();
        let mut setup = Setup::new(owner, self.header.exec.clone(), Some(self.ports.clone()));
        // The factory and `on_init` run again on the same ports, whose channels are kept: the
        // connections they make again must not double them.
        let rewiring = rewiring();
        match catch_unwind(AssertUnwindSafe(|| (self.factory)(&mut setup))) {
            Ok(fresh) => {
                let (_, _, children) = setup.into_parts();
                // Queued before the start below tells them to start, so each is rebuilt first.
                for child in &children {
                    enqueue_control(child, Control::Restart);
                }
                inner.ctx.adopt(children);
                inner.definition = Some(fresh);
                self.set_state(LifecycleState::Passive);
                let initialised = self.guarded(inner, "on_init panicked", |d, c| d.on_init(c));
                drop(rewiring);
                if initialised {
                    self.start(inner, LifecycleState::Passive);
                }
            }
            Err(payload) => {
                drop(rewiring);
                let message =
                    format!("factory panicked on restart: {}", panic_message(payload.as_ref()));
                self.fail(inner, message, None);
            }
        }
    }

    fn fire_timer(&self, inner: &mut Inner<C>, state: LifecycleState, id: TimerId, deadline: Time) {
        if state != LifecycleState::Active {
            return;
        }
        match inner.ctx.timers.remove(&id) {
            None => {} // cancelled after it was scheduled
            Some(TimerEntry::Once(callback)) => {
                self.guarded(inner, "timer callback panicked", |d, c| callback(d, c));
            }
            Some(TimerEntry::Periodic { mut callback, period }) => {
                inner.ctx.firing = Some((id, false));
                let ok = self.guarded(inner, "timer callback panicked", |d, c| callback(d, c));
                let cancelled = inner.ctx.firing.take().is_some_and(|(_, cancelled)| cancelled);
                if ok && !cancelled && self.state() == LifecycleState::Active {
                    inner.ctx.timers.insert(id, TimerEntry::Periodic { callback, period });
                    let me: Weak<dyn Schedulable> = inner.ctx.me.clone();
                    self.header.exec.schedule_timer(deadline + period, me, id);
                }
            }
        }
    }

    fn supervise(&self, inner: &mut Inner<C>, fault: Fault) {
        let mut action = FaultAction::Escalate;
        let ok = self.guarded(inner, "on_fault panicked", |d, c| action = d.on_fault(c, &fault));
        if !ok {
            return;
        }
        let child =
            inner.ctx.live_children().into_iter().find(|c| c.header().id == fault.component);
        log::debug!("{}: child fault {} resolved with {:?}", self.header.id, fault, action);
        match (action, child) {
            (FaultAction::Restart, Some(child)) => enqueue_control(&child, Control::Restart),
            (FaultAction::Destroy, Some(child)) => enqueue_control(&child, Control::Kill),
            (FaultAction::Escalate, _) => {
                let message =
                    format!("child {} failed and the fault was escalated", fault.component);
                self.fail(inner, message, Some(Box::new(fault)));
            }
            (FaultAction::Stop, _) | (_, None) => {}
        }
    }
}

impl<C: ComponentDefinition> Schedulable for ComponentCore<C> {
    fn header(&self) -> &Header {
        &self.header
    }

    fn run(self: Arc<Self>, budget: usize, mut trace: Option<&mut String>) -> bool {
        // `processed` counts events taken from the queues (for `pending`); `work` counts
        // everything handled, held events included (for the budget).
        let mut processed = 0usize;
        let mut work = 0usize;
        {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            let ports = self.drains.len();
            // The lifecycle state only changes in this loop (control events, faults), so it is
            // read once and again after each of those, not for every event.
            let mut state = self.state();
            while work < budget {
                if self.header.controls.load(Ordering::Acquire) != 0 {
                    if let Some(control) = self.header.control.pop() {
                        self.header.controls.fetch_sub(1, Ordering::AcqRel);
                        processed += 1;
                        work += 1;
                        if let Some(t) = trace.as_deref_mut() {
                            let _ = write!(t, "{control:?}");
                        }
                        self.handle_control(inner, control);
                        state = self.state();
                        continue;
                    }
                    // Announced but not visible yet: it will be by the next look.
                }
                if inner.replaying {
                    work += 1;
                    if state == LifecycleState::Active && self.replay_one(inner) {
                        if let Some(t) = trace.as_deref_mut() {
                            t.push_str("held event");
                        }
                        state = self.state();
                        continue;
                    }
                    // Backlog done, or the component stopped meanwhile: release its unit.
                    inner.replaying = false;
                    processed += 1;
                    continue;
                }
                let max = budget - work;
                let mut taken = 0;
                for k in 0..ports {
                    let mut i = inner.cursor + k;
                    if i >= ports {
                        i -= ports;
                    }
                    let drain = &self.drains[i];
                    match state {
                        LifecycleState::Active => {
                            let Inner { definition, ctx, .. } = inner;
                            let def = definition.as_mut().expect("an active component has state");
                            let t = trace.as_deref_mut();
                            let controls = &self.header.controls;
                            let batch =
                                || drain.handle_batch(def, ctx, max, &mut taken, controls, t);
                            if let Err(payload) = catch_unwind(AssertUnwindSafe(batch)) {
                                let why = panic_message(payload.as_ref());
                                self.fail(inner, format!("handler panicked: {why}"), None);
                                state = LifecycleState::Faulty;
                            }
                        }
                        LifecycleState::Destroyed => taken = drain.drop_batch(max),
                        LifecycleState::Passive | LifecycleState::Faulty => {
                            taken = drain.hold_batch(max)
                        }
                    }
                    if taken > 0 {
                        inner.cursor = i + 1;
                        break;
                    }
                }
                if taken == 0 {
                    break;
                }
                processed += taken;
                work += taken;
            }
        }
        let prev = self.header.pending.fetch_sub(processed, Ordering::AcqRel);
        prev > processed
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
