//! What a component's handlers can ask of the runtime.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::component::core::{enqueue_control, ComponentCore, Control, Schedulable};
use crate::component::setup::Setup;
use crate::component::{
    create_component, Component, ComponentDefinition, ComponentId, LifecycleState,
};
use crate::supervision::FaultError;
use crate::system::{Executor, System};
use crate::time::Time;
use crate::timer::{TimerEntry, TimerId};

/// The random generator a component gets from its context: seeded by the runtime, so that a
/// simulation seed replays every random choice.
pub type ComponentRng = SmallRng;

/// A component's view of the runtime, passed to every handler next to `&mut self`.
///
/// Through it a component reads the time, draws random numbers, schedules timers, creates
/// children and stops or kills itself. It is the only way to do these things: a component that
/// read the system clock or a thread-local generator would break the simulator's determinism.
pub struct Context<C: ComponentDefinition> {
    id: ComponentId,
    exec: Arc<dyn Executor>,
    pub(crate) me: Weak<ComponentCore<C>>,
    rng: ComponentRng,
    pub(crate) timers: HashMap<TimerId, TimerEntry<C>>,
    timer_seq: u64,
    /// The periodic timer whose callback is running, and whether the callback cancelled it.
    pub(crate) firing: Option<(TimerId, bool)>,
    children: Vec<Arc<dyn Schedulable>>,
    /// Whether `fail` was called and its fault not yet reported: one failure per episode.
    pub(crate) failing: bool,
    pub(crate) parent: Option<Weak<dyn Schedulable>>,
}

impl<C: ComponentDefinition> Context<C> {
    pub(crate) fn new(
        id: ComponentId,
        exec: Arc<dyn Executor>,
        me: Weak<ComponentCore<C>>,
        parent: Option<Weak<dyn Schedulable>>,
        seed: u64,
    ) -> Self {
        Context {
            id,
            exec,
            me,
            rng: ComponentRng::seed_from_u64(seed),
            timers: HashMap::new(),
            timer_seq: 0,
            firing: None,
            children: Vec::new(),
            failing: false,
            parent,
        }
    }

    /// This component's id.
    pub fn id(&self) -> ComponentId {
        self.id
    }

    /// The current time: monotonic time since the runtime started, or virtual time in the
    /// simulator.
    pub fn now(&self) -> Time {
        self.exec.now()
    }

    /// This component's random generator (use it with the [`rand::Rng`] trait).
    pub fn rng(&mut self) -> &mut ComponentRng {
        &mut self.rng
    }

    /// A handle on the runtime, to create top-level components.
    pub fn system(&self) -> System {
        System::new(self.exec.clone())
    }

    fn arm(&mut self, delay: Duration, entry: TimerEntry<C>) -> TimerId {
        self.timer_seq += 1;
        let id = TimerId(self.timer_seq);
        self.timers.insert(id, entry);
        let me: Weak<dyn Schedulable> = self.me.clone();
        self.exec.schedule_timer(self.exec.now() + delay, me, id);
        id
    }

    /// Runs `callback` once, `delay` from now, as an event of this component.
    pub fn schedule_once(
        &mut self,
        delay: Duration,
        callback: impl FnOnce(&mut C, &mut Context<C>) + Send + 'static,
    ) -> TimerId {
        self.arm(delay, TimerEntry::Once(Box::new(callback)))
    }

    /// Runs `callback` `delay` from now and then every `period`, as an event of this component,
    /// until the timer is cancelled or the component stops. Expiries are spaced from the
    /// previous deadline, not from when the callback ran, so they do not drift.
    ///
    /// # Panics
    /// If `period` is zero.
    pub fn schedule_periodic(
        &mut self,
        delay: Duration,
        period: Duration,
        callback: impl FnMut(&mut C, &mut Context<C>) + Send + 'static,
    ) -> TimerId {
        assert!(!period.is_zero(), "a periodic timer needs a non-zero period");
        self.arm(delay, TimerEntry::Periodic { callback: Box::new(callback), period })
    }

