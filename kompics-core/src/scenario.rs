//! Simulation scenarios as values: processes of events over virtual time, composed in
//! sequence or in parallel, with seeded distributions (after Kompics' `SimulationScenario`).
//!
//! A randomized simulation test has two halves: the system under test with its checks, and a
//! *driver* that starts nodes, crashes them, partitions the network and sends client
//! operations at chosen times. This module is the driver, written once. A [`Scenario`] is a
//! description — [`Process`]es of named events, each process starting at a time, or some time
//! after another process starts (in parallel) or ends (in sequence) — that runs on any
//! [`World`]: a user type (a cluster over a [`Simulation`](crate::Simulation), or any harness
//! with a virtual clock) that the events act on. kompics-core knows nothing of nodes or
//! networks: a "crash" is whatever closure the test gives.
//!
//! Every choice of a run (inter-arrival times, the order of a process's events, the values an
//! event draws through its [`EventCtx`]) comes from a generator seeded by the run's seed, so a
//! seed replays a run event for event, like the simulator itself. A run returns its [`Run`]
//! log (what ran, when); a run whose event or world check fails, or that panics, returns a
//! [`Failure`] that prints the seed, a replay command, the scenario and the log.
//! [`Scenario::sweep`] runs many seeds and [`seeds`] reads them from `SIM_SEEDS` (a count) or
//! `SIM_SEED` (one seed, to replay).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use kompics_core::scenario::{seeds, Dist, Process, Scenario, World};
//! use kompics_core::*;
//!
//! /// A component that counts the expiries of a 10 ms periodic timer.
//! struct Ticker { ticks: u64 }
//! impl ComponentDefinition for Ticker {
//!     fn on_start(&mut self, ctx: &mut Context<Self>) {
//!         let period = Duration::from_millis(10);
//!         ctx.schedule_periodic(period, period, |t: &mut Ticker, _| t.ticks += 1);
//!     }
//! }
//!
//! /// The world the events act on: a simulation and the tickers started in it.
//! struct Tickers { sim: Simulation, started: Vec<Component<Ticker>> }
//! impl World for Tickers {
//!     fn now(&self) -> Time { self.sim.now() }
//!     fn run_until(&mut self, until: Time) -> Result<(), String> {
//!         self.sim.run_until(until);
//!         Ok(())
//!     }
//! }
//!
//! let ms = Duration::from_millis;
//! let mut scenario = Scenario::new("tickers");
//! // Three tickers start, 100 to 200 ms apart.
//! let boot = scenario.start_at(
//!     ms(0),
//!     Process::new("boot").every(Dist::uniform(ms(100), ms(200))).raise(
//!         3,
//!         "start",
//!         |w: &mut Tickers, _| {
//!             let ticker = w.sim.create(|_| Ticker { ticks: 0 });
//!             ticker.start();
//!             w.started.push(ticker);
//!         },
//!     ),
//! );
//! // A second after the last one started, one of them is killed...
//! let kill = scenario.start_after_end(
//!     boot,
//!     ms(1000),
//!     Process::once("kill", |w: &mut Tickers, ctx| {
//!         let i = ctx.uniform(0..w.started.len());
//!         w.started[i].kill();
//!         ctx.note(format!("ticker {i}"));
//!     }),
//! );
//! // ... and half a second later the two others have ticked all along.
//! scenario.start_after_end(
//!     kill,
//!     ms(500),
//!     Process::once("check", |w: &mut Tickers, _| {
//!         let ticks: Vec<u64> =
//!             w.started.iter().filter_map(|t| t.on_definition(|t| t.ticks)).collect();
//!         if ticks.len() == 2 && ticks.iter().all(|t| *t >= 150) {
//!             Ok(())
//!         } else {
//!             Err(format!("live tickers ticked {ticks:?}"))
//!         }
//!     }),
//! );
//!
//! // One run: its log says what ran when.
//! let mut world = Tickers { sim: Simulation::new(7), started: Vec::new() };
//! let run = scenario.run(7, &mut world).expect("the scenario passes");
//! assert_eq!(run.log.len(), 5);
//! assert_eq!(run.log[4].event, "check");
//! assert_eq!(run.log[4].at - run.log[3].at, ms(500));
//!
//! // Many seeds (`SIM_SEEDS=n` to change how many, `SIM_SEED=s` to replay one); a failure
//! // panics with the scenario, the log and the seed.
//! scenario.sweep(
//!     &seeds(0, 10),
//!     |seed| Tickers { sim: Simulation::new(seed), started: Vec::new() },
//!     |_world, _run| {},
//! );
//! ```

