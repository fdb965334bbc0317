//! What a scenario acts on.

use crate::time::Time;
use crate::Simulation;

/// What a scenario acts on: a user type with a virtual clock the scenario can advance.
///
/// Between two events the scenario lets the world run up to the next event's time; a world
/// over a [`Simulation`] runs its events, a hand-made harness runs its own steps. A world
/// checks itself while it runs: an error from [`run_until`](World::run_until) ends the run as
/// a failure.
///
/// ```
/// use kompics_core::scenario::World;
/// use kompics_core::Time;
///
/// /// A harness with its own clock, where one step is one millisecond.
/// struct Counter { steps: u64 }
/// impl World for Counter {
///     fn now(&self) -> Time {
///         Time::from_nanos(self.steps * 1_000_000)
///     }
///     fn run_until(&mut self, until: Time) -> Result<(), String> {
///         while self.now() < until {
///             self.steps += 1;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait World {
    /// The world's virtual time.
    fn now(&self) -> Time;

    /// Runs everything due up to `until`, leaving the clock there (or later, if the world cannot
    /// stop exactly at `until`); an error is a failed check of the world.
    fn run_until(&mut self, until: Time) -> Result<(), String>;

    /// The world's state for a failure report (which nodes are up, the recent trace...).
    fn report(&self) -> String {
        String::new()
    }
}

/// A bare simulation is a world: it runs its events, and a fault that reached the top of the
/// hierarchy unhandled fails the run.
impl World for Simulation {
    fn now(&self) -> Time {
        Simulation::now(self)
    }

    fn run_until(&mut self, until: Time) -> Result<(), String> {
        Simulation::run_until(self, until);
        let faults = self.faults();
        if faults.is_empty() {
            Ok(())
        } else {
            Err(format!("unhandled faults: {faults:?}"))
        }
    }
}