    /// Cancels a timer; returns whether it was still scheduled. A cancelled timer's callback
    /// never runs again, even if its expiry is already queued.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        if let Some((firing, cancelled)) = &mut self.firing {
            if *firing == id {
                let was = !*cancelled;
                *cancelled = true;
                return was;
            }
        }
        self.timers.remove(&id).is_some()
    }

    pub(crate) fn cancel_all_timers(&mut self) {
        self.timers.clear();
        if let Some((_, cancelled)) = &mut self.firing {
            *cancelled = true;
        }
    }

    /// Creates a child component. It starts when this component starts (or at once with
    /// [`Component::start`] if this one is already active); it is stopped and killed with this
    /// one; its faults come to this component's
    /// [`on_fault`](ComponentDefinition::on_fault).
    pub fn create<D, F>(&mut self, factory: F) -> Component<D>
    where
        D: ComponentDefinition,
        F: Fn(&mut Setup<D>) -> D + Send + Sync + 'static,
    {
        let parent: Weak<dyn Schedulable> = self.me.clone();
        let child = create_component(self.exec.clone(), Some(parent), Box::new(factory));
        self.children.retain(|c| {
            LifecycleState::from_u8(c.header().state.load(Ordering::Acquire))
                != LifecycleState::Destroyed
        });
        self.children.push(child.core.clone());
        child
    }

    /// The ids of this component's children that are not destroyed.
    pub fn children(&self) -> Vec<ComponentId> {
        self.live_children().iter().map(|c| c.header().id).collect()
    }

    pub(crate) fn live_children(&self) -> Vec<Arc<dyn Schedulable>> {
        self.children
            .iter()
            .filter(|c| {
                LifecycleState::from_u8(c.header().state.load(Ordering::Acquire))
                    != LifecycleState::Destroyed
            })
            .cloned()
            .collect()
    }

    /// Adds children created elsewhere (by the factory, through its `Setup`).
    pub(crate) fn adopt(&mut self, children: Vec<Arc<dyn Schedulable>>) {
        self.children.extend(children);
    }

    pub(crate) fn take_children(&mut self) -> Vec<Arc<dyn Schedulable>> {
        std::mem::take(&mut self.children)
    }

    fn control_self(&self, control: Control) {
        if let Some(me) = self.me.upgrade() {
            let me: Arc<dyn Schedulable> = me;
            enqueue_control(&me, control);
        }
    }

    /// Fails this component with `error` once the current handler returns, as a panic would:
    /// the component becomes faulty (timers cancelled, children stopped, queued events kept)
    /// and its supervisor's [`on_fault`](ComponentDefinition::on_fault) gets a
    /// [`Fault`](crate::Fault) whose `message` is the error's `Display` text and whose
    /// [`error`](crate::Fault::error) gives the error back, downcast to `E`. No other event of
    /// this component is handled in between. This is the way to report an I/O error that the
    /// component cannot recover from itself, instead of `panic!`.
    ///
    /// The handler goes on running until it returns: return right after calling `fail`.
    /// Calling it twice in one handler reports the first error only.
    ///
    /// ```
    /// # use kompics_core::*;
    /// # #[derive(Debug)] struct Corrupt;
    /// # impl std::fmt::Display for Corrupt {
    /// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("corrupt") }
    /// # }
    /// # impl std::error::Error for Corrupt {}
    /// # struct Log;
    /// # impl ComponentDefinition for Log {}
    /// # impl Receive<u64> for Log {
    /// fn receive(&mut self, ctx: &mut Context<Self>, offset: u64) {
    ///     if offset > 100 {
    ///         ctx.fail(Corrupt);
    ///         return;
    ///     }
    ///     // ...
    /// }
    /// # }
    /// ```
    pub fn fail<E: std::error::Error + Send + Sync + 'static>(&mut self, error: E) {
        self.fail_shared(Arc::new(error));
    }

    /// Like [`fail`](Context::fail), for an error already shared (say, one kept from an
    /// earlier failure).
    pub fn fail_shared(&mut self, error: FaultError) {
        if self.failing {
            return;
        }
        self.failing = true;
        self.control_self(Control::Fail(error));
    }

    /// The value of `result`, or `None` after [`fail`](Context::fail)ing the component with its
    /// error: `let Some(n) = ctx.ok_or_fail(file.write(buf)) else { return };`
    pub fn ok_or_fail<T, E: std::error::Error + Send + Sync + 'static>(
        &mut self,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.fail(error);
                None
            }
        }
    }

    /// Stops this component after the current handler returns.
    pub fn stop_self(&self) {
        self.control_self(Control::Stop);
    }

    /// Kills this component after the current handler returns.
    pub fn kill_self(&self) {
        self.control_self(Control::Kill);
    }
}
