//! The threaded runtime: a pool of worker threads with work stealing.
//!
//! Each worker has a LIFO slot, a local queue others can steal from, and shares a global
//! injector with the other workers. A component made ready by a handler running on a worker goes
//! into that worker's LIFO slot and runs right after the current component: a ping-pong pair
//! stays on one thread and no thread is woken per message. But when the current component still
//! has events and another worker is spinning for work, the new one goes to the local queue for
//! that worker to steal, so that a pipelined pair runs on two cores. What the slot displaces,
//! and a component that used up its batch with events left, goes to the local queue, and a
//! sleeping worker is woken to steal it. Components made ready from outside the pool (timers, the network
//! thread, the main thread) go to the injector.
//!
//! Idle workers spin briefly, then park; a worker announces itself as sleeping *before* its last
//! look at the queues and a producer looks for sleepers *after* pushing (both with sequentially
//! consistent fences), so a wake-up is never lost. An idle runtime uses no CPU.

use std::cell::RefCell;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::sync::{Parker, Unparker};
use parking_lot::{Condvar, Mutex};

use super::mix64;
use super::timer_thread::TimerQueue;
use crate::component::core::{enqueue_control, Control, Schedulable};
use crate::component::setup::Setup;
use crate::component::{Component, ComponentDefinition, ComponentId};
use crate::supervision::Fault;
use crate::system::{Executor, System};
use crate::time::Time;
use crate::timer::TimerId;

type Task = Arc<dyn Schedulable>;

/// A function told of faults that no supervisor handled.
pub type FaultHandler = Arc<dyn Fn(&Fault) + Send + Sync>;

/// Settings of the threaded [`Runtime`].
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Worker threads (default: one per core).
    pub workers: usize,
    /// Events a component handles per scheduling before it yields its worker (default 64).
    pub batch_events: usize,
    /// Seed of the components' random generators (default: drawn from the OS).
    pub seed: Option<u64>,
    /// Told of every fault no supervisor handled (default: logged at error level, nothing else).
    pub fault_handler: Option<FaultHandler>,
    /// Rounds an idle worker looks for work (spinning, then yielding) before it parks
    /// (default 64). More rounds trade idle CPU for fewer wake-ups under bursty load; once parked,
    /// an idle worker uses no CPU.
    pub idle_rounds: u32,
    /// How long `shutdown` waits for the components to run their kill hooks (default 5 s).
    pub shutdown_timeout: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batch_events: 64,
            seed: None,
            fault_handler: None,
            idle_rounds: 64,
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl RuntimeConfig {
    /// Sets the number of worker threads.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Sets the number of events per scheduling.
    pub fn batch_events(mut self, batch_events: usize) -> Self {
        self.batch_events = batch_events;
        self
    }

    /// Sets the seed of the components' random generators.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets the function told of unhandled faults.
    pub fn on_fault(mut self, handler: impl Fn(&Fault) + Send + Sync + 'static) -> Self {
        self.fault_handler = Some(Arc::new(handler));
        self
    }
}

static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(1);

/// A worker's own queues, reachable from handlers running on it.
struct Local {
    pool: usize,
    lifo: Option<Task>,
    queue: Worker<Task>,
    /// Tasks taken so far, to look at the injector first now and then.
    ticks: u32,
    /// Consecutive tasks taken from the LIFO slot.
    lifo_streak: u32,
    /// The component running on this worker now.
    current: Option<Task>,
}

/// Every this many tasks a worker looks at the injector before its own queues, so that work
/// from outside the pool is not starved by components that keep each other busy.
const INJECTOR_INTERVAL: u32 = 61;
/// A worker takes at most this many tasks in a row from its LIFO slot; then the slot's task
/// goes to the back of the local queue, so a ping-pong pair cannot starve the rest.
const LIFO_STREAK_MAX: u32 = 32;

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

struct Pool {
    id: usize,
    batch_events: usize,
    idle_rounds: u32,
    injector: Injector<Task>,
    stealers: Vec<Stealer<Task>>,
    unparkers: Vec<Unparker>,
    sleepers: Mutex<Vec<usize>>,
    sleeping: AtomicUsize,
    /// Workers out of work and spinning: they would take a stealable task at once.
    searching: AtomicUsize,
    shutdown: AtomicBool,
    timers: Arc<TimerQueue>,
    next_id: AtomicU64,
    seed: u64,
    fault_handler: Option<FaultHandler>,
    roots: Mutex<Vec<Task>>,
    live: Mutex<usize>,
    all_destroyed: Condvar,
}

enum Placed {
    Lifo,
    Displaced,
    Outside(Task),
}