mod dist;
mod process;
mod report;
mod world;

pub use dist::Dist;
pub use process::{EventCtx, EventResult, Process};
pub use report::{replay_command, seeds, Failure, LogEntry, Run};
pub use world::World;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::runtime::mix64;
use crate::time::Time;

/// Names a process of a [`Scenario`], to start others relative to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcessId(usize);

/// When a process starts.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// At a time after the start of the run.
    At(Dist),
    /// Some time after another process started: the two run in parallel.
    AfterStartOf(ProcessId, Dist),
    /// Some time after another process ended: the two run in sequence.
    AfterEndOf(ProcessId, Dist),
}

/// A description of a simulation run: processes of events and when each starts, and
/// optionally when the run ends. See the [module docs](self) for a whole example.
///
/// Without [`end_after_end`](Scenario::end_after_end), a run ends when no process has events
/// left. Events at the same virtual time run in the order they were scheduled.
///
/// ```
/// use std::time::Duration;
/// use kompics_core::scenario::{Process, Scenario};
/// use kompics_core::{Simulation, Time};
///
/// let ms = Duration::from_millis;
/// let step = |name: &str| Process::new(name).every(ms(10)).raise(2, "step", |_: &mut Simulation, _| {});
/// let mut s = Scenario::new("composition");
/// let a = s.start_at(ms(0), step("a"));
/// s.start_after_start(a, ms(5), step("beside a")); // in parallel: 5 ms after a starts
/// s.start_after_end(a, ms(100), step("after a")); // in sequence: 100 ms after a's last event
/// let run = s.run(1, &mut Simulation::new(1)).unwrap();
/// let at = |n| Time::ZERO + ms(n);
/// assert_eq!(run.times_of("a"), [at(0), at(10)]);
/// assert_eq!(run.times_of("beside a"), [at(5), at(15)]);
/// assert_eq!(run.times_of("after a"), [at(110), at(120)]);
/// ```
pub struct Scenario<W> {
    name: String,
    processes: Vec<(Process<W>, Start)>,
    end: Option<(ProcessId, Dist)>,
}

/// A pending step of a run, ordered by time, then by when it was scheduled.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    at: Time,
    seq: u64,
    action: Action,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Start(usize),
    Next(usize),
    End,
}

/// The state of one run.
struct Runner<'s, W> {
    scenario: &'s Scenario<W>,
    rng: SmallRng,
    queue: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    /// Per process, per raise: events left to run, and events run so far.
    left: Vec<Vec<usize>>,
    ran: Vec<Vec<usize>>,
}

/// Keeps the scenario's generator apart from one a world seeds with the same seed.
const RNG_SALT: u64 = 0x5ce7_a410_0f5e_ed01;

impl<W> Scenario<W> {
    /// An empty scenario named `name`.
    pub fn new(name: impl Into<String>) -> Scenario<W> {
        Scenario { name: name.into(), processes: Vec::new(), end: None }
    }

    /// Adds `process`, starting `at` after the start of the run.
    pub fn start_at(&mut self, at: impl Into<Dist>, process: Process<W>) -> ProcessId {
        self.add(process, Start::At(at.into()))
    }

    /// Adds `process`, starting `delay` after process `of` starts (in parallel with it).
    ///
    /// # Panics
    /// If `of` is not a process of this scenario.
    pub fn start_after_start(
        &mut self,
        of: ProcessId,
        delay: impl Into<Dist>,
        process: Process<W>,
    ) -> ProcessId {
        self.check_id(of);
        self.add(process, Start::AfterStartOf(of, delay.into()))
    }

    /// Adds `process`, starting `delay` after process `of` ends (in sequence after it).
    ///
    /// # Panics
    /// If `of` is not a process of this scenario.
    pub fn start_after_end(
        &mut self,
        of: ProcessId,
        delay: impl Into<Dist>,
        process: Process<W>,
    ) -> ProcessId {
        self.check_id(of);
        self.add(process, Start::AfterEndOf(of, delay.into()))
    }

