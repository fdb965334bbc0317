//! Seeded distributions of durations: how long between two events of a process, or how long
//! after another process a process starts.

use std::fmt;
use std::time::Duration;

use rand::Rng;

/// A distribution of durations, sampled from the scenario's seeded generator.
///
/// ```
/// use std::time::Duration;
/// use kompics_core::rand::{rngs::SmallRng, SeedableRng};
/// use kompics_core::scenario::Dist;
///
/// let mut rng = SmallRng::seed_from_u64(1);
/// let ms = Duration::from_millis;
/// assert_eq!(Dist::constant(ms(5)).sample(&mut rng), ms(5));
/// let d = Dist::uniform(ms(50), ms(600)).sample(&mut rng);
/// assert!(ms(50) <= d && d <= ms(600));
/// // A plain `Duration` converts to a constant distribution.
/// assert_eq!(Dist::from(ms(7)), Dist::constant(ms(7)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dist {
    /// Always the same duration.
    Constant(Duration),
    /// Uniform between `low` and `high`, both included (drawn in whole nanoseconds).
    Uniform {
        /// The shortest duration drawn.
        low: Duration,
        /// The longest duration drawn.
        high: Duration,
    },
    /// Exponential with the given mean: the gaps between the arrivals of a Poisson process,
    /// for faults that come "at a rate" rather than on a grid.
    Exponential {
        /// The mean duration.
        mean: Duration,
    },
}

impl Dist {
    /// Always `d`.
    pub const fn constant(d: Duration) -> Dist {
        Dist::Constant(d)
    }

    /// Uniform between `low` and `high` (both included).
    ///
    /// # Panics
    /// If `low > high`: a scenario's description is checked when it is written.
    pub fn uniform(low: Duration, high: Duration) -> Dist {
        assert!(low <= high, "uniform({low:?}, {high:?}): low above high");
        Dist::Uniform { low, high }
    }

    /// Exponential with mean `mean`.
    pub const fn exponential(mean: Duration) -> Dist {
        Dist::Exponential { mean }
    }

    /// One duration drawn from `rng`.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            Dist::Constant(d) => d,
            Dist::Uniform { low, high } => {
                let (low, high) = (nanos(low), nanos(high));
                Duration::from_nanos(rng.random_range(low..=high))
            }
            Dist::Exponential { mean } => {
                // Inverse transform: u in [0, 1) keeps the logarithm finite. Rounded to whole
                // nanoseconds so that a run's times are integers, like the runtime's clock.
                let u: f64 = rng.random();
                let draw = -(1.0 - u).ln() * nanos(mean) as f64;
                Duration::from_nanos(draw.round().min(u64::MAX as f64) as u64)
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl From<Duration> for Dist {
    fn from(d: Duration) -> Dist {
        Dist::Constant(d)
    }
}

impl fmt::Display for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dist::Constant(d) => write!(f, "{d:?}"),
            Dist::Uniform { low, high } => write!(f, "uniform({low:?}..={high:?})"),
            Dist::Exponential { mean } => write!(f, "exponential(mean {mean:?})"),
        }
    }
}