impl Pool {
    /// Wakes one sleeping worker, if any. Called after pushing work others can take.
    fn notify_one(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) == 0 {
            return;
        }
        let idx = {
            let mut sleepers = self.sleepers.lock();
            let idx = sleepers.pop();
            if idx.is_some() {
                self.sleeping.fetch_sub(1, Ordering::SeqCst);
            }
            idx
        };
        if let Some(i) = idx {
            self.unparkers[i].unpark();
        }
    }

    fn unregister_sleeper(&self, index: usize) {
        let mut sleepers = self.sleepers.lock();
        if let Some(pos) = sleepers.iter().position(|&i| i == index) {
            sleepers.swap_remove(pos);
            self.sleeping.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn has_visible_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    fn find_task(&self, index: usize) -> Option<Task> {
        let local = LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            let l = l.as_mut().expect("worker thread");
            l.ticks = l.ticks.wrapping_add(1);
            if l.ticks % INJECTOR_INTERVAL == 0 {
                if let Steal::Success(t) = self.injector.steal_batch_and_pop(&l.queue) {
                    if let Some(lifo) = l.lifo.take() {
                        l.queue.push(lifo);
                    }
                    l.lifo_streak = 0;
                    return Some(t);
                }
            }
            if let Some(t) = l.lifo.take() {
                if l.lifo_streak < LIFO_STREAK_MAX {
                    l.lifo_streak += 1;
                    return Some(t);
                }
                l.queue.push(t);
            }
            l.lifo_streak = 0;
            if let Some(t) = l.queue.pop() {
                return Some(t);
            }
            loop {
                match self.injector.steal_batch_and_pop(&l.queue) {
                    Steal::Success(t) => return Some(t),
                    Steal::Retry => continue,
                    Steal::Empty => return None,
                }
            }
        });
        if local.is_some() {
            return local;
        }
        let n = self.stealers.len();
        for k in 1..n {
            let victim = &self.stealers[(index + k) % n];
            loop {
                match victim.steal() {
                    Steal::Success(t) => return Some(t),
                    Steal::Retry => continue,
                    Steal::Empty => break,
                }
            }
        }
        None
    }

    fn worker_loop(&self, index: usize, parker: Parker) {
        let mut idle: u32 = 0;
        loop {
            if let Some(task) = self.find_task(index) {
                if idle > 0 {
                    self.searching.fetch_sub(1, Ordering::SeqCst);
                }
                idle = 0;
                LOCAL.with(|l| {
                    l.borrow_mut().as_mut().expect("worker thread").current = Some(task.clone())
                });
                let more = task.clone().run(self.batch_events, None);
                LOCAL.with(|l| l.borrow_mut().as_mut().expect("worker thread").current = None);
                if more {
                    LOCAL
                        .with(|l| l.borrow_mut().as_mut().expect("worker thread").queue.push(task));
                    self.notify_one();
                }
                continue;
            }
            if self.shutdown.load(Ordering::Acquire) {
                return;
            }
            if idle == 0 {
                self.searching.fetch_add(1, Ordering::SeqCst);
            }
            if idle < self.idle_rounds {
                // Spin first (work usually comes back within microseconds under load), then
                // yield the core, then park.
                if idle < 8 {
                    for _ in 0..(1u32 << idle) {
                        std::hint::spin_loop();
                    }
                } else {
                    std::thread::yield_now();
                }
                idle += 1;
                continue;
            }
            // Announce, then look once more, then sleep: see the module doc.
            self.searching.fetch_sub(1, Ordering::SeqCst);
            self.sleepers.lock().push(index);
            self.sleeping.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            idle = 0;
            if self.has_visible_work() || self.shutdown.load(Ordering::Acquire) {
                self.unregister_sleeper(index);
                continue;
            }
            parker.park();
            self.unregister_sleeper(index);
        }
    }
}

impl Executor for Pool {
    #[inline]
    fn schedule(&self, task: Task) {
        let placed = LOCAL.with(|l| match l.try_borrow_mut() {
            Ok(mut l) => match l.as_mut() {
                Some(local) if local.pool == self.id => {
                    // The LIFO slot runs the task right after the current component, on this
                    // core: best when the current one is about to run out of events (ping-pong).
                    // If it still has events and another worker is spinning for work, hand the
                    // task to that worker instead, so both run in parallel.
                    let current_busy = local
                        .current
                        .as_ref()
                        .is_some_and(|c| c.header().pending.load(Ordering::Relaxed) > 1);
                    if current_busy && self.searching.load(Ordering::Relaxed) > 0 {
                        local.queue.push(task);
                        Placed::Displaced
                    } else {
                        match local.lifo.replace(task) {
                            None => Placed::Lifo,
                            Some(old) => {
                                local.queue.push(old);
                                Placed::Displaced
                            }
                        }
                    }
                }
                _ => Placed::Outside(task),
            },
            Err(_) => Placed::Outside(task),
        });
        match placed {
            Placed::Lifo => {}
            Placed::Displaced => self.notify_one(),
            Placed::Outside(task) => {
                self.injector.push(task);
                self.notify_one();
            }
        }
    }

    fn now(&self) -> Time {
        self.timers.now()
    }

