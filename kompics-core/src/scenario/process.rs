//! A process of a scenario: a number of named events, spaced by a distribution.

use std::fmt::{self, Display, Write as _};
use std::rc::Rc;
use std::time::Duration;

use rand::distr::uniform::{SampleRange, SampleUniform};
use rand::rngs::SmallRng;
use rand::Rng;

use super::Dist;
use crate::time::Time;

/// What an event may return: nothing (it cannot fail), or a `Result` whose error is a failed
/// check that ends the run and is reported with the scenario.
pub trait EventResult {
    /// The outcome as the scenario records it.
    fn into_result(self) -> Result<(), String>;
}

impl EventResult for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> EventResult for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// The action of an event. `Rc`, not `Box`: a scenario is a value that each run reads, and
/// processes are cloned into it when they are added.
pub(crate) type Action<W> = Rc<dyn Fn(&mut W, &mut EventCtx<'_>) -> Result<(), String>>;

/// What an event's action sees besides the world: the scenario's seeded generator (to choose
/// which node, how many writes survive...) and a note for the log (to say what it chose).
///
/// ```
/// use std::time::Duration;
/// use kompics_core::scenario::{Process, Scenario};
/// use kompics_core::Simulation;
///
/// let mut s = Scenario::new("draws");
/// s.start_at(
///     Duration::ZERO,
///     Process::once("pick", |_: &mut Simulation, ctx| {
///         let node = *ctx.choose(&[1, 2, 3]).unwrap();
///         let keep = ctx.uniform(0..3);
///         ctx.note(format!("node {node} keeps {keep}"));
///     }),
/// );
/// let run = s.run(5, &mut Simulation::new(5)).unwrap();
/// assert!(run.log[0].note.starts_with("node "));
/// // The same seed draws the same values.
/// assert_eq!(run, s.run(5, &mut Simulation::new(5)).unwrap());
/// ```
pub struct EventCtx<'a> {
    pub(crate) rng: &'a mut SmallRng,
    pub(crate) note: &'a mut String,
    pub(crate) now: Time,
    pub(crate) index: usize,
}

impl EventCtx<'_> {
    /// The world's virtual time when the event runs.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Which event of its kind this is in its process, from 1.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The scenario's generator, seeded by the run's seed.
    pub fn rng(&mut self) -> &mut SmallRng {
        self.rng
    }

    /// A value drawn uniformly from `range` (`0..n`, `1..=6`...).
    ///
    /// # Panics
    /// If the range is empty.
    pub fn uniform<T: SampleUniform, R: SampleRange<T>>(&mut self, range: R) -> T {
        self.rng.random_range(range)
    }

    /// True with probability `p` (between 0 and 1).
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    /// One of `items`, uniformly; `None` if there are none.
    pub fn choose<'t, T>(&mut self, items: &'t [T]) -> Option<&'t T> {
        (!items.is_empty()).then(|| &items[self.rng.random_range(0..items.len())])
    }

    /// A duration drawn from `dist`.
    pub fn duration(&mut self, dist: impl Into<Dist>) -> Duration {
        dist.into().sample(self.rng)
    }

    /// Adds `text` to this event's line in the log (what was chosen, what was seen).
    pub fn note(&mut self, text: impl Display) {
        if !self.note.is_empty() {
            self.note.push_str("; ");
        }
        let _ = write!(self.note, "{text}");
    }
}

/// A sequence of events: `count` events of each raised kind, in a random order (each next
/// event is drawn among the kinds in proportion to how many of each are left, as Kompics'
/// stochastic processes do), the first when the process starts and each next one an
/// inter-arrival time (drawn from [`every`](Process::every)) after the previous one
/// finished. The process ends when its last event has run.
///
/// ```
/// use std::time::Duration;
/// use kompics_core::scenario::{Dist, Process};
///
/// // A world of three switches; the process flips random switches, five times.
/// let flips = Process::<[bool; 3]>::new("flips")
///     .every(Dist::uniform(Duration::from_millis(1), Duration::from_millis(9)))
///     .raise(5, "flip", |world, ctx| {
///         let i = ctx.uniform(0..3);
///         world[i] = !world[i];
///         ctx.note(format!("switch {i}"));
///     });
/// assert_eq!(flips.len(), 5);
/// ```
pub struct Process<W> {
    pub(crate) name: String,
    pub(crate) every: Dist,
    pub(crate) raises: Vec<Raise<W>>,
}

pub(crate) struct Raise<W> {
    pub(crate) count: usize,
    pub(crate) name: String,
    pub(crate) action: Action<W>,
}

impl<W> Clone for Raise<W> {
    fn clone(&self) -> Self {
        Raise { count: self.count, name: self.name.clone(), action: self.action.clone() }
    }
}

impl<W> Clone for Process<W> {
    fn clone(&self) -> Self {
        Process { name: self.name.clone(), every: self.every, raises: self.raises.clone() }
    }
}

impl<W> Process<W> {
    /// An empty process named `name`, whose events follow each other at once.
    pub fn new(name: impl Into<String>) -> Process<W> {
        Process { name: name.into(), every: Dist::Constant(Duration::ZERO), raises: Vec::new() }
    }

    /// The inter-arrival time: how long after an event finished the next one runs.
    pub fn every(mut self, dist: impl Into<Dist>) -> Process<W> {
        self.every = dist.into();
        self
    }

    /// Adds `count` events named `name` that run `action` on the world. The action returns
    /// `()` or a `Result`; an error is a failed check and ends the run.
    pub fn raise<R, F>(mut self, count: usize, name: impl Into<String>, action: F) -> Process<W>
    where
        R: EventResult,
        F: Fn(&mut W, &mut EventCtx<'_>) -> R + 'static,
    {
        let action: Action<W> = Rc::new(move |w, ctx| action(w, ctx).into_result());
        self.raises.push(Raise { count, name: name.into(), action });
        self
    }

    /// A process of one event: `action`, named like the process.
    pub fn once<R, F>(name: impl Into<String>, action: F) -> Process<W>
    where
        R: EventResult,
        F: Fn(&mut W, &mut EventCtx<'_>) -> R + 'static,
    {
        let name = name.into();
        Process::new(name.clone()).raise(1, name, action)
    }

    /// The process's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many events the process runs in all.
    pub fn len(&self) -> usize {
        self.raises.iter().map(|r| r.count).sum()
    }

    /// Whether the process runs no event (it then ends as soon as it starts).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<W> fmt::Display for Process<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [only] = self.raises.as_slice() {
            if only.count == 1 && only.name == self.name {
                return write!(f, "{}: one event", self.name);
            }
        }
        let kinds: Vec<String> =
            self.raises.iter().map(|r| format!("{}× {}", r.count, r.name)).collect();
        write!(
            f,
            "{}: {}",
            self.name,
            if kinds.is_empty() { "no events".into() } else { kinds.join(", ") }
        )?;
        if self.len() > 1 {
            write!(f, ", every {}", self.every)?;
        }
        Ok(())
    }
}