    /// Ends the run `delay` after process `of` ends, even if other processes have events left:
    /// the world runs until then, then the run stops.
    ///
    /// # Panics
    /// If `of` is not a process of this scenario.
    pub fn end_after_end(&mut self, of: ProcessId, delay: impl Into<Dist>) {
        self.check_id(of);
        self.end = Some((of, delay.into()));
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn add(&mut self, process: Process<W>, start: Start) -> ProcessId {
        self.processes.push((process, start));
        ProcessId(self.processes.len() - 1)
    }

    fn check_id(&self, id: ProcessId) {
        // Ids are handed out in order, so a process only refers to earlier ones: no cycles.
        assert!(id.0 < self.processes.len(), "{id:?} is not a process of scenario {}", self.name);
    }
}

impl<W: World> Scenario<W> {
    /// Runs the scenario on `world` with `seed`: the events in virtual time, the world running
    /// between them. Returns the log, or the failure (a failed event or world check, or a
    /// panic, caught) with everything needed to replay it.
    pub fn run(&self, seed: u64, world: &mut W) -> Result<Run, Box<Failure>> {
        let mut log = Vec::new();
        let outcome =
            catch_unwind(AssertUnwindSafe(|| Runner::new(self, seed).drive(world, &mut log)));
        let cause = match outcome {
            Ok(Ok(end)) => return Ok(Run { seed, log, end }),
            Ok(Err(cause)) => cause,
            Err(panic) => format!("panic: {}", panic_text(&*panic)),
        };
        // The world may be half-way through an event: asking it must not hide the failure.
        let at = catch_unwind(AssertUnwindSafe(|| world.now())).unwrap_or(Time::ZERO);
        let report = catch_unwind(AssertUnwindSafe(|| world.report()))
            .unwrap_or_else(|_| "(the world's report panicked)\n".into());
        Err(self.failure(seed, cause, at, log, report))
    }

    /// Runs the scenario once per seed, each on a new world from `make_world`; `inspect` sees
    /// each passing run's world and log (to gather statistics, or check more). All seeds run;
    /// then, if any failed, panics naming the failed seeds, with the first failure's report.
    pub fn sweep(
        &self,
        seeds: &[u64],
        mut make_world: impl FnMut(u64) -> W,
        mut inspect: impl FnMut(&mut W, &Run),
    ) {
        let mut failures: Vec<Box<Failure>> = Vec::new();
        for &seed in seeds {
            let world = catch_unwind(AssertUnwindSafe(|| make_world(seed)));
            let mut world = match world {
                Ok(world) => world,
                Err(panic) => {
                    let cause = format!("panic while making the world: {}", panic_text(&*panic));
                    failures.push(self.failure(seed, cause, Time::ZERO, Vec::new(), String::new()));
                    continue;
                }
            };
            match self.run(seed, &mut world) {
                Ok(run) => inspect(&mut world, &run),
                Err(failure) => failures.push(failure),
            }
        }
        if let Some(first) = failures.first() {
            let failed: Vec<u64> = failures.iter().map(|f| f.seed).collect();
            panic!(
                "{} of {} seeds of scenario {} failed: {failed:?}\nfirst failure:\n{first}",
                failed.len(),
                seeds.len(),
                self.name
            );
        }
    }

    fn failure(
        &self,
        seed: u64,
        cause: String,
        at: Time,
        log: Vec<LogEntry>,
        world: String,
    ) -> Box<Failure> {
        Box::new(Failure {
            seed,
            cause,
            at,
            scenario: self.to_string(),
            log,
            world,
            replay: replay_command(seed),
        })
    }
}

impl<'s, W: World> Runner<'s, W> {
    fn new(scenario: &'s Scenario<W>, seed: u64) -> Self {
        let counts = |p: &Process<W>| p.raises.iter().map(|r| r.count).collect::<Vec<_>>();
        Runner {
            scenario,
            rng: SmallRng::seed_from_u64(mix64(seed ^ RNG_SALT)),
            queue: BinaryHeap::new(),
            seq: 0,
            left: scenario.processes.iter().map(|(p, _)| counts(p)).collect(),
            ran: scenario.processes.iter().map(|(p, _)| vec![0; p.raises.len()]).collect(),
        }
    }