    fn schedule_timer(&self, deadline: Time, target: Weak<dyn Schedulable>, id: TimerId) {
        self.timers.schedule(deadline, target, id);
    }

    fn next_component_id(&self) -> ComponentId {
        *self.live.lock() += 1;
        ComponentId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn component_seed(&self, id: ComponentId) -> u64 {
        mix64(self.seed ^ mix64(id.0))
    }

    fn root_fault(&self, fault: Fault) {
        log::error!("unhandled fault: {fault}");
        if let Some(h) = &self.fault_handler {
            h(&fault);
        }
    }

    fn register_root(&self, component: Task) {
        let mut roots = self.roots.lock();
        roots.retain(|r| {
            crate::component::LifecycleState::from_u8(r.header().state.load(Ordering::Acquire))
                != crate::component::LifecycleState::Destroyed
        });
        roots.push(component);
    }

    fn component_destroyed(&self, _id: ComponentId) {
        let mut live = self.live.lock();
        *live -= 1;
        if *live == 0 {
            self.all_destroyed.notify_all();
        }
    }
}

/// The threaded runtime: components run on a pool of worker threads.
///
/// ```
/// use kompics_core::{Runtime, RuntimeConfig};
///
/// let runtime = Runtime::new(RuntimeConfig::default().workers(2));
/// // runtime.create(...), connect, start...
/// runtime.shutdown(); // kills every component and joins every thread
/// ```
pub struct Runtime {
    pool: Arc<Pool>,
    system: System,
    threads: Vec<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl Runtime {
    /// Starts the worker threads and the timer thread.
    ///
    /// # Panics
    /// If `config.workers` or `config.batch_events` is zero, or a thread cannot be spawned.
    pub fn new(config: RuntimeConfig) -> Runtime {
        assert!(config.workers > 0, "a runtime needs at least one worker");
        assert!(config.batch_events > 0, "batch_events must be at least 1");
        let workers: Vec<Worker<Task>> = (0..config.workers).map(|_| Worker::new_fifo()).collect();
        let parkers: Vec<Parker> = (0..config.workers).map(|_| Parker::new()).collect();
        let seed = config.seed.unwrap_or_else(rand::random);
        let pool = Arc::new(Pool {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            batch_events: config.batch_events,
            idle_rounds: config.idle_rounds,
            injector: Injector::new(),
            stealers: workers.iter().map(Worker::stealer).collect(),
            unparkers: parkers.iter().map(|p| p.unparker().clone()).collect(),
            sleepers: Mutex::new(Vec::new()),
            sleeping: AtomicUsize::new(0),
            searching: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            timers: TimerQueue::new(Instant::now()),
            next_id: AtomicU64::new(1),
            seed,
            fault_handler: config.fault_handler.clone(),
            roots: Mutex::new(Vec::new()),
            live: Mutex::new(0),
            all_destroyed: Condvar::new(),
        });
        let mut threads = Vec::with_capacity(config.workers + 1);
        for (index, (queue, parker)) in workers.into_iter().zip(parkers).enumerate() {
            let pool = pool.clone();
            let handle = std::thread::Builder::new()
                .name(format!("kompics-worker-{index}"))
                .spawn(move || {
                    LOCAL.with(|l| {
                        *l.borrow_mut() = Some(Local {
                            pool: pool.id,
                            lifo: None,
                            queue,
                            ticks: 0,
                            lifo_streak: 0,
                            current: None,
                        })
                    });
                    pool.worker_loop(index, parker);
                    LOCAL.with(|l| *l.borrow_mut() = None);
                })
                .expect("spawn a worker thread");
            threads.push(handle);
        }
        let timers = pool.timers.clone();
        threads.push(
            std::thread::Builder::new()
                .name("kompics-timer".into())
                .spawn(move || timers.run())
                .expect("spawn the timer thread"),
        );
        let system = System::new(pool.clone());
        Runtime { pool, system, threads, shutdown_timeout: config.shutdown_timeout }
    }

    /// A handle on this runtime, cloneable and sendable.
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

    /// The seed of the components' random generators.
    pub fn seed(&self) -> u64 {
        self.pool.seed
    }

    /// Kills every component (running their `on_stop`/`on_kill` hooks), then stops and joins
    /// every thread of the runtime. Dropping the runtime does the same.
    pub fn shutdown(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        let roots: Vec<Task> = std::mem::take(&mut *self.pool.roots.lock());
        for root in &roots {
            enqueue_control(root, Control::Kill);
        }
        {
            let deadline = Instant::now() + self.shutdown_timeout;
            let mut live = self.pool.live.lock();
            while *live > 0 {
                if self.pool.all_destroyed.wait_until(&mut live, deadline).timed_out() {
                    log::warn!("shutdown: {} components still alive after the timeout", *live);
                    break;
                }
            }
        }
        self.pool.shutdown.store(true, Ordering::Release);
        self.pool.timers.shutdown();
        for u in &self.pool.unparkers {
            u.unpark();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}
