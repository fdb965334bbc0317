//! What a run of a scenario leaves: its log, or the report of its failure; and the seeds of a
//! sweep, from the environment.

use std::fmt;

use crate::time::Time;

/// One event that ran: when, in which process, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The world's virtual time when the event ran.
    pub at: Time,
    /// The process it belongs to.
    pub process: String,
    /// The event's name, numbered within its process (`crash#2`).
    pub event: String,
    /// What the event noted (what it chose, what it saw); may be empty.
    pub note: String,
}

impl fmt::Display for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.at, self.process, self.event)?;
        if !self.note.is_empty() {
            write!(f, " — {}", self.note)?;
        }
        Ok(())
    }
}

/// A successful run: its seed, the events that ran, and when it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The seed of the run.
    pub seed: u64,
    /// Every event, in the order it ran.
    pub log: Vec<LogEntry>,
    /// The world's virtual time at the end of the run.
    pub end: Time,
}

impl Run {
    /// The times at which the events of `process` ran.
    pub fn times_of(&self, process: &str) -> Vec<Time> {
        self.log.iter().filter(|e| e.process == process).map(|e| e.at).collect()
    }
}

/// A failed run: everything needed to understand it and to replay it. Its `Display` (and its
/// `Debug`, so that `unwrap` shows it) prints the seed, the cause, a replay command, the
/// scenario's description, the events that ran and the world's own report.
///
/// ```
/// use std::time::Duration;
/// use kompics_core::scenario::{Process, Scenario};
/// use kompics_core::Simulation;
///
/// let mut s = Scenario::new("doomed");
/// s.start_at(
///     Duration::from_secs(1),
///     Process::once("check", |_: &mut Simulation, _| Err("the answer is not 42")),
/// );
/// let failure = s.run(17, &mut Simulation::new(17)).unwrap_err();
/// assert_eq!(failure.seed, 17);
/// assert_eq!(failure.cause, "check failed: the answer is not 42");
/// let text = failure.to_string();
/// assert!(text.starts_with("scenario failed with seed 17 at 1.000000000s"));
/// assert!(text.contains("replay: SIM_SEED=17 cargo test"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Failure {
    /// The seed of the run.
    pub seed: u64,
    /// Why it failed: a failed check of an event or of the world, or a panic.
    pub cause: String,
    /// The world's virtual time when it failed (zero if the world could not tell).
    pub at: Time,
    /// The scenario's description.
    pub scenario: String,
    /// The events that ran, the failing one last.
    pub log: Vec<LogEntry>,
    /// The world's report of its state ([`World::report`](super::World::report)).
    pub world: String,
    /// A command that replays this seed.
    pub replay: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "scenario failed with seed {} at {}: {}", self.seed, self.at, self.cause)?;
        writeln!(f, "replay: {}", self.replay)?;
        writeln!(f, "{}", self.scenario)?;
        writeln!(f, "log ({} events):", self.log.len())?;
        for entry in &self.log {
            writeln!(f, "  {entry}")?;
        }
        if !self.world.is_empty() {
            writeln!(f, "world:")?;
            write!(f, "{}", self.world)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The seeds of a sweep: `SIM_SEED=s` alone (to replay one), else `SIM_SEEDS` seeds (default
/// `default_count`) from `first` on.
///
/// ```
/// // Without SIM_SEED or SIM_SEEDS in the environment:
/// # if std::env::var("SIM_SEED").is_err() && std::env::var("SIM_SEEDS").is_err() {
/// assert_eq!(kompics_core::scenario::seeds(1, 3), vec![1, 2, 3]);
/// # }
/// ```
///
/// # Panics
/// If `SIM_SEED` or `SIM_SEEDS` is set and not a number: a typo must not silently run the
/// default sweep instead.
pub fn seeds(first: u64, default_count: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let seed =
            seed.trim().parse().unwrap_or_else(|_| panic!("SIM_SEED={seed:?} is not a number"));
        return vec![seed];
    }
    let count = match std::env::var("SIM_SEEDS") {
        Ok(n) => n.trim().parse().unwrap_or_else(|_| panic!("SIM_SEEDS={n:?} is not a number")),
        Err(_) => default_count,
    };
    (first..first.saturating_add(count)).collect()
}

/// A one-line command that replays `seed` in the running test: `SIM_SEED=<seed> cargo test`,
/// with `--release` in an optimised build, and the package, the test target and the test's
/// name when they can be told (cargo names the package in `CARGO_PKG_NAME`, the test binary
/// is named after its target, and the test harness names each test's thread after the test).
pub fn replay_command(seed: u64) -> String {
    let mut command = format!("SIM_SEED={seed} cargo test");
    // A release build replays in release: the same run, at the speed it was found at.
    if !cfg!(debug_assertions) {
        command.push_str(" --release");
    }
    let package = std::env::var("CARGO_PKG_NAME").ok();
    if let Some(package) = &package {
        command.push_str(&format!(" -p {package}"));
    }
    // A test binary is `target/<profile>/deps/<target>-<hash>`; the library's own unit tests
    // are named after the package (with underscores).
    let target = std::env::current_exe().ok().and_then(|exe| {
        let stem = exe.file_stem()?.to_str()?.to_string();
        let (name, hash) = stem.rsplit_once('-')?;
        (hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit())).then(|| name.to_string())
    });
    match (&target, &package) {
        (Some(target), Some(package)) if *target == package.replace('-', "_") => {
            command.push_str(" --lib")
        }
        (Some(target), _) => command.push_str(&format!(" --test {target}")),
        _ => {}
    }
    if let Some(test) = std::thread::current().name().filter(|n| *n != "main") {
        command.push_str(&format!(" -- --exact {test}"));
    }
    command
}