    /// Runs every step in time order; returns the world's time at the end.
    fn drive(mut self, world: &mut W, log: &mut Vec<LogEntry>) -> Result<Time, String> {
        let start = world.now();
        for i in 0..self.scenario.processes.len() {
            if let Start::At(at) = self.scenario.processes[i].1 {
                let at = start + at.sample(&mut self.rng);
                self.schedule(at, Action::Start(i));
            }
        }
        while let Some(Reverse(pending)) = self.queue.pop() {
            world.run_until(pending.at).map_err(|e| format!("world check failed: {e}"))?;
            match pending.action {
                Action::End => break,
                Action::Start(i) => {
                    let now = world.now();
                    for j in self.dependents(i, |s| matches!(s, Start::AfterStartOf(..))) {
                        let delay = self.start_delay(j);
                        self.schedule(now + delay, Action::Start(j));
                    }
                    self.next_event(i, world, log)?;
                }
                Action::Next(i) => self.next_event(i, world, log)?,
            }
        }
        Ok(world.now())
    }

    /// Runs process `i`'s next event, if it has one left, and schedules what follows.
    fn next_event(
        &mut self,
        i: usize,
        world: &mut W,
        log: &mut Vec<LogEntry>,
    ) -> Result<(), String> {
        let scenario = self.scenario;
        let process = &scenario.processes[i].0;
        let total: usize = self.left[i].iter().sum();
        if total > 0 {
            // Kompics' order: each kind in proportion to how many of it are left.
            let mut pick = self.rng.random_range(0..total);
            let k = self.left[i]
                .iter()
                .position(|&n| {
                    if pick < n {
                        return true;
                    }
                    pick -= n;
                    false
                })
                .expect("pick below the total");
            self.left[i][k] -= 1;
            self.ran[i][k] += 1;
            let raise = &process.raises[k];
            let event = if raise.count > 1 {
                format!("{}#{}", raise.name, self.ran[i][k])
            } else {
                raise.name.clone()
            };
            let now = world.now();
            log.push(LogEntry {
                at: now,
                process: process.name.clone(),
                event,
                note: String::new(),
            });
            let entry = log.last_mut().expect("just pushed");
            let mut ctx = process::EventCtx {
                rng: &mut self.rng,
                note: &mut entry.note,
                now,
                index: self.ran[i][k],
            };
            (raise.action)(world, &mut ctx).map_err(|e| match process.name == entry.event {
                true => format!("{} failed: {e}", entry.event),
                false => format!("{} {} failed: {e}", process.name, entry.event),
            })?;
        }
        let now = world.now();
        if total > 1 {
            let gap = process.every.sample(&mut self.rng);
            self.schedule(now + gap, Action::Next(i));
            return Ok(());
        }
        // The process ended: start what follows it.
        for j in self.dependents(i, |s| matches!(s, Start::AfterEndOf(..))) {
            let delay = self.start_delay(j);
            self.schedule(now + delay, Action::Start(j));
        }
        if let Some((of, delay)) = self.scenario.end {
            if of.0 == i {
                let at = now + delay.sample(&mut self.rng);
                self.schedule(at, Action::End);
            }
        }
        Ok(())
    }

    /// The processes that start relative to process `i`, in the order they were added.
    fn dependents(&self, i: usize, kind: impl Fn(&Start) -> bool) -> Vec<usize> {
        let relative_to_i = |s: &Start| match s {
            Start::AfterStartOf(of, _) | Start::AfterEndOf(of, _) => of.0 == i,
            Start::At(_) => false,
        };
        (0..self.scenario.processes.len())
            .filter(|&j| {
                let start = &self.scenario.processes[j].1;
                kind(start) && relative_to_i(start)
            })
            .collect()
    }

    fn start_delay(&mut self, j: usize) -> std::time::Duration {
        match self.scenario.processes[j].1 {
            Start::At(d) | Start::AfterStartOf(_, d) | Start::AfterEndOf(_, d) => {
                d.sample(&mut self.rng)
            }
        }
    }

    fn schedule(&mut self, at: Time, action: Action) {
        self.seq += 1;
        self.queue.push(Reverse(Pending { at, seq: self.seq, action }));
    }
}

impl<W> fmt::Display for Scenario<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "scenario {:?}:", self.name)?;
        let name = |id: &ProcessId| self.processes[id.0].0.name.clone();
        for (process, start) in &self.processes {
            let when = match start {
                Start::At(at) => format!("at {at}"),
                Start::AfterStartOf(of, d) => format!("{d} after {} starts", name(of)),
                Start::AfterEndOf(of, d) => format!("{d} after {} ends", name(of)),
            };
            writeln!(f, "  {process}; starts {when}")?;
        }
        match &self.end {
            Some((of, d)) => write!(f, "  the run ends {d} after {} ends", name(of)),
            None => write!(f, "  the run ends when no process has events left"),
        }
    }
}

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(not a string)".into())
}
